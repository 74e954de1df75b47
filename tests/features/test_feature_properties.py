"""Property tests: any valid lead gives 20 finite values in [0, 1]; junk only ever raises
`InvalidInput`; extraction is deterministic."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from leadscore.errors import InvalidInput
from leadscore.features import (
    FLAT_FIELDS,
    extract_features,
    extract_flat_features,
    extract_many,
    flat_to_nested,
    parse_feature_vector,
)
from leadscore.features.contract import CONDITION_SCORES, MOTIVATION_SCORES, URGENCY_SCORES

from tests.features.leads import seed

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

nonneg = st.one_of(
    st.integers(min_value=0, max_value=10**12),
    st.floats(min_value=0, max_value=1e308, allow_nan=False, allow_infinity=False),
)
any_finite = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
)


def unit(hi: float) -> st.SearchStrategy[float]:
    return st.floats(min_value=0, max_value=hi, allow_nan=False)


def category(table: dict[str, float] | Any) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(sorted(table)), st.text(max_size=12))


def optional_fields(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


comparable = optional_fields({"sale_price": nonneg, "days_on_market": nonneg})
price_drop = optional_fields({"percentage": nonneg})

property_data = optional_fields(
    {
        "list_price": nonneg,
        "estimated_market_value": nonneg,
        "price_drops": st.lists(price_drop, max_size=4),
        "days_on_market": nonneg,
        "beds": nonneg,
        "baths": nonneg,
        "sqft": nonneg,
        "condition": category(CONDITION_SCORES),
        "location": optional_fields({"school_rating": unit(10), "walkability_score": unit(100)}),
    }
)
market_data = optional_fields(
    {
        "estimated_value": nonneg,
        "average_days_on_market": nonneg,
        "inventory_level": nonneg,
        "absorption_rate": nonneg,
        "price_trend_pct": any_finite,
        "current_month": st.integers(min_value=-50, max_value=50),
        "comparables": st.lists(comparable, max_size=25),
    }
)
psychology_profile = optional_fields(
    {
        "psychological_commitment_score": unit(100),
        "urgency_level": category(URGENCY_SCORES),
        "motivation_type": category(MOTIVATION_SCORES),
        "negotiation_flexibility": unit(1),
    }
)
conversation_data = optional_fields(
    {
        "message_count": st.integers(min_value=0, max_value=10**9),
        "avg_response_time_seconds": nonneg,
    }
)
valid_lead = optional_fields(
    {
        "property_data": property_data,
        "market_data": market_data,
        "psychology_profile": psychology_profile,
        "conversation_data": conversation_data,
    }
)

json_junk = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=8),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)


def _check_vector(values: np.ndarray) -> None:
    assert values.shape == (20,)
    assert values.dtype == np.float64
    assert np.all(np.isfinite(values))
    assert np.all(values >= 0.0)
    assert np.all(values <= 1.0)


@FAST
@given(valid_lead)
def test_any_valid_lead_gives_twenty_values_in_unit_interval(raw: dict[str, Any]) -> None:
    result = extract_features(raw)
    _check_vector(result.values)
    assert all(isinstance(p, str) and p for p in result.missing_fields)
    assert len(result.missing_fields) == len(set(result.missing_fields))


@FAST
@given(valid_lead)
def test_extraction_is_deterministic_and_pure(raw: dict[str, Any]) -> None:
    before = copy.deepcopy(raw)
    first = extract_features(raw)
    second = extract_features(copy.deepcopy(raw))
    assert raw == before
    np.testing.assert_array_equal(first.values, second.values)
    assert first.missing_fields == second.missing_fields
    # the same bytes reach the model (and the cache key) every time
    assert first.values.astype(np.float32).tobytes() == second.values.astype(np.float32).tobytes()


@FAST
@given(st.lists(valid_lead, max_size=5))
def test_extract_many_equals_one_by_one(raws: list[dict[str, Any]]) -> None:
    matrix, missing = extract_many(raws)
    assert matrix.shape == (len(raws), 20)
    for i, raw in enumerate(raws):
        one = extract_features(raw)
        np.testing.assert_array_equal(matrix[i], one.values)
        assert missing[i] == one.missing_fields


@FAST
@given(json_junk)
def test_junk_root_only_raises_invalid_input(junk: Any) -> None:
    try:
        result = extract_features(junk)
    except InvalidInput as exc:
        assert exc.errors
        assert all(e.path for e in exc.errors)
    else:
        _check_vector(result.values)


def _paths(raw: Any, prefix: str = "") -> list[str]:
    """Every dotted path of a nested request (list items excluded)."""
    out: list[str] = []
    if isinstance(raw, dict):
        for key, value in raw.items():
            path = f"{prefix}.{key}" if prefix else key
            out.append(path)
            out.extend(_paths(value, path))
    return out


@FAST
@given(st.data())
def test_junk_anywhere_in_a_real_lead_only_raises_invalid_input(data: st.DataObject) -> None:
    raw = seed()
    path = data.draw(st.sampled_from(_paths(raw)))
    junk = data.draw(json_junk)
    node: Any = raw
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = junk
    try:
        result = extract_features(raw)
    except InvalidInput as exc:
        # the error names the replaced field (or something inside it)
        assert any(e.path == path or e.path.startswith(path) for e in exc.errors)
    else:
        _check_vector(result.values)


@FAST
@given(st.data())
def test_junk_in_a_comparable_only_raises_invalid_input(data: st.DataObject) -> None:
    raw = seed()
    comps = raw["market_data"]["comparables"]
    i = data.draw(st.integers(min_value=0, max_value=len(comps) - 1))
    key = data.draw(st.sampled_from(["sale_price", "days_on_market", None]))
    junk = data.draw(json_junk)
    if key is None:
        comps[i] = junk
    else:
        comps[i][key] = junk
    try:
        result = extract_features(raw)
    except InvalidInput as exc:
        assert exc.paths == [p for p in exc.paths if p.startswith(f"market_data.comparables[{i}]")]
    else:
        _check_vector(result.values)


@FAST
@given(json_junk)
def test_parse_feature_vector_junk_only_raises_invalid_input(junk: Any) -> None:
    try:
        values = parse_feature_vector(junk)
    except InvalidInput:
        return
    _check_vector(values)


@FAST
@given(st.lists(st.floats(min_value=0, max_value=1), min_size=20, max_size=20))
def test_parse_feature_vector_round_trips_valid_lists(values: list[float]) -> None:
    np.testing.assert_array_equal(parse_feature_vector(values), values)


flat_value = st.one_of(
    json_junk,
    st.from_regex(r"\s*-?\$?[0-9,]{0,9}(\.[0-9]{0,3})?\s*", fullmatch=True),
    st.builds(json.dumps, json_junk),
)


@FAST
@given(st.dictionaries(st.sampled_from(sorted(FLAT_FIELDS)), flat_value, max_size=8))
def test_flat_junk_never_raises_anything_but_invalid_input(flat: dict[str, Any]) -> None:
    nested, errors = flat_to_nested(flat)  # never raises
    assert isinstance(nested, dict)
    assert all(e.path for e in errors)
    try:
        result = extract_flat_features(flat)
    except InvalidInput:
        return
    _check_vector(result.values)
