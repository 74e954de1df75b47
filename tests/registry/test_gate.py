"""The measuring gate: the bundle claims, the gate measures (leadscore.gate)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from leadscore.bundle import load_model
from leadscore.features import FEATURE_NAMES
from leadscore.registry import gate
from leadscore.settings import PromoteSettings

from tests.fixtures.bad_models import constant_bundle

from .conftest import BundleFactory

SETTINGS = PromoteSettings(min_auc=0.70, max_auc_drop=0.02, max_brier=0.20,
                           min_conversions=120)


@pytest.fixture(scope="module")
def eval_rows() -> gate.EvalRows:
    """1,200 generated leads the session bundle never saw (another generator seed)."""
    from generate_leads import generate_leads, to_feature_frame

    rows = to_feature_frame(generate_leads(1200, 11))
    X = np.array([[r[n] for n in FEATURE_NAMES] for r in rows], dtype=np.float32)
    y = np.array([int(r["converted"]) for r in rows])
    return gate.EvalRows.from_matrix(X, y, "generated leads, seed 11")


def _failed(report: gate.GateReport, *, force: bool = False) -> set[str]:
    return {c.name for c in report.failed(force=force)}


def _measure(bundle_dir: Path, rows: gate.EvalRows | None, **kw: object) -> gate.GateReport:
    model = load_model(bundle_dir)
    return gate.measure(model, bundle_dir, SETTINGS, rows=rows,
                        counts=gate.claimed_counts(model.manifest), **kw)  # type: ignore[arg-type]


def test_a_constant_bundle_with_a_lying_manifest_is_refused(
    tmp_path: Path, eval_rows: gate.EvalRows
) -> None:
    bundle_dir = constant_bundle(tmp_path / "constant", 0.99)
    report = _measure(bundle_dir, eval_rows)
    failed = _failed(report)
    assert {"scores_not_constant", "auc_lower_bound", "brier",
            "log_loss_beats_base_rate"} <= failed
    # what it claimed is not what was measured
    assert report.measured["auc"] == pytest.approx(0.5)
    assert report.measured["brier"] > 0.5
    # --force cannot override the output checks
    assert "scores_not_constant" in _failed(report, force=True)
    # without labelled rows the probe leads still expose it
    assert "scores_not_constant" in _failed(_measure(bundle_dir, None))


def test_a_nan_bundle_is_refused_even_when_forced(
    tmp_path: Path, eval_rows: gate.EvalRows
) -> None:
    bundle_dir = constant_bundle(tmp_path / "nan", math.nan)
    for rows in (eval_rows, None):
        report = _measure(bundle_dir, rows)
        assert "outputs_finite" in _failed(report, force=True)
        reason = next(r for r in report.reasons() if r.startswith("outputs_finite"))
        assert "non-finite score" in reason


def test_a_genuinely_trained_bundle_passes_every_check(
    trained_bundle: Path, eval_rows: gate.EvalRows
) -> None:
    report = _measure(trained_bundle, eval_rows)
    assert report.reasons() == []
    measured = report.measured
    assert 0.75 < measured["auc"] < 0.95
    assert measured["auc_lower_bound_95"] < measured["auc"]
    assert measured["log_loss"] < measured["base_rate_log_loss"]
    assert {c.name for c in report.checks} >= {
        "outputs_finite", "scores_in_unit_interval", "interval_contains_score",
        "scores_not_constant", "parity_recomputed", "auc_lower_bound", "brier",
        "log_loss_beats_base_rate", "min_conversions"}


def test_parity_is_recomputed_not_read(trained_bundle: Path, tmp_path: Path) -> None:
    import shutil

    from leadscore.bundle import PARITY_REFERENCE_FILE, finalize_bundle, verify_bundle

    copy = tmp_path / "bundle"
    shutil.copytree(trained_bundle, copy)
    ref = dict(np.load(copy / PARITY_REFERENCE_FILE, allow_pickle=False))
    ref["score"] = ref["score"] + 1e-3  # the native predictions no longer match the graph
    np.savez(copy / PARITY_REFERENCE_FILE, allow_pickle=False, **ref)
    manifest = verify_bundle(trained_bundle)
    finalize_bundle(copy, {k: v for k, v in manifest.items()
                           if k not in ("files", "sha256", "model_version")})
    assert manifest["metrics"]["parity_max_abs_diff"] < 1e-5  # the claim stays perfect
    failed = _failed(_measure(copy, None), force=True)
    assert "parity_recomputed" in failed


def test_a_small_gate_set_is_judged_by_the_lower_bound(
    make_bundle: BundleFactory, eval_rows: gate.EvalRows
) -> None:
    bundle_dir = make_bundle(seed=1)
    full = _measure(bundle_dir, eval_rows)
    small = _measure(bundle_dir, gate.EvalRows(eval_rows.records[:120], eval_rows.y[:120],
                                               "120", eval_rows.columns))
    assert small.measured["auc_se"] > 2 * full.measured["auc_se"]
    gap_small = small.measured["auc"] - small.measured["auc_lower_bound_95"]
    gap_full = full.measured["auc"] - full.measured["auc_lower_bound_95"]
    assert gap_small > 2 * gap_full


def test_too_few_conversions_are_refused_unless_forced(
    make_bundle: BundleFactory, eval_rows: gate.EvalRows
) -> None:
    report = _measure(make_bundle(seed=1, conversions=80), eval_rows)
    assert _failed(report) == {"min_conversions"}
    assert _failed(report, force=True) == set()
    assert "80 conversions" in report.reasons()[0]


def test_the_champion_is_compared_on_the_same_rows(
    make_bundle: BundleFactory, eval_rows: gate.EvalRows
) -> None:
    good = load_model(make_bundle(seed=1))
    worse = make_bundle(seed=2, sign=-1.0)  # ranks leads upside down
    report = _measure(worse, eval_rows, champion=good)
    assert {"champion_auc", "champion_top_precision"} <= _failed(report)
    champion = report.measured["evaluation_sets"]["gate rows"]["champion"]
    assert champion["comparable"] and champion["same_rows"] == eval_rows.n
    auc = champion["metrics"]["auc"]
    assert auc["method"] == "DeLong paired" and auc["loss"] > 0.5
    assert auc["upper_bound"] > auc["loss"] > auc["margin"]
    # an equally good candidate is not refused on noise
    same = _measure(make_bundle(seed=4), eval_rows, champion=good)
    assert not _failed(same) & set(gate.CHAMPION_CHECKS), same.reasons()


def test_eval_rows_are_read_from_the_training_formats(
    make_bundle: BundleFactory, tmp_path: Path
) -> None:
    model = load_model(make_bundle(seed=1))
    header = ",".join([*FEATURE_NAMES, "converted", "true_probability"])
    good = ",".join(["0.5"] * 20 + ["1", "0.3"])
    bad = ",".join(["oops"] + ["0.5"] * 19 + ["1", "0.3"])
    unlabelled = ",".join(["0.5"] * 20 + ["maybe", "0.3"])
    data = "\n".join([header, good, bad, unlabelled, good]).encode()
    rows, skipped = gate.read_rows(data, jsonl=False, source="t")
    # the label decides what is a row; each model decides which rows it can read
    assert rows.y.tolist() == [1, 1, 1] and skipped == 1
    encoded = gate.encode(model, rows)
    assert not isinstance(encoded, str)
    X, ok = encoded
    assert X.shape == (3, 20) and ok.tolist() == [True, False, True]
    lead = ('{"converted": 0, "psychology_profile": {"psychological_commitment_score": 80}}\n'
            'not json\n')
    rows, skipped = gate.read_rows(lead.encode(), jsonl=True, source="t")
    encoded = gate.encode(model, rows)
    assert not isinstance(encoded, str) and skipped == 1
    assert encoded[0].shape == (1, 20) and encoded[0][0, 0] == pytest.approx(0.8)


def test_a_team_schema_bundle_is_measured_through_its_schema(
    custom_bundle: Path, tmp_path: Path
) -> None:
    """A bundle trained on a team's own columns: the gate reads the gate part (raw export
    rows, the team's target) through the bundle's schema.json, not the real-estate features."""
    from tests.fixtures.custom_leads import write_custom_csv

    held_out = write_custom_csv(tmp_path / "held_out.csv", n=400, seed=99)
    rows, skipped = gate.read_rows_for_bundle(held_out.read_bytes(), jsonl=False,
                                              bundle_dir=custom_bundle, source="held out")
    model = load_model(custom_bundle)
    encoded = gate.encode(model, rows)
    assert not isinstance(encoded, str)
    assert encoded[0].shape == (400 - skipped, len(model.manifest["feature_names"]))
    assert 0 < rows.y.sum() < len(rows.y)
    report = gate.measure(model, custom_bundle, SETTINGS, rows=rows, counts=None)
    failed = {c.name for c in report.failed()}
    assert not failed & set(gate.OUTPUT_CHECKS), report.reasons()
    assert report.measured["gate_rows"] == int(encoded[1].sum()) and report.measured["auc"] > 0.6
