"""Data tests: the JSON Lines path equals the CSV path; held-out rows and true_probability
never reach the fitted models."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from leadscore import bundle
from train_data import load_dataset

from tests.fixtures.bundle import train_bundle


@pytest.fixture(scope="module")
def small_jsonl(generated_leads: list[dict[str, Any]],
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jsonl") / "leads.jsonl"
    path.write_text("".join(json.dumps(lead) + "\n" for lead in generated_leads))
    return path


def test_jsonl_gives_the_same_vectors_as_csv(small_jsonl: Path,
                                             small_training_csv: Path) -> None:
    a, b = load_dataset(small_jsonl), load_dataset(small_training_csv)
    assert a.input_format == "jsonl" and b.input_format == "csv"
    assert np.array_equal(a.X, b.X)
    assert np.array_equal(a.y, b.y)
    assert a.true_probability is not None and b.true_probability is not None
    assert np.array_equal(a.true_probability, b.true_probability)
    assert a.fingerprint() == b.fingerprint()


def test_jsonl_accepts_scoring_requests_with_a_features_object(
    generated_leads: list[dict[str, Any]], tmp_path: Path
) -> None:
    nested = [{"contact_id": lead["contact_id"], "converted": lead["converted"],
               "features": {k: v for k, v in lead.items()
                            if k not in ("contact_id", "converted", "true_probability")}}
              for lead in generated_leads[:800]]  # >= 120 of each outcome
    flat = tmp_path / "flat.jsonl"
    flat.write_text("".join(json.dumps(lead) + "\n" for lead in generated_leads[:800]))
    path = tmp_path / "nested.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in nested))
    a, b = load_dataset(path), load_dataset(flat)
    assert np.array_equal(a.X, b.X)
    assert a.true_probability is None  # not given: reporting without Bayes figures


@pytest.mark.slow
def test_held_out_rows_and_true_probability_never_reach_the_models(
    small_jsonl: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lead_ensemble.ensemble as ensemble_mod
    import lead_ensemble.export as export_mod

    seen: dict[str, np.ndarray] = {}
    real_fit, real_export = ensemble_mod.fit_ensemble, export_mod.export_bundle_model

    def spy_fit(X: np.ndarray, y: np.ndarray, hp: Any = None, directions: Any = None,
                **kwargs: Any) -> Any:
        seen["fit_X"], seen["fit_y"] = np.array(X), np.array(y)
        return real_fit(X, y, hp, directions, **kwargs)

    def spy_export(ens: Any, out: Any, baseline: np.ndarray, X_check: np.ndarray) -> Any:
        seen["check_X"], seen["baseline"] = np.array(X_check), np.array(baseline)
        return real_export(ens, out, baseline, X_check)

    monkeypatch.setattr(ensemble_mod, "fit_ensemble", spy_fit)
    monkeypatch.setattr(export_mod, "export_bundle_model", spy_export)
    assert train_bundle(small_jsonl, tmp_path / "b", "--skip-validation") == 0

    data = load_dataset(small_jsonl)
    fit_rows = {r.tobytes() for r in seen["fit_X"]}
    check_rows = {r.tobytes() for r in seen["check_X"]}
    all_rows = {r.tobytes() for r in data.X}
    assert seen["fit_X"].shape[1] == 20 and seen["check_X"].shape[1] == 20
    assert not fit_rows & check_rows, "a held-out row was used for fitting"
    assert fit_rows | check_rows == all_rows
    assert len(seen["fit_X"]) + len(seen["check_X"]) == data.n_rows
    # the baseline is computed from training rows only
    assert np.array_equal(seen["baseline"],
                          np.median(seen["fit_X"], axis=0).astype(np.float32))
    # no column handed to the model is the hidden truth
    assert data.true_probability is not None
    tp = {r.tobytes(): p for r, p in zip(data.X, data.true_probability, strict=True)}
    truth = np.array([tp[r.tobytes()] for r in seen["fit_X"]])
    for j in range(20):
        assert not np.allclose(seen["fit_X"][:, j], truth)
    m = json.loads((tmp_path / "b" / bundle.METRICS_FILE).read_text())
    assert m["training_samples"] == len(seen["fit_X"])


@pytest.mark.slow
def test_true_probability_does_not_change_the_model(
    small_training_csv: Path, trained_bundle: Path, tmp_path: Path
) -> None:
    """Same rows, true_probability replaced by noise: byte-identical model.onnx."""
    with small_training_csv.open() as fh:
        rows = list(csv.reader(fh))
    i = rows[0].index("true_probability")
    rng = np.random.default_rng(0)
    for r in rows[1:]:
        r[i] = repr(float(rng.random()))
    path = tmp_path / "noisy.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    assert train_bundle(path, tmp_path / "b", "--skip-validation") == 0
    ours = bundle.verify_bundle(tmp_path / "b")
    theirs = bundle.verify_bundle(trained_bundle)
    assert ours["model_version"] == theirs["model_version"]
    assert ours["sha256"] == theirs["sha256"]
