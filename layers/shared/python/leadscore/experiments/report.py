"""An experiment's results as text (the command line) and as a static HTML page."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from leadscore import metrics
from leadscore.experiments.results import ExperimentResults, ResolvedLead, VariantResult
from leadscore.reports import html
from leadscore.reports.lift import gains_series


def _cell(value: float | int | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def render_text(results: ExperimentResults) -> str:
    header = (f"{'variant':<24}{'leads':>7}{'conv':>7}{'rate':>8}{'hot':>6}{'hot rate':>9}"
              f"{'AUC':>7}{'Brier':>7}{'lift@10%':>9}{'p(AUC)':>9}{'p(Brier)':>10}")
    lines = [f"Experiment {results.name} (baseline {results.baseline}, decided on "
             f"{results.metric})", header]
    for v in results.variants:
        base = v.auc_vs_baseline_p_value is None
        lines.append(
            f"{v.variant:<24}{v.leads:>7}{v.conversions:>7}{_cell(v.conversion_rate):>8}"
            f"{v.hot_leads:>6}{_cell(v.hot_conversion_rate):>9}{_cell(v.auc):>7}"
            f"{_cell(v.brier):>7}{_cell(v.top_decile_lift, 2):>9}"
            f"{'base' if base else _cell(v.auc_vs_baseline_p_value, 4):>9}"
            f"{'base' if base else _cell(v.brier_vs_baseline_p_value, 4):>10}")
    lines.append(results.statement)
    lines.extend(f"warning ({v.variant}): {w}" for v in results.variants for w in v.warnings)
    return "\n".join(lines) + "\n"


def _table(variants: Sequence[VariantResult]) -> str:
    return html.table(
        ["variant", "leads", "conversions", "conversion rate", "called hot",
         "hot conversion rate", "AUC", "Brier", "top-decile lift", "p (AUC vs baseline)",
         "p (Brier vs baseline)", "p (hot rate vs baseline)"],
        [[v.variant, v.leads, v.conversions, v.conversion_rate, v.hot_leads,
          v.hot_conversion_rate, v.auc, v.brier, v.top_decile_lift,
          v.auc_vs_baseline_p_value, v.brier_vs_baseline_p_value,
          v.hot_rate_vs_baseline_p_value] for v in variants])


def render_html(results: ExperimentResults, rows: Sequence[ResolvedLead]) -> str:
    names = [v.variant for v in results.variants]
    auc = html.bar_chart(
        "AUC by variant", names,
        [html.Series("AUC", range(len(names)), [_finite(v.auc) for v in results.variants])],
        y_label="AUC", y_range=(0.0, 1.0))
    hot = html.bar_chart(
        "Conversion rate of leads called hot", names,
        [html.Series("hot conversion rate", range(len(names)),
                     [_finite(v.hot_conversion_rate) for v in results.variants])],
        y_label="conversion rate", y_range=(0.0, 1.0))
    gains = []
    for name in names:
        arm = [r for r in rows if r.variant == name]
        y = np.array([r.converted for r in arm], dtype=bool)
        if len(arm) >= 10 and y.any():
            gains.append(gains_series(name, metrics.lift_by_decile(
                y, np.array([r.score for r in arm]))))
    parts = [html.paragraph(results.statement, "good" if results.winner else ""),
             html.charts(auc, hot), _table(results.variants)]
    if gains:
        parts.append(html.charts(html.line_chart(
            "Cumulative gains by variant", gains, x_label="share of leads called",
            y_label="share of conversions", x_range=(0, 1), y_range=(0, 1), diagonal=True)))
    parts.extend(html.paragraph(f"{v.variant}: {w}", "warn")
                 for v in results.variants for w in v.warnings)
    return html.page(f"Experiment {results.name}", [html.section("Results", *parts)],
                     subtitle=f"Baseline {results.baseline}; decided on {results.metric} "
                              "(declared at creation); arms are independent groups of "
                              "contacts; AUC compared with DeLong's test, Brier with Welch's.")


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0
