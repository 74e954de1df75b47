"""The ORIGINAL system (seed/ml-ensemble-lead-scoring.md), re-implemented as the baseline.

Exactly the original's method, nothing improved:

- native XGBoost and LightGBM classifiers (max_depth 6, 100 trees, learning rate 0.1,
  min_child_weight 3, subsample 0.8, colsample_bytree 0.8 -- the same keyword arguments for
  both libraries, as the original passed them; note that LightGBM ignores `subsample` unless
  `subsample_freq` > 0, which the original did not set);
- a scikit-learn MLP (64, 32, 16), adam, max_iter 100, early stopping, on StandardScaler
  inputs;
- a logistic-regression stacker fitted on the base models' IN-SAMPLE `predict_proba` of the
  training split (the original's leak, kept on purpose);
- the original's train/validation split (`test_size` 0.2, `random_state` 42): it fits on 80 %;
- per request: `predict_proba` on one row for each model, then the stacker;
- its "95 % interval": score ± (1 − agreement) × 0.15, agreement = clip(1 − std(base) / 0.5),
  clipped to [0, 1];
- its "contributions": XGBoost `feature_importances_` × |feature value| for the top 5 features.

Persistence: the original pickled everything (`ensemble_models.pkl`). This project never
pickles, so `save`/`load` use each library's own format instead -- XGBoost UBJSON, LightGBM
model text, and the scikit-learn arrays in an `.npz` (loaded with allow_pickle=False) set back
onto fresh estimators. That is what unpickling does internally for the two boosters (XGBoost
pickles its raw UBJSON buffer, LightGBM its model string) and for the scikit-learn estimators
(numpy arrays restored into attributes), so the load cost is an honest equivalent.

Benchmark-only code: it imports xgboost, lightgbm and scikit-learn, which serving never does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import LabelBinarizer, LabelEncoder, StandardScaler

BOOSTER_PARAMS: dict[str, Any] = {
    "max_depth": 6,
    "n_estimators": 100,
    "learning_rate": 0.1,
    "min_child_weight": 3,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
}
MLP_PARAMS: dict[str, Any] = {
    "hidden_layer_sizes": (64, 32, 16),
    "activation": "relu",
    "solver": "adam",
    "max_iter": 100,
    "early_stopping": True,
}
INTERVAL_HALF_WIDTH = 0.15
TOP_CONTRIBUTIONS = 5

XGB_FILE = "xgboost.ubj"
LGB_FILE = "lightgbm.txt"
SKLEARN_FILE = "sklearn_arrays.npz"
META_FILE = "original.json"


class OriginalOutputs(NamedTuple):
    score: np.ndarray  # float64 [N]
    base_scores: np.ndarray  # float64 [N, 3]: xgboost, lightgbm, neural_network
    interval: np.ndarray  # float64 [N, 2]
    agreement: np.ndarray  # float64 [N]


def agreement_of(base_scores: np.ndarray) -> np.ndarray:
    """The original's model agreement: clip(1 − std(base scores) / 0.5, 0, 1) per row."""
    return np.asarray(np.clip(1.0 - np.std(base_scores, axis=1) / 0.5, 0.0, 1.0))


def band_interval(score: np.ndarray, agreement: np.ndarray) -> np.ndarray:
    """The original's "95 % interval": score ± (1 − agreement) × 0.15, clipped to [0, 1]."""
    half = (1.0 - agreement) * INTERVAL_HALF_WIDTH
    return np.stack([np.clip(score - half, 0.0, 1.0), np.clip(score + half, 0.0, 1.0)], axis=1)


@dataclass
class OriginalEnsemble:
    """The original's four fitted estimators (plus the MLP's scaler)."""

    feature_names: tuple[str, ...]
    xgb_model: Any
    lgb_model: Any
    scaler: Any
    mlp: Any
    stacker: Any

    # --- the original's per-request path -------------------------------------------------
    def base_scores(self, x: np.ndarray) -> np.ndarray:
        """Each base model's `predict_proba(x)[:, 1]`, stacked as columns."""
        p_xgb = self.xgb_model.predict_proba(x)[:, 1]
        p_lgb = self.lgb_model.predict_proba(x)[:, 1]
        p_nn = self.mlp.predict_proba(self.scaler.transform(x))[:, 1]
        return np.column_stack([p_xgb, p_lgb, p_nn]).astype(np.float64)

    def predict(self, x: np.ndarray) -> OriginalOutputs:
        """Score rows the original's way (one row per request in production)."""
        base = self.base_scores(np.asarray(x, dtype=np.float64))
        score = np.asarray(self.stacker.predict_proba(base)[:, 1], dtype=np.float64)
        agreement = agreement_of(base)
        return OriginalOutputs(score, base, band_interval(score, agreement), agreement)

    def predict_score(self, x: np.ndarray) -> np.ndarray:
        return self.predict(x).score

    def contributions(self, x: np.ndarray) -> dict[str, float]:
        """The original's contributions: importance × |value|, top 5 features only."""
        row = np.asarray(x, dtype=np.float64).reshape(-1)
        importance = np.asarray(self.xgb_model.feature_importances_, dtype=np.float64)
        values = importance * np.abs(row)
        top = np.argsort(-values, kind="stable")[:TOP_CONTRIBUTIONS]
        return {self.feature_names[i]: float(values[i]) for i in top}

    def contributions_vector(self, x: np.ndarray) -> np.ndarray:
        """The top-5 contributions as a 20-vector (0 for the features it does not report)."""
        given = self.contributions(x)
        return np.array([given.get(name, 0.0) for name in self.feature_names])

    # --- persistence without pickle --------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.xgb_model.save_model(str(directory / XGB_FILE))
        self.lgb_model.booster_.save_model(str(directory / LGB_FILE))
        arrays: dict[str, np.ndarray] = {
            "scaler_mean": self.scaler.mean_,
            "scaler_scale": self.scaler.scale_,
            "scaler_var": self.scaler.var_,
            "stacker_coef": self.stacker.coef_,
            "stacker_intercept": self.stacker.intercept_,
            "classes": np.asarray(self.mlp.classes_),
        }
        for i, (w, b) in enumerate(zip(self.mlp.coefs_, self.mlp.intercepts_, strict=True)):
            arrays[f"mlp_W{i}"] = w
            arrays[f"mlp_b{i}"] = b
        np.savez(directory / SKLEARN_FILE, **arrays)  # type: ignore[arg-type]
        meta = {
            "feature_names": list(self.feature_names),
            "mlp_layers": len(self.mlp.coefs_),
            "mlp_hidden_layer_sizes": list(MLP_PARAMS["hidden_layer_sizes"]),
            "booster_params": BOOSTER_PARAMS,
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> OriginalEnsemble:
        meta = json.loads((directory / META_FILE).read_text())
        names = tuple(meta["feature_names"])
        n_features = len(names)
        arrays = np.load(directory / SKLEARN_FILE, allow_pickle=False)
        classes = np.asarray(arrays["classes"])

        xgb_model = xgb.XGBClassifier()
        xgb_model.load_model(str(directory / XGB_FILE))

        lgb_model = lgb.LGBMClassifier(**BOOSTER_PARAMS, verbose=-1)
        lgb_model._Booster = lgb.Booster(model_file=str(directory / LGB_FILE))
        lgb_model.fitted_ = True
        lgb_model._n_classes = len(classes)
        lgb_model._classes = classes
        lgb_model._n_features = n_features
        lgb_model._n_features_in = n_features
        lgb_model._le = LabelEncoder().fit(classes)
        lgb_model._objective = "binary"

        scaler = StandardScaler()
        scaler.mean_ = arrays["scaler_mean"]
        scaler.scale_ = arrays["scaler_scale"]
        scaler.var_ = arrays["scaler_var"]
        scaler.n_features_in_ = n_features
        scaler.n_samples_seen_ = 0

        mlp = MLPClassifier(**MLP_PARAMS)
        layers = int(meta["mlp_layers"])
        mlp.coefs_ = [arrays[f"mlp_W{i}"] for i in range(layers)]
        mlp.intercepts_ = [arrays[f"mlp_b{i}"] for i in range(layers)]
        mlp.n_layers_ = layers + 1
        mlp.n_outputs_ = 1
        mlp.out_activation_ = "logistic"
        mlp.classes_ = classes
        mlp._label_binarizer = LabelBinarizer().fit(classes)
        mlp.n_features_in_ = n_features

        stacker = LogisticRegression()
        stacker.coef_ = arrays["stacker_coef"]
        stacker.intercept_ = arrays["stacker_intercept"]
        stacker.classes_ = classes
        stacker.n_features_in_ = 3
        return cls(names, xgb_model, lgb_model, scaler, mlp, stacker)


def train_original(
    x: np.ndarray,
    y: np.ndarray,
    feature_names: Sequence[str],
    *,
    test_size: float = 0.2,
    random_state: int = 42,
) -> OriginalEnsemble:
    """Train the original ensemble the original's way (split, fit, in-sample stacker)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y).astype(int)
    x_train, _x_val, y_train, _y_val = train_test_split(
        x, y, test_size=test_size, random_state=random_state, stratify=y
    )
    xgb_model = xgb.XGBClassifier(
        **BOOSTER_PARAMS, random_state=random_state, eval_metric="logloss"
    )
    xgb_model.fit(x_train, y_train)
    lgb_model = lgb.LGBMClassifier(**BOOSTER_PARAMS, random_state=random_state, verbose=-1)
    lgb_model.fit(x_train, y_train)
    scaler = StandardScaler().fit(x_train)
    mlp = MLPClassifier(**MLP_PARAMS, random_state=random_state)
    mlp.fit(scaler.transform(x_train), y_train)
    ensemble = OriginalEnsemble(
        tuple(feature_names), xgb_model, lgb_model, scaler, mlp, LogisticRegression()
    )
    # The original's leak: the stacker learns from in-sample base predictions.
    ensemble.stacker.fit(ensemble.base_scores(x_train), y_train)
    return ensemble
