"""Smoke tests of the benchmark machinery on tiny data (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import metrics, sizes
from bench.original import (
    INTERVAL_HALF_WIDTH,
    OriginalEnsemble,
    agreement_of,
    band_interval,
    train_original,
)

NAMES = tuple(f"f{i}" for i in range(20))


@pytest.fixture(scope="module")
def tiny_original() -> tuple[OriginalEnsemble, np.ndarray]:
    rng = np.random.default_rng(123)
    x = rng.random((500, 20))
    logit = 4.0 * x[:, 0] - 3.0 * x[:, 1] + 2.0 * x[:, 2] * x[:, 3] - 1.5
    y = (rng.random(500) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return train_original(x, y, NAMES, random_state=7), x


@pytest.mark.slow
def test_original_trains_and_answers(tiny_original: tuple[OriginalEnsemble, np.ndarray]) -> None:
    model, x = tiny_original
    out = model.predict(x[:50])
    assert out.score.shape == (50,)
    assert out.base_scores.shape == (50, 3)
    assert np.all((out.score >= 0) & (out.score <= 1))
    # the band is built around the score with the original's formula
    assert np.all(out.interval[:, 0] <= out.score) and np.all(out.score <= out.interval[:, 1])
    expected_agreement = np.clip(1 - out.base_scores.std(axis=1) / 0.5, 0, 1)
    np.testing.assert_allclose(out.agreement, expected_agreement)
    # the model learned the planted signal: x0 pushes up, x1 pushes down
    hi = x[:1].copy()
    hi[0, 0], hi[0, 1] = 1.0, 0.0
    lo = x[:1].copy()
    lo[0, 0], lo[0, 1] = 0.0, 1.0
    assert model.predict_score(hi)[0] > model.predict_score(lo)[0]


@pytest.mark.slow
def test_original_stacker_uses_in_sample_base_scores(
    tiny_original: tuple[OriginalEnsemble, np.ndarray],
) -> None:
    model, x = tiny_original
    base = model.base_scores(x[:20])
    z = base @ model.stacker.coef_.ravel() + model.stacker.intercept_[0]
    np.testing.assert_allclose(model.predict(x[:20]).score, 1 / (1 + np.exp(-z)), rtol=1e-9)


@pytest.mark.slow
def test_original_contributions_are_importance_times_value(
    tiny_original: tuple[OriginalEnsemble, np.ndarray],
) -> None:
    model, x = tiny_original
    row = x[3]
    given = model.contributions(row)
    assert len(given) == 5
    product = model.xgb_model.feature_importances_ * np.abs(row)
    top = {NAMES[i] for i in np.argsort(-product)[:5]}
    assert set(given) == top
    for name, value in given.items():
        assert value == pytest.approx(product[NAMES.index(name)])
    vector = model.contributions_vector(row)
    assert np.count_nonzero(vector) <= 5 and vector.sum() == pytest.approx(sum(given.values()))


@pytest.mark.slow
def test_original_round_trips_without_pickle(
    tiny_original: tuple[OriginalEnsemble, np.ndarray], tmp_path: Path
) -> None:
    model, x = tiny_original
    model.save(tmp_path / "orig")
    for file in (tmp_path / "orig").iterdir():
        assert file.suffix in {".ubj", ".txt", ".npz", ".json"}
        assert file.read_bytes()[:1] != b"\x80"  # no pickle stream
    loaded = OriginalEnsemble.load(tmp_path / "orig")
    a, b = model.predict(x[:40]), loaded.predict(x[:40])
    np.testing.assert_allclose(a.base_scores, b.base_scores, atol=1e-7)
    np.testing.assert_allclose(a.score, b.score, atol=1e-7)
    assert loaded.contributions(x[0]).keys() == model.contributions(x[0]).keys()


def test_band_interval_is_clipped() -> None:
    score = np.array([0.02, 0.5, 0.99])
    agreement = np.array([0.0, 0.5, 0.0])
    band = band_interval(score, agreement)
    np.testing.assert_allclose(band[:, 0], [0.0, 0.5 - 0.5 * INTERVAL_HALF_WIDTH, 0.84])
    np.testing.assert_allclose(band[:, 1], [0.17, 0.5 + 0.5 * INTERVAL_HALF_WIDTH, 1.0])
    np.testing.assert_allclose(agreement_of(np.array([[0.0, 1.0, 0.5], [0.3, 0.3, 0.3]])),
                               [1 - float(np.std([0.0, 1.0, 0.5])) / 0.5, 1.0])


def test_relative_l1_known_cases() -> None:
    exact = np.array([0.2, -0.1, 0.0, 0.1])
    assert metrics.relative_l1(exact, exact) == 0.0
    assert metrics.relative_l1(np.zeros(4), exact) == pytest.approx(1.0)
    given = np.array([0.1, -0.1, 0.05, 0.1])  # |0.1| + |0.05| = 0.15 over 0.4
    assert metrics.relative_l1(given, exact) == pytest.approx(0.375)
    with pytest.raises(ValueError):
        metrics.relative_l1(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError):
        metrics.relative_l1(np.zeros(3), exact)


def test_results_schema_has_exactly_issue_7_keys() -> None:
    flat = {key: float(i) + 1.0 for i, key in enumerate(metrics.RESULT_KEYS)}
    nested = metrics.nest(flat)
    assert set(nested) == {
        "latency_ms", "cold_start_ms", "batch_rows_per_s", "package_mb",
        "training_seconds", "quality", "interval", "contributions",
    }
    assert set(nested["latency_ms"]) == {
        "score_p50", "score_p99", "score_only_p50", "native_score_only_p50",
        "model_onnx_p50", "model_native_p50",
    }
    assert set(nested["quality"]) == {
        "auc", "brier", "bayes_auc", "bayes_brier", "original_auc", "original_brier",
    }
    assert metrics.flatten(json.loads(json.dumps(nested))) == flat
    with pytest.raises(ValueError, match="missing"):
        metrics.nest({k: v for k, v in flat.items() if k != "training_seconds"})
    with pytest.raises(ValueError, match="extra"):
        metrics.nest({**flat, "latency_ms.score_p90": 1.0})
    with pytest.raises(ValueError, match="number"):
        metrics.nest({**flat, "quality.auc": "0.9"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="finite"):
        metrics.nest({**flat, "quality.auc": float("nan")})


def test_targets_pass_and_miss() -> None:
    flat = dict.fromkeys(metrics.RESULT_KEYS, 1.0)
    flat.update({
        "latency_ms.model_native_p50": 3.0, "latency_ms.model_onnx_p50": 0.05,
        "latency_ms.native_score_only_p50": 3.0, "latency_ms.score_only_p50": 0.9,
        "latency_ms.score_p50": 6.0, "cold_start_ms.native": 2000.0, "cold_start_ms.onnx": 500.0,
        "package_mb.onnx": 120.0, "quality.auc": 0.87, "quality.bayes_auc": 0.88,
        "interval.coverage": 0.85, "contributions.relative_l1_error": 0.01,
    })
    result = {t.name: t.passed for t in metrics.check_targets(flat)}
    assert result["model_native_p50 >= 30x model_onnx_p50"] is True  # 60x
    assert result["native_score_only_p50 >= 4x score_only_p50"] is False  # 3.3x
    assert result["score_only_p50 <= 1 ms"] is True
    assert result["score_p50 <= 5 ms"] is False
    assert result["cold start >= 3x faster than native"] is True  # 4x
    assert result["quality.auc >= 0.98 x bayes_auc"] is True
    assert result["interval.coverage vs 90 % aim"] is False


def test_coverage_and_width() -> None:
    interval = np.array([[0.1, 0.3], [0.2, 0.4], [0.0, 1.0], [0.5, 0.6]])
    truth = np.array([0.2, 0.5, 0.7, 0.5])  # inside, outside, inside, on the edge
    coverage, width = metrics.coverage_and_width(interval, truth)
    assert coverage == pytest.approx(0.75)
    assert width == pytest.approx((0.2 + 0.2 + 1.0 + 0.1) / 4)


def test_percentile_ms() -> None:
    samples = [0.001 * i for i in range(1, 101)]  # 1..100 ms
    assert metrics.percentile_ms(samples, 50) == pytest.approx(50.5)
    assert metrics.percentile_ms(samples, 99) == pytest.approx(99.01)


def test_package_sizes(tmp_path: Path) -> None:
    roots = {p.name for p in sizes.distribution_roots("numpy")}
    assert "numpy" in roots and any(r.endswith(".dist-info") for r in roots)
    numpy_mb = sizes.installed_mb(["numpy"])
    assert numpy_mb > 1.0
    assert sizes.installed_mb(["numpy", "scipy"]) > numpy_mb
    (tmp_path / ".build").mkdir()
    (tmp_path / ".build" / "size.json").write_text(json.dumps({"total_bytes": 3 * sizes.MB}))
    assert sizes.built_mb(tmp_path)[0] == pytest.approx(3.0)
    (tmp_path / ".build" / "size.json").unlink()
    build = tmp_path / ".aws-sam" / "build" / "Fn"
    build.mkdir(parents=True)
    (build / "a.bin").write_bytes(b"x" * sizes.MB)
    assert sizes.built_mb(tmp_path)[0] == pytest.approx(1.0)


@pytest.mark.slow
def test_native_twin_serves_through_the_scoring_service(
    tiny_original: tuple[OriginalEnsemble, np.ndarray], trained_bundle: Path
) -> None:
    from leadscore.bundle import load_model
    from leadscore.scoring.service import ScoringService

    from bench.native_adapter import NativeLoadedModel

    original, x = tiny_original
    ours = load_model(trained_bundle)
    twin = NativeLoadedModel(original, ours)

    class Provider:
        def current(self) -> NativeLoadedModel:
            return twin

    service = ScoringService(Provider(), None)  # type: ignore[arg-type]
    x32 = x[5].astype(np.float32)
    answer = service.score({"contact_id": "c-1", "feature_vector": x32.tolist()}, explain=False)
    expected = original.predict(x32.astype(np.float64).reshape(1, -1))
    assert answer["model_version"] == "original-native"
    assert answer["predicted_score"] == pytest.approx(expected.score[0], abs=1e-5)
    assert answer["confidence_interval"] == pytest.approx(expected.interval[0].tolist(), abs=1e-5)
    assert answer["feature_contributions"] == {}


def test_score_event_sets_the_explain_flag() -> None:
    from bench.run import score_event

    template = json.loads((Path(__file__).resolve().parents[2] / "events"
                           / "score_request.json").read_text())
    on = score_event(template, {"contact_id": "a"}, explain=True)
    off = score_event(template, {"contact_id": "b"}, explain=False)
    assert json.loads(on["body"]) == {"contact_id": "a"} and on["queryStringParameters"] is None
    assert off["queryStringParameters"] == {"explain": "false"}
    assert off["multiValueQueryStringParameters"] == {"explain": ["false"]}
    assert template["body"] != on["body"]  # the template is not modified
    assert json.loads(template["body"])["contact_id"] != "a"


def test_cold_start_children_compile() -> None:
    from bench import coldstart

    compile(coldstart.ours_code(["/x"], Path("/e.json")), "<ours>", "exec")
    compile(coldstart.native_code(["/x"], Path("/m"), [0.5] * 20), "<native>", "exec")


def test_speed_targets_are_ratios_of_the_same_run() -> None:
    flat = dict.fromkeys(metrics.RESULT_KEYS, 1.0)
    flat.update({
        "batch_rows_per_s.onnx": 65_000.0, "batch_rows_per_s.native": 32_000.0,  # 2.03x
        "latency_ms.model_native_p50": 5.0, "latency_ms.model_onnx_p50": 0.13,  # 38x
        "latency_ms.native_score_only_p50": 5.0, "latency_ms.score_only_p50": 0.45,  # 11x
        "latency_ms.score_p50": 0.95,  # 2.1x explain=false
        "cold_start_ms.native": 1000.0, "cold_start_ms.onnx": 240.0,  # 4.2x
        "interval.coverage": 0.95, "interval.mean_width": 0.2005,
        "contributions.relative_l1_error": 0.05,
    })
    got = {t.name: t.passed for t in metrics.check_speed_targets(flat)}
    assert got == {
        "batch, full graph, 1 thread >= 2x the original's batch": True,
        "full graph, one row >= 40x faster than the original's model": False,
        "/score explain=false >= 10x faster than the original's handler": True,
        "/score explained p50 <= 2x explain=false p50": False,
        "cold start >= 4x faster than the original's": True,
        "interval coverage >= 93 %": True,
        "interval mean width <= 0.200": False,
        "contributions within 0.06 of exact Shapley": True,
    }


def test_each_figure_keeps_the_load_of_the_phase_that_measured_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import harness, report

    loads = iter([1.5, 2.5, 7.0, 9.0])
    monkeypatch.setattr(harness, "load_1min", lambda: next(loads))
    run = harness.Run(harness.Config(out=tmp_path))
    with run.phase("quality"):
        run.flat["quality.auc"] = 0.88
    with run.phase("latency"):
        run.flat["latency_ms.score_p50"] = 1.0
        run.flat["latency_ms.score_only_p50"] = 0.5
    assert run.load_of("quality.auc") == [1.5, 2.5]
    assert run.load_of("latency_ms.score_only_p50") == [7.0, 9.0]
    assert run.load_of("cold_start_ms.onnx") is None  # not measured in this run
    host = report.machine()
    assert host["cpu"] and len(host["load_average_1_5_15"]) == 3


def test_explained_target_shows_the_cpu_time_ratio_beside_the_wall_clock_verdict() -> None:
    flat = dict.fromkeys(metrics.RESULT_KEYS, 1.0)
    flat.update({"latency_ms.score_p50": 2.5, "latency_ms.score_only_p50": 1.0})  # 2.5x wall
    targets = {t.name: t for t in metrics.check_speed_targets(
        flat, cpu_p50_ms={"score": 1.5, "score_only": 1.0})}
    explained = targets["/score explained p50 <= 2x explain=false p50"]
    assert explained.passed is False  # the verdict stays on wall clock
    assert explained.detail == "2.50x (CPU time 1.50x)"
