"""What an experiment showed: per variant, and whether the difference is more than chance.

Input rows are resolved leads of the experiment: the variant the contact was assigned, the
score and class that variant answered (the ones written back), and whether the lead
converted. Arms are independent groups of contacts, so AUCs are compared with DeLong's
unpaired test and the conversion rate of leads called hot with a two-proportion z test, each
arm against the first variant (the baseline, ``rules`` in the usual "ensemble vs rules").

The winner is the arm with the best AUC when it beats the baseline at ``alpha``, or the
baseline itself when it beats every other arm at ``alpha``; otherwise there is none yet.
Arms with fewer than ``min_conversions`` conversions or ``min_leads`` leads carry a warning:
their p-values are not to be trusted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from leadscore import metrics

ALPHA = 0.05
MIN_LEADS = 200
MIN_CONVERSIONS = 30


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

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name, "baseline": self.baseline, "winner": self.winner,
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
    if leads < MIN_LEADS or min(conversions, leads - conversions) < MIN_CONVERSIONS:
        result.warnings.append(
            f"small sample: {leads} leads, {conversions} conversions (at least {MIN_LEADS} "
            f"leads and {MIN_CONVERSIONS} of each outcome before the p-values mean much)")
    return result


def summarise(
    name: str, variants: Sequence[str], rows: Sequence[ResolvedLead], *, alpha: float = ALPHA
) -> ExperimentResults:
    by_variant = {v: [r for r in rows if r.variant == v] for v in variants}
    baseline = variants[0]
    results = [_variant_result(v, by_variant[v]) for v in variants]
    base_rows = by_variant[baseline]
    y_base = np.array([r.converted for r in base_rows], dtype=bool)
    s_base = np.array([r.score for r in base_rows], dtype=np.float64)
    base = results[0]
    best: tuple[str, float, float] | None = None  # (variant, auc, p)
    baseline_beats: list[float] = []  # p-values of arms the baseline is significantly above
    for result in results[1:]:
        arm = by_variant[result.variant]
        comparison = metrics.delong_unpaired(
            np.array([r.converted for r in arm], dtype=bool),
            np.array([r.score for r in arm], dtype=np.float64), y_base, s_base)
        result.auc_vs_baseline_p_value = comparison.p_value
        result.hot_rate_vs_baseline_p_value = metrics.two_proportion_p(
            result.hot_conversions, result.hot_leads, base.hot_conversions, base.hot_leads)
        significant = comparison.p_value < alpha
        if significant and comparison.diff > 0 and (best is None or result.auc > best[1]):
            best = (result.variant, result.auc, comparison.p_value)
        if significant and comparison.diff < 0:
            baseline_beats.append(comparison.p_value)
    winner: str | None = None
    p_value: float | None = None
    if best is not None:
        winner, p_value = best[0], best[2]
        statement = (f"{winner} ranks leads better than {baseline}: AUC {best[1]:.3f} vs "
                     f"{base.auc:.3f}, DeLong p = {p_value:.2g} (alpha {alpha}).")
    elif len(baseline_beats) == len(results) - 1:
        winner, p_value = baseline, max(baseline_beats)
        statement = (f"{baseline} ranks leads better than every other variant (DeLong "
                     f"p <= {p_value:.2g}, alpha {alpha}).")
    else:
        p_value = min(
            (r.auc_vs_baseline_p_value for r in results[1:]
             if r.auc_vs_baseline_p_value is not None
             and not math.isnan(r.auc_vs_baseline_p_value)), default=None)
        statement = (f"No variant beats {baseline} at alpha {alpha} yet"
                     + (f" (smallest p = {p_value:.2g})." if p_value is not None else "."))
    if any(r.warnings for r in results):
        statement += " Some arms are still small: see their warnings."
    return ExperimentResults(name, baseline, results, winner, p_value, statement)
