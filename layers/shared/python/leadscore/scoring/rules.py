"""The transparent rules score: a weighted sum of the 20 features, 0–100.

It is the response's ``composite_score`` for every lead, and the probability itself
(`rules_probability`, ``source="rules"``) when no model can be used.

``composite = 100 × Σ weight[f] × signal[f]``, rounded to 1 decimal, where ``signal[f]`` is the
feature value, except for the features whose direction in the feature contract
(`leadscore.features.FEATURE_DIRECTIONS`, the same signs the model's monotone constraints use)
is −1: a *higher* value is a *worse* sign, so they enter as ``1 − value`` (`INVERTED`):

- ``overpricing_penalty`` — asking more than the market value;
- ``list_price_ratio`` — list price high relative to market value (0.5 at r = 1);
- ``days_on_market_ratio`` — far longer on the market than the area's average: a stale listing.

Every other feature is oriented so that higher means a more likely conversion: commitment,
urgency, motivation, flexibility and engagement; price drops (a seller under pressure); a
price in line with comparables; a tight, absorbing, rising, in-season market; an appealing,
well-kept, well-located property; and comparables that are quick to sell. The two features
whose direction the domain does not fix (comparable count and price consistency, direction 0)
enter upward with small weights: they say how much the pricing signals can be trusted.

Weights (sum 1): the seller's psychology and engagement carry 55 %, pricing 21 %,
the market 11 %, the property 9 %, comparables 4 %.

| feature | weight |  | feature | weight |
|---|---|---|---|---|
| psychological_commitment_score | 0.14 | | inventory_pressure | 0.03 |
| urgency_score | 0.12 | | absorption_rate | 0.03 |
| motivation_intensity | 0.10 | | price_trend_momentum | 0.03 |
| negotiation_flexibility | 0.07 | | seasonal_factor | 0.02 |
| communication_engagement | 0.12 | | property_appeal_score | 0.03 |
| list_price_ratio (1 − v) | 0.04 | | condition_score | 0.03 |
| price_reduction_history | 0.04 | | location_desirability | 0.03 |
| days_on_market_ratio (1 − v) | 0.03 | | comp_count_confidence | 0.02 |
| price_competitiveness | 0.05 | | comp_price_variance | 0.01 |
| overpricing_penalty (1 − v) | 0.05 | | comp_market_time | 0.01 |

Monotonic by construction: raising a feature never lowers the score, except for the
inverted ones, where raising it never raises the score.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from leadscore.features.contract import FEATURE_DIRECTIONS, FEATURE_NAMES, N_FEATURES

RULE_WEIGHTS: Final[Mapping[str, float]] = {
    "psychological_commitment_score": 0.14,
    "urgency_score": 0.12,
    "motivation_intensity": 0.10,
    "negotiation_flexibility": 0.07,
    "communication_engagement": 0.12,
    "list_price_ratio": 0.04,
    "price_reduction_history": 0.04,
    "days_on_market_ratio": 0.03,
    "price_competitiveness": 0.05,
    "overpricing_penalty": 0.05,
    "inventory_pressure": 0.03,
    "absorption_rate": 0.03,
    "price_trend_momentum": 0.03,
    "seasonal_factor": 0.02,
    "property_appeal_score": 0.03,
    "condition_score": 0.03,
    "location_desirability": 0.03,
    "comp_count_confidence": 0.02,
    "comp_price_variance": 0.01,
    "comp_market_time": 0.01,
}
INVERTED: Final[frozenset[str]] = frozenset(
    name for name, direction in FEATURE_DIRECTIONS.items() if direction < 0
)

_WEIGHTS = np.array([RULE_WEIGHTS[name] for name in FEATURE_NAMES], dtype=np.float64)
_SIGN = np.array([-1.0 if name in INVERTED else 1.0 for name in FEATURE_NAMES])
_OFFSET = float(sum(RULE_WEIGHTS[name] for name in INVERTED))  # the "1" of each (1 − v)
_SIGNED_WEIGHTS = _WEIGHTS * _SIGN  # the same product every call, computed once


def _as_vector(values: Any) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.shape != (N_FEATURES,):
        raise ValueError(f"expected {N_FEATURES} feature values, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("feature values must be finite")
    # np.clip's numbers; its Python wrapper costs more than the two ufuncs on 20 values
    clipped: np.ndarray = np.minimum(np.maximum(x, 0.0), 1.0)
    return clipped


def composite_score(values: Any) -> float:
    """The rules score of one extracted vector (20 values in [0, 1]), 0–100, 1 decimal."""
    x = _as_vector(values)
    raw = _OFFSET + float(np.dot(_SIGNED_WEIGHTS, x))
    return round(min(max(raw, 0.0), 1.0) * 100.0, 1)


def rules_probability(values: Any) -> float:
    """The probability used when the model is unavailable: ``composite_score / 100``."""
    return composite_score(values) / 100.0
