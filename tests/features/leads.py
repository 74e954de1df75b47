"""Shared test data: the hand-check request of docs/FEATURES.md ("A check by hand")."""

from __future__ import annotations

import copy
from typing import Any

SEED_REQUEST: dict[str, Any] = {
    "property_data": {
        "list_price": 800000,
        "beds": 4,
        "baths": 2.5,
        "sqft": 2200,
        "condition": "good",
        "days_on_market": 15,
        "location": {"school_rating": 8, "walkability_score": 75},
    },
    "market_data": {
        "estimated_value": 800000,
        "average_days_on_market": 30,
        "inventory_level": 4.5,
        "absorption_rate": 0.18,
        "price_trend_pct": 5.0,
        "current_month": 5,
        "comparables": [
            {"sale_price": 795000, "days_on_market": 28},
            {"sale_price": 810000, "days_on_market": 32},
            {"sale_price": 785000, "days_on_market": 25},
        ],
    },
    "psychology_profile": {
        "psychological_commitment_score": 75.0,
        "urgency_level": "high",
        "motivation_type": "relocation",
        "negotiation_flexibility": 0.6,
    },
    "conversation_data": {
        "message_count": 25,
        "avg_response_time_seconds": 1800,
    },
}

#: docs/FEATURES.md, "A check by hand", to 4 decimals.
HAND_CHECK: tuple[float, ...] = (
    0.75, 0.8, 0.8, 0.6, 0.5, 0.5, 0.0, 0.1667, 0.9686, 0.0,
    0.75, 0.52, 0.6, 1.0, 0.9190, 0.8, 0.775, 0.15, 0.9570, 0.7639,
)  # fmt: skip


def seed() -> dict[str, Any]:
    """A fresh deep copy of the seed request."""
    return copy.deepcopy(SEED_REQUEST)


def with_value(path: str, value: Any) -> dict[str, Any]:
    """The seed request with the dotted `path` set to `value` (created if absent)."""
    raw = seed()
    node: Any = raw
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return raw


def without(path: str) -> dict[str, Any]:
    """The seed request with the dotted `path` removed."""
    raw = seed()
    node: Any = raw
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[part]
    del node[parts[-1]]
    return raw
