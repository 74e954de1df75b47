"""The bundle written by train.py: files, fields, importance, reports, no pickle."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from leadscore import bundle
from leadscore.classes import validate_thresholds
from leadscore.features import FEATURE_NAMES

ENSEMBLE_METRICS_FIELDS = (
    "ensemble_auc_roc", "ensemble_accuracy", "ensemble_precision", "ensemble_recall",
    "ensemble_f1_score", "ensemble_brier_score", "base_model_metrics",
    "improvement_over_best_base", "training_samples", "validation_samples", "training_date",
    "model_version",
)
BASE_FIELDS = ("model_name", "auc_roc", "accuracy", "precision", "recall", "f1_score",
               "brier_score", "training_time_seconds")
IMPORTANCE_FIELDS = ("feature_name", "xgboost_importance", "lightgbm_importance",
                     "neural_net_importance", "ensemble_importance", "std_dev")
BUNDLE_FILES = {
    bundle.MODEL_FILE, bundle.MANIFEST_FILE, bundle.METRICS_FILE, bundle.IMPORTANCE_JSON,
    bundle.IMPORTANCE_TXT, bundle.REPORT_TXT, bundle.REPORT_HTML, bundle.EXPLAINER_FILE,
    bundle.REFERENCE_FILE, bundle.PARITY_REFERENCE_FILE,
}


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def test_bundle_holds_exactly_the_design_files(trained_bundle: Path) -> None:
    names = {p.name for p in trained_bundle.rglob("*")}
    assert names == BUNDLE_FILES


def test_no_pickle_anywhere(trained_bundle: Path) -> None:
    for p in trained_bundle.rglob("*"):
        assert p.suffix not in {".pkl", ".pickle", ".joblib"}
        head = p.read_bytes()[:2]
        assert not (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))
    with np.load(trained_bundle / bundle.EXPLAINER_FILE, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)


def test_ensemble_metrics_has_every_original_field(trained_bundle: Path) -> None:
    m = _json(trained_bundle / bundle.METRICS_FILE)
    for name in ENSEMBLE_METRICS_FIELDS:
        assert name in m, name
    assert [b["model_name"] for b in m["base_model_metrics"]] == list(bundle.BASE_MODEL_NAMES)
    for b in m["base_model_metrics"]:
        assert set(BASE_FIELDS) <= set(b)
        assert 0.5 < b["auc_roc"] <= 1.0
        assert b["training_time_seconds"] > 0
    for name in ("ensemble_auc_roc", "ensemble_accuracy", "ensemble_precision",
                 "ensemble_recall", "ensemble_f1_score", "ensemble_brier_score"):
        assert 0.0 <= m[name] <= 1.0
    assert m["training_samples"] + m["validation_samples"] == 1500
    assert m["validation_samples"] == 300
    best = max(b["auc_roc"] for b in m["base_model_metrics"])
    assert m["improvement_over_best_base"] == pytest.approx(
        100 * (m["ensemble_auc_roc"] - best) / best)
    assert 0 <= m["parity_max_abs_diff"] <= 1e-5
    assert m["model_version"] == bundle.model_version_for(trained_bundle / bundle.MODEL_FILE)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", m["training_date"])


def test_bayes_figures_present_and_consistent(trained_bundle: Path) -> None:
    m = _json(trained_bundle / bundle.METRICS_FILE)
    assert 0.5 < m["bayes_auc"] < 1.0
    assert m["auc_ratio"] == pytest.approx(m["ensemble_auc_roc"] / m["bayes_auc"])
    assert m["brier_ratio"] == pytest.approx(m["ensemble_brier_score"] / m["bayes_brier"])
    assert 0.0 <= m["interval_coverage"] <= 1.0
    assert m["interval_mean_width"] > 0
    report = (trained_bundle / bundle.REPORT_TXT).read_text()
    assert f"ensemble/Bayes AUC ratio {m['auc_ratio']:.4f}" in report
    assert f"ensemble/Bayes Brier ratio {m['brier_ratio']:.4f}" in report


def test_feature_importance_fields_sorted_and_normalised(trained_bundle: Path) -> None:
    rows = _json(trained_bundle / bundle.IMPORTANCE_JSON)
    assert sorted(r["feature_name"] for r in rows) == sorted(FEATURE_NAMES)
    for r in rows:
        assert tuple(r) == IMPORTANCE_FIELDS
        base = [r["xgboost_importance"], r["lightgbm_importance"], r["neural_net_importance"]]
        assert r["std_dev"] == pytest.approx(float(np.std(base)))
        assert all(v >= 0 for v in (*base, r["ensemble_importance"]))
    ens = [r["ensemble_importance"] for r in rows]
    assert ens == sorted(ens, reverse=True)
    for col in IMPORTANCE_FIELDS[1:5]:
        assert sum(r[col] for r in rows) == pytest.approx(1.0)
    # the MLP column is a real permutation importance: not a copy of a tree column
    nn = [r["neural_net_importance"] for r in rows]
    assert nn != [r["xgboost_importance"] for r in rows]
    # commitment drives the latent model hardest: it must rank near the top
    assert [r["feature_name"] for r in rows[:5]].count("psychological_commitment_score") == 1
    txt = (trained_bundle / bundle.IMPORTANCE_TXT).read_text()
    assert rows[0]["feature_name"] in txt.splitlines()[4]


def test_manifest_fields(trained_bundle: Path) -> None:
    man = bundle.verify_bundle(trained_bundle)
    assert man["model_version"] == bundle.model_version_for(trained_bundle / bundle.MODEL_FILE)
    assert man["feature_names"] == list(FEATURE_NAMES)
    assert sorted(man["baseline"]) == sorted(FEATURE_NAMES)
    assert 0.0 < man["baseline_score"] < 1.0
    assert man["onnx"]["input_name"] == "features"
    assert {"score", "base_scores", "interval"} <= set(man["onnx"]["output_names"])
    assert len(man["training_data_fingerprint"]) == 64
    for key in ("auc", "brier", "parity_max_abs_diff"):
        assert key in man["metrics"]
    assert man["hyperparameters"]["xgb_n_estimators"] == 20
    # chosen from the held-out scores (hot = the top 10 % of leads), not the fixed defaults
    assert validate_thresholds(man["class_thresholds"]) == man["class_thresholds"]
    assert man["class_thresholds"] != {"hot": 0.8, "warm": 0.6, "lukewarm": 0.4}
    assert man["class_thresholds_method"].startswith("chosen at training")
    assert "jackknife" in man["interval_method"]  # the ensemble's own statement of it
    assert {"onnxruntime", "xgboost", "lightgbm", "scikit-learn"} <= set(
        man["library_versions"])


def test_baseline_is_the_median_of_the_training_split(trained_bundle: Path,
                                                     small_training_csv: Path) -> None:
    from sklearn.model_selection import train_test_split
    from train_data import load_dataset

    man = bundle.verify_bundle(trained_bundle)
    data = load_dataset(small_training_csv)
    train_idx, _ = train_test_split(np.arange(data.n_rows), test_size=0.2, random_state=42,
                                    stratify=data.y)
    expected = np.median(data.X[train_idx], axis=0).astype(np.float32)
    baseline = np.array([man["baseline"][f] for f in FEATURE_NAMES], dtype=np.float32)
    assert np.array_equal(baseline, expected)


def test_reports_are_readable_offline(trained_bundle: Path) -> None:
    text = (trained_bundle / bundle.REPORT_TXT).read_text()
    for heading in ("DATA", "HELD-OUT PERFORMANCE", "STACKING VERDICT", "CALIBRATION",
                    "CLASS THRESHOLDS", "WARNINGS"):
        assert heading in text
    m = _json(trained_bundle / bundle.METRICS_FILE)
    verdict = text.split("STACKING VERDICT", 1)[1].split("\n\n", 1)[0]
    # what is knowable: the out-of-fold comparison that chose the combiner, and the distance
    # to the Bayes limit (the session's generated leads carry true_probability)
    assert ("Stacking helped" in verdict) == (m["combiner"] == "stacker")
    assert f"{m['oof_metrics']['stacker']['log_loss']:.4f}" in verdict
    assert f"ratio {m['auc_ratio']:.4f}" in verdict
    assert "% target" not in text  # no +5 % improvement target the Bayes limit forbids
    if m["interval_hot_coverage"] is not None:
        assert f"{m['interval_hot_coverage']:.1%}" in text
    html = (trained_bundle / bundle.REPORT_HTML).read_text()
    # ROC, lift, gains, calibration, score histogram, importance: inline SVG, nothing fetched
    # (tests/monitoring opens the page in Chromium and checks that they are drawn).
    assert html.count('<svg class="chart"') == 6
    assert "<script" not in html and "<img" not in html
    assert "http://" not in html and "https://" not in html


def test_reported_scores_are_what_onnx_serves(trained_bundle: Path,
                                              small_training_csv: Path) -> None:
    """Recompute the held-out AUC from the bundle alone (onnxruntime), same split."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from train_data import load_dataset

    data = load_dataset(small_training_csv)
    _, test_idx = train_test_split(np.arange(data.n_rows), test_size=0.2, random_state=42,
                                   stratify=data.y)
    test_idx = np.sort(test_idx)
    model = bundle.load_model(trained_bundle)
    out = model.predict(data.X[test_idx].astype(np.float32))
    m = _json(trained_bundle / bundle.METRICS_FILE)
    assert roc_auc_score(data.y[test_idx], out.score) == pytest.approx(
        m["ensemble_auc_roc"], abs=1e-6)
