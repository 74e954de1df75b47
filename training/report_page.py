"""training_report.html: what a person reads before promoting, as tables and SVG charts.

Built from the same report context as training_report.txt (train.py assembles it) plus the
held-out labels and scores, with the charts of `leadscore.reports.html` (self-contained: no
scripts, no images to fetch). Sections: summary, held-out performance per model, ROC curves,
lift and gains by decile with the decile table, calibration, score distribution, class
thresholds (with each class's share of leads and of conversions), a team's columns (kept,
excluded with reasons and each one's own AUC, unseen categories), feature importance,
warnings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from leadscore import metrics as lm
from leadscore.bundle import PARITY_MAX_ABS_DIFF
from leadscore.reports import html
from leadscore.reports.lift import lift_and_gains
from sklearn.metrics import roc_curve
from train_report import MODEL_LABELS

ROC_POINTS = 60


def _summary(ctx: Mapping[str, Any]) -> str:
    m = ctx["metrics"]
    rows: list[list[object]] = [
        ["model version", m.get("model_version")],
        ["trained", m.get("training_date")],
        ["combiner", ctx.get("combiner")],
        ["input", f"{', '.join(ctx.get('sources', []))} ({ctx.get('input_format')})"],
        ["rows", f"{ctx.get('n_rows')} (training {m.get('training_samples')}, held-out "
                 f"{m.get('validation_samples')}; seed {ctx.get('random_seed')})"],
        ["conversion rate", f"{ctx.get('conversion_rate', 0):.1%} overall"],
        ["ONNX parity", f"{m.get('parity_max_abs_diff', float('nan')):.2e} "
                        f"(limit {PARITY_MAX_ABS_DIFF:g})"],
        ["verdict", ctx.get("verdict")],
        ["wall time", f"{ctx.get('wall_seconds', 0):.1f} s"],
    ]
    if m.get("bayes_auc") is not None:
        rows.append(["distance to the Bayes limit",
                     f"AUC {m.get('auc_roc', m.get('ensemble_auc_roc', 0)):.4f} vs "
                     f"true probability {m['bayes_auc']:.4f} (ratio {m.get('auc_ratio', 0):.4f})"])
    if m.get("interval_mean_width") is not None:
        coverage = m.get("interval_coverage")
        rows.append(["95 % interval", f"mean width {m['interval_mean_width']:.4f}"
                     + (f", covers the true probability for {coverage:.1%}"
                        if coverage is not None else "")])
    return html.section("Summary", html.table(["", ""], rows))


def _performance(ctx: Mapping[str, Any]) -> str:
    m = ctx["metrics"]
    rows = [[r["model_name"], r["auc_roc"], r["accuracy"], r["precision"], r["recall"],
             r["f1_score"], r["brier_score"], r.get("training_time_seconds")]
            for r in m.get("base_model_metrics", [])]
    rows.append(["ensemble", m.get("ensemble_auc_roc"), m.get("ensemble_accuracy"),
                 m.get("ensemble_precision"), m.get("ensemble_recall"),
                 m.get("ensemble_f1_score"), m.get("ensemble_brier_score"),
                 ctx.get("stacker_seconds")])
    return html.section(
        "Held-out performance",
        html.table(["model", "AUC", "accuracy", "precision", "recall", "F1", "Brier",
                    "fit seconds"], rows),
        note="Accuracy, precision, recall and F1 at a 0.5 threshold.")


def _roc(y: np.ndarray, probabilities: Mapping[str, np.ndarray],
         true_probability: np.ndarray | None) -> str:
    series = []
    scorers = dict(probabilities)
    if true_probability is not None:
        scorers["true probability"] = true_probability
    for name, p in scorers.items():
        fpr, tpr, _ = roc_curve(y, p)
        keep = np.unique(np.linspace(0, len(fpr) - 1, ROC_POINTS).astype(int))
        label = f"{MODEL_LABELS.get(name, name)} ({lm.auc(y, p):.3f})"
        series.append(html.Series(label, fpr[keep].tolist(), tpr[keep].tolist()))
    return html.line_chart("ROC curves (held-out)", series, x_label="false positive rate",
                           y_label="true positive rate", x_range=(0, 1), y_range=(0, 1),
                           diagonal=True)


def _lift(y: np.ndarray, score: np.ndarray) -> str:
    rows = lm.lift_by_decile(y, score)
    return html.section("Lift and gains", lift_and_gains(rows, "ensemble", " (held-out)"),
                        note="Call the top decile first and this is how many more conversions "
                             "you reach than calling at random.")


def _calibration_and_scores(y: np.ndarray, score: np.ndarray) -> str:
    bins = lm.calibration_bins(y, score)
    chart = html.line_chart(
        "Calibration (held-out)",
        [html.Series("ensemble", [b["mean_predicted"] for b in bins],
                     [b["observed_rate"] for b in bins])],
        x_label="predicted probability", y_label="observed conversion rate",
        x_range=(0, 1), y_range=(0, 1), diagonal=True)
    edges = np.linspace(0, 1, 21)
    labels = [f"{e:.2f}" for e in edges[:-1]]
    converted = np.histogram(score[y == 1], bins=edges)[0].tolist()
    not_converted = np.histogram(score[y == 0], bins=edges)[0].tolist()
    histogram = html.bar_chart(
        "Score distribution (held-out)", labels,
        [html.Series("not converted", range(20), not_converted),
         html.Series("converted", range(20), converted)],
        y_label="leads", x_label="score bin (lower edge)")
    table = html.table(["bin", "leads", "mean predicted", "observed rate"],
                       [[f"{b['lo']:.1f}–{b['hi']:.1f}", b["n"], b["mean_predicted"],
                         b["observed_rate"]] for b in bins])
    return html.section("Calibration and scores", html.charts(chart, histogram), table)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{value:.1%}"


def _classes(ctx: Mapping[str, Any]) -> str:
    rows = [[c["class"], f"{c['min_score']:.4f}", c["rows"], _pct(c.get("share_of_leads")),
             _pct(c.get("share_of_conversions")), _pct(c.get("conversion_rate"))]
            for c in ctx.get("classes", [])]
    return html.section("Class thresholds (held-out)",
                        html.table(["class", "score at least", "leads", "share of leads",
                                    "share of conversions", "conversion rate"], rows),
                        note=str(ctx.get("class_thresholds_method") or ""))


def _columns(ctx: Mapping[str, Any]) -> str:
    """Which of a team's columns the model reads and which it left out, and why."""
    section = ctx.get("columns")
    if not section:
        return ""
    m = ctx["metrics"]
    kept = html.table(
        ["column", "kind", "handling", "direction", "own AUC", ""],
        [[c["column"], c["kind"], c["handling"] or "–",
          {1: "+1", -1: "-1"}.get(c["direction"], "free"), c["own_auc"], c["kept_by"]]
         for c in section["kept"]], caption="Kept")
    excluded = html.table(
        ["column", "reason", "own AUC"],
        [[e["column"], e["reason"], e["own_auc"]] for e in section["excluded"]],
        caption="Excluded") if section["excluded"] else html.paragraph("No column excluded.")
    reference = m.get("reference_lightgbm_default_auc")
    bar = (f"Held-out AUC: ensemble {m['ensemble_auc_roc']:.4f}, LightGBM with default "
           f"parameters {reference:.4f} on the same split and inputs." if reference is not None
           else "")
    return html.section(
        "Columns", kept, excluded, html.paragraph(bar) if bar else "",
        html.paragraph("Unseen categories: " + section["unseen_categories"] + "."),
        note=(f"Target '{section['target']}': {section['label_rule']}. Schema "
              + ("inferred from the file" if section["inferred"] else "from the given file")
              + ". Own AUC: the column alone, on an inner split of the training rows."))


def _importance(rows: Sequence[Any]) -> str:
    top = list(rows)[:12]
    names = [r.feature_name[:24] for r in top]
    chart = html.bar_chart(
        "Feature importance", names,
        [html.Series("ensemble", range(len(top)), [r.ensemble_importance for r in top])],
        y_label="normalised importance")
    table = html.table(
        ["feature", "ensemble", "XGBoost", "LightGBM", "neural net", "std dev"],
        [[r.feature_name, r.ensemble_importance, r.xgboost_importance, r.lightgbm_importance,
          r.neural_net_importance, r.std_dev] for r in rows])
    return html.section("Feature importance", html.charts(chart), table)


def _warnings(ctx: Mapping[str, Any]) -> str:
    items = list(ctx.get("warnings") or [])
    if not items:
        return html.section("Warnings", html.paragraph("None.", "good"))
    return html.section("Warnings", *(html.paragraph(w, "warn") for w in items))


def report_page(
    ctx: Mapping[str, Any], y: np.ndarray, probabilities: Mapping[str, np.ndarray],
    true_probability: np.ndarray | None,
) -> str:
    """The whole page; ``probabilities`` has the base models' and the ``ensemble``'s scores."""
    labels = np.asarray(y).astype(int)
    score = np.asarray(probabilities["ensemble"], dtype=np.float64)
    sections = [
        _summary(ctx), _performance(ctx),
        html.section("ROC curves", html.charts(_roc(labels, probabilities, true_probability))),
        _lift(labels, score), _calibration_and_scores(labels, score), _classes(ctx),
        _columns(ctx), _importance(ctx.get("importance", [])), _warnings(ctx),
    ]
    sections = [s for s in sections if s]
    return html.page("Lead scoring ensemble: training report", sections,
                     subtitle=f"Model {ctx['metrics'].get('model_version', '')}")
