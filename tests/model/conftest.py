"""A tiny native ensemble + its exported graph, for the tests that need the native models."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

TINY = {
    "xgb_n_estimators": "15",
    "lgb_n_estimators": "15",
    "folds": "3",
    "mlp_hidden": "16,8",
    "mlp_max_iter": "40",
}


@dataclass
class TinyModel:
    ens: Any
    out_dir: Path
    X_train: np.ndarray
    X_check: np.ndarray
    baseline: np.ndarray
    export: dict[str, Any]


@pytest.fixture(scope="session")
def tiny_model(
    generated_leads: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> TinyModel:
    from generate_leads import to_feature_frame
    from lead_ensemble.ensemble import Hyperparameters, fit_ensemble
    from lead_ensemble.export import export_bundle_model
    from leadscore.features import FEATURE_NAMES

    rows = to_feature_frame(generated_leads)
    X = np.array([[r[n] for n in FEATURE_NAMES] for r in rows], dtype=np.float64)
    y = np.array([int(r["converted"]) for r in rows])
    X_train, y_train, X_check = X[:1200], y[:1200], X[1200:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ens = fit_ensemble(X_train, y_train, Hyperparameters.from_mapping(TINY))
    baseline = np.median(X_train, axis=0).astype(np.float32)
    out = tmp_path_factory.mktemp("tiny-model")
    export = export_bundle_model(ens, out, baseline, X_check)
    return TinyModel(ens, out, X_train, X_check, baseline, export)
