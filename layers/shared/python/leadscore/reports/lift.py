"""Lift and cumulative gains by decile: the two charts and the table every page shows."""

from __future__ import annotations

from collections.abc import Sequence

from leadscore.metrics import DecileRow
from leadscore.reports import html


def gains_series(label: str, rows: Sequence[DecileRow]) -> html.Series:
    """Cumulative share of conversions against the share of leads called, from (0, 0)."""
    return html.Series(label, [0.0, *[d / 10 for d in range(1, 11)]],
                       [0.0, *[r["cumulative_gain"] for r in rows]])


def lift_and_gains(rows: Sequence[DecileRow], label: str, title_suffix: str = "") -> str:
    """The lift bar chart and the gains curve side by side, then the decile table."""
    lift = html.bar_chart(f"Lift by decile{title_suffix}", [str(r["decile"]) for r in rows],
                          [html.Series(label, range(len(rows)), [r["lift"] for r in rows])],
                          y_label="lift (×)", x_label="decile (highest scores first)")
    gains = html.line_chart(
        f"Cumulative gains{title_suffix}",
        [gains_series(label, rows), html.Series("random", [0.0, 1.0], [0.0, 1.0])],
        x_label="share of leads called", y_label="share of conversions",
        x_range=(0, 1), y_range=(0, 1))
    table = html.table(["decile", "leads", "conversions", "rate", "lift", "cumulative gain"],
                       [[r["decile"], r["n"], r["conversions"], r["conversion_rate"], r["lift"],
                         r["cumulative_gain"]] for r in rows])
    return html.charts(lift, gains) + table
