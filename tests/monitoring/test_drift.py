"""Drift: PSI per feature and score against a bundle's reference, importance, the page."""

from __future__ import annotations

import json

import numpy as np
import pytest
from leadscore.monitoring import drift, health_page, importance, reference

NAMES = ["urgency_score", "list_price_ratio", "is_cash_buyer"]


def _training_like(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    return np.column_stack([
        rng.beta(2, 3, n) + shift,
        rng.normal(1.0, 0.1, n),
        (rng.random(n) < 0.3).astype(float),
    ])


def _reference(rng: np.random.Generator) -> reference.Reference:
    x = _training_like(rng, 5000)
    scores = rng.beta(2, 5, 2000)
    y = rng.random(2000) < scores
    built = reference.build_reference(NAMES, x, scores, y)
    return reference.parse_reference(json.loads(json.dumps(built)))


def test_no_alarm_on_a_window_from_the_training_distribution() -> None:
    rng = np.random.default_rng(1)
    ref = _reference(rng)
    report = drift.check_window(ref, NAMES, _training_like(rng, 500), rng.beta(2, 5, 500),
                                window=("2026-11-01", "2026-11-07"))
    assert not report.alarm and report.drifted == []
    assert max(report.feature_psi.values()) < 0.1


def test_a_shift_in_one_feature_raises_the_alarm_naming_it() -> None:
    rng = np.random.default_rng(2)
    ref = _reference(rng)
    report = drift.check_window(ref, NAMES, _training_like(rng, 500, shift=0.3),
                                rng.beta(2, 5, 500), window=("a", "b"))
    assert report.alarm and report.drifted == ["urgency_score"]
    record = report.to_record()
    assert record["max_feature"] == "urgency_score" and record["max_feature_psi"] >= 0.25
    json.dumps(record, allow_nan=False)


def test_a_small_window_never_alarms() -> None:
    rng = np.random.default_rng(3)
    ref = _reference(rng)
    report = drift.check_window(ref, NAMES, _training_like(rng, 50, shift=0.5),
                                rng.beta(2, 5, 50), window=("a", "b"), min_rows=200)
    assert not report.enough_rows and not report.alarm


def test_snapshots_of_another_width_are_left_out() -> None:
    records = [{"features": [0.1, 1.0, 0.0]}, {"features": [1.0] * 20}, {"features": None}]
    assert drift.feature_matrix(records, NAMES).shape == (1, 3)


def test_reference_refuses_a_malformed_file() -> None:
    with pytest.raises(ValueError, match="one more fraction"):
        reference.parse_reference({"version": 1, "features": {"a": {"edges": [1.0],
                                                                    "fractions": [1.0]}},
                                   "score": {"edges": [], "fractions": [1.0]}})


def test_permutation_importance_finds_the_feature_the_model_uses() -> None:
    rng = np.random.default_rng(4)
    x = _training_like(rng, 2000)
    y = rng.random(2000) < x[:, 0]

    def predict(m: np.ndarray) -> np.ndarray:
        return m[:, 0].astype(np.float64)

    drops = importance.permutation_importance(predict, NAMES, x, y)
    assert drops is not None
    assert drops["urgency_score"] > 0.1
    assert abs(drops["is_cash_buyer"]) < 1e-9
    assert importance.permutation_importance(predict, NAMES, x[:50], y[:50]) is None


def test_health_page_names_the_drifted_feature_and_escapes_text() -> None:
    rng = np.random.default_rng(5)
    ref = _reference(rng)
    scores = rng.beta(2, 5, 600)
    report = drift.check_window(ref, NAMES, _training_like(rng, 600, shift=0.3), scores,
                                window=("w0", "w1"))
    page = health_page.render(health_page.HealthData(
        scope="<loc & co>", generated_at="now", model_version="lsm-1", reference=ref,
        drift=report, recent_scores=scores[:300], recent_outcomes=rng.random(300) < scores[:300],
        window_scores=scores, importance_by_week={"2026-W47": {"urgency_score": 0.1}},
        experiment=None))
    assert "Drift alarm: urgency_score" in page
    assert "&lt;loc &amp; co&gt;" in page and "<loc & co>" not in page
    assert page.count('<svg class="chart"') >= 6


def test_a_small_window_alarms_only_on_a_shift_it_can_show() -> None:
    """80 snapshots: a unit change (PSI ~7) is real; the same count of unshifted rows is not."""
    rng = np.random.default_rng(6)
    ref = _reference(rng)
    x = _training_like(rng, 80)
    noise = drift.check_window(ref, NAMES, x, rng.beta(2, 5, 80), window=("a", "b"))
    assert not noise.alarm, noise.to_record()
    shifted = x.copy()
    shifted[:, 0] *= 100.0
    report = drift.check_window(ref, NAMES, shifted, rng.beta(2, 5, 80), window=("a", "b"))
    assert report.alarm and report.drifted == ["urgency_score"]


def test_tiny_windows_of_unchanged_traffic_almost_never_alarm() -> None:
    """60 rows of the training distribution often reach PSI 0.25 by chance (an empty bin alone
    adds ~0.5); the significance test keeps the false alarms near its 1e-3 per test: 200 tests
    here (50 windows x 3 features + score), P(more than 2 alarms) ~ 0.001."""
    rng = np.random.default_rng(7)
    ref = _reference(rng)
    over_threshold = alarms = 0
    for _ in range(50):
        report = drift.check_window(ref, NAMES, _training_like(rng, 60), rng.beta(2, 5, 60),
                                    window=("a", "b"))
        over_threshold += sum(v >= 0.25 for v in report.feature_psi.values())
        alarms += len(report.drifted) + report.score_shifted
    assert over_threshold >= 10  # PSI alone would have cried wolf
    assert alarms <= 2
