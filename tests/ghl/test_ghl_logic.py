"""leadscore.ghl: signatures, headers, timestamps, payload kinds, field mapping (pure code)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from leadscore.errors import InvalidInput
from leadscore.ghl import auth, delivery, parking, payloads

from tests.fixtures.ghl import KeyPair

EVENTS = Path(__file__).resolve().parents[2] / "events"
NOW = datetime(2026, 2, 5, 10, 0, 0, tzinfo=UTC).timestamp()
BODY = b'{"type": "ContactUpdate", "locationId": "loc1", "id": "c1", "timestamp": 1}'


def config(
    ed: KeyPair | None = None, rsa_key: KeyPair | None = None, secret: str = ""
) -> auth.AuthConfig:
    return auth.AuthConfig(
        ed25519_public_key_pem=ed.public_pem if ed else "",
        rsa_public_key_pem=rsa_key.public_pem if rsa_key else "",
        webhook_secret=secret,
    )


def event_body(name: str) -> dict[str, Any]:
    event = json.loads((EVENTS / name).read_text())
    return dict(json.loads(event["body"]))


# --------------------------------------------------------------------------- signatures


def test_ed25519_valid_signature_verifies(ghl_ed25519: KeyPair) -> None:
    verdict = auth.authenticate(
        {"x-ghl-signature": ghl_ed25519.sign(BODY)}, BODY, config(ghl_ed25519)
    )
    assert verdict.ok and verdict.scheme == "ed25519" and verdict.signed


def test_every_single_byte_change_breaks_the_signature(ghl_ed25519: KeyPair) -> None:
    signature = ghl_ed25519.sign(BODY)
    for i in range(len(BODY)):
        tampered = BODY[:i] + bytes([BODY[i] ^ 0x01]) + BODY[i + 1 :]
        verdict = auth.authenticate({"x-ghl-signature": signature}, tampered, config(ghl_ed25519))
        assert not verdict.ok and verdict.reason == "invalid signature", i


def test_signature_by_another_key_is_rejected(
    ghl_ed25519: KeyPair, ghl_ed25519_other: KeyPair
) -> None:
    headers = {"x-ghl-signature": ghl_ed25519_other.sign(BODY)}
    assert not auth.authenticate(headers, BODY, config(ghl_ed25519)).ok


@pytest.mark.parametrize("bad", ["", "not base64!!", base64.b64encode(b"short").decode()])
def test_garbage_signature_is_rejected_not_raised(ghl_ed25519: KeyPair, bad: str) -> None:
    assert not auth.authenticate({"x-ghl-signature": bad}, BODY, config(ghl_ed25519)).ok


def test_header_names_are_case_insensitive(ghl_ed25519: KeyPair) -> None:
    verdict = auth.authenticate(
        {"X-GHL-Signature": ghl_ed25519.sign(BODY)}, BODY, config(ghl_ed25519)
    )
    assert verdict.ok


def test_missing_headers_are_rejected(ghl_ed25519: KeyPair, ghl_rsa: KeyPair) -> None:
    verdict = auth.authenticate(
        {"Content-Type": "application/json"}, BODY, config(ghl_ed25519, ghl_rsa, "s")
    )
    assert not verdict.ok and verdict.reason == "missing signature"
    assert not auth.authenticate(None, BODY, config(ghl_ed25519)).ok


def test_legacy_rsa_accepted_only_when_configured(ghl_ed25519: KeyPair, ghl_rsa: KeyPair) -> None:
    headers = {"x-wh-signature": ghl_rsa.sign(BODY)}
    assert auth.authenticate(headers, BODY, config(ghl_ed25519, ghl_rsa)).scheme == "rsa"
    unconfigured = auth.authenticate(headers, BODY, config(ghl_ed25519))
    assert not unconfigured.ok and unconfigured.reason == "missing signature"


def test_legacy_rsa_tampered_body_rejected(ghl_rsa: KeyPair) -> None:
    headers = {"x-wh-signature": ghl_rsa.sign(BODY)}
    assert not auth.authenticate(headers, BODY + b" ", config(rsa_key=ghl_rsa)).ok


def test_bad_ed25519_signature_wins_over_a_valid_legacy_one(
    ghl_ed25519: KeyPair, ghl_ed25519_other: KeyPair, ghl_rsa: KeyPair
) -> None:
    headers = {
        "x-ghl-signature": ghl_ed25519_other.sign(BODY),
        "x-wh-signature": ghl_rsa.sign(BODY),
    }
    verdict = auth.authenticate(headers, BODY, config(ghl_ed25519, ghl_rsa))
    assert not verdict.ok and verdict.reason == "invalid signature"


def test_ed25519_header_without_configured_key_is_rejected(
    ghl_ed25519: KeyPair, ghl_rsa: KeyPair
) -> None:
    headers = {"x-ghl-signature": ghl_ed25519.sign(BODY), "x-wh-signature": ghl_rsa.sign(BODY)}
    assert not auth.authenticate(headers, BODY, config(rsa_key=ghl_rsa)).ok


def test_key_of_the_wrong_type_is_a_configuration_error(
    ghl_ed25519: KeyPair, ghl_rsa: KeyPair
) -> None:
    wrong = auth.AuthConfig(ed25519_public_key_pem=ghl_rsa.public_pem)
    with pytest.raises(ValueError, match="Ed25519"):
        auth.authenticate({"x-ghl-signature": ghl_ed25519.sign(BODY)}, BODY, wrong)


def test_pem_with_escaped_newlines_is_accepted(ghl_ed25519: KeyPair) -> None:
    flattened = ghl_ed25519.public_pem.strip().replace("\n", "\\n")
    cfg = auth.AuthConfig(ed25519_public_key_pem=flattened)
    assert auth.authenticate({"x-ghl-signature": ghl_ed25519.sign(BODY)}, BODY, cfg).ok


def test_shared_secret(ghl_ed25519: KeyPair) -> None:
    cfg = config(ghl_ed25519, secret="s3cret")
    assert auth.authenticate({"X-Leadscore-Secret": "s3cret"}, BODY, cfg).scheme == "secret"
    assert not auth.authenticate({"x-leadscore-secret": "s3cre"}, BODY, cfg).ok
    assert not auth.authenticate({"x-leadscore-secret": "s3cret "}, BODY, cfg).ok
    assert not auth.authenticate({"x-leadscore-secret": ""}, BODY, cfg).ok
    # No secret configured: no header value can match, not even an empty one.
    assert not auth.authenticate({"x-leadscore-secret": ""}, BODY, config(ghl_ed25519)).ok


def test_secret_is_not_a_signature(ghl_ed25519: KeyPair) -> None:
    assert not auth.authenticate(
        {"x-leadscore-secret": "s"}, BODY, config(ghl_ed25519, secret="s")
    ).signed


def test_raw_body_decodes_base64_when_flagged() -> None:
    assert auth.raw_body(base64.b64encode(BODY).decode(), True) == BODY
    assert auth.raw_body(BODY.decode(), False) == BODY
    assert auth.raw_body(None, False) == b""


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    "value",
    [
        "2026-02-05T10:00:00.000Z",
        "2026-02-05T10:00:00Z",
        "2026-02-05T11:00:00+01:00",
        1770285600,
        1770285600.0,
        "1770285600",
        1770285600000,
        "1770285600000",
    ],
)
def test_timestamp_formats(value: object) -> None:
    assert auth.parse_timestamp(value) == datetime(2026, 2, 5, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("value", [None, "", "yesterday", True, [1], float("nan")])
def test_bad_timestamps_raise(value: object) -> None:
    with pytest.raises(ValueError):
        auth.parse_timestamp(value)


DAYS = 3 * 86400


def test_freshness_window_is_days_and_only_bounds_the_past() -> None:
    assert delivery.freshness_problem(NOW - 2 * 3600, NOW, DAYS) is None
    assert delivery.freshness_problem(NOW - DAYS + 1, NOW, DAYS) is None
    assert delivery.freshness_problem(NOW + 299, NOW, DAYS) is None
    assert delivery.freshness_problem(NOW - DAYS - 1, NOW, DAYS) == parking.TOO_OLD
    assert delivery.freshness_problem((NOW + 301) * 1000, NOW, DAYS) == parking.FUTURE
    assert delivery.freshness_problem(None, NOW, DAYS) == parking.NO_TIMESTAMP


def test_delivery_ids_and_the_dedupe_horizon() -> None:
    assert delivery.delivery_id({"webhookId": " wh-1 "}, b"x") == "wh-1"
    assert delivery.delivery_id({}, b"x") == delivery.delivery_id({"webhookId": ""}, b"x")
    assert delivery.delivery_id({}, b"x") != delivery.delivery_id({}, b"y")
    assert delivery.dedupe_ttl_seconds(DAYS) > DAYS


# --------------------------------------------------------------------------- payloads


def test_detect_kind_of_the_sample_events() -> None:
    assert (
        payloads.detect_kind(event_body("ghl_webhook_contact_update.json"))
        is payloads.PayloadKind.MARKETPLACE
    )
    workflow = payloads.detect_kind(event_body("ghl_workflow_webhook.json"))
    assert workflow is payloads.PayloadKind.WORKFLOW
    with pytest.raises(payloads.WebhookError):
        payloads.detect_kind({"hello": "world"})


def test_marketplace_mapping_by_field_id() -> None:
    payload = event_body("ghl_webhook_contact_update.json")
    field_map = {
        "fld_list_price_01": "list_price",
        "fld_urgency_07": "urgency_level",
        "fld_pcs_09": "psychological_commitment_score",
        "fld_comparables_10": "comparables",
    }
    parsed = payloads.parse_webhook(payload, field_map)
    assert (parsed.contact_id, parsed.location_id) == ("lead_12345", "loc_ve9EPM428h8vShlRW1KT")
    assert parsed.webhook_id == payload["webhookId"] and parsed.event_type == "ContactUpdate"
    features = parsed.request["features"]
    assert features["property_data"] == {"list_price": 800000}
    assert features["psychology_profile"] == {
        "psychological_commitment_score": 75,
        "urgency_level": "high",
    }
    assert [c["sale_price"] for c in features["market_data"]["comparables"]] == [
        795000,
        810000,
        785000,
    ]
    # Unmapped field ids contribute nothing; personal data never reaches the request.
    assert "beds" not in features["property_data"]
    assert "email" not in json.dumps(parsed.request)


def test_workflow_mapping_defaults_to_flat_names_and_empty_is_absent() -> None:
    payload = event_body("ghl_workflow_webhook.json")
    parsed = payloads.parse_webhook(payload, {})
    assert parsed.kind is payloads.PayloadKind.WORKFLOW and parsed.webhook_id == ""
    features = parsed.request["features"]
    assert features["property_data"]["list_price"] == 800000
    assert features["property_data"]["baths"] == 2.5
    assert features["property_data"]["location"] == {"school_rating": 8, "walkability_score": 75}
    assert "price_drops" not in features["property_data"]  # "" = absent
    assert features["market_data"]["current_month"] == 5


def test_root_keys_named_after_the_field_and_field_map_overrides() -> None:
    payload = {
        "contact_id": "c9",
        "location": {"id": "L"},
        "customData": {"beds": ""},
        "List Price": "450,000",
        "Beds": "3",
        "Seller Urgency": "critical",
        "first_name": "Ann",
    }
    parsed = payloads.parse_webhook(payload, {"Seller Urgency": "urgency_level"})
    f = parsed.request["features"]
    assert f["property_data"] == {"list_price": 450000, "beds": 3}
    assert f["psychology_profile"] == {"urgency_level": "critical"}


def test_custom_data_wins_over_root_keys() -> None:
    payload = {"contact_id": "c", "customData": {"beds": "5"}, "beds": "2"}
    assert payloads.parse_webhook(payload).request["features"]["property_data"] == {"beds": 5}


def test_invalid_lead_values_name_the_flat_key() -> None:
    payload = {"contact_id": "c", "customData": {"list_price": "lots", "comparables": "[oops"}}
    with pytest.raises(InvalidInput) as info:
        payloads.parse_webhook(payload)
    assert set(info.value.paths) == {"list_price", "comparables"}


def test_marketplace_event_without_contact_is_ignored_not_scored() -> None:
    parsed = payloads.parse_webhook({"type": "ContactDelete", "locationId": "L", "id": "c"})
    assert parsed.request == {} and parsed.event_type == "ContactDelete"


def test_missing_contact_id_is_an_error() -> None:
    with pytest.raises(payloads.WebhookError):
        payloads.parse_webhook({"customData": {"beds": "3"}, "location": {"id": "L"}})


def test_log_keys_hold_no_personal_data() -> None:
    payload = event_body("ghl_workflow_webhook.json")
    text = json.dumps(payloads.parse_webhook(payload).log_keys())
    for pii in ("Jordan", "Example", "jordan@example.com", "+15555550123"):
        assert pii not in text


def test_non_json_body() -> None:
    with pytest.raises(payloads.WebhookError):
        payloads.parse_json_body(b"\xff\xfe")
    with pytest.raises(payloads.WebhookError):
        payloads.parse_json_body(b"[1, 2]")


# --------------------------------------------------------------------------- robustness


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
_keys = st.sampled_from(
    [
        *sorted(payloads.FLAT_NAMES),
        "contact_id",
        "id",
        "type",
        "locationId",
        "customFields",
        "customData",
        "location",
        "timestamp",
        "webhookId",
        "List Price",
        "x",
    ]
)


@settings(max_examples=300, deadline=None)
@given(payload=st.dictionaries(_keys, _values, max_size=8))
def test_any_json_payload_parses_or_fails_cleanly(payload: dict[str, Any]) -> None:
    try:
        parsed = payloads.parse_webhook(payload, {"x": "list_price"})
    except (payloads.WebhookError, InvalidInput):
        return
    assert isinstance(parsed.contact_id, str)
    if parsed.request:
        assert set(parsed.request) == {"contact_id", "features"}


@settings(max_examples=200, deadline=None)
@given(value=_values)
def test_any_timestamp_is_checked_without_raising(value: object) -> None:
    assert delivery.freshness_problem(value, NOW, DAYS) in (
        None, parking.TOO_OLD, parking.FUTURE, parking.NO_TIMESTAMP)
