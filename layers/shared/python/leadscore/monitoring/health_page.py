"""The model health page: one static HTML page per location and one for all of them.

What a team lead opens on Monday: does the score still sort leads (lift and gains by decile
on leads resolved recently), is it still calibrated (now vs at training), has the traffic
moved (PSI per feature, the score's distribution now vs at training), what the model leans on
week by week (permutation importance), and how the running experiment stands.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from leadscore import metrics
from leadscore.monitoring.drift import DriftReport, psi_band
from leadscore.monitoring.reference import Reference
from leadscore.reports import html
from leadscore.reports.lift import lift_and_gains

TOP_IMPORTANCE_LINES = 5
SCOPE_WORDS = {"location": "the location's own model", "agency": "the agency's model",
               "rules": "the rules score", "none": "not scored"}


@dataclass(slots=True)
class HealthData:
    scope: str  # "All locations" or a location id
    generated_at: str
    model_version: str
    reference: Reference | None
    drift: DriftReport | None
    recent_scores: np.ndarray  # scores of leads resolved in the window
    recent_outcomes: np.ndarray  # their outcomes (bool)
    window_scores: np.ndarray  # the served model's scores in the window (what the score PSI reads)
    window_leads: int | None = None  # every lead scored in the window, by any model or arm
    importance_by_week: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    experiment: Mapping[str, Any] | None = None  # ExperimentResults.to_record()
    #: which model scope served the page's leads (`leadscore.scoring.scopes`: a location's
    #: own champion, the agency's, the rules); None on the all-locations page
    model_scope: str | None = None


def _lift_section(data: HealthData) -> str:
    y, s = np.asarray(data.recent_outcomes, dtype=bool), data.recent_scores
    if len(y) < 10 or not y.any():
        return html.section("Lift and gains", html.paragraph(
            f"Not enough resolved leads yet ({len(y)}, {int(y.sum())} converted)."))
    rows = metrics.lift_by_decile(y, s)
    auc = metrics.auc(y, s)
    return html.section(
        "Lift and gains", lift_and_gains(rows, "model"),
        note=f"{len(y)} leads resolved in the window, {int(y.sum())} converted; AUC {auc:.3f}.")


def _calibration_section(data: HealthData) -> str:
    y = np.asarray(data.recent_outcomes, dtype=bool)
    series = []
    if len(y):
        now = metrics.calibration_bins(y, data.recent_scores)
        series.append(html.Series("now", [b["mean_predicted"] for b in now],
                                  [b["observed_rate"] for b in now]))
    if data.reference is not None and data.reference.calibration:
        then = data.reference.calibration
        series.append(html.Series("at training", [b["mean_predicted"] for b in then],
                                  [b["observed_rate"] for b in then]))
    if not series:
        return html.section("Calibration", html.paragraph("No outcomes to compare with yet."))
    chart = html.line_chart("Calibration", series, x_label="predicted probability",
                            y_label="observed conversion rate", x_range=(0, 1), y_range=(0, 1),
                            diagonal=True)
    return html.section("Calibration", html.charts(chart),
                        note="On the dashed line, a score of 0.3 converts 30 % of the time.")


def _drift_section(data: HealthData) -> str:
    drift = data.drift
    if drift is None:
        return html.section("Drift", html.paragraph("No reference distributions in this bundle."))
    ordered = sorted(drift.feature_psi.items(), key=lambda kv: -_finite(kv[1]))
    chart = html.bar_chart(
        "PSI per feature", [name[:24] for name, _ in ordered],
        [html.Series("PSI", range(len(ordered)), [_finite(v) for _, v in ordered])],
        y_label="PSI")
    status = (f"Drift alarm: {', '.join(drift.drifted) or 'the score'} moved past PSI "
              f"{drift.threshold}." if drift.alarm else
              "No feature has moved past the alarm threshold." if drift.enough_rows else
              f"Only {drift.rows} snapshots in the window: too few to judge.")
    table = html.table(["feature", "PSI", "reading"],
                       [[name, value, psi_band(value)] for name, value in ordered]
                       + [["(score)", drift.score_psi, psi_band(drift.score_psi)]])
    parts = [html.paragraph(status, "bad" if drift.alarm else "good"), html.charts(chart)]
    if data.reference is not None:
        n = len(data.window_scores)
        others = (data.window_leads or n) - n
        if n:
            parts.append(html.charts(_score_distribution(data.reference, data.window_scores)))
        parts.append(html.paragraph(
            f"The score chart and the score PSI read the same {n} leads: those model "
            f"{data.model_version} answered"
            + (f" ({others} other leads were answered by another model or an experiment's "
               "rules arm and are left out of both)" if others > 0 else "") + "."
            if n else
            f"No lead in the window was scored by model {data.model_version}, so there is no "
            "score distribution to compare; it fills as HighLevel webhooks, /score calls or "
            "a backfill score leads with this model."))
    parts.append(table)
    return html.section("Drift", *parts, note=(
        f"Window {drift.window_start} to {drift.window_end}, {drift.rows} snapshots. "
        "PSI below 0.10 is stable, 0.10 to 0.25 worth watching, 0.25 and above shifted."))


def _score_distribution(reference: Reference, scores: np.ndarray) -> str:
    edges = np.asarray(reference.score["edges"], dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    counts = np.bincount(np.searchsorted(edges, s, side="right"), minlength=len(edges) + 1)
    now = counts / max(len(s), 1)
    labels = [f"<{e:.2f}" for e in edges] + [f"≥{edges[-1]:.2f}" if len(edges) else "all"]
    return html.bar_chart(
        "Score distribution: now vs training", labels,
        [html.Series("training", range(len(labels)), list(reference.score["fractions"])),
         html.Series("now", range(len(labels)), [float(v) for v in now])],
        y_label="share of leads", x_label="score bin (training deciles)")


def _importance_section(data: HealthData) -> str:
    weeks = sorted(data.importance_by_week)
    if not weeks:
        return html.section("Importance over time", html.paragraph(
            "Needs at least 100 resolved leads with both outcomes in a week."))
    latest = data.importance_by_week[weeks[-1]]
    top = sorted(latest, key=lambda k: -latest[k])[:TOP_IMPORTANCE_LINES]
    series = [html.Series(name, list(range(len(weeks))),
                          [float(data.importance_by_week[w].get(name, math.nan)) for w in weeks])
              for name in top]
    chart = html.line_chart("Permutation importance by week", series,
                            x_label=f"week ({weeks[0]} … {weeks[-1]})", y_label="AUC drop")
    table = html.table(["feature", *weeks],
                       [[name, *[data.importance_by_week[w].get(name) for w in weeks]]
                        for name in top])
    return html.section("Importance over time", html.charts(chart), table)


def _experiment_section(experiment: Mapping[str, Any] | None) -> str:
    if not experiment:
        return html.section("Experiment", html.paragraph("No experiment is running."))
    variants: Mapping[str, Mapping[str, Any]] = experiment.get("variants", {})
    rows = [[name, v.get("leads"), v.get("conversions"), v.get("hot_leads"),
             v.get("hot_conversion_rate"), v.get("auc"), v.get("brier"),
             v.get("top_decile_lift"), v.get("auc_vs_baseline_p_value")]
            for name, v in variants.items()]
    table = html.table(["variant", "leads", "conversions", "called hot", "hot conversion rate",
                        "AUC", "Brier", "top-decile lift", "p (AUC vs baseline)"], rows)
    warnings = [w for v in variants.values() for w in v.get("warnings", [])]
    parts = [html.paragraph(str(experiment.get("statement", "")),
                            "good" if experiment.get("winner") else ""), table]
    parts.extend(html.paragraph(w, "warn") for w in warnings)
    return html.section(f"Experiment {experiment.get('name', '')}", *parts)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def _empty_note(data: HealthData) -> str:
    """Why a page has nothing to show, and what fills it."""
    if data.window_leads == 0 and not len(data.recent_outcomes):
        return html.section("Nothing to show yet", html.paragraph(
            "No lead was scored and none resolved in this window. The page fills as leads "
            "are scored (HighLevel webhooks, /score calls, a backfill) and as their "
            "opportunities are won or lost (the outcomes lift and calibration need).", "warn"))
    return ""


def render(data: HealthData) -> str:
    sections = [_empty_note(data), _lift_section(data), _calibration_section(data),
                _drift_section(data), _importance_section(data),
                _experiment_section(data.experiment)]
    return html.page(
        f"Model health: {data.scope}",
        [s for s in sections if s],
        subtitle=(f"Model {data.model_version}"
                  + (f" ({SCOPE_WORDS.get(data.model_scope, data.model_scope)})"
                     if data.model_scope else "")
                  + f", generated {data.generated_at}."),
    )
