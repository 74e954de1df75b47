"""Salesperson-readable reasons (code tests; the sentences come from the raw fields)."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from leadscore.features import FEATURE_NAMES, extract_features
from leadscore.scoring.reasons import reason_for

from tests.fixtures.scoring import load_event


def seed_features() -> dict[str, Any]:
    features: dict[str, Any] = json.loads(load_event("score_request")["body"])["features"]
    return features


def test_reasons_from_raw_fields() -> None:
    raw = seed_features()
    raw["property_data"]["list_price"] = 896_000  # market value 800,000
    values = dict(zip(FEATURE_NAMES, extract_features(raw).values.tolist(), strict=True))

    def reason(name: str) -> str:
        return reason_for(name, values[name], 0.01, raw)

    assert reason("list_price_ratio") == "Listed 12 % above market value"
    assert reason("overpricing_penalty") == "Overpriced by 12 % against market value"
    assert reason("communication_engagement").startswith("Replies within 30 minutes on average")
    assert reason("urgency_score") == "Seller's urgency is high"
    assert reason("motivation_intensity") == "Selling because of a relocation"
    assert reason("condition_score") == "Property condition: good"
    assert reason("location_desirability") == "Schools rated 8/10, walkability 75/100"
    assert reason("price_trend_momentum") == "Local prices are up 5 % year over year"
    assert reason("seasonal_factor") == "June is peak selling season"


def test_reasons_from_normalised_values_invert_the_formulas() -> None:
    # a feature_vector request: no raw fields
    assert reason_for("list_price_ratio", 0.5, 0.0, None) == "Listed at market value"
    assert reason_for("list_price_ratio", 0.8, 0.0, None) == "Listed 12 % above market value"
    assert reason_for("urgency_score", 0.8, 0.0, None) == "Seller's urgency is high"
    assert reason_for("price_trend_momentum", 0.6, 0.0, None) == (
        "Local prices are up 5 % year over year")
    assert reason_for("condition_score", 0.9, 0.0, None) == "Property condition: move-in ready"


def test_reasons_when_raw_fields_are_absent() -> None:
    raw = seed_features()
    del raw["market_data"]["estimated_value"]
    raw["market_data"]["comparables"] = []
    assert reason_for("list_price_ratio", 0.5, 0.0, raw) == "No market value estimate given"
    assert reason_for("comp_count_confidence", 0.5, 0.0, raw) == (
        "No comparable sales to price against")


@given(
    values=st.lists(st.floats(0, 1), min_size=20, max_size=20),
    contribution=st.floats(-1, 1),
    garbage=st.sampled_from([None, {}, {"property_data": "x"},
                             {"market_data": {"comparables": [1, None, {"sale_price": "x"}]}},
                             {"property_data": {"list_price": float("nan"), "beds": True}}]),
)
def test_every_feature_always_gets_a_sentence(
    values: list[float], contribution: float, garbage: Any
) -> None:
    for name, value in zip(FEATURE_NAMES, values, strict=True):
        for raw in (garbage, seed_features()):
            text = reason_for(name, value, contribution, copy.deepcopy(raw))
            assert isinstance(text, str) and 0 < len(text) < 120
