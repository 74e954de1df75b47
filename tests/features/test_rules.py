"""The rules score: weights, range, monotonicity, and behaviour on real leads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from leadscore.features import FEATURE_NAMES, extract_features
from leadscore.scoring.rules import INVERTED, RULE_WEIGHTS, composite_score, rules_probability

from tests.features.leads import seed, with_value

vectors = st.lists(st.floats(0, 1), min_size=20, max_size=20).map(np.array)


def test_weights_cover_every_feature_positively_and_sum_to_one() -> None:
    assert set(RULE_WEIGHTS) == set(FEATURE_NAMES)
    assert all(w > 0 for w in RULE_WEIGHTS.values())
    assert sum(RULE_WEIGHTS.values()) == pytest.approx(1.0)
    assert set(FEATURE_NAMES) >= INVERTED
    assert "overpricing_penalty" in INVERTED


def test_score_is_the_documented_weighted_sum() -> None:
    values = extract_features(seed()).values
    expected = 0.0
    for name, v in zip(FEATURE_NAMES, values, strict=True):
        signal = 1.0 - v if name in INVERTED else v
        expected += RULE_WEIGHTS[name] * signal
    assert composite_score(values) == round(100 * expected, 1)
    assert rules_probability(values) == pytest.approx(composite_score(values) / 100)


def test_extremes() -> None:
    best = np.array([0.0 if n in INVERTED else 1.0 for n in FEATURE_NAMES])
    assert composite_score(best) == 100.0
    assert composite_score(1.0 - best) == 0.0
    assert composite_score(np.full(20, 0.5)) == 50.0


@given(vectors)
def test_range_and_rounding(x: np.ndarray) -> None:
    score = composite_score(x)
    assert 0.0 <= score <= 100.0
    assert score == round(score, 1)
    assert 0.0 <= rules_probability(x) <= 1.0


@given(vectors, st.integers(0, 19), st.floats(0, 1))
def test_better_signals_never_lower_the_score(x: np.ndarray, j: int, delta: float) -> None:
    better = x.copy()
    name = FEATURE_NAMES[j]
    if name in INVERTED:
        better[j] = max(0.0, x[j] - delta)
    else:
        better[j] = min(1.0, x[j] + delta)
    assert composite_score(better) >= composite_score(x)


@pytest.mark.parametrize(
    ("path", "worse", "better"),
    [
        ("psychology_profile.urgency_level", "low", "critical"),
        ("psychology_profile.psychological_commitment_score", 10, 95),
        ("property_data.condition", "poor", "excellent"),
        ("property_data.estimated_market_value", 600000, 800000),  # overpriced vs. fair
        ("conversation_data.message_count", 0, 50),
    ],
)
def test_better_leads_score_higher(path: str, worse: object, better: object) -> None:
    low = composite_score(extract_features(with_value(path, worse)).values)
    high = composite_score(extract_features(with_value(path, better)).values)
    assert high > low


@pytest.mark.parametrize("bad", [np.zeros(19), np.zeros((2, 20)), np.full(20, np.nan)])
def test_rejects_wrong_vectors(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        composite_score(bad)
