"""What an experiment showed: per variant, and whether the difference is more than chance.

Input rows are resolved leads of the experiment: the variant the contact was assigned, the
score and class that variant answered (the ones written back), and whether the lead
converted. Arms are independent groups of contacts, so each arm is compared with the first
variant (the baseline, ``rules`` in the usual "ensemble vs rules") by unpaired tests: AUCs
with DeLong's test, Brier scores with Welch's test on the per-lead squared errors, and the
conversion rate of leads called hot with a two-proportion z test.

The experiment's declared metric (``brier`` or ``auc``, see `definition`) decides: the winner
is the arm with the best value of it among those that beat the baseline at ``alpha``, or the
baseline itself when it beats every other arm at ``alpha``; otherwise there is none yet. The
other metric is reported beside it, never used to pick.
Arms with fewer than ``MIN_ARM_CONVERSIONS`` conversions or ``min_leads`` leads carry a warning:
their p-values are not to be trusted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from leadscore import metrics
from leadscore.experiments.definition import DEFAULT_METRIC, Metric

ALPHA = 0.05
MIN_LEADS = 200
# An experiment arm's own minimum before its p-values mean much (not the training minimum,
# leadscore.settings.MIN_CONVERSIONS: an arm is compared, not learnt from).
MIN_ARM_CONVERSIONS = 30


@dataclass(frozen=True, slots=True)
class ResolvedLead:
    variant: str
    score: float
    predicted_class: str
    converted: bool


@dataclass(slots=True)
class VariantResult:
    variant: str
    leads: int
    conversions: int
    conversion_rate: float
    hot_leads: int
    hot_conversions: int
    hot_conversion_rate: float
    auc: float
    brier: float
    top_decile_lift: float
    auc_vs_baseline_p_value: float | None = None
    brier_vs_baseline_p_value: float | None = None
    hot_rate_vs_baseline_p_value: float | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ExperimentResults:
    name: str
    baseline: str
    variants: list[VariantResult]
    winner: str | None
    p_value: float | None
    statement: str
    metric: Metric = DEFAULT_METRIC

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name, "baseline": self.baseline, "metric": self.metric,
            "winner": self.winner,
            "p_value": _clean(self.p_value), "statement": self.statement,
            "variants": {v.variant: {k: _clean(x) for k, x in _fields(v).items()}
                         for v in self.variants},
        }


def _fields(result: VariantResult) -> dict[str, Any]:
    return {f.name: getattr(result, f.name) for f in fields(result)}


def _clean(value: Any) -> Any:
    """JSON has no NaN: an undefined figure is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _variant_result(variant: str, rows: Sequence[ResolvedLead]) -> VariantResult:
    y = np.array([r.converted for r in rows], dtype=bool)
    s = np.array([r.score for r in rows], dtype=np.float64)
    hot = np.array([r.predicted_class == "hot" for r in rows], dtype=bool)
    leads, conversions = len(rows), int(y.sum())
    hot_leads, hot_conversions = int(hot.sum()), int((y & hot).sum())
    result = VariantResult(
        variant=variant, leads=leads, conversions=conversions,
        conversion_rate=conversions / leads if leads else math.nan,
        hot_leads=hot_leads, hot_conversions=hot_conversions,
        hot_conversion_rate=hot_conversions / hot_leads if hot_leads else math.nan,
        auc=metrics.auc(y, s) if leads else math.nan,
        brier=metrics.brier(y, s) if leads else math.nan,
        top_decile_lift=metrics.top_decile_lift(y, s) if conversions else math.nan,
    )
    if leads < MIN_LEADS or min(conversions, leads - conversions) < MIN_ARM_CONVERSIONS:
        result.warnings.append(
            f"small sample: {leads} leads, {conversions} conversions (at least {MIN_LEADS} "
            f"leads and {MIN_ARM_CONVERSIONS} of each outcome before the p-values mean much)")
    return result


def _value(metric: Metric, result: VariantResult) -> float:
    """The arm's value of ``metric``, oriented so that higher is better."""
    return result.auc if metric == "auc" else -result.brier


def _p(metric: Metric, result: VariantResult) -> float | None:
    p = result.auc_vs_baseline_p_value if metric == "auc" else result.brier_vs_baseline_p_value
    return None if p is None or math.isnan(p) else p


def _sentence(metric: Metric, arm: VariantResult, base: VariantResult) -> str:
    if metric == "auc":
        return (f"AUC {arm.auc:.3f} vs {base.auc:.3f}, DeLong p = "
                f"{_fmt(arm.auc_vs_baseline_p_value)}")
    return (f"Brier {arm.brier:.3f} vs {base.brier:.3f} (lower is better), Welch p = "
            f"{_fmt(arm.brier_vs_baseline_p_value)}")


def _fmt(p: float | None) -> str:
    return "n/a" if p is None or math.isnan(p) else f"{p:.2g}"


_WHAT = {"brier": "answers more accurate probabilities than", "auc": "ranks leads better than"}


def summarise(
    name: str, variants: Sequence[str], rows: Sequence[ResolvedLead], *,
    metric: Metric = DEFAULT_METRIC, alpha: float = ALPHA,
) -> ExperimentResults:
    """Every arm against the baseline on both metrics; the declared ``metric`` decides."""
    by_variant = {v: [r for r in rows if r.variant == v] for v in variants}
    baseline = variants[0]
    results = [_variant_result(v, by_variant[v]) for v in variants]
    y_base, s_base = _arrays(by_variant[baseline])
    base = results[0]
    for result in results[1:]:
        y_arm, s_arm = _arrays(by_variant[result.variant])
        result.auc_vs_baseline_p_value = metrics.delong_unpaired(
            y_arm, s_arm, y_base, s_base).p_value
        result.brier_vs_baseline_p_value = metrics.brier_unpaired(
            y_arm, s_arm, y_base, s_base).p_value
        result.hot_rate_vs_baseline_p_value = metrics.two_proportion_p(
            result.hot_conversions, result.hot_leads, base.hot_conversions, base.hot_leads)
    significant = [r for r in results[1:]
                   if (p := _p(metric, r)) is not None and p < alpha]
    above = [r for r in significant if _value(metric, r) > _value(metric, base)]
    below = [r for r in significant if _value(metric, r) < _value(metric, base)]
    other: Metric = "auc" if metric == "brier" else "brier"
    winner: str | None = None
    p_value: float | None = None
    if above:
        best = max(above, key=lambda r: _value(metric, r))
        winner, p_value = best.variant, _p(metric, best)
        statement = (f"{winner} {_WHAT[metric]} {baseline}: {_sentence(metric, best, base)} "
                     f"(alpha {alpha}); beside it, {_sentence(other, best, base)}.")
    elif len(below) == len(results) - 1:
        p_value = max(p for r in below if (p := _p(metric, r)) is not None)
        winner = baseline
        statement = (f"{baseline} {_WHAT[metric]} every other variant "
                     f"(p <= {p_value:.2g}, alpha {alpha}).")
    else:
        p_value = min((p for r in results[1:] if (p := _p(metric, r)) is not None),
                      default=None)
        statement = (f"No variant beats {baseline} on {metric} at alpha {alpha} yet"
                     + (f" (smallest p = {p_value:.2g})." if p_value is not None else "."))
    if any(r.warnings for r in results):
        statement += " Some arms are still small: see their warnings."
    return ExperimentResults(name, baseline, results, winner, p_value, statement, metric)


def _arrays(rows: Sequence[ResolvedLead]) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([r.converted for r in rows], dtype=bool),
            np.array([r.score for r in rows], dtype=np.float64))
