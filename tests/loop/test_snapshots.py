"""Snapshots keep the scoring inputs as scored and nothing personal."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from leadscore.features import FEATURE_NAMES
from leadscore.loop.snapshots import build_snapshot, sanitize_inputs

from tests.loop.helpers import T0

PII = {
    "first_name": "Maria",
    "last_name": "Gonzalez",
    "full_name": "Maria Gonzalez",
    "email": "maria.gonzalez@example.com",
    "phone": "+1 555 0100 777",
    "address": "12 Elm Street",
    "body": "Hi, my number is 555-0100, call me",
    "notes": "divorce pending, call after 6",
}


def result(contact_id: str = "c1") -> dict:
    return {
        "contact_id": contact_id,
        "predicted_score": 0.81,
        "predicted_class": "hot",
        "model_version": "lsm-abc",
        "feature_values": {name: 0.25 for name in FEATURE_NAMES},
        "first_name": "Maria",  # even if a result carried it, the record does not
    }


def request_with_pii() -> dict:
    return {
        "contact_id": "c1",
        **PII,
        "features": {
            **PII,
            "property_data": {
                "list_price": 800000,
                "condition": "good",
                "owner_email": PII["email"],
                "location": {"school_rating": 8, "street": PII["address"]},
                "price_drops": [{"percentage": 3, "note": PII["notes"]}],
            },
            "market_data": {
                "comparables": [{"sale_price": 1, "days_on_market": 2, "agent": "Bob"}]
            },
            "psychology_profile": {"urgency_level": "high", "seller_name": PII["full_name"]},
            "conversation_data": {"message_count": 4, "last_message": PII["body"]},
            "contact": PII,
        },
    }


def test_no_personal_data_in_a_snapshot() -> None:
    record = build_snapshot(
        request_with_pii(), result(), location_id="loc1", source="webhook", scored_at_ms=T0
    )
    text = json.dumps(record)
    for value in PII.values():
        assert value not in text
    for fragment in ("Maria", "Gonzalez", "@example.com", "555", "Elm", "Bob"):
        assert fragment not in text
    inputs = json.loads(record["inputs"])
    assert inputs == {
        "property_data": {
            "list_price": 800000,
            "condition": "good",
            "location": {"school_rating": 8},
            "price_drops": [{"percentage": 3}],
        },
        "market_data": {"comparables": [{"sale_price": 1, "days_on_market": 2}]},
        "psychology_profile": {"urgency_level": "high"},
        "conversation_data": {"message_count": 4},
    }


def test_record_fields() -> None:
    record = build_snapshot(
        request_with_pii(), result(), location_id="loc1", source="api", scored_at_ms=T0
    )
    assert record["record_type"] == "snapshot"
    assert record["features"] == [0.25] * 20
    assert record["scored_at_ms"] == T0 and record["dt"] == "2026-09-21"
    assert record["scored_at"] == "2026-09-21T14:13:20.000Z"
    assert record["model_version"] == "lsm-abc" and record["predicted_class"] == "hot"
    assert record["point_in_time"] is True and len(record["snapshot_id"]) == 32


def test_feature_vector_requests_have_no_inputs() -> None:
    record = build_snapshot(
        {"contact_id": "c1", "feature_vector": [0.1] * 20},
        result(),
        location_id="",
        source="api",
        scored_at_ms=T0,
    )
    assert record["inputs"] is None and record["location_id"] == "_none"


# Any extra key anywhere, with any text, never survives.
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@given(extra_key=st.text(min_size=1, max_size=12), extra=json_values)
def test_unknown_keys_are_dropped_at_any_depth(extra_key: str, extra: object) -> None:
    known = {
        "list_price",
        "estimated_market_value",
        "price_drops",
        "days_on_market",
        "beds",
        "baths",
        "sqft",
        "condition",
        "location",
        "percentage",
        "school_rating",
        "walkability_score",
        "sale_price",
        "comparables",
    }
    if extra_key in known:
        return
    features = {
        extra_key: extra,
        "property_data": {extra_key: extra, "location": {extra_key: extra}},
        "market_data": {"comparables": [{extra_key: extra, "sale_price": 5}]},
    }
    cleaned = sanitize_inputs(features)
    assert cleaned == {
        "property_data": {"location": {}},
        "market_data": {"comparables": [{"sale_price": 5}]},
    }
