"""Parity, serving isolation, bundle verification and model behaviour of the ONNX ensemble."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lead_ensemble.ensemble import HyperparameterError, Hyperparameters
from lead_ensemble.export import PARITY_TOLERANCE, ParityError, export_bundle_model
from leadscore import bundle
from leadscore.features import FEATURE_NAMES

from tests.model.conftest import TinyModel

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ code: hyperparameters


def test_hyperparameters_accept_sagemaker_strings() -> None:
    hp = Hyperparameters.from_mapping(
        {"xgb_n_estimators": "120", "mlp_hidden": "64,32,16", "xgb_learning_rate": "0.1",
         "folds": "4", "sagemaker_program": "train.py"}
    )
    assert hp.xgb_n_estimators == 120
    assert hp.mlp_hidden == (64, 32, 16)
    assert hp.xgb_learning_rate == pytest.approx(0.1)
    assert hp.folds == 4


@pytest.mark.parametrize(
    "bad", [{"no_such_param": "1"}, {"folds": "1"}, {"xgb_n_estimators": "ten"},
            {"xgb_subsample": "1.5"}, {"mlp_hidden": "0,4"}, {"folds": "2.5"}]
)
def test_hyperparameters_refuse_bad_values(bad: dict[str, str]) -> None:
    with pytest.raises(HyperparameterError):
        Hyperparameters.from_mapping(bad)


# ------------------------------------------------------------------ model: parity


def test_onnx_matches_native_models(tiny_model: TinyModel) -> None:
    model = bundle.LoadedModel(tiny_model.out_dir, {"model_version": "lsm-test"})
    got = model.predict(tiny_model.X_check.astype(np.float32))
    native = tiny_model.ens.predict_native(tiny_model.X_check)
    assert np.max(np.abs(got.score - native.score)) <= PARITY_TOLERANCE
    assert np.max(np.abs(got.base_scores - native.base_scores)) <= PARITY_TOLERANCE
    assert np.max(np.abs(got.interval - native.interval)) <= PARITY_TOLERANCE
    assert tiny_model.export["parity_max_abs_diff"] <= PARITY_TOLERANCE
    # the stacker really combines the parts in logit space; base_scores are the first three
    # (the linear part's logit is the fourth column)
    parts = tiny_model.ens.served.logits(tiny_model.X_check)
    np.testing.assert_allclose(parts[:, :3], np.log(native.base_scores)
                               - np.log1p(-native.base_scores), atol=1e-6)
    z = tiny_model.ens.combine(parts)
    np.testing.assert_allclose(1 / (1 + np.exp(-z)), native.score, atol=1e-9)


def test_export_refuses_a_graph_that_disagrees(
    tiny_model: TinyModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ens = tiny_model.ens
    real = ens.predict_native

    def shifted(X: np.ndarray) -> Any:
        out = real(X)
        return out._replace(score=out.score + 1e-3)

    monkeypatch.setattr(ens, "predict_native", shifted)
    with pytest.raises(ParityError):
        export_bundle_model(ens, tmp_path, tiny_model.baseline, tiny_model.X_check[:50])


def test_interval_brackets_the_score(tiny_model: TinyModel) -> None:
    out = tiny_model.ens.predict_native(tiny_model.X_check)
    lo, hi = out.interval[:, 0], out.interval[:, 1]
    assert np.all(lo <= out.score) and np.all(out.score <= hi)
    assert np.mean(lo < hi) > 0.99  # fold models disagree somewhere for essentially every lead


def test_the_graph_evaluates_the_served_trees_and_the_width_model_only(
    tiny_model: TinyModel,
) -> None:
    """The fold ensembles stay at training: the graph holds the served XGBoost and LightGBM
    trees and the width model's (one single-target ensemble each) and one MLP."""
    import onnx
    from lead_ensemble.ensemble import WIDTH_TREES
    from lead_ensemble.trees import lgb_trees, xgb_trees

    graph = onnx.load(str(tiny_model.out_dir / bundle.MODEL_FILE)).graph
    forests = [n for n in graph.node if n.op_type == "TreeEnsembleRegressor"]
    trees = [len(set(next(a.ints for a in f.attribute if a.name == "nodes_treeids")))
             for f in forests]
    ens = tiny_model.ens
    assert trees == [len(xgb_trees(ens.xgb)), len(lgb_trees(ens.lgb)), WIDTH_TREES]
    assert all(next(a.i for a in f.attribute if a.name == "n_targets") == 1 for f in forests)
    # the MLP's layers, the linear part's one layer when the stacker kept it, stacker + skews
    linear = 1 if ens.weights[3] > 0 else 0
    assert sum(n.op_type == "MatMul" for n in graph.node) == (len(ens.hp.mlp_hidden) + 1
                                                              + linear + 2)


def test_the_width_model_stands_for_the_fold_spread(tiny_model: TinyModel) -> None:
    """Level-matched on the training rows, and on unseen rows the band it gives is about as
    wide as the per-lead jackknife of the fold ensembles it replaces."""
    ens, rows = tiny_model.ens, tiny_model.X_check
    train_se = ens.fold_se(tiny_model.X_train)
    assert np.mean(ens.predict_se(tiny_model.X_train)) == pytest.approx(np.mean(train_se),
                                                                         rel=1e-6)
    out = ens.predict_native(rows)
    z = np.log(out.score) - np.log1p(-out.score)
    folds = ens.interval_from(z, ens.fold_se(rows))
    width = np.mean(out.interval[:, 1] - out.interval[:, 0])
    fold_width = np.mean(folds[:, 1] - folds[:, 0])
    assert 0.8 * fold_width <= width <= 1.2 * fold_width


def test_baseline_score_is_the_score_of_the_baseline(tiny_model: TinyModel) -> None:
    native = tiny_model.ens.predict_native(tiny_model.baseline[None, :].astype(np.float64))
    assert abs(native.score[0] - tiny_model.export["baseline_score"]) <= PARITY_TOLERANCE


# ------------------------------------------------------------------ serving isolation


def test_bundle_scores_with_onnxruntime_alone(trained_bundle: Path) -> None:
    code = f"""
import sys, json
import numpy as np
from leadscore import bundle, explain
m = bundle.load_model({str(trained_bundle)!r})
x = np.full((3, 20), 0.5, dtype=np.float32)
out = m.predict(x)
c = explain.contributions(m.explainer, x[0], float(out.score[0]), m.baseline_score)
bad = sorted(k for k in ("xgboost", "lightgbm", "sklearn", "scipy", "pandas", "onnx")
             if k in sys.modules)
print(json.dumps({{"score": out.score.tolist(), "sum": float(c.sum()), "bad": bad}}))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    payload = json.loads(res.stdout.strip().splitlines()[-1])
    assert payload["bad"] == []
    assert len(payload["score"]) == 3
    assert all(0.0 < s < 1.0 for s in payload["score"])


# ------------------------------------------------------------------ bundle verification


@pytest.fixture
def bundle_copy(trained_bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "b"
    shutil.copytree(trained_bundle, dst)
    return dst


def test_verify_accepts_the_trained_bundle(bundle_copy: Path) -> None:
    manifest = bundle.verify_bundle(bundle_copy)
    assert manifest["model_version"] == bundle.model_version_for(bundle_copy / bundle.MODEL_FILE)
    assert manifest["feature_names"] == list(FEATURE_NAMES)
    assert bundle.EXPLAINER_FILE in manifest["files"]


def test_verify_refuses_a_tampered_file(bundle_copy: Path) -> None:
    with open(bundle_copy / bundle.MODEL_FILE, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(bundle.BundleError, match="sha256"):
        bundle.verify_bundle(bundle_copy)


def test_verify_refuses_a_tampered_explainer(bundle_copy: Path) -> None:
    path = bundle_copy / bundle.EXPLAINER_FILE
    data = bytearray(path.read_bytes())
    data[-40] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(bundle.BundleError, match="sha256"):
        bundle.load_model(bundle_copy)


def test_verify_refuses_a_missing_file(bundle_copy: Path) -> None:
    (bundle_copy / bundle.EXPLAINER_FILE).unlink()
    with pytest.raises(bundle.BundleError, match="missing"):
        bundle.verify_bundle(bundle_copy)


def test_verify_refuses_a_missing_manifest(bundle_copy: Path) -> None:
    (bundle_copy / bundle.MANIFEST_FILE).unlink()
    with pytest.raises(bundle.BundleError, match="manifest"):
        bundle.load_model(bundle_copy)


@pytest.mark.parametrize("name", ["model.pkl", "extra.joblib", "innocent.bin"])
def test_verify_refuses_pickle_files(bundle_copy: Path, name: str) -> None:
    # The bytes of a protocol-4 pickle of {"a": 1}, written literally: no pickle in the tree.
    stream = b"\x80\x04\x95\n\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s."
    (bundle_copy / name).write_bytes(stream)
    with pytest.raises(bundle.BundleError, match="pickle"):
        bundle.verify_bundle(bundle_copy)


def test_verify_refuses_other_feature_names(bundle_copy: Path) -> None:
    path = bundle_copy / bundle.MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["feature_names"] = list(reversed(manifest["feature_names"]))
    path.write_text(json.dumps(manifest))
    with pytest.raises(bundle.BundleError, match="feature_names"):
        bundle.verify_bundle(bundle_copy)


def test_finalize_derives_the_version_from_the_graph(bundle_copy: Path) -> None:
    manifest = bundle.finalize_bundle(bundle_copy, {"note": "x"})
    digest = bundle.sha256_file(bundle_copy / bundle.MODEL_FILE)
    assert manifest["model_version"] == "lsm-" + digest[:16]
    assert manifest["sha256"] == digest
    assert set(manifest["files"]) == {
        p.name for p in bundle_copy.iterdir()
        if p.name not in (bundle.MODEL_FILE, bundle.MANIFEST_FILE)
    }


# ------------------------------------------------------------------ model behaviour


def test_urgency_and_commitment_do_not_lower_the_score_on_average(tiny_model: TinyModel) -> None:
    X = tiny_model.X_check.copy()
    low, high = X.copy(), X.copy()
    for f in (FEATURE_NAMES.index("urgency_score"),
              FEATURE_NAMES.index("psychological_commitment_score")):
        low[:, f] = 0.2
        high[:, f] = 1.0
    s_low = tiny_model.ens.predict_native(low).score
    s_high = tiny_model.ens.predict_native(high).score
    assert s_high.mean() > s_low.mean()
    assert np.mean(s_high >= s_low - 1e-3) > 0.9


def test_contact_id_does_not_change_the_score(
    tiny_model: TinyModel, generated_leads: list[dict[str, Any]]
) -> None:
    from generate_leads import request_part
    from leadscore.features import extract_features

    lead = generated_leads[3]
    a = dict(request_part(lead), contact_id="c-1")
    b = dict(request_part(lead), contact_id="another-contact-9999")
    xa = extract_features({k: v for k, v in a.items() if k != "contact_id"}).values
    xb = extract_features({k: v for k, v in b.items() if k != "contact_id"}).values
    model = bundle.LoadedModel(tiny_model.out_dir, {"model_version": "lsm-test"})
    assert model.predict(xa.astype(np.float32)).score[0] == \
        model.predict(xb.astype(np.float32)).score[0]
