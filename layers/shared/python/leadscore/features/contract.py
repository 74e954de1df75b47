"""The feature contract: the 20 feature names in model order, the categories, the defaults.

Every other module (extraction, the flat-CRM parser, the rules score, training, serving) takes
these from here; docs/FEATURES.md describes them for users.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

FEATURE_NAMES: Final[tuple[str, ...]] = (
    "psychological_commitment_score",
    "urgency_score",
    "motivation_intensity",
    "negotiation_flexibility",
    "communication_engagement",
    "list_price_ratio",
    "price_reduction_history",
    "days_on_market_ratio",
    "price_competitiveness",
    "overpricing_penalty",
    "inventory_pressure",
    "absorption_rate",
    "price_trend_momentum",
    "seasonal_factor",
    "property_appeal_score",
    "condition_score",
    "location_desirability",
    "comp_count_confidence",
    "comp_price_variance",
    "comp_market_time",
)
N_FEATURES: Final[int] = 20
FEATURE_INDEX: Final[Mapping[str, int]] = {name: i for i, name in enumerate(FEATURE_NAMES)}
assert len(FEATURE_NAMES) == N_FEATURES
# The direction the domain fixes for each feature (docs/FEATURES.md): +1 a higher value never
# lowers the conversion probability, -1 never raises it, 0 the domain does not say. Training
# turns them into monotone constraints of the trees; rules.py follows the same signs.
FEATURE_DIRECTIONS: Final[Mapping[str, int]] = {
    "psychological_commitment_score": 1,
    "urgency_score": 1,
    "motivation_intensity": 1,
    "negotiation_flexibility": 1,
    "communication_engagement": 1,
    "list_price_ratio": -1,  # asking more than the market value
    "price_reduction_history": 1,  # price drops: a seller under pressure
    "days_on_market_ratio": -1,  # far longer on the market than the area's average: stale
    "price_competitiveness": 1,
    "overpricing_penalty": -1,
    "inventory_pressure": 1,  # fewer months of inventory: a sellers' market
    "absorption_rate": 1,
    "price_trend_momentum": 1,
    "seasonal_factor": 1,
    "property_appeal_score": 1,
    "condition_score": 1,
    "location_desirability": 1,
    "comp_count_confidence": 0,  # how much we know about comparables, not which way it points
    "comp_price_variance": 0,
    "comp_market_time": 1,  # comparables that sell fast
}

SECTIONS: Final[tuple[str, ...]] = (
    "property_data",
    "market_data",
    "psychology_profile",
    "conversation_data",
)

URGENCY_SCORES: Final[Mapping[str, float]] = {
    "low": 0.2,
    "medium": 0.5,
    "high": 0.8,
    "critical": 1.0,
}
MOTIVATION_SCORES: Final[Mapping[str, float]] = {
    "upsizing": 0.7,
    "downsizing": 0.6,
    "relocation": 0.8,
    "financial": 0.9,
    "divorce": 0.95,
    "estate": 0.85,
    "investment": 0.5,
}
CONDITION_SCORES: Final[Mapping[str, float]] = {
    "excellent": 1.0,
    "move_in_ready": 0.9,
    "good": 0.8,
    "fair": 0.6,
    "needs_work": 0.4,
    "fixer_upper": 0.3,
    "poor": 0.2,
}
SEASONAL_FACTORS: Final[tuple[float, ...]] = (
    0.4, 0.5, 0.7, 0.85, 0.95, 1.0, 1.0, 0.95, 0.85, 0.7, 0.5, 0.4,
)  # fmt: skip
SEASONAL_OUT_OF_RANGE: Final[float] = 0.7

DEFAULT_URGENCY: Final[float] = 0.5  # "medium"; also any unknown level
DEFAULT_MOTIVATION: Final[float] = 0.5  # "unknown"
DEFAULT_CONDITION: Final[float] = 0.6  # "fair"
DEFAULT_BEDS: Final[float] = 3.0
DEFAULT_BATHS: Final[float] = 2.0
DEFAULT_SQFT: Final[float] = 1500.0
DEFAULT_SCHOOL_RATING: Final[float] = 5.0
DEFAULT_WALKABILITY: Final[float] = 50.0
DEFAULT_AVG_DOM: Final[float] = 30.0
DEFAULT_INVENTORY: Final[float] = 6.0
DEFAULT_ABSORPTION: Final[float] = 0.15
DEFAULT_PRICE_TREND: Final[float] = 0.0
DEFAULT_MONTH: Final[int] = 5
DEFAULT_PCS: Final[float] = 50.0
DEFAULT_NEGOTIATION: Final[float] = 0.5
DEFAULT_MESSAGE_COUNT: Final[float] = 0.0
DEFAULT_RESPONSE_SECONDS: Final[float] = 3600.0
DEFAULT_COMP_DOM: Final[float] = 30.0

NOT_FINITE = "must be a finite number"


@dataclass(frozen=True, slots=True)
class ExtractedFeatures:
    """The 20 values (float64, FEATURE_NAMES order, each in [0, 1]) and what was defaulted."""

    values: np.ndarray
    missing_fields: list[str]

    def as_dict(self) -> dict[str, float]:
        return {name: float(v) for name, v in zip(FEATURE_NAMES, self.values, strict=True)}


def number_error(value: Any) -> str | None:
    """Why `value` is not a finite number, or None when it is one."""
    if isinstance(value, bool | np.bool_):
        return "must be a number, not a boolean"
    if isinstance(value, str):
        return "must be a number, not text"
    if not isinstance(value, int | float | np.integer | np.floating):
        return "must be a number"
    try:
        x = float(value)
    except OverflowError:
        return NOT_FINITE
    if not math.isfinite(x):
        return NOT_FINITE
    return None


