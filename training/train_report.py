"""Held-out metrics, feature importance and the human-readable reports of a training job.

Conventions (stated in the reports too):

- Metrics are computed on the held-out split only. Accuracy, precision, recall and F1 use the
  decision threshold 0.5 on the probability; AUC and Brier use the probability itself.
- `improvement_over_best_base` = 100 × (ensemble AUC − best base AUC) / best base AUC, on the
  held-out split, negative when the ensemble is worse. It is reported, never acted upon: the
  choice between stacker and best single model was made on training data (OOF) only.
- Feature importance, all four columns normalised the same way: non-negative, summing to 1
  over the 20 features (all zeros stays all zeros).
  * xgboost / lightgbm: total gain of the served model's splits per feature.
  * neural_net: permutation importance of the served MLP: mean drop of held-out AUC when a
    feature's column is shuffled (`n_repeats` shuffles, on at most `max_rows` held-out rows),
    negative drops clipped to 0.
  * ensemble: the same permutation importance for the ensemble's score, with the same
    shuffles.
  * std_dev: population standard deviation of the three base-model importances.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from leadscore.bundle import PARITY_MAX_ABS_DIFF
from leadscore.features import FEATURE_NAMES
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

DECISION_THRESHOLD = 0.5
MODEL_LABELS = {"xgboost": "XGBoost", "lightgbm": "LightGBM", "neural_network": "Neural network",
                "ensemble": "Stacked ensemble"}
TARGET_AUC = 0.85
TARGET_BRIER = 0.15


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC, accuracy, precision, recall, F1 (at 0.5) and Brier of probabilities `p`."""
    pred = (p >= DECISION_THRESHOLD).astype(np.int64)
    return {
        "auc_roc": float(roc_auc_score(y, p)),
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1_score": float(f1_score(y, pred, zero_division=0)),
        "brier_score": float(brier_score_loss(y, p)),
    }


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Equal-width probability bins: rows, mean predicted, observed conversion rate."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    table = []
    for b in range(bins):
        mask = idx == b
        n = int(mask.sum())
        table.append({
            "bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}",
            "rows": n,
            "mean_predicted": float(p[mask].mean()) if n else None,
            "observed_rate": float(y[mask].mean()) if n else None,
        })
    return table


def normalise(v: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(v, dtype=np.float64), 0.0, None)
    total = float(v.sum())
    return v / total if total > 0 else v


def permutation_auc_drops(
    predictors: Mapping[str, Callable[[np.ndarray], np.ndarray]],
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_repeats: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Mean AUC drop per feature for each predictor, the same shuffles for all of them.

    All shuffled copies are stacked and scored in ONE call per predictor (fast).
    """
    rng = np.random.default_rng(seed)
    n, d = X.shape
    blocks = []
    for j in range(d):
        for _ in range(n_repeats):
            Xp = X.copy()
            Xp[:, j] = X[rng.permutation(n), j]
            blocks.append(Xp)
    big = np.vstack(blocks)
    out: dict[str, np.ndarray] = {}
    for name, predict in predictors.items():
        base_auc = roc_auc_score(y, predict(X))
        scores = predict(big).reshape(d, n_repeats, n)
        drops = np.empty(d, dtype=np.float64)
        for j in range(d):
            drops[j] = base_auc - np.mean([roc_auc_score(y, scores[j, r])
                                           for r in range(n_repeats)])
        out[name] = drops
    return out


@dataclass(frozen=True)
class ImportanceRow:
    feature_name: str
    xgboost_importance: float
    lightgbm_importance: float
    neural_net_importance: float
    ensemble_importance: float
    std_dev: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature_name": self.feature_name,
            "xgboost_importance": self.xgboost_importance,
            "lightgbm_importance": self.lightgbm_importance,
            "neural_net_importance": self.neural_net_importance,
            "ensemble_importance": self.ensemble_importance,
            "std_dev": self.std_dev,
        }


def importance_rows(
    xgb_gain: np.ndarray, lgb_gain: np.ndarray, nn_drop: np.ndarray, ens_drop: np.ndarray,
    names: Sequence[str] = FEATURE_NAMES,
) -> list[ImportanceRow]:
    cols = [normalise(xgb_gain), normalise(lgb_gain), normalise(nn_drop), normalise(ens_drop)]
    rows = []
    for j, name in enumerate(names):
        base = np.array([cols[0][j], cols[1][j], cols[2][j]])
        rows.append(ImportanceRow(name, float(cols[0][j]), float(cols[1][j]),
                                  float(cols[2][j]), float(cols[3][j]), float(base.std())))
    rows.sort(key=lambda r: (-r.ensemble_importance, r.feature_name))
    return rows


def importance_text(rows: Sequence[ImportanceRow], note: str) -> str:
    lines = [
        "Feature importance (each column normalised to sum to 1; sorted by ensemble)",
        note,
        "",
        f"{'#':>2}  {'feature':<32}{'ensemble':>10}{'xgboost':>10}{'lightgbm':>10}"
        f"{'neural_net':>12}{'std_dev':>10}",
    ]
    for i, r in enumerate(rows, start=1):
        lines.append(
            f"{i:>2}  {r.feature_name:<32}{r.ensemble_importance:>10.4f}"
            f"{r.xgboost_importance:>10.4f}{r.lightgbm_importance:>10.4f}"
            f"{r.neural_net_importance:>12.4f}{r.std_dev:>10.4f}"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- charts


# --------------------------------------------------------------------------- reports


def _f(v: Any, fmt: str = ".4f") -> str:
    return "n/a" if v is None else format(v, fmt)


def report_text(ctx: Mapping[str, Any]) -> str:
    """training_report.txt from the report context assembled by train.py."""
    m = ctx["metrics"]
    lines: list[str] = []
    add = lines.append
    add("LEAD SCORING ENSEMBLE - TRAINING REPORT")
    add("=" * 72)
    add(f"model_version      {m['model_version']}")
    add(f"training_date      {m['training_date']}")
    add(f"combiner           {ctx['combiner']}")
    add("")
    add("DATA")
    add(f"  input            {', '.join(ctx['sources'])} ({ctx['input_format']})")
    add(f"  rows             {ctx['n_rows']} (training {m['training_samples']}, "
        f"held-out {m['validation_samples']}; stratified, test_size {ctx['test_size']}, "
        f"seed {ctx['random_seed']})")
    add(f"  conversion rate  {ctx['conversion_rate']:.1%} overall, "
        f"{ctx['train_rate']:.1%} training, {ctx['test_rate']:.1%} held-out")
    add(f"  fingerprint      {ctx['fingerprint']}")
    add(f"  baseline         {ctx['baseline_method']}")
    add("")
    add("HELD-OUT PERFORMANCE (threshold 0.5 for accuracy/precision/recall/F1)")
    add(f"  {'model':<18}{'AUC':>8}{'acc':>8}{'prec':>8}{'recall':>8}{'F1':>8}"
        f"{'Brier':>8}{'fit s':>8}")
    table = [*m["base_model_metrics"],
             {"model_name": "ensemble", "auc_roc": m["ensemble_auc_roc"],
              "accuracy": m["ensemble_accuracy"], "precision": m["ensemble_precision"],
              "recall": m["ensemble_recall"], "f1_score": m["ensemble_f1_score"],
              "brier_score": m["ensemble_brier_score"],
              "training_time_seconds": ctx["stacker_seconds"]}]
    for r in table:
        add(f"  {r['model_name']:<18}{r['auc_roc']:>8.4f}{r['accuracy']:>8.4f}"
            f"{r['precision']:>8.4f}{r['recall']:>8.4f}{r['f1_score']:>8.4f}"
            f"{r['brier_score']:>8.4f}{r['training_time_seconds']:>8.2f}")
    add("  (fit s of a base model includes its fold models; the ensemble row shows the "
        "stacker's own time)")
    add(f"  improvement over best base (AUC, held-out, reported only): "
        f"{m['improvement_over_best_base']:+.2f} %")
    add(f"  ONNX parity: max |ONNX - native| over the held-out split = "
        f"{m['parity_max_abs_diff']:.2e} (limit {PARITY_MAX_ABS_DIFF:g})")
    add("")
    add("STACKING VERDICT")
    add("  " + ctx["verdict"])
    add("")
    if m.get("bayes_auc") is not None:
        add("DISTANCE TO THE BAYES LIMIT (true_probability present; reporting only)")
        add(f"  true_probability AUC {m['bayes_auc']:.4f}   ensemble/Bayes AUC ratio "
            f"{m['auc_ratio']:.4f} (target >= 0.98)")
        add(f"  true_probability Brier {m['bayes_brier']:.4f}   ensemble/Bayes Brier ratio "
            f"{m['brier_ratio']:.4f} (target <= 1.10)")
        add("")
    add("CONFIDENCE INTERVAL (95 %)")
    add(f"  mean width {m['interval_mean_width']:.4f}")
    if m.get("interval_coverage") is not None:
        add(f"  coverage of true_probability {m['interval_coverage']:.1%} (aim >= 93 %)")
        if m.get("interval_hot_coverage") is not None:
            add(f"  coverage for the {m['hot_leads']} hot leads "
                f"{m['interval_hot_coverage']:.1%} (aim >= 90 %)")
    add(f"  method: {ctx['interval_method']}")
    add("")
    add("CALIBRATION (ensemble, held-out, 10 equal-width bins)")
    add(f"  {'bin':<10}{'rows':>7}{'predicted':>11}{'observed':>10}")
    for r in ctx["calibration"]:
        add(f"  {r['bin']:<10}{r['rows']:>7}{_f(r['mean_predicted']):>11}"
            f"{_f(r['observed_rate']):>10}")
    add("")
    add("CLASS THRESHOLDS (held-out split)")
    if ctx.get("class_thresholds_method"):
        add(f"  {ctx['class_thresholds_method']}")
    for c in ctx["classes"]:
        add(f"  {c['class']:<9} score >= {c['min_score']:.4f}   leads {c['rows']:>6} "
            f"({_f(c.get('share_of_leads'), '.1%')})   conversions "
            f"{_f(c.get('share_of_conversions'), '.1%')} of all   "
            f"conversion rate {_f(c['conversion_rate'], '.1%')}")
    add("")
    add("TOP FEATURES (ensemble permutation importance)")
    for r in ctx["importance"][:10]:
        add(f"  {r.feature_name:<32}{r.ensemble_importance:.4f}")
    add("")
    add("WARNINGS")
    for w in ctx["warnings"] or ["none"]:
        add(f"  - {w}")
    add("")
    add(f"validation: {ctx['validation']}")
    add(f"wall time: {ctx['wall_seconds']:.1f} s")
    return "\n".join(lines) + "\n"
