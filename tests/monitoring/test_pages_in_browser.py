"""The health page and the training report in a real headless Chromium: charts are drawn.

`make test` installs Debian's chromium (make browser) and Playwright; these tests fail, not
skip, when either is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from leadscore.monitoring import drift, health_page, reference
from leadscore.reports import html

from tools.browser import browser_page, drawn_charts

pytestmark = pytest.mark.slow  # each test starts headless Chromium


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    with browser_page() as opened:
        yield opened


def _health_html() -> str:
    rng = np.random.default_rng(0)
    names = ["urgency_score", "list_price_ratio"]
    x = np.column_stack([rng.beta(2, 3, 3000), rng.normal(1, 0.1, 3000)])
    scores = rng.beta(2, 5, 1000)
    y = rng.random(1000) < scores
    ref = reference.parse_reference(reference.build_reference(names, x, scores, y))
    report = drift.check_window(ref, names, x[:500] + np.array([0.2, 0.0]), scores[:500],
                                window=("2026-11-01", "2026-11-07"))
    return health_page.render(health_page.HealthData(
        scope="All locations", generated_at="2026-11-30T00:00:00Z", model_version="lsm-x",
        reference=ref, drift=report, recent_scores=scores, recent_outcomes=y,
        window_scores=scores[:500],
        importance_by_week={"2026-W46": {"urgency_score": 0.12, "list_price_ratio": 0.03},
                            "2026-W47": {"urgency_score": 0.10, "list_price_ratio": 0.05}},
        experiment={"name": "rules-vs-model", "winner": "champion", "statement": "champion wins",
                    "variants": {"rules": {"leads": 500, "auc": 0.7},
                                 "champion": {"leads": 500, "auc": 0.85}}}))


def test_every_chart_of_the_health_page_is_drawn(page: Any, tmp_path: Path) -> None:
    path = tmp_path / "health.html"
    path.write_text(_health_html())
    charts = drawn_charts(page, path)
    assert len(charts) >= 6
    assert [c.title for c in charts if not c.is_drawn] == []
    assert all(c.drawn == c.marks for c in charts)


def test_an_empty_chart_is_caught(page: Any, tmp_path: Path) -> None:
    """The measurement can fail: a chart without marks, or with invisible ones, is reported."""
    empty = html.line_chart("nothing", [], x_label="x", y_label="y")
    invisible = html.bar_chart("zero-size", ["a"], [html.Series("s", [0], [1.0])],
                               y_label="y").replace('<svg class="chart"',
                                                    '<svg class="chart" style="display:none"')
    path = tmp_path / "broken.html"
    path.write_text(html.page("broken", [html.charts(empty, invisible)]))
    charts = drawn_charts(page, path)
    assert [c.is_drawn for c in charts] == [False, False]


def test_the_training_report_draws_its_charts(page: Any, trained_bundle: Path) -> None:
    charts = drawn_charts(page, trained_bundle / "training_report.html")
    titles = {c.title for c in charts}
    assert {"ROC curves (held-out)", "Lift by decile (held-out)",
            "Cumulative gains (held-out)", "Calibration (held-out)"} <= titles
    assert [c.title for c in charts if not c.is_drawn] == []
    text = (trained_bundle / "training_report.html").read_text()
    assert "<pre>" not in text and "<table>" in text


def test_the_experiment_report_draws_its_charts(page: Any, tmp_path: Path) -> None:
    from leadscore.experiments import report, results

    rng = np.random.default_rng(1)
    rows = []
    for variant, strength in (("rules", 0.5), ("champion", 2.5)):
        p = rng.beta(2, 6, size=800)
        score = 1 / (1 + np.exp(-(strength * np.log(p / (1 - p)) + rng.normal(size=800))))
        rows += [results.ResolvedLead(variant, float(s), "hot" if s > 0.8 else "cold",
                                      bool(c)) for s, c in zip(score, rng.random(800) < p,
                                                               strict=True)]
    summary = results.summarise("ab", ["rules", "champion"], rows)
    path = tmp_path / "experiment.html"
    path.write_text(report.render_html(summary, rows))
    charts = drawn_charts(page, path)
    assert len(charts) == 3
    assert [c.title for c in charts if not c.is_drawn] == []
