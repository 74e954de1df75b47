"""Evaluation maths on numpy alone: one copy for the gate, experiments, drift and simulations.

Serving-safe (numpy and the standard library only), so the promote and monitoring functions
can measure models without scikit-learn or scipy.

- AUC is the Mann–Whitney statistic with midranks for ties, identical to
  ``sklearn.metrics.roc_auc_score`` (a test checks it).
- Variances come from DeLong's structural components (DeLong, DeLong & Clarke-Pearson 1988)
  in the fast midrank form of Sun & Xu (2014): O(n log n), paired or unpaired.
- PSI uses reference bins cut at the training data's deciles (or between distinct values when
  a feature has few), with a floor on empty bins so one empty bin cannot make it infinite.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import TypedDict

import numpy as np

PSI_BINS = 10
# An empty bin on either side would make PSI infinite; 1e-4 is the usual floor.
PSI_FLOOR = 1e-4
_EPS = 1e-15


class CalibrationBin(TypedDict):
    lo: float
    hi: float
    n: int
    mean_predicted: float
    observed_rate: float


class DecileRow(TypedDict):
    decile: int
    n: int
    conversions: int
    conversion_rate: float
    lift: float
    cumulative_gain: float


class ReferenceDistribution(TypedDict):
    edges: list[float]
    fractions: list[float]


@dataclass(frozen=True, slots=True)
class AUCComparison:
    """Two AUCs, their difference (a − b), its standard error, z and two-sided p-value."""

    auc_a: float
    auc_b: float
    diff: float
    se: float
    z: float
    p_value: float


def _as_labels(y: np.ndarray) -> np.ndarray:
    return np.asarray(y).astype(bool).ravel()


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks where tied values share the mean of their ranks."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts).astype(np.float64)
    return (upper - (counts - 1) / 2.0)[inverse]


def _components(y: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong's structural components (per positive, per negative)."""
    labels = _as_labels(y)
    s = np.asarray(score, dtype=np.float64).ravel()
    pos, neg = s[labels], s[~labels]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        return math.nan, np.empty(0), np.empty(0)
    combined = _midranks(np.concatenate([pos, neg]))
    within_pos = _midranks(pos)
    within_neg = _midranks(neg)
    auc = float((combined[:m].sum() - m * (m + 1) / 2.0) / (m * n))
    v_pos = (combined[:m] - within_pos) / n
    v_neg = 1.0 - (combined[m:] - within_neg) / m
    return auc, v_pos, v_neg


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve; nan when only one class is present."""
    return _components(y, score)[0]


def delong(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """(AUC, DeLong variance of the AUC); the variance is nan with fewer than 2 of a class."""
    value, v_pos, v_neg = _components(y, score)
    if len(v_pos) < 2 or len(v_neg) < 2:
        return value, math.nan
    variance = float(np.var(v_pos, ddof=1) / len(v_pos) + np.var(v_neg, ddof=1) / len(v_neg))
    return value, variance


def _two_sided_p(z: float) -> float:
    if math.isnan(z):
        return math.nan
    return math.erfc(abs(z) / math.sqrt(2.0))


def _z_test(diff: float, variance: float) -> tuple[float, float, float]:
    """(standard error, z, two-sided p) of a difference with the given variance."""
    se = math.sqrt(variance) if variance > 0 else 0.0
    # A zero standard error (identical scorers) gives z 0 for no difference, ±inf otherwise.
    z = diff / se if se > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    return se, z, _two_sided_p(z)


def _comparison(auc_a: float, auc_b: float, variance: float) -> AUCComparison:
    return AUCComparison(auc_a, auc_b, auc_a - auc_b, *_z_test(auc_a - auc_b, variance))


def delong_paired(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> AUCComparison:
    """Two scorers on the same rows (the gate: candidate vs champion)."""
    auc_a, pos_a, neg_a = _components(y, score_a)
    auc_b, pos_b, neg_b = _components(y, score_b)
    if len(pos_a) < 2 or len(neg_a) < 2:
        return AUCComparison(auc_a, auc_b, auc_a - auc_b, math.nan, math.nan, math.nan)
    cov_pos = np.cov(np.vstack([pos_a, pos_b]))
    cov_neg = np.cov(np.vstack([neg_a, neg_b]))
    s = cov_pos / len(pos_a) + cov_neg / len(neg_a)
    return _comparison(auc_a, auc_b, float(s[0, 0] + s[1, 1] - 2 * s[0, 1]))


def delong_unpaired(
    y_a: np.ndarray, score_a: np.ndarray, y_b: np.ndarray, score_b: np.ndarray
) -> AUCComparison:
    """Two scorers on independent groups of rows (the arms of an experiment)."""
    auc_a, var_a = delong(y_a, score_a)
    auc_b, var_b = delong(y_b, score_b)
    if math.isnan(var_a) or math.isnan(var_b):
        return AUCComparison(auc_a, auc_b, auc_a - auc_b, math.nan, math.nan, math.nan)
    return _comparison(auc_a, auc_b, var_a + var_b)


@dataclass(frozen=True, slots=True)
class BrierComparison:
    """Two Brier scores, their difference (a − b), its standard error, z and two-sided p."""

    brier_a: float
    brier_b: float
    diff: float
    se: float
    z: float
    p_value: float


def brier_unpaired(
    y_a: np.ndarray, p_a: np.ndarray, y_b: np.ndarray, p_b: np.ndarray
) -> BrierComparison:
    """Two probability scorers on independent groups of rows (the arms of an experiment).

    The Brier score is the mean of the per-lead squared errors, so the difference of two arms'
    scores is a difference of two independent means: Welch's statistic with the normal
    approximation (each arm has hundreds of leads before the answer is read; a smaller arm
    carries the experiment's small-sample warning). nan with fewer than 2 leads in an arm.
    """
    err_a = (np.asarray(p_a, dtype=np.float64).ravel() - _as_labels(y_a)) ** 2
    err_b = (np.asarray(p_b, dtype=np.float64).ravel() - _as_labels(y_b)) ** 2
    brier_a = float(err_a.mean()) if err_a.size else math.nan
    brier_b = float(err_b.mean()) if err_b.size else math.nan
    if err_a.size < 2 or err_b.size < 2:
        return BrierComparison(brier_a, brier_b, brier_a - brier_b, math.nan, math.nan, math.nan)
    variance = float(err_a.var(ddof=1)) / err_a.size + float(err_b.var(ddof=1)) / err_b.size
    diff = brier_a - brier_b
    return BrierComparison(brier_a, brier_b, diff, *_z_test(diff, variance))


def auc_lower_bound(y: np.ndarray, score: np.ndarray, confidence: float = 0.95) -> float:
    """One-sided lower confidence bound of the AUC (DeLong standard error, normal quantile)."""
    value, variance = delong(y, score)
    if math.isnan(variance):
        return math.nan
    return value - NormalDist().inv_cdf(confidence) * math.sqrt(max(variance, 0.0))


def two_proportion_p(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float:
    """Two-sided p-value of a pooled two-proportion z test; nan when a group is empty."""
    if n_a == 0 or n_b == 0:
        return math.nan
    pooled = (successes_a + successes_b) / (n_a + n_b)
    variance = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if variance <= 0:
        return 1.0
    return _two_sided_p((successes_a / n_a - successes_b / n_b) / math.sqrt(variance))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    labels = _as_labels(y).astype(np.float64)
    return float(np.mean((np.asarray(p, dtype=np.float64).ravel() - labels) ** 2))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    labels = _as_labels(y)
    q = np.clip(np.asarray(p, dtype=np.float64).ravel(), _EPS, 1 - _EPS)
    return float(-np.mean(np.where(labels, np.log(q), np.log1p(-q))))


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[CalibrationBin]:
    """Equal-width bins of the predicted probability; empty bins are left out."""
    labels = _as_labels(y)
    q = np.asarray(p, dtype=np.float64).ravel()
    index = np.clip((q * bins).astype(int), 0, bins - 1)
    rows: list[CalibrationBin] = []
    for b in range(bins):
        member = index == b
        n = int(member.sum())
        if n == 0:
            continue
        rows.append(CalibrationBin(
            lo=b / bins, hi=(b + 1) / bins, n=n,
            mean_predicted=float(q[member].mean()),
            observed_rate=float(labels[member].mean()),
        ))
    return rows


def lift_by_decile(y: np.ndarray, score: np.ndarray) -> list[DecileRow]:
    """Leads sorted by score, highest first, in ten near-equal groups: rate, lift, gain."""
    labels = _as_labels(y)
    order = np.argsort(-np.asarray(score, dtype=np.float64).ravel(), kind="mergesort")
    total = int(labels.sum())
    overall = total / len(labels) if len(labels) else math.nan
    rows: list[DecileRow] = []
    cumulative = 0
    for decile, members in enumerate(np.array_split(order, 10), start=1):
        conversions = int(labels[members].sum())
        cumulative += conversions
        rate = conversions / len(members) if len(members) else math.nan
        rows.append(DecileRow(
            decile=decile, n=len(members), conversions=conversions, conversion_rate=rate,
            lift=rate / overall if overall else math.nan,
            cumulative_gain=cumulative / total if total else math.nan,
        ))
    return rows


def top_decile_lift(y: np.ndarray, score: np.ndarray) -> float:
    return lift_by_decile(y, score)[0]["lift"]


def reference_distribution(values: np.ndarray, bins: int = PSI_BINS) -> ReferenceDistribution:
    """Cut points and fractions of a training column, the reference PSI compares against.

    Cuts sit at the deciles, or halfway between distinct values when there are at most
    ``bins`` of them (binary and small-integer features keep one bin per value).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    distinct = np.unique(v)
    if len(distinct) <= bins:
        edges = (distinct[:-1] + distinct[1:]) / 2.0
    else:
        edges = np.unique(np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1]))
    return ReferenceDistribution(
        edges=[float(e) for e in edges], fractions=[float(f) for f in _fractions(edges, v)]
    )


def _fractions(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def psi(reference: ReferenceDistribution, values: np.ndarray) -> float:
    """Population stability index of ``values`` against a reference; nan for no values."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan
    expected = np.maximum(np.asarray(reference["fractions"], dtype=np.float64), PSI_FLOOR)
    actual = np.maximum(_fractions(np.asarray(reference["edges"], dtype=np.float64), v), PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def chi2_quantile(df: int, probability: float) -> float:
    """Wilson–Hilferty approximation of the chi-square quantile (within 2 % for df >= 3,
    on the high side: a test using it is slightly conservative)."""
    z = NormalDist().inv_cdf(probability)
    k = float(df)
    return k * (1.0 - 2.0 / (9.0 * k) + z * math.sqrt(2.0 / (9.0 * k))) ** 3


def shift_is_significant(
    reference: ReferenceDistribution, values: np.ndarray, p_value: float = 1e-3
) -> bool:
    """Could ``values`` drawn from the reference distribution land in its bins like this by
    chance? Pearson's chi-square test of the window's bin counts against the reference
    shares (bins − 1 degrees of freedom), at ``p_value``.

    PSI says how far a window moved; this says whether the window is big enough to tell. (PSI
    itself is no test statistic for small windows: one empty bin adds ln(share / floor).)
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    expected = np.maximum(np.asarray(reference["fractions"], dtype=np.float64), PSI_FLOOR)
    if len(v) == 0 or len(expected) < 2:
        return False
    counts = np.bincount(np.searchsorted(np.asarray(reference["edges"], dtype=np.float64), v,
                                         side="right"), minlength=len(expected))
    statistic = float(np.sum((counts - len(v) * expected) ** 2 / (len(v) * expected)))
    return statistic >= chi2_quantile(len(expected) - 1, 1.0 - p_value)


# --------------------------------------------------------------------------- paired gate maths


def brier_paired(y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray) -> BrierComparison:
    """Two probability scorers on the same rows (the gate: candidate vs champion).

    The difference of the two Brier scores is the mean of the per-lead differences of squared
    errors, so its standard error is that of a mean of paired differences: far smaller than
    the unpaired one, because both scorers see the same hard and easy leads.
    """
    labels = _as_labels(y)
    err_a = (np.asarray(p_a, dtype=np.float64).ravel() - labels) ** 2
    err_b = (np.asarray(p_b, dtype=np.float64).ravel() - labels) ** 2
    brier_a = float(err_a.mean()) if err_a.size else math.nan
    brier_b = float(err_b.mean()) if err_b.size else math.nan
    if err_a.size < 2:
        return BrierComparison(brier_a, brier_b, brier_a - brier_b, math.nan, math.nan, math.nan)
    d = err_a - err_b
    return BrierComparison(brier_a, brier_b, float(d.mean()),
                           *_z_test(float(d.mean()), float(d.var(ddof=1)) / d.size))


CALIBRATION_GROUPS = 10


def expected_calibration_error(y: np.ndarray, p: np.ndarray,
                               groups: int = CALIBRATION_GROUPS) -> float:
    """ECE over equal-count groups of leads sorted by predicted probability.

    Equal-count groups (not equal-width bins): at a 2 % base rate nearly every lead falls into
    the first tenth of [0, 1], and equal-width bins would then measure only
    calibration-in-the-large. nan without rows.
    """
    labels = _as_labels(y).astype(np.float64)
    q = np.asarray(p, dtype=np.float64).ravel()
    if q.size == 0:
        return math.nan
    order = np.argsort(q, kind="mergesort")
    total = 0.0
    for members in np.array_split(order, min(groups, q.size)):
        total += abs(float(q[members].sum()) - float(labels[members].sum()))
    return total / q.size


def precision_at_top(y: np.ndarray, score: np.ndarray, fraction: float) -> float:
    """Share of conversions among the top ``fraction`` of leads by score (at least one lead).

    Ties at the cut are broken by row order (a stable sort), the same for every scorer.
    """
    labels = _as_labels(y)
    s = np.asarray(score, dtype=np.float64).ravel()
    if s.size == 0:
        return math.nan
    k = max(1, round(fraction * s.size))
    top = np.argsort(-s, kind="mergesort")[:k]
    return float(labels[top].mean())


def paired_bootstrap(
    y: np.ndarray,
    score_a: np.ndarray,
    score_b: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], float],
    *,
    resamples: int,
    seed: int,
) -> np.ndarray:
    """statistic(a) − statistic(b) on ``resamples`` resamples of the rows (the same resampled
    rows for both scorers, so what they share cancels). For statistics without a closed-form
    paired variance (calibration error, precision in the top k %)."""
    labels = _as_labels(y)
    a = np.asarray(score_a, dtype=np.float64).ravel()
    b = np.asarray(score_b, dtype=np.float64).ravel()
    rng = np.random.default_rng(seed)
    out = np.empty(resamples, dtype=np.float64)
    for i in range(resamples):
        idx = rng.integers(0, labels.size, labels.size)
        out[i] = statistic(labels[idx], a[idx]) - statistic(labels[idx], b[idx])
    return out
