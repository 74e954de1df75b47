"""The stacked ensemble: XGBoost + LightGBM + a network + a signed logistic regression, a
logistic stacker on out-of-fold logits.

Training side only (imports xgboost, lightgbm, scikit-learn). Serving never imports this
module; it runs the ONNX graph written by :mod:`lead_ensemble.export`.

Method
------
* Inputs are rounded to float32 before fitting so tree thresholds and branching agree with
  the float32 ONNX graph.
* Stratified K folds on the training data give (a) the out-of-fold (OOF) logits of every base
  model, on which the stacker is fitted, and (b) K fold ensembles that give the confidence
  interval (below). The fold trees stop early on 15 % of their own training rows (never on
  the OOF rows, which would make noise look like signal); the served trees get the folds'
  mean tree count.
* Monotone constraints: every part follows the direction the feature contract fixes for a
  feature (``directions``: +1, -1, 0 = free; ``monotone=0`` switches them off): XGBoost and
  LightGBM by their monotone constraints, the network and the logistic regression by sign
  bounds on their weights (`lead_ensemble.monotone`), the stacker by non-negative weights.
  `lead_ensemble.checks.wrong_direction_rates` measures the result.
* The small-data part: a logistic regression whose coefficients carry the declared signs,
  its L2 penalty chosen by cross-validation (`choose_linear_alpha`). On a few hundred leads a
  linear logit is usually the best anyone can estimate; the trees and the network catch up
  only with more data.
* Regularisation follows the data size (`adapted`): with fewer than MEDIUM_MINORITY cases of
  the rarer class the trees learn at half the rate and the MLP's weight penalty rises; below
  SMALL_MINORITY the trees are depth 2 with stronger L2 and the MLP is penalised harder still.
* The stacker combines base models in logit space (ARCHITECTURE.md):
  ``z = b + w_xgb*m_xgb + w_lgb*m_lgb + w_nn*m_nn``, ``score = sigmoid(z)``, every w >= 0
  (`fit_nonnegative_logistic`: a negative weight would turn a model's evidence upside down).
  Which parts the stacker keeps is decided on OOF log loss (`choose_parts`: a part whose
  removal does not make the stacker's inner-CV log loss worse is dropped, weight 0), then
  whether the stacker or the best single part is served, also on OOF log loss (the stacker's
  own OOF predictions come from an inner cross-validation over the OOF logits), never on the
  held-out split. The answer's ``base_scores`` show the first three parts (BASE_MODEL_NAMES);
  the linear part's share shows in the weights and the contributions.
* No model at all rather than a bad one (`EnsembleRefused`, one line): when fold trees made no
  split (their interval would be a zero-width lie), or when the served combiner's OOF log loss
  does not beat the constant base rate's.
* The base models are refit on the whole training split for serving.

Confidence interval
-------------------
Each fold k has its own xgb/lgb/mlp trained on (K-1)/K of the data; combined by the same
stacker they give ``z_k``. The delete-group jackknife standard error of the logit is
``se = sqrt((K-1)/K * sum_k (z_k - mean(z))^2)``. Evaluating the K fold ensembles for every
served lead would cost five times the served trees, so training computes ``se`` on its own
rows and fits a small width model (``WIDTH_TREES`` LightGBM trees of depth ``WIDTH_DEPTH`` on
``log se``, level-matched so its mean ``se`` equals the folds'); the graph evaluates those
trees beside the served ones (`predict_se`). The jackknife measures the estimator's variance,
not its bias, and the bias is not symmetric: tree ensembles shrink high probabilities toward
the middle (hot leads' true logit was above the served one by 0.2-0.8 in the tuning runs, the
coldest leads' sometimes below). So the interval is
``[sigmoid(z - h - down * max(down_from - z, 0)), sigmoid(z + h + up * max(z - up_from, 0))]``
with ``h = 1.96 * sqrt((scale * se)^2 + floor^2)``, the floor shrinking like 1/rows; see
``INTERVAL_METHOD`` (the model-card
text) for how the constants were chosen and what they achieve.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

# Sleeping, not spinning, idle OpenMP threads (see training/train.py); effective when this
# module is the first to load the OpenMP runtime (benchmarks, tests).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import lightgbm as lgbm
import numpy as np
import xgboost as xgb
from leadscore.bundle import ModelOutputs
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from lead_ensemble.monotone import MonotoneNetwork, choose_linear_alpha
from lead_ensemble.trees import lgb_tree_count, lgb_trees, xgb_tree_count, xgb_trees

BASE_MODEL_NAMES: tuple[str, str, str] = ("xgboost", "lightgbm", "neural_network")
# Every part the combiner chooses from, in the order of FittedEnsemble.weights: the three the
# answer's base_scores show, then the signed logistic regression (the small-data part).
PART_NAMES: tuple[str, str, str, str] = (*BASE_MODEL_NAMES, "linear")
INTERVAL_METHOD = (
    "95 % interval for the conversion probability. Training keeps the K fold ensembles of the "
    "out-of-fold stacking (each fold's XGBoost, LightGBM and MLP, trained on (K-1)/K of the "
    "training rows and combined by the same stacker into a logit z_k) and computes on its own "
    "rows the delete-group jackknife standard error of the logit, se = sqrt((K-1)/K * sum_k "
    "(z_k - mean z)^2), which measures the estimator's variance. A width model (30 LightGBM "
    "trees of depth 3 on log se, level-matched to the mean se) learns it, so serving evaluates "
    "30 small trees instead of the K fold ensembles. A floor f stands for the bias the "
    "jackknife cannot see, which shrinks with the data like the error of an estimate: f = "
    "0.2 * sqrt(6400 / n) logit for n fitted rows (0.45 at 1,280 rows, 0.11 at 20,480), and "
    "the jackknife se is scaled by s = 1.5. Because tree ensembles shrink extreme "
    "probabilities toward the middle, the side toward the extreme widens: lo = sigmoid(z - h "
    "- 0.5 * max(-2 - z, 0)), hi = sigmoid(z + h + 1.25 * max(z - 0.5, 0)), h = 1.96 * "
    "sqrt((s se)^2 + f^2). The constants were re-chosen for the four-part monotone ensemble "
    "on generator seeds 1234 and 2001 (2,000 / 8,000 / 32,000 exported rows, 4,000 held out) "
    "as a band within 0.001 of the narrowest covering the true probability 95 % on average "
    "and at least 93.5 % in every tuning run, hot leads 93 % (mean width 0.212, worst run "
    "93.6 %); the "
    "earlier constants (s = 1, f = 0.05 * 6400 / n, chosen for the three-part ensemble) "
    "covered 80.8 % in the worst tuning run once the stacker leaned on the stable linear part, "
    "whose folds agree more than its bias allows. `make bench` checks them on four other seeds "
    "(bench/model_quality.py). Coverage holds on average over leads, not for every lead."
)
Z95 = 1.959963984540054


class HyperparameterError(ValueError):
    """A hyperparameter is unknown or has an unusable value."""


def _parse_hidden(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        parts = [p for p in value.replace("(", "").replace(")", "").split(",") if p.strip()]
        sizes = tuple(int(p.strip()) for p in parts)
    elif isinstance(value, int):
        sizes = (value,)
    else:
        sizes = tuple(int(v) for v in value)
    if not sizes or any(s <= 0 for s in sizes):
        raise HyperparameterError(f"mlp_hidden must be positive sizes, got {value!r}")
    return sizes


@dataclass(frozen=True)
class Hyperparameters:
    """Every tunable of the ensemble. Defaults meet the quality and speed targets."""

    xgb_n_estimators: int = 100
    xgb_max_depth: int = 3
    xgb_learning_rate: float = 0.1
    xgb_min_child_weight: float = 5.0
    xgb_subsample: float = 0.8
    xgb_colsample: float = 0.8
    xgb_reg_lambda: float = 1.0
    lgb_n_estimators: int = 100
    lgb_max_depth: int = 3
    lgb_num_leaves: int = 8
    lgb_learning_rate: float = 0.1
    lgb_min_child_weight: float = 5.0
    lgb_min_child_samples: int = 20
    lgb_subsample: float = 0.8
    lgb_colsample: float = 0.8
    lgb_reg_lambda: float = 1.0
    # The network is fitted full-batch (L-BFGS-B with sign bounds, lead_ensemble.monotone):
    # two layers and at most mlp_max_rows rows keep its six fits within the speed targets.
    mlp_hidden: tuple[int, ...] = (64, 32, 16)  # the product's network: 64→32→16 units
    # L2 penalty of the network (scikit-learn's convention: alpha / (2 n) * |W|^2 on top of the
    # mean log loss). Its full-batch fit converges much further than minibatch Adam did, so
    # the penalty is what keeps it from learning one row by heart.
    mlp_alpha: float = 1.0
    # mlp_learning_rate, mlp_batch_size, mlp_tol and mlp_n_iter_no_change were the minibatch
    # network's; the network is now fitted by L-BFGS-B (lead_ensemble.monotone) and ignores
    # them. They are still accepted so that a stack's saved hyperparameters keep parsing.
    mlp_learning_rate: float = 1e-3
    mlp_max_iter: int = 200
    mlp_batch_size: int = 200
    mlp_tol: float = 1e-4
    mlp_n_iter_no_change: int = 10
    # The network sees at most this many rows (a stratified sample): its full-batch fit costs
    # time in proportion to the rows, and past this size the trees carry the detail.
    mlp_max_rows: int = 10_000
    stacker_c: float = 1.0
    folds: int = 5
    seed: int = 42
    interval_scale: float = 1.5
    interval_floor: float = 0.2
    # The floor stands for the bias the jackknife cannot see, which shrinks like the error of an
    # estimate: it is interval_floor at this many fitted rows and scales as
    # sqrt(interval_floor_rows / rows) (0 = a constant floor).
    interval_floor_rows: int = 6400
    interval_skew_up: float = 1.25
    interval_skew_up_from: float = 0.5
    interval_skew_down: float = 0.5
    interval_skew_down_from: float = -2.0
    n_jobs: int = 2
    # Monotone constraints in XGBoost and LightGBM for the features whose direction the
    # feature contract fixes (FEATURE_DIRECTIONS); 0 switches them off.
    monotone: bool = True
    # Regularisation that follows the data size (see `adapted`); 0 keeps every value as given.
    adaptive: bool = True
    # Early stopping of the fold trees on their own out-of-fold rows (0 = off).
    early_stopping_rounds: int = 30

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> Hyperparameters:
        """Build from a mapping of values or strings (SageMaker sends strings).

        Keys starting with ``sagemaker_`` are ignored; any other unknown key is refused.
        """
        known = {f.name: f for f in fields(cls)}
        default = cls()
        kwargs: dict[str, Any] = {}
        for key, raw in m.items():
            if key.startswith("sagemaker_"):
                continue
            if key not in known:
                raise HyperparameterError(f"Unknown hyperparameter {key!r}")
            current = getattr(default, key)
            try:
                if key == "mlp_hidden":
                    value: Any = _parse_hidden(raw)
                elif isinstance(current, bool):
                    value = str(raw).strip().lower() in ("1", "true", "yes")
                elif isinstance(current, int):
                    as_float = float(str(raw).strip())
                    if not as_float.is_integer():
                        raise ValueError("not an integer")
                    value = int(as_float)
                else:
                    value = float(str(raw).strip())
            except (TypeError, ValueError) as exc:
                raise HyperparameterError(
                    f"Hyperparameter {key!r} has an unusable value {raw!r}"
                ) from exc
            if isinstance(value, float) and not math.isfinite(value):
                raise HyperparameterError(f"Hyperparameter {key!r} must be finite")
            kwargs[key] = value
        hp = cls(**kwargs)
        hp.validate()
        return hp

    def validate(self) -> None:
        if self.folds < 2:
            raise HyperparameterError("folds must be >= 2")
        for name in ("xgb_n_estimators", "lgb_n_estimators", "mlp_max_iter", "xgb_max_depth",
                     "mlp_max_rows"):
            if getattr(self, name) < 1:
                raise HyperparameterError(f"{name} must be >= 1")
        for name in ("xgb_subsample", "xgb_colsample", "lgb_subsample", "lgb_colsample"):
            v = getattr(self, name)
            if not 0.0 < v <= 1.0:
                raise HyperparameterError(f"{name} must be in (0, 1]")
        if self.interval_scale <= 0:
            raise HyperparameterError("interval_scale must be > 0")
        if self.interval_floor_rows < 0:
            raise HyperparameterError("interval_floor_rows must be >= 0")
        if min(self.interval_floor, self.interval_skew_up, self.interval_skew_down) < 0:
            raise HyperparameterError("interval_floor and the interval skews must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mlp_hidden"] = list(self.mlp_hidden)
        return d


# --------------------------------------------------------------------------- size schedule

# Below SMALL_MINORITY cases of the rarer class the trees are stumps-plus (depth 2), learn
# slowly and the MLP's weight penalty is strong; below MEDIUM_MINORITY the learning rate is
# halved. Early stopping on the folds then picks the number of trees (`adapted`).
SMALL_MINORITY = 300
MEDIUM_MINORITY = 1500


def adapted(hp: Hyperparameters, n_minority: int) -> Hyperparameters:
    """The hyperparameters actually used for `n_minority` cases of the rarer class.

    Regularisation never gets weaker than given: depths and learning rates are capped, weight
    penalties and leaf sizes raised. With ``adaptive=0`` the given values are used as they are.
    """
    if not hp.adaptive or n_minority >= MEDIUM_MINORITY:
        return hp
    if n_minority >= SMALL_MINORITY:
        return replace(
            hp,
            xgb_learning_rate=min(hp.xgb_learning_rate, 0.05),
            lgb_learning_rate=min(hp.lgb_learning_rate, 0.05),
            xgb_n_estimators=max(hp.xgb_n_estimators, 200),
            lgb_n_estimators=max(hp.lgb_n_estimators, 200),
            mlp_alpha=max(hp.mlp_alpha, 3.0),
        )
    return replace(
        hp,
        xgb_max_depth=min(hp.xgb_max_depth, 2),
        lgb_max_depth=min(hp.lgb_max_depth, 2),
        lgb_num_leaves=min(hp.lgb_num_leaves, 4),
        xgb_learning_rate=min(hp.xgb_learning_rate, 0.05),
        lgb_learning_rate=min(hp.lgb_learning_rate, 0.05),
        xgb_n_estimators=max(hp.xgb_n_estimators, 300),
        lgb_n_estimators=max(hp.lgb_n_estimators, 300),
        xgb_reg_lambda=max(hp.xgb_reg_lambda, 5.0),
        lgb_reg_lambda=max(hp.lgb_reg_lambda, 5.0),
        mlp_alpha=max(hp.mlp_alpha, 10.0),
    )


# --------------------------------------------------------------------------- base models


def _as_f32_grid(X: np.ndarray) -> np.ndarray:
    """Round to float32 and back, so native models see exactly what ONNX sees."""
    return np.asarray(X, dtype=np.float64).astype(np.float32).astype(np.float64)


def _make_xgb(hp: Hyperparameters, seed: int, monotone: tuple[int, ...] | None,
              n_trees: int | None = None, early_stopping: int | None = None
              ) -> xgb.XGBClassifier:
    extra: dict[str, Any] = {}
    if monotone is not None and any(monotone):
        extra["monotone_constraints"] = "(" + ",".join(str(int(d)) for d in monotone) + ")"
    if early_stopping:
        extra["early_stopping_rounds"] = early_stopping
    return xgb.XGBClassifier(
        n_estimators=n_trees or hp.xgb_n_estimators,
        max_depth=hp.xgb_max_depth,
        learning_rate=hp.xgb_learning_rate,
        min_child_weight=hp.xgb_min_child_weight,
        subsample=hp.xgb_subsample,
        colsample_bytree=hp.xgb_colsample,
        reg_lambda=hp.xgb_reg_lambda,
        tree_method="hist",
        objective="binary:logistic",
        eval_metric="logloss",
        n_jobs=hp.n_jobs,
        random_state=seed,
        **extra,
    )


def _make_lgb(hp: Hyperparameters, seed: int, monotone: tuple[int, ...] | None,
              n_trees: int | None = None) -> lgbm.LGBMClassifier:
    extra: dict[str, Any] = {}
    if monotone is not None and any(monotone):
        extra["monotone_constraints"] = [int(d) for d in monotone]
        extra["monotone_constraints_method"] = "intermediate"
    return lgbm.LGBMClassifier(
        n_estimators=n_trees or hp.lgb_n_estimators,
        max_depth=hp.lgb_max_depth,
        num_leaves=hp.lgb_num_leaves,
        learning_rate=hp.lgb_learning_rate,
        min_child_weight=hp.lgb_min_child_weight,
        min_child_samples=hp.lgb_min_child_samples,
        subsample=hp.lgb_subsample,
        subsample_freq=1 if hp.lgb_subsample < 1.0 else 0,
        colsample_bytree=hp.lgb_colsample,
        reg_lambda=hp.lgb_reg_lambda,
        n_jobs=hp.n_jobs,
        random_state=seed,
        verbose=-1,
        **extra,
    )


#: Every standardised MLP input stays within this many scale units of the training mean.
MLP_MAX_Z = 4.0


class BoundedScaler(StandardScaler):
    """StandardScaler whose outputs cannot leave [-max_z, max_z], for training or serving.

    Inputs are first clipped to the range each feature had in training; the scale is at least
    that range / ``max_z``. Why: a feature that almost never varies in training (HighLevel's
    message counters before the message webhooks start; any column a team rarely fills) gets
    a tiny standard deviation, and a served value far from it became a standardised input in
    the hundreds. The network never saw such inputs and answered anything: in ``make simulate``
    one training row in 3,184 with a real engagement value made the MLP's AUC on the last
    weeks' leads 0.09 worse, all of it from the 11 % of them that had one. A feature that never
    varied is ignored (its input is always 0).
    """

    def __init__(self, max_z: float = MLP_MAX_Z) -> None:
        super().__init__()
        self.max_z = max_z

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> BoundedScaler:
        X = np.asarray(X, dtype=np.float64)
        super().fit(X, y, sample_weight)
        self.lo_ = X.min(axis=0)
        self.hi_ = X.max(axis=0)
        self.scale_ = np.maximum(self.scale_, (self.hi_ - self.lo_) / self.max_z)
        return self

    def transform(self, X: Any, copy: bool | None = None) -> Any:
        clipped = np.clip(np.asarray(X, dtype=np.float64), self.lo_, self.hi_)
        return super().transform(clipped, copy=False)


def _make_mlp(hp: Hyperparameters, seed: int, directions: Sequence[int]) -> Pipeline:
    """The network part: monotone in the declared features (lead_ensemble.monotone)."""
    return Pipeline([
        ("scaler", BoundedScaler()),
        ("mlp", MonotoneNetwork(directions, hidden=hp.mlp_hidden, alpha=hp.mlp_alpha,
                                max_iter=hp.mlp_max_iter, seed=seed)),
    ])


def _make_linear(alpha: float, seed: int, directions: Sequence[int]) -> Pipeline:
    """The small-data part: a logistic regression whose coefficients carry the declared signs
    (a network without hidden layers), on the same bounded, standardised inputs."""
    return Pipeline([
        ("scaler", BoundedScaler()),
        ("mlp", MonotoneNetwork(directions, hidden=(), alpha=alpha, max_iter=500, seed=seed)),
    ])


def xgb_margin(model: xgb.XGBClassifier, X: np.ndarray) -> np.ndarray:
    # With early stopping the sklearn wrapper predicts with the best iteration's trees;
    # lead_ensemble.trees exports the same ones (xgb_tree_count).
    return np.asarray(model.predict(X, output_margin=True), dtype=np.float64).reshape(-1)


def lgb_margin(model: lgbm.LGBMClassifier, X: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(X, raw_score=True), dtype=np.float64).reshape(-1)


@dataclass(frozen=True)
class MlpArrays:
    """A fitted scaler+MLP pipeline as plain float64 arrays: inputs are clipped to [lo, hi],
    standardised with (mean, scale), then go through the layers (ReLU between them)."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    mean: np.ndarray
    scale: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def mlp_layers(pipe: Pipeline) -> MlpArrays:
    scaler: BoundedScaler = pipe.named_steps["scaler"]
    mlp: MonotoneNetwork = pipe.named_steps["mlp"]
    return MlpArrays(
        weights=[np.asarray(w, dtype=np.float64) for w in mlp.coefs_],
        biases=[np.asarray(b, dtype=np.float64) for b in mlp.intercepts_],
        mean=np.asarray(scaler.mean_, dtype=np.float64),
        scale=np.asarray(scaler.scale_, dtype=np.float64),
        lo=np.asarray(scaler.lo_, dtype=np.float64),
        hi=np.asarray(scaler.hi_, dtype=np.float64),
    )


def mlp_logit(pipe: Pipeline, X: np.ndarray) -> np.ndarray:
    """The MLP's output logit (the pre-sigmoid activation of sklearn's forward pass)."""
    m = mlp_layers(pipe)
    h = (np.clip(np.asarray(X, dtype=np.float64), m.lo, m.hi) - m.mean) / m.scale
    for i, (w, b) in enumerate(zip(m.weights, m.biases, strict=True)):
        h = h @ w + b
        if i < len(m.weights) - 1:
            h = np.maximum(h, 0.0)
    out: np.ndarray = h.reshape(-1)
    return out


def sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))
    return out


@dataclass
class BaseTriple:
    """One xgb + lgb + network (+ the signed logistic regression) trained on the same rows."""

    xgb: xgb.XGBClassifier
    lgb: lgbm.LGBMClassifier
    mlp_pipeline: Pipeline
    linear: Pipeline

    def logits(self, X: np.ndarray) -> np.ndarray:
        """[n, 4] logits in PART_NAMES order."""
        X = _as_f32_grid(X)
        return np.column_stack([xgb_margin(self.xgb, X), lgb_margin(self.lgb, X),
                                mlp_logit(self.mlp_pipeline, X),
                                mlp_logit(self.linear, X)])


def _sample_rows(y: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """All row indices, or a stratified sample of `limit` of them (sorted)."""
    if limit <= 0 or y.size <= limit:
        return np.arange(y.size)
    from sklearn.model_selection import train_test_split

    kept, _ = train_test_split(np.arange(y.size), train_size=limit, random_state=seed,
                               stratify=y)
    return np.sort(kept)


def _fit_triple(
    X: np.ndarray, y: np.ndarray, hp: Hyperparameters, seed: int, timings: dict[str, float],
    monotone: tuple[int, ...] | None, *, valid: tuple[np.ndarray, np.ndarray] | None = None,
    n_trees: tuple[int, int] | None = None, linear_alpha: float = 1.0,
) -> BaseTriple:
    """Fit one triple; with `valid`, the trees stop early on those rows (fold models)."""
    stop = hp.early_stopping_rounds if valid is not None and hp.early_stopping_rounds else None
    t0 = time.perf_counter()
    m_xgb = _make_xgb(hp, seed, monotone, n_trees[0] if n_trees else None, stop)
    if stop and valid is not None:
        m_xgb.fit(X, y, eval_set=[valid], verbose=False)
    else:
        m_xgb.fit(X, y)
    t1 = time.perf_counter()
    m_lgb = _make_lgb(hp, seed, monotone, n_trees[1] if n_trees else None)
    if stop and valid is not None:
        m_lgb.fit(X, y, eval_X=(valid[0],), eval_y=(valid[1],),
                  callbacks=[lgbm.early_stopping(stop, first_metric_only=True, verbose=False)])
    else:
        m_lgb.fit(X, y)
    t2 = time.perf_counter()
    # The network and the linear part follow the same directions as the trees (none when the
    # constraints are off), so every part of the served score is monotone where declared.
    directions = monotone if monotone is not None else (0,) * X.shape[1]
    mlp_rows = _sample_rows(y, hp.mlp_max_rows, seed)
    m_mlp = _make_mlp(hp, seed, directions).fit(X[mlp_rows], y[mlp_rows])
    t3 = time.perf_counter()
    m_lin = _make_linear(linear_alpha, seed, directions).fit(X[mlp_rows], y[mlp_rows])
    t4 = time.perf_counter()
    timings["xgboost"] = timings.get("xgboost", 0.0) + (t1 - t0)
    timings["lightgbm"] = timings.get("lightgbm", 0.0) + (t2 - t1)
    timings["neural_network"] = timings.get("neural_network", 0.0) + (t3 - t2)
    timings["linear"] = timings.get("linear", 0.0) + (t4 - t3)
    return BaseTriple(m_xgb, m_lgb, m_mlp, m_lin)


# --------------------------------------------------------------------------- the stacker


def fit_nonnegative_logistic(
    logits: np.ndarray, y: np.ndarray, c: float
) -> tuple[np.ndarray, float]:
    """Logistic regression over base logits with every weight >= 0 (intercept free).

    Same objective as scikit-learn's L2 logistic regression (0.5 |w|^2 + C * log loss sum),
    solved by L-BFGS-B with bounds. A negative weight would turn a base model's evidence
    upside down, so it is not allowed: a model that does not help gets weight 0.
    """
    from scipy.optimize import minimize

    L = np.asarray(logits, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    k = L.shape[1]
    rate = float(np.clip(t.mean(), 1e-6, 1 - 1e-6))

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:k], theta[k]
        z = b + L @ w
        loss = float(np.sum(np.logaddexp(0.0, z) - t * z))
        r = sigmoid(z) - t
        grad = np.concatenate([c * (L.T @ r) + w, [c * float(r.sum())]])
        return c * loss + 0.5 * float(w @ w), grad

    x0 = np.concatenate([np.full(k, 1.0 / k), [math.log(rate / (1 - rate))]])
    res = minimize(objective, x0, jac=True, method="L-BFGS-B",
                   bounds=[(0.0, None)] * k + [(None, None)], options={"maxiter": 500})
    w = np.maximum(np.asarray(res.x[:k], dtype=np.float64), 0.0)
    return w, float(res.x[k])


# At most this many OOF rows (a fixed sample) decide which parts the stacker keeps: each
# candidate set costs an inner cross-validation, and the decision is settled long before.
SELECTION_MAX_ROWS = 100_000


@dataclass(frozen=True)
class PartChoice:
    """The parts the stacker keeps (indices into PART_NAMES) and their inner-CV OOF record."""

    kept: tuple[int, ...]
    stack_oof: np.ndarray  # the stacker's OOF probabilities on the kept parts (all rows)
    tried: dict[str, float]  # log loss of every candidate set tried, "a+b" -> loss


def _stack_cv(oof: np.ndarray, y: np.ndarray, cols: Sequence[int], c: float, folds: int,
              seed: int) -> np.ndarray:
    """OOF probabilities of the stacker on `cols` (an inner cross-validation over the OOF)."""
    inner = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    out = np.zeros(y.size, dtype=np.float64)
    L = oof[:, list(cols)]
    for tr, va in inner.split(L, y):
        w_k, b_k = fit_nonnegative_logistic(L[tr], y[tr], c)
        out[va] = sigmoid(b_k + L[va] @ w_k)
    return out


def choose_parts(oof: np.ndarray, y: np.ndarray, c: float, folds: int, seed: int
                 ) -> PartChoice:
    """Backward elimination on out-of-fold log loss: drop the part whose removal helps most,
    as long as removing it does not make the stacker's inner-CV log loss worse.

    A part that does not help out of fold is dropped (weight 0): on small data that is
    usually the network and often the trees; on large data it is rarely anything.
    """
    rows = (np.arange(y.size) if y.size <= SELECTION_MAX_ROWS else np.sort(
        np.random.default_rng(seed).choice(y.size, SELECTION_MAX_ROWS, replace=False)))
    sample, t = oof[rows], y[rows]
    tried: dict[str, float] = {}

    def loss(cols: tuple[int, ...]) -> float:
        key = "+".join(PART_NAMES[i] for i in cols)
        if key not in tried:
            tried[key] = _log_loss(t, _stack_cv(sample, t, cols, c, folds, seed))
        return tried[key]

    kept = tuple(range(oof.shape[1]))
    current = loss(kept)
    while len(kept) > 1:
        options = {j: loss(tuple(i for i in kept if i != j)) for j in kept}
        drop = min(options, key=lambda j: options[j])
        if options[drop] > current:
            break
        kept, current = tuple(i for i in kept if i != drop), options[drop]
    return PartChoice(kept=kept, stack_oof=_stack_cv(oof, y, kept, c, folds, seed),
                      tried=tried)


# --------------------------------------------------------------------------- the width model

# The interval's width model (see "Confidence interval" above): small enough that serving pays
# a few percent of the served trees for it; chosen on the tuning seeds (INTERVAL_METHOD).
WIDTH_TREES = 30
WIDTH_DEPTH = 3
WIDTH_LEARNING_RATE = 0.1
WIDTH_MIN_ROWS = 20
# At most this many training rows (a fixed sample) give the width model its targets: the K
# fold ensembles are evaluated on them, which at 1M rows would cost more than the fit.
WIDTH_MAX_ROWS = 50_000


def jackknife_se(z_folds: np.ndarray) -> np.ndarray:
    """Delete-group jackknife se of K fold logits [n, K]: sqrt((K-1)/K sum_k (z_k - mean)^2)."""
    k = z_folds.shape[1]
    dev = z_folds - z_folds.mean(axis=1, keepdims=True)
    out: np.ndarray = np.sqrt((k - 1) / k * np.sum(dev * dev, axis=1))
    return out


@dataclass
class WidthModel:
    """``log se(x) = offset + the trees' raw sum``: the fold spread, learned at training time."""

    model: lgbm.LGBMRegressor
    offset: float

    def log_se(self, X: np.ndarray) -> np.ndarray:
        raw = np.asarray(self.model.predict(X, raw_score=True), dtype=np.float64).reshape(-1)
        out: np.ndarray = self.offset + raw
        return out


def fit_width_model(X: np.ndarray, se: np.ndarray, seed: int, n_jobs: int = 1) -> WidthModel:
    """Trees on ``log se``, then a level shift so the mean predicted se equals the mean se.

    Log: se is positive and skewed, and the trees' sum stays an additive logit-like number the
    graph exponentiates. The shift undoes the log's pull toward the geometric mean, which on
    the tuning seeds made the band narrower than the folds' and cost hot-lead coverage.
    """
    target = np.log(np.maximum(np.asarray(se, dtype=np.float64), 1e-6))
    model = lgbm.LGBMRegressor(
        n_estimators=WIDTH_TREES, max_depth=WIDTH_DEPTH, num_leaves=2 ** WIDTH_DEPTH,
        learning_rate=WIDTH_LEARNING_RATE, min_child_samples=WIDTH_MIN_ROWS,
        n_jobs=n_jobs, random_state=seed, verbose=-1,
    )
    model.fit(X, target)
    raw = np.asarray(model.predict(X, raw_score=True), dtype=np.float64)
    offset = float(np.log(np.mean(np.exp(target)) / np.mean(np.exp(raw))))
    return WidthModel(model=model, offset=offset)


# --------------------------------------------------------------------------- the ensemble


class EnsembleRefused(ValueError):
    """The data cannot give a model worth serving; the message is one line for a person."""


@dataclass
class FittedEnsemble:
    """The fitted ensemble: served models, fold models, stacker, OOF record."""

    hp: Hyperparameters
    served: BaseTriple
    folds: list[BaseTriple]
    weights: np.ndarray  # float64 [4] in PART_NAMES order, every weight >= 0
    intercept: float
    combiner: str  # "stacker" or "best_base:<name>"
    oof_logits: np.ndarray  # [n, 4]
    oof_metrics: dict[str, dict[str, float]]
    training_seconds: dict[str, float]
    interval_scale: float
    directions: tuple[int, ...] = ()
    tree_counts: dict[str, Any] = field(default_factory=dict)
    class_counts: tuple[int, int] = (0, 0)  # (converted, not converted) fitted on
    # the interval's width: a small model of the folds' jackknife se (None: the folds' own)
    width: WidthModel | None = None
    # parts the stacker dropped because they did not help out of fold (weight 0)
    dropped: tuple[str, ...] = ()
    linear_alpha: float = 0.0
    # inner-CV OOF log loss of every set of parts the stacker tried ("xgboost+linear" -> loss)
    stacker_candidates: dict[str, float] = field(default_factory=dict)

    @property
    def part_names(self) -> tuple[str, ...]:
        return PART_NAMES

    @property
    def linear(self) -> Pipeline:
        return self.served.linear

    @property
    def xgb(self) -> xgb.XGBClassifier:
        return self.served.xgb

    @property
    def lgb(self) -> lgbm.LGBMClassifier:
        return self.served.lgb

    @property
    def mlp_pipeline(self) -> Pipeline:
        return self.served.mlp_pipeline

    @property
    def n_folds(self) -> int:
        return len(self.folds)

    def combine(self, logits: np.ndarray) -> np.ndarray:
        """The stacker's logit z for part logits [n, 4]."""
        z: np.ndarray = self.intercept + logits @ self.weights
        return z

    def fold_logits(self, X: np.ndarray) -> np.ndarray:
        """z_k of each fold ensemble, [n, K]."""
        return np.column_stack([self.combine(f.logits(X)) for f in self.folds])

    def fold_se(self, X: np.ndarray) -> np.ndarray:
        """The jackknife se of the fold ensembles' logits (what the width model learns)."""
        return jackknife_se(self.fold_logits(_as_f32_grid(np.atleast_2d(X))))

    def predict_se(self, X: np.ndarray) -> np.ndarray:
        """The se the served interval uses: the width model's, else the folds' own."""
        if self.width is None:
            return self.fold_se(X)
        return np.exp(self.width.log_se(_as_f32_grid(np.atleast_2d(X))))

    @property
    def interval_floor(self) -> float:
        """The floor (logit) for the rows this ensemble was fitted on (INTERVAL_METHOD)."""
        hp = self.hp
        rows = sum(self.class_counts)
        if hp.interval_floor_rows <= 0 or rows <= 0:
            return hp.interval_floor
        return hp.interval_floor * math.sqrt(hp.interval_floor_rows / rows)

    def interval_from(self, z: np.ndarray, se: np.ndarray) -> np.ndarray:
        """The 95 % interval (INTERVAL_METHOD): se, a floor, wider toward extremes."""
        hp = self.hp
        half = Z95 * np.sqrt((hp.interval_scale * se) ** 2 + self.interval_floor ** 2)
        up = hp.interval_skew_up * np.maximum(z - hp.interval_skew_up_from, 0.0)
        down = hp.interval_skew_down * np.maximum(hp.interval_skew_down_from - z, 0.0)
        return np.column_stack([sigmoid(z - half - down), sigmoid(z + half + up)])

    def predict_native(self, X: np.ndarray) -> ModelOutputs:
        X = _as_f32_grid(np.atleast_2d(X))
        logits = self.served.logits(X)
        z = self.combine(logits)
        interval = self.interval_from(z, self.predict_se(X))
        # base_scores: the three parts the answer names (BASE_MODEL_NAMES)
        return ModelOutputs(score=sigmoid(z), base_scores=sigmoid(logits[:, :3]),
                            interval=interval)


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    return float(roc_auc_score(y, s))


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    return float(log_loss(y, np.clip(p, 1e-12, 1 - 1e-12), labels=[0, 1]))


def _splits(model: xgb.XGBClassifier | lgbm.LGBMClassifier) -> int:
    trees = xgb_trees(model) if isinstance(model, xgb.XGBClassifier) else lgb_trees(model)
    return int(sum(int(np.sum(~t.is_leaf())) for t in trees))


def _check_folds(folds: list[BaseTriple], n_rows: int, n_minority: int) -> None:
    """Refuse fold models that learned nothing: their interval would be a lie (zero width)."""
    empty = [f"{name} fold {k + 1}" for k, f in enumerate(folds)
             for name, model in (("xgboost", f.xgb), ("lightgbm", f.lgb)) if _splits(model) == 0]
    if empty:
        raise EnsembleRefused(
            f"fold models are degenerate ({', '.join(empty[:4])}"
            f"{', ...' if len(empty) > 4 else ''} made no split): {n_rows} training rows with "
            f"{n_minority} of the rarer class are too few to learn from"
        )


EARLY_STOPPING_FRACTION = 0.15


def _stopping_split(rows: np.ndarray, y: np.ndarray, seed: int, rounds: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(rows to fit on, rows to stop on): a stratified 15 % of a fold's training rows."""
    if not rounds:
        return rows, rows[:0]
    from sklearn.model_selection import train_test_split

    fit_rows, stop_rows = train_test_split(rows, test_size=EARLY_STOPPING_FRACTION,
                                           random_state=seed, stratify=y[rows])
    return np.sort(fit_rows), np.sort(stop_rows)


def check_signal(combiner: str, served_loss: float, base_rate_loss: float, rate: float,
                 n_rows: int, n_minority: int) -> None:
    """Refuse a combiner that does not beat the constant base rate on out-of-fold data."""
    if not served_loss < base_rate_loss:
        raise EnsembleRefused(
            f"no model beats the base rate on out-of-fold data (log loss {served_loss:.4f} "
            f"for {combiner} vs {base_rate_loss:.4f} for the constant {rate:.3f}); "
            f"{n_rows} rows with {n_minority} of the rarer class are not enough"
        )


def fit_ensemble(
    X: np.ndarray,
    y: np.ndarray,
    hp: Hyperparameters | None = None,
    directions: Sequence[int] | None = None,
    progress: Callable[[str, Mapping[str, float]], None] | None = None,
) -> FittedEnsemble:
    """Fit base models with K-fold OOF logits, the stacker on them, then refit for serving.

    `progress(step, timings)` is called after each fold and after the served refit (the
    training job prints each model's fit and an ETA from it).

    `directions` (one of -1, 0, +1 per column) become monotone constraints of the trees when
    ``hp.monotone``. Raises EnsembleRefused when the data cannot give a trustworthy model:
    degenerate fold models, or no combiner beating the base rate on out-of-fold data.
    """
    hp = hp or Hyperparameters()
    hp.validate()
    X = _as_f32_grid(np.asarray(X))
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError("X must be [n, d] with one label per row")
    dirs = tuple(int(d) for d in (directions if directions is not None else [0] * X.shape[1]))
    if len(dirs) != X.shape[1] or any(d not in (-1, 0, 1) for d in dirs):
        raise ValueError("directions must hold one of -1, 0, 1 per feature column")
    monotone = dirs if hp.monotone and any(dirs) else None
    n_pos = int(y.sum())
    n_minority = min(n_pos, int(y.size) - n_pos)
    hp = adapted(hp, n_minority)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    # The linear part's penalty, chosen once by cross-validation on the training rows (like
    # LogisticRegressionCV) and used by every fold and the served fit.
    lin_dirs = monotone if monotone is not None else (0,) * X.shape[1]
    lin_rows = _sample_rows(y, hp.mlp_max_rows, hp.seed)
    linear_alpha = choose_linear_alpha(BoundedScaler().fit_transform(X[lin_rows]), y[lin_rows],
                                       lin_dirs, hp.seed)
    timings["linear"] = time.perf_counter() - t0
    skf = StratifiedKFold(n_splits=hp.folds, shuffle=True, random_state=hp.seed)
    oof = np.zeros((X.shape[0], len(PART_NAMES)), dtype=np.float64)
    folds: list[BaseTriple] = []
    for k, (tr, va) in enumerate(skf.split(X, y)):
        # Early stopping watches a slice of the fold's own training rows, never the OOF rows
        # (stopping on them would make noise look like signal to the checks below).
        fit_rows, stop_rows = _stopping_split(tr, y, hp.seed + 1 + k, hp.early_stopping_rounds)
        triple = _fit_triple(X[fit_rows], y[fit_rows], hp, hp.seed + 1 + k, timings, monotone,
                             valid=(X[stop_rows], y[stop_rows]) if stop_rows.size else None,
                             linear_alpha=linear_alpha)
        oof[va] = triple.logits(X[va])
        folds.append(triple)
        if progress is not None:
            progress(f"fold {k + 1}/{hp.folds}", timings)
    _check_folds(folds, int(y.size), n_minority)

    t0 = time.perf_counter()
    choice = choose_parts(oof, y, hp.stacker_c, hp.folds, hp.seed + 100)
    kept = list(choice.kept)
    weights_all = np.zeros(len(PART_NAMES), dtype=np.float64)
    weights_kept, intercept_all = fit_nonnegative_logistic(oof[:, kept], y, hp.stacker_c)
    weights_all[kept] = weights_kept
    stack_oof = choice.stack_oof
    timings["stacker"] = time.perf_counter() - t0

    rate = float(y.mean())
    oof_metrics: dict[str, dict[str, float]] = {}
    losses: dict[str, float] = {}
    for i, name in enumerate(PART_NAMES):
        losses[name] = _log_loss(y, sigmoid(oof[:, i]))
        oof_metrics[name] = {"auc": _auc(y, oof[:, i]), "log_loss": losses[name]}
    stack_loss = _log_loss(y, stack_oof)
    oof_metrics["stacker"] = {"auc": _auc(y, stack_oof), "log_loss": stack_loss}
    base_rate_loss = _log_loss(y, np.full(y.size, rate))
    oof_metrics["base_rate"] = {"auc": 0.5, "log_loss": base_rate_loss}

    best = min(losses, key=lambda n: losses[n])
    if stack_loss <= losses[best]:
        combiner, served_loss = "stacker", stack_loss
        weights, intercept = weights_all, intercept_all
    else:
        combiner, served_loss = f"best_base:{best}", losses[best]
        weights = np.zeros(len(PART_NAMES), dtype=np.float64)
        weights[PART_NAMES.index(best)] = 1.0
        intercept = 0.0
    check_signal(combiner, served_loss, base_rate_loss, rate, int(y.size), n_minority)

    # The served trees: as many as the folds kept on average (early stopping), never fewer
    # than one; without early stopping the configured count.
    counts = {"xgboost": [xgb_tree_count(f.xgb) for f in folds],
              "lightgbm": [lgb_tree_count(f.lgb) for f in folds]}
    n_trees = (max(1, round(float(np.mean(counts["xgboost"])))),
               max(1, round(float(np.mean(counts["lightgbm"])))))
    served = _fit_triple(X, y, hp, hp.seed, timings, monotone, n_trees=n_trees,
                         linear_alpha=linear_alpha)
    if progress is not None:
        progress("served models (all training rows)", timings)

    # The interval's width model: the folds' jackknife se on (a sample of) the training rows.
    t0 = time.perf_counter()
    rows = (np.arange(y.size) if y.size <= WIDTH_MAX_ROWS else np.sort(
        np.random.default_rng(hp.seed).choice(y.size, WIDTH_MAX_ROWS, replace=False)))
    z_folds = np.column_stack([intercept + f.logits(X[rows]) @ weights for f in folds])
    width = fit_width_model(X[rows], jackknife_se(z_folds), hp.seed, hp.n_jobs)
    timings["interval_width"] = time.perf_counter() - t0
    if progress is not None:
        progress("interval width model", timings)
    return FittedEnsemble(
        hp=hp,
        served=served,
        folds=folds,
        weights=weights,
        intercept=intercept,
        combiner=combiner,
        oof_logits=oof,
        oof_metrics=oof_metrics,
        training_seconds=timings,
        interval_scale=hp.interval_scale,
        directions=dirs,
        tree_counts={"folds": counts, "served": {"xgboost": n_trees[0],
                                                  "lightgbm": n_trees[1]}},
        class_counts=(n_pos, int(y.size) - n_pos),
        width=width,
        dropped=tuple(n for i, n in enumerate(PART_NAMES) if weights[i] == 0.0),
        linear_alpha=linear_alpha,
        stacker_candidates=dict(choice.tried),
    )
