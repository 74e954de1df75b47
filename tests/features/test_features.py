"""docs/FEATURES.md, rule by rule: hand check, defaults, fallbacks, clipping, categories, errors."""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
import pytest
from leadscore.errors import FieldError, InvalidInput
from leadscore.features import (
    FEATURE_NAMES,
    N_FEATURES,
    ExtractedFeatures,
    extract_features,
    extract_many,
)

from tests.features.leads import HAND_CHECK, seed, with_value, without


def feature(raw: Any, name: str) -> float:
    return float(extract_features(raw).values[FEATURE_NAMES.index(name)])


def missing(raw: Any) -> list[str]:
    return extract_features(raw).missing_fields


def error_paths(raw: Any) -> list[str]:
    with pytest.raises(InvalidInput) as info:
        extract_features(raw)
    return [e.path for e in info.value.errors]


# ---- the contract's shape ------------------------------------------------------------------


def test_twenty_unique_names_in_features_md_order() -> None:
    assert N_FEATURES == 20
    assert len(FEATURE_NAMES) == 20
    assert len(set(FEATURE_NAMES)) == 20
    assert FEATURE_NAMES[0] == "psychological_commitment_score"
    assert FEATURE_NAMES[5] == "list_price_ratio"
    assert FEATURE_NAMES[13] == "seasonal_factor"
    assert FEATURE_NAMES[19] == "comp_market_time"


def test_hand_check_holds_to_four_decimals() -> None:
    result = extract_features(seed())
    assert isinstance(result, ExtractedFeatures)
    assert result.values.dtype == np.float64
    assert result.values.shape == (20,)
    np.testing.assert_allclose(result.values, HAND_CHECK, atol=5e-5, rtol=0)
    # The request gives everything but price drops.
    assert result.missing_fields == ["property_data.price_drops"]


def test_as_dict_names_every_value() -> None:
    result = extract_features(seed())
    d = result.as_dict()
    assert list(d) == list(FEATURE_NAMES)
    assert d["condition_score"] == pytest.approx(0.8)


def test_extraction_does_not_modify_the_request() -> None:
    raw = seed()
    extract_features(raw)
    assert raw == seed()


def test_unknown_keys_are_ignored() -> None:
    raw = seed()
    raw["extra_section"] = {"anything": "x"}
    raw["property_data"]["pool"] = "yes"
    raw["market_data"]["comparables"][0]["address"] = "somewhere"
    result = extract_features(raw)
    np.testing.assert_array_equal(result.values, extract_features(seed()).values)
    assert result.missing_fields == ["property_data.price_drops"]


def test_null_counts_as_absent() -> None:
    raw = with_value("property_data.condition", None)
    assert feature(raw, "condition_score") == pytest.approx(0.6)
    assert "property_data.condition" in missing(raw)
    raw = seed()
    raw["psychology_profile"] = None
    assert "psychology_profile" in missing(raw)
    assert feature(raw, "psychological_commitment_score") == 0.5


# ---- absent sections -------------------------------------------------------------------------


def test_empty_request_takes_every_default() -> None:
    result = extract_features({})
    appeal = ((1 - 0.5 / 3.5) + (1 - 0.5 / 2.5) + (1 - 500 / 2000)) / 3
    expected = {
        "psychological_commitment_score": 0.5,
        "urgency_score": 0.5,
        "motivation_intensity": 0.5,
        "negotiation_flexibility": 0.5,
        "communication_engagement": 0.5,
        "list_price_ratio": 0.5,  # no market value > 0
        "price_reduction_history": 0.0,
        "days_on_market_ratio": 0.0,
        "price_competitiveness": 0.5,
        "overpricing_penalty": 0.0,
        "inventory_pressure": 1 - (6.0 - 2) / 10,
        "absorption_rate": (0.15 - 0.05) / 0.25,
        "price_trend_momentum": (0.0 + 10) / 25,
        "seasonal_factor": 1.0,  # month 5
        "property_appeal_score": appeal,
        "condition_score": 0.6,
        "location_desirability": (5 / 10 + 50 / 100) / 2,
        "comp_count_confidence": 0.5,
        "comp_price_variance": 0.5,
        "comp_market_time": 0.5,
    }
    for name, value in expected.items():
        assert result.as_dict()[name] == pytest.approx(value), name
    assert result.missing_fields == [
        "property_data",
        "market_data",
        "psychology_profile",
        "conversation_data",
    ]


def test_present_but_empty_sections_list_every_field() -> None:
    raw: dict[str, Any] = {
        "property_data": {},
        "market_data": {},
        "psychology_profile": {},
        "conversation_data": {},
    }
    result = extract_features(raw)
    # conversation_data present: message_count 0 and response 3600 s give 0, not 0.5.
    assert result.as_dict()["communication_engagement"] == pytest.approx(0.0)
    assert result.as_dict()["psychological_commitment_score"] == pytest.approx(0.5)
    assert result.as_dict()["negotiation_flexibility"] == pytest.approx(0.5)
    assert set(result.missing_fields) == {
        "property_data.list_price",
        "property_data.estimated_market_value",
        "property_data.price_drops",
        "property_data.days_on_market",
        "property_data.beds",
        "property_data.baths",
        "property_data.sqft",
        "property_data.condition",
        "property_data.location",
        "market_data.average_days_on_market",
        "market_data.inventory_level",
        "market_data.absorption_rate",
        "market_data.price_trend_pct",
        "market_data.current_month",
        "market_data.comparables",
        "psychology_profile.psychological_commitment_score",
        "psychology_profile.urgency_level",
        "psychology_profile.motivation_type",
        "psychology_profile.negotiation_flexibility",
        "conversation_data.message_count",
        "conversation_data.avg_response_time_seconds",
    }


@pytest.mark.parametrize(
    ("section", "names"),
    [
        ("psychology_profile", ["psychological_commitment_score", "negotiation_flexibility"]),
        ("conversation_data", ["communication_engagement"]),
    ],
)
def test_half_when_section_absent(section: str, names: list[str]) -> None:
    raw = without(section)
    for name in names:
        assert feature(raw, name) == 0.5
    assert section in missing(raw)


def test_comparable_features_half_without_comparables() -> None:
    for raw in (without("market_data.comparables"), with_value("market_data.comparables", [])):
        for name in ("price_competitiveness", "comp_count_confidence",
                     "comp_price_variance", "comp_market_time"):  # fmt: skip
            assert feature(raw, name) == 0.5, name
    assert "market_data.comparables" in missing(without("market_data.comparables"))
    assert "market_data.comparables" not in missing(with_value("market_data.comparables", []))


# ---- each field's default --------------------------------------------------------------------


def _appeal(beds: float, baths: float, sqft: float) -> float:
    v = (1 - abs(beds - 3.5) / 3.5) + (1 - abs(baths - 2.5) / 2.5) + (1 - abs(sqft - 2000) / 2000)
    return min(1.0, max(0.0, v / 3))


@pytest.mark.parametrize(
    ("path", "name", "expected"),
    [
        ("property_data.days_on_market", "days_on_market_ratio", 0.0),
        ("property_data.beds", "property_appeal_score", _appeal(3, 2.5, 2200)),
        ("property_data.baths", "property_appeal_score", _appeal(4, 2.0, 2200)),
        ("property_data.sqft", "property_appeal_score", _appeal(4, 2.5, 1500)),
        ("property_data.condition", "condition_score", 0.6),
        ("property_data.location.school_rating", "location_desirability", (0.5 + 0.75) / 2),
        ("property_data.location.walkability_score", "location_desirability", (0.8 + 0.5) / 2),
        ("market_data.average_days_on_market", "days_on_market_ratio", (15 / 30) / 3),
        ("market_data.inventory_level", "inventory_pressure", 1 - (6.0 - 2) / 10),
        ("market_data.absorption_rate", "absorption_rate", (0.15 - 0.05) / 0.25),
        ("market_data.price_trend_pct", "price_trend_momentum", 10 / 25),
        ("market_data.current_month", "seasonal_factor", 1.0),
        (
            "psychology_profile.psychological_commitment_score",
            "psychological_commitment_score",
            0.5,
        ),
        ("psychology_profile.urgency_level", "urgency_score", 0.5),
        ("psychology_profile.motivation_type", "motivation_intensity", 0.5),
        ("psychology_profile.negotiation_flexibility", "negotiation_flexibility", 0.5),
        ("conversation_data.message_count", "communication_engagement", (0 + 1 - 0.5) / 2),
        (
            "conversation_data.avg_response_time_seconds",
            "communication_engagement",
            (0.5 + 1 - 1) / 2,
        ),
    ],
)
def test_each_absent_field_takes_its_default_and_is_listed(
    path: str, name: str, expected: float
) -> None:
    raw = without(path)
    assert feature(raw, name) == pytest.approx(expected)
    assert path in missing(raw)


def test_absent_list_price_means_zero() -> None:
    raw = without("property_data.list_price")
    # r = 0 / 800000 = 0 -> clip((0 - 0.8) / 0.4) = 0; no list price -> no competitiveness.
    assert feature(raw, "list_price_ratio") == 0.0
    assert feature(raw, "price_competitiveness") == 0.5
    assert "property_data.list_price" in missing(raw)


def test_location_absent_uses_both_defaults() -> None:
    raw = without("property_data.location")
    assert feature(raw, "location_desirability") == pytest.approx(0.5)
    assert "property_data.location" in missing(raw)


# ---- market value fallbacks ------------------------------------------------------------------


def test_estimated_market_value_wins_over_market_estimate() -> None:
    raw = with_value("property_data.estimated_market_value", 1_000_000)
    r = 800000 / 1_000_000
    assert feature(raw, "list_price_ratio") == pytest.approx((r - 0.8) / 0.4)
    assert "property_data.estimated_market_value" not in missing(raw)


def test_market_estimate_used_without_estimated_market_value() -> None:
    raw = with_value("market_data.estimated_value", 640000)
    r = 800000 / 640000
    assert feature(raw, "list_price_ratio") == 1.0  # (1.25 - 0.8) / 0.4 > 1, clipped
    assert feature(raw, "overpricing_penalty") == pytest.approx(min((r - 1) * 5, 1))
    assert "property_data.estimated_market_value" not in missing(raw)


def test_zero_estimated_market_value_falls_through() -> None:
    raw = with_value("property_data.estimated_market_value", 0)
    raw["market_data"]["estimated_value"] = 1_000_000
    assert feature(raw, "list_price_ratio") == pytest.approx((0.8 - 0.8) / 0.4)


def test_list_price_is_the_last_fallback() -> None:
    raw = without("market_data.estimated_value")
    raw["property_data"]["list_price"] = 500000  # r = 1 whatever the price
    assert feature(raw, "list_price_ratio") == pytest.approx(0.5)
    assert feature(raw, "overpricing_penalty") == 0.0
    assert "property_data.estimated_market_value" in missing(raw)


def test_no_market_value_at_all_gives_half() -> None:
    raw = without("market_data.estimated_value")
    del raw["property_data"]["list_price"]
    assert feature(raw, "list_price_ratio") == 0.5
    assert feature(raw, "overpricing_penalty") == 0.0


@pytest.mark.parametrize("ratio", [0.7, 0.9, 1.0, 1.04, 1.1, 1.2, 1.3])
def test_ratio_features_follow_the_formula(ratio: float) -> None:
    raw = with_value("property_data.estimated_market_value", 800000 / ratio)
    expected_lpr = min(1.0, max(0.0, (ratio - 0.8) / 0.4))
    expected_over = min((ratio - 1) * 5, 1) if ratio > 1 else 0.0
    assert feature(raw, "list_price_ratio") == pytest.approx(expected_lpr)
    assert feature(raw, "overpricing_penalty") == pytest.approx(expected_over)


# ---- every formula, clipped at both ends where it can leave [0, 1] ---------------------------


@pytest.mark.parametrize(
    ("path", "value", "name", "expected"),
    [
        ("property_data.estimated_market_value", 400000, "list_price_ratio", 1.0),
        ("property_data.estimated_market_value", 2_000_000, "list_price_ratio", 0.0),
        ("property_data.estimated_market_value", 400000, "overpricing_penalty", 1.0),
        (
            "property_data.price_drops",
            [{"percentage": 5}, {"percentage": 7.5}],
            "price_reduction_history",
            12.5 / 30,
        ),
        (
            "property_data.price_drops",
            [{"percentage": 20}, {"percentage": 15}],
            "price_reduction_history",
            1.0,
        ),
        ("property_data.days_on_market", 45, "days_on_market_ratio", (45 / 30) / 3),
        ("property_data.days_on_market", 400, "days_on_market_ratio", 1.0),
        ("property_data.list_price", 1_200_000, "price_competitiveness", 0.0),
        (
            "property_data.list_price",
            850000,
            "price_competitiveness",
            1 - abs(850000 / 795000 - 1) / 0.2,
        ),
        ("market_data.inventory_level", 1.0, "inventory_pressure", 1.0),
        ("market_data.inventory_level", 30.0, "inventory_pressure", 0.0),
        ("market_data.inventory_level", 7.0, "inventory_pressure", 0.5),
        ("market_data.absorption_rate", 0.0, "absorption_rate", 0.0),
        ("market_data.absorption_rate", 0.9, "absorption_rate", 1.0),
        ("market_data.price_trend_pct", -25.0, "price_trend_momentum", 0.0),
        ("market_data.price_trend_pct", 40.0, "price_trend_momentum", 1.0),
        ("market_data.price_trend_pct", -5.0, "price_trend_momentum", 0.2),
        ("property_data.sqft", 50000, "property_appeal_score", 0.0),
        ("property_data.beds", 0, "property_appeal_score", _appeal(0, 2.5, 2200)),
        ("conversation_data.message_count", 500, "communication_engagement", (1 + 0.5) / 2),
        (
            "conversation_data.avg_response_time_seconds",
            90000,
            "communication_engagement",
            (0.5 + 0) / 2,
        ),
        (
            "conversation_data.avg_response_time_seconds",
            0,
            "communication_engagement",
            (0.5 + 1) / 2,
        ),
        (
            "psychology_profile.psychological_commitment_score",
            100,
            "psychological_commitment_score",
            1.0,
        ),
        (
            "psychology_profile.psychological_commitment_score",
            0,
            "psychological_commitment_score",
            0.0,
        ),
        ("psychology_profile.negotiation_flexibility", 1, "negotiation_flexibility", 1.0),
        (
            "property_data.location",
            {"school_rating": 10, "walkability_score": 100},
            "location_desirability",
            1.0,
        ),
        (
            "property_data.location",
            {"school_rating": 0, "walkability_score": 0},
            "location_desirability",
            0.0,
        ),
    ],
)
def test_formula_and_clipping(path: str, value: Any, name: str, expected: float) -> None:
    assert feature(with_value(path, value), name) == pytest.approx(expected)


def test_price_competitiveness_uses_the_median_of_priced_comparables() -> None:
    comps = [{"sale_price": p} for p in (700000, 760000, 900000, 1_000_000)]
    comps.append({"days_on_market": 10})  # unpriced: counts, but not for prices
    raw = with_value("market_data.comparables", comps)
    median = statistics.median([700000, 760000, 900000, 1_000_000])
    assert feature(raw, "price_competitiveness") == pytest.approx(
        1 - min(1, abs(800000 / median - 1) / 0.2)
    )
    assert feature(raw, "comp_count_confidence") == pytest.approx(5 / 20)


def test_comparable_count_saturates_at_twenty() -> None:
    comps = [{"sale_price": 800000, "days_on_market": 20}] * 35
    raw = with_value("market_data.comparables", comps)
    assert feature(raw, "comp_count_confidence") == 1.0
    assert feature(raw, "comp_price_variance") == 1.0  # identical prices: cv 0


def test_comp_price_variance_is_population_cv() -> None:
    prices = [500000, 800000, 1_100_000]
    raw = with_value("market_data.comparables", [{"sale_price": p} for p in prices])
    cv = statistics.pstdev(prices) / statistics.fmean(prices)
    assert feature(raw, "comp_price_variance") == pytest.approx(1 - min(1, cv / 0.3))
    wild = with_value("market_data.comparables", [{"sale_price": 100}, {"sale_price": 10**7}])
    assert feature(wild, "comp_price_variance") == 0.0


def test_comp_price_variance_needs_two_priced_comparables() -> None:
    raw = with_value("market_data.comparables", [{"sale_price": 800000}, {"sale_price": 0}, {}])
    assert feature(raw, "comp_price_variance") == 0.5
    assert feature(raw, "comp_count_confidence") == pytest.approx(3 / 20)
    assert feature(raw, "price_competitiveness") == pytest.approx(1.0)


def test_comp_market_time_counts_thirty_for_a_comparable_without_days() -> None:
    comps = [{"sale_price": 800000, "days_on_market": 90}, {"sale_price": 790000}]
    raw = with_value("market_data.comparables", comps)
    assert feature(raw, "comp_market_time") == pytest.approx(1 - ((90 + 30) / 2) / 120)
    assert "market_data.comparables[1].days_on_market" in missing(raw)
    slow = with_value("market_data.comparables", [{"days_on_market": 400}])
    assert feature(slow, "comp_market_time") == 0.0


def test_price_drop_without_percentage_counts_zero() -> None:
    raw = with_value("property_data.price_drops", [{"percentage": 6}, {"date": "2026-01-01"}])
    assert feature(raw, "price_reduction_history") == pytest.approx(6 / 30)
    assert "property_data.price_drops[1].percentage" in missing(raw)


def test_zero_average_days_on_market_takes_the_default() -> None:
    raw = with_value("market_data.average_days_on_market", 0)
    assert feature(raw, "days_on_market_ratio") == pytest.approx((15 / 30) / 3)
    assert "market_data.average_days_on_market" in missing(raw)


# ---- categories ------------------------------------------------------------------------------

URGENCY = {"low": 0.2, "medium": 0.5, "high": 0.8, "critical": 1.0}
MOTIVATION = {
    "upsizing": 0.7, "downsizing": 0.6, "relocation": 0.8, "financial": 0.9,
    "divorce": 0.95, "estate": 0.85, "investment": 0.5,
}  # fmt: skip
CONDITION = {
    "excellent": 1.0, "move_in_ready": 0.9, "good": 0.8, "fair": 0.6,
    "needs_work": 0.4, "fixer_upper": 0.3, "poor": 0.2,
}  # fmt: skip
MONTHS = (0.4, 0.5, 0.7, 0.85, 0.95, 1.0, 1.0, 0.95, 0.85, 0.7, 0.5, 0.4)


@pytest.mark.parametrize(
    ("path", "name", "table", "default"),
    [
        ("psychology_profile.urgency_level", "urgency_score", URGENCY, 0.5),
        ("psychology_profile.motivation_type", "motivation_intensity", MOTIVATION, 0.5),
        ("property_data.condition", "condition_score", CONDITION, 0.6),
    ],
)
def test_every_category_value_and_unknown_ones(
    path: str, name: str, table: dict[str, float], default: float
) -> None:
    for value, score in table.items():
        raw = with_value(path, value)
        assert feature(raw, name) == pytest.approx(score), value
        assert path not in missing(raw)
    for unknown in ("unknown", "extreme", "", "goodish"):
        raw = with_value(path, unknown)
        assert feature(raw, name) == pytest.approx(default), unknown
        assert path in missing(raw)


@pytest.mark.parametrize(
    ("path", "text", "name", "expected"),
    [
        ("property_data.condition", "Move-In Ready", "condition_score", 0.9),
        ("property_data.condition", " needs work ", "condition_score", 0.4),
        ("property_data.condition", "FIXER_UPPER", "condition_score", 0.3),
        ("psychology_profile.urgency_level", "High", "urgency_score", 0.8),
        ("psychology_profile.motivation_type", "Divorce", "motivation_intensity", 0.95),
    ],
)
def test_category_text_is_normalised(path: str, text: str, name: str, expected: float) -> None:
    raw = with_value(path, text)
    assert feature(raw, name) == pytest.approx(expected)
    assert path not in missing(raw)


@pytest.mark.parametrize("month", range(12))
def test_every_month(month: int) -> None:
    raw = with_value("market_data.current_month", month)
    assert feature(raw, "seasonal_factor") == MONTHS[month]
    assert feature(with_value("market_data.current_month", float(month)),
                   "seasonal_factor") == MONTHS[month]  # fmt: skip


@pytest.mark.parametrize("month", [-1, 12, 13, 100])
def test_month_outside_range_is_seven_tenths_not_an_error(month: int) -> None:
    raw = with_value("market_data.current_month", month)
    assert feature(raw, "seasonal_factor") == 0.7
    assert "market_data.current_month" in missing(raw)


# ---- malformed input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "message_part"),
    [
        ("property_data.list_price", "800000", "text"),
        ("property_data.list_price", -1, "≥ 0"),
        ("property_data.list_price", float("nan"), "finite"),
        ("property_data.list_price", float("inf"), "finite"),
        ("property_data.list_price", True, "boolean"),
        ("property_data.list_price", 10**400, "finite"),
        ("property_data.list_price", [800000], "number"),
        ("property_data.estimated_market_value", -5, "≥ 0"),
        ("property_data.days_on_market", -3, "≥ 0"),
        ("property_data.beds", "four", "text"),
        ("property_data.baths", -1.5, "≥ 0"),
        ("property_data.sqft", float("-inf"), "finite"),
        ("property_data.condition", 3, "text"),
        ("property_data.location", "downtown", "object"),
        ("property_data.location.school_rating", 11, "between 0 and 10"),
        ("property_data.location.school_rating", -1, "between 0 and 10"),
        ("property_data.location.walkability_score", 101, "between 0 and 100"),
        ("property_data.price_drops", {"percentage": 5}, "list"),
        ("property_data.price_drops", "5%", "list"),
        ("market_data.estimated_value", -800000, "≥ 0"),
        ("market_data.average_days_on_market", -30, "≥ 0"),
        ("market_data.inventory_level", -0.5, "≥ 0"),
        ("market_data.absorption_rate", "high", "text"),
        ("market_data.price_trend_pct", float("nan"), "finite"),
        ("market_data.current_month", 5.5, "integer"),
        ("market_data.current_month", "June", "text"),
        ("market_data.comparables", 3, "list"),
        ("psychology_profile.psychological_commitment_score", 101, "between 0 and 100"),
        ("psychology_profile.negotiation_flexibility", 1.5, "between 0 and 1"),
        ("psychology_profile.urgency_level", ["high"], "text"),
        ("psychology_profile.motivation_type", False, "text"),
        ("conversation_data.message_count", 2.5, "integer"),
        ("conversation_data.message_count", -1, "≥ 0"),
        ("conversation_data.avg_response_time_seconds", -60, "≥ 0"),
    ],
)
def test_malformed_field_names_its_path(path: str, value: Any, message_part: str) -> None:
    with pytest.raises(InvalidInput) as info:
        extract_features(with_value(path, value))
    assert info.value.errors == [FieldError(path, info.value.errors[0].message)]
    assert message_part in info.value.errors[0].message


@pytest.mark.parametrize(
    "section", ["property_data", "market_data", "psychology_profile", "conversation_data"]
)
@pytest.mark.parametrize("value", [[], "x", 1, True])
def test_section_not_an_object(section: str, value: Any) -> None:
    assert error_paths(with_value(section, value)) == [section]


@pytest.mark.parametrize(
    ("items", "paths"),
    [
        ([{"sale_price": 1}, "795000"], ["market_data.comparables[1]"]),
        ([{"sale_price": "795000"}], ["market_data.comparables[0].sale_price"]),
        ([{"sale_price": -1, "days_on_market": -2}],
         ["market_data.comparables[0].sale_price", "market_data.comparables[0].days_on_market"]),
        ([{}, {}, {"days_on_market": "28"}], ["market_data.comparables[2].days_on_market"]),
    ],
)  # fmt: skip
def test_list_item_paths(items: list[Any], paths: list[str]) -> None:
    assert error_paths(with_value("market_data.comparables", items)) == paths


def test_price_drop_item_paths() -> None:
    raw = with_value("property_data.price_drops", [5, {"percentage": "5"}, {"percentage": -1}])
    assert error_paths(raw) == [
        "property_data.price_drops[0]",
        "property_data.price_drops[1].percentage",
        "property_data.price_drops[2].percentage",
    ]


def test_every_error_is_reported_together() -> None:
    raw = seed()
    raw["property_data"]["list_price"] = "800000"
    raw["property_data"]["location"]["school_rating"] = 12
    raw["market_data"]["comparables"][2]["sale_price"] = float("nan")
    raw["psychology_profile"]["negotiation_flexibility"] = True
    raw["conversation_data"] = ["not", "an", "object"]
    with pytest.raises(InvalidInput) as info:
        extract_features(raw)
    assert sorted(info.value.paths) == sorted([
        "property_data.list_price",
        "property_data.location.school_rating",
        "market_data.comparables[2].sale_price",
        "psychology_profile.negotiation_flexibility",
        "conversation_data",
    ])  # fmt: skip
    body = info.value.to_dict()
    assert body["error"] == "invalid input"
    assert len(body["errors"]) == 5
    assert all(set(e) == {"path", "message"} for e in body["errors"])


def test_error_messages_do_not_echo_values() -> None:
    secret = "jane.doe@example.com"
    with pytest.raises(InvalidInput) as info:
        extract_features(with_value("property_data.list_price", secret))
    assert secret not in str(info.value)
    assert secret not in repr(info.value.to_dict())


@pytest.mark.parametrize("raw", [None, [], "features", 3, [("property_data", {})]])
def test_root_not_an_object(raw: Any) -> None:
    assert error_paths(raw) == ["features"]


def test_numpy_scalars_are_numbers() -> None:
    raw = with_value("property_data.list_price", np.int64(800000))
    raw["property_data"]["sqft"] = np.float32(2200.0)
    np.testing.assert_allclose(extract_features(raw).values, HAND_CHECK, atol=5e-5)
    assert error_paths(with_value("property_data.beds", np.bool_(True))) == ["property_data.beds"]


def test_huge_finite_values_stay_in_range() -> None:
    raw = seed()
    raw["property_data"].update(list_price=1e308, sqft=1e308, days_on_market=1e308)
    raw["property_data"]["estimated_market_value"] = 5e-324
    raw["market_data"]["comparables"] = [
        {"sale_price": 1e308, "days_on_market": 1e308},
        {"sale_price": 1.7e308, "days_on_market": 1e308},
    ]
    values = extract_features(raw).values
    assert np.all(np.isfinite(values))
    assert np.all((values >= 0) & (values <= 1))


# ---- many leads ------------------------------------------------------------------------------


def test_extract_many_matches_one_by_one() -> None:
    raws = [seed(), {}, with_value("market_data.current_month", 0), without("conversation_data")]
    matrix, missing_lists = extract_many(raws)
    assert matrix.shape == (4, 20)
    assert matrix.dtype == np.float64
    for i, raw in enumerate(raws):
        one = extract_features(raw)
        np.testing.assert_array_equal(matrix[i], one.values)
        assert missing_lists[i] == one.missing_fields


def test_extract_many_prefixes_paths_with_the_row_index() -> None:
    raws: list[Any] = [
        seed(),
        with_value("property_data.list_price", "x"),
        seed(),
        "junk",
        with_value("market_data.comparables", [{"sale_price": -1}]),
    ]
    with pytest.raises(InvalidInput) as info:
        extract_many(raws)
    assert info.value.paths == [
        "[1].property_data.list_price",
        "[3].features",
        "[4].market_data.comparables[0].sale_price",
    ]


def test_extract_many_of_nothing() -> None:
    matrix, missing_lists = extract_many([])
    assert matrix.shape == (0, 20)
    assert missing_lists == []


def test_float32_of_the_hand_check_is_what_the_model_sees() -> None:
    values = extract_features(seed()).values
    x32 = values.astype(np.float32)
    assert x32.dtype == np.float32
    assert all(
        math.isclose(float(a), b, abs_tol=5e-5) for a, b in zip(x32, HAND_CHECK, strict=True)
    )
