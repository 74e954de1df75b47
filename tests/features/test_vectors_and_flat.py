"""`parse_feature_vector` (ready-made vectors) and the flat CRM names of docs/FEATURES.md."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from leadscore.errors import InvalidInput
from leadscore.features import (
    FEATURE_NAMES,
    FLAT_FIELDS,
    extract_features,
    extract_flat_features,
    flat_error_path,
    flat_to_nested,
    parse_feature_vector,
    parse_number_text,
)

from tests.features.leads import HAND_CHECK, SEED_REQUEST, seed


def vector_error_paths(value: Any, path: str = "feature_vector") -> list[str]:
    with pytest.raises(InvalidInput) as info:
        parse_feature_vector(value, path)
    return info.value.paths


# ---- parse_feature_vector --------------------------------------------------------------------


def test_list_of_twenty() -> None:
    values = [i / 20 for i in range(20)]
    out = parse_feature_vector(values)
    assert out.dtype == np.float64
    assert out.shape == (20,)
    np.testing.assert_array_equal(out, values)


def test_tuple_and_array_and_ints() -> None:
    values = [0, 1] * 10
    np.testing.assert_array_equal(parse_feature_vector(tuple(values)), values)
    np.testing.assert_array_equal(parse_feature_vector(np.array(values, dtype=np.float32)), values)


def test_object_by_name_in_any_order() -> None:
    values = {name: round(i / 19, 3) for i, name in reversed(list(enumerate(FEATURE_NAMES)))}
    out = parse_feature_vector(values)
    np.testing.assert_array_equal(out, [values[n] for n in FEATURE_NAMES])


def test_the_hand_check_vector_by_name_equals_by_list() -> None:
    by_name = dict(zip(FEATURE_NAMES, HAND_CHECK, strict=True))
    np.testing.assert_array_equal(
        parse_feature_vector(by_name), parse_feature_vector(list(HAND_CHECK))
    )


@pytest.mark.parametrize("n", [0, 19, 21])
def test_wrong_length(n: int) -> None:
    paths = vector_error_paths([0.5] * n)
    assert paths == ["feature_vector"]


def test_nineteen_numbers_message() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_feature_vector([0.5] * 19)
    assert "exactly 20" in info.value.errors[0].message
    assert "19" in info.value.errors[0].message


def test_every_bad_item_is_named() -> None:
    values: list[Any] = [0.5] * 20
    values[3] = "0.5"
    values[7] = float("nan")
    values[11] = True
    values[15] = 1.5
    values[19] = -0.1
    assert vector_error_paths(values) == [
        "feature_vector[3]",
        "feature_vector[7]",
        "feature_vector[11]",
        "feature_vector[15]",
        "feature_vector[19]",
    ]


def test_wrong_length_and_bad_items_reported_together() -> None:
    values: list[Any] = [0.5] * 18 + [None]
    assert vector_error_paths(values) == ["feature_vector", "feature_vector[18]"]


def test_object_missing_unknown_and_bad_names() -> None:
    values: dict[str, Any] = dict.fromkeys(FEATURE_NAMES, 0.5)
    del values["urgency_score"]
    values["urgency"] = 0.5
    values["seasonal_factor"] = float("inf")
    values["comp_market_time"] = 2
    paths = vector_error_paths(values)
    assert sorted(paths) == sorted([
        "feature_vector.urgency",
        "feature_vector.urgency_score",
        "feature_vector.seasonal_factor",
        "feature_vector.comp_market_time",
    ])  # fmt: skip


@pytest.mark.parametrize("value", [None, "0.5,0.5", 0.5, True])
def test_not_a_vector(value: Any) -> None:
    assert vector_error_paths(value) == ["feature_vector"]


def test_custom_path_prefix() -> None:
    assert vector_error_paths([0.5] * 19 + [7], "leads[3].feature_vector") == [
        "leads[3].feature_vector[19]"
    ]


def test_bounds_are_inclusive() -> None:
    np.testing.assert_array_equal(
        parse_feature_vector([0.0] * 10 + [1.0] * 10), [0] * 10 + [1] * 10
    )


# ---- parse_number_text -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("800000", 800000),
        ("4.5", 4.5),
        (" 12 ", 12),
        ("-3", -3),
        ("+7", 7),
        ("0.15", 0.15),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("$800,000", 800000),
        ("1,234,567.5", 1234567.5),
    ],
)
def test_numeric_text(text: str, expected: float) -> None:
    parsed = parse_number_text(text)
    assert parsed == expected
    assert type(parsed) is type(expected)


@pytest.mark.parametrize(
    "text",
    ["", " ", "abc", "12abc", "1,2", "12,34", "nan", "NaN", "inf", "-Infinity", "1e999",
     "4,5", "1.2.3", "$", "--1", "0x10", "1_000", "½", "e5"],
)  # fmt: skip
def test_not_numeric_text(text: str) -> None:
    assert parse_number_text(text) is None


# ---- flat_to_nested --------------------------------------------------------------------------


def flatten(raw: dict[str, Any]) -> dict[str, Any]:
    """The seed request as a CRM would send it: every value as text, lists as JSON text."""
    flat: dict[str, Any] = {}
    for key, path in FLAT_FIELDS.items():
        node: Any = raw
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            continue
        flat[key] = json.dumps(node) if isinstance(node, list) else str(node)
    return flat


def test_flat_names_cover_every_raw_field_once() -> None:
    paths = [".".join(p) for p in FLAT_FIELDS.values()]
    assert len(paths) == len(set(paths)) == 23
    assert FLAT_FIELDS["school_rating"] == ("property_data", "location", "school_rating")
    assert FLAT_FIELDS["comparables"] == ("market_data", "comparables")
    assert FLAT_FIELDS["estimated_value"] == ("market_data", "estimated_value")


def test_flat_text_rebuilds_the_seed_request() -> None:
    nested, errors = flat_to_nested(flatten(seed()))
    assert errors == []
    assert nested == SEED_REQUEST


def test_flat_text_gives_the_hand_check() -> None:
    result = extract_flat_features(flatten(seed()))
    np.testing.assert_allclose(result.values, HAND_CHECK, atol=5e-5, rtol=0)
    assert result.missing_fields == extract_features(seed()).missing_fields


def test_numbers_and_lists_pass_through() -> None:
    nested, errors = flat_to_nested(
        {"list_price": 800000, "baths": 2.5, "comparables": [{"sale_price": 1}]}
    )
    assert errors == []
    assert nested == {
        "property_data": {"list_price": 800000, "baths": 2.5},
        "market_data": {"comparables": [{"sale_price": 1}]},
    }


def test_empty_strings_are_absent_and_sections_appear_only_with_a_value() -> None:
    nested, errors = flat_to_nested(
        {"list_price": "", "urgency_level": " ", "comparables": "", "school_rating": None,
         "message_count": "3"}
    )  # fmt: skip
    assert errors == []
    assert nested == {"conversation_data": {"message_count": 3}}
    result = extract_flat_features({"list_price": "", "urgency_level": ""})
    assert result.missing_fields == [
        "property_data",
        "market_data",
        "psychology_profile",
        "conversation_data",
    ]


def test_unknown_flat_keys_are_ignored() -> None:
    nested, errors = flat_to_nested({"first_name": "Jane", "email": "x@y.z", "beds": "3"})
    assert errors == []
    assert nested == {"property_data": {"beds": 3}}


def test_category_text_is_trimmed() -> None:
    nested, _ = flat_to_nested({"condition": "  Move-In Ready "})
    assert nested == {"property_data": {"condition": "Move-In Ready"}}
    assert extract_flat_features({"condition": "  Move-In Ready "}).as_dict()[
        "condition_score"
    ] == pytest.approx(0.9)


def test_numeric_text_inside_json_lists() -> None:
    flat = {
        "comparables": '[{"sale_price": "795000", "days_on_market": "28"}, {"sale_price": 810000}]',
        "price_drops": [{"percentage": " 5 "}],
    }
    nested, errors = flat_to_nested(flat)
    assert errors == []
    assert nested["market_data"]["comparables"] == [
        {"sale_price": 795000, "days_on_market": 28},
        {"sale_price": 810000},
    ]
    assert nested["property_data"]["price_drops"] == [{"percentage": 5}]


def test_bad_values_name_the_flat_key() -> None:
    flat = {
        "list_price": "eight hundred",
        "beds": True,
        "baths": "2.5.1",
        "condition": 3,
        "comparables": "[{'sale_price': 1}",
        "price_drops": '{"percentage": 5}',
        "current_month": "June",
        "sqft": ["2200"],
    }
    nested, errors = flat_to_nested(flat)
    assert sorted(e.path for e in errors) == sorted(
        ["list_price", "beds", "baths", "condition", "comparables", "price_drops",
         "current_month", "sqft"]
    )  # fmt: skip
    assert nested == {}


def test_bad_text_inside_list_items_is_named() -> None:
    _, errors = flat_to_nested({"comparables": '[{"sale_price": "a lot"}, 5]'})
    assert [e.path for e in errors] == ["comparables[0].sale_price"]
    with pytest.raises(InvalidInput) as info:
        extract_flat_features({"comparables": '[{"sale_price": "a lot"}, 5]'})
    assert info.value.paths == ["comparables[0].sale_price", "comparables[1]"]


def test_extract_flat_features_names_range_errors_by_flat_key() -> None:
    flat = {
        "school_rating": "11",
        "list_price": "-5",
        "message_count": "2.5",
        "comparables": '[{"sale_price": -1}]',
        "negotiation_flexibility": "NaN",
    }
    with pytest.raises(InvalidInput) as info:
        extract_flat_features(flat)
    assert sorted(info.value.paths) == sorted(
        ["negotiation_flexibility", "list_price", "school_rating", "comparables[0].sale_price",
         "message_count"]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("nested", "flat"),
    [
        ("property_data.location.school_rating", "school_rating"),
        ("market_data.comparables[2].sale_price", "comparables[2].sale_price"),
        ("property_data.price_drops[0]", "price_drops[0]"),
        ("psychology_profile.urgency_level", "urgency_level"),
        ("property_data", "property_data"),
        ("something.else", "something.else"),
    ],
)
def test_flat_error_path(nested: str, flat: str) -> None:
    assert flat_error_path(nested) == flat


def test_flat_and_nested_agree_on_every_value() -> None:
    """Changing one flat value moves the same feature as changing the nested field."""
    for key, path in FLAT_FIELDS.items():
        if key in ("comparables", "price_drops"):
            continue
        raw = seed()
        node: Any = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
        original = node.get(path[-1])
        if original is None or isinstance(original, str):
            continue
        node[path[-1]] = original // 2 if isinstance(original, int) else original * 0.5
        flat = flatten(raw)
        np.testing.assert_array_equal(
            extract_flat_features(flat).values, extract_features(raw).values, err_msg=key
        )
