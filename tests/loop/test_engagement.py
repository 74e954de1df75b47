"""Engagement counters from message webhooks: counts and times only, never bodies."""

from __future__ import annotations

import json

from leadscore.features import extract_features
from leadscore.loop.engagement import Engagement, MessageEvent, message_event, with_engagement

from tests.loop.helpers import T0, lead_request

MIN = 60_000


def msg(direction: str, at: int) -> MessageEvent:
    return MessageEvent("loc1", "c1", direction, at)


def test_counts_and_response_times() -> None:
    e = Engagement()
    for ev in (
        msg("outbound", T0),
        msg("outbound", T0 + 5 * MIN),  # still waiting since T0
        msg("inbound", T0 + 10 * MIN),  # answered after 10 minutes
        msg("inbound", T0 + 11 * MIN),  # not a response: nothing was waiting
        msg("outbound", T0 + 20 * MIN),
        msg("inbound", T0 + 50 * MIN),  # 30 minutes
    ):
        e = e.apply(ev)
    assert e.message_count == 6
    assert e.responses == 2
    assert e.avg_response_time_seconds == 20 * 60
    assert e.conversation_data() == {"message_count": 6, "avg_response_time_seconds": 1200.0}


def test_out_of_order_messages_are_counted_but_open_no_response() -> None:
    e = Engagement().apply(msg("outbound", T0 + 10 * MIN)).apply(msg("inbound", T0))
    assert e.message_count == 2 and e.responses == 0
    assert e.avg_response_time_seconds is None
    assert e.conversation_data() == {"message_count": 2}


def test_round_trip_through_the_item() -> None:
    e = Engagement().apply(msg("outbound", T0)).apply(msg("inbound", T0 + MIN))
    assert Engagement.from_item(json.loads(json.dumps(e.to_item()))) == e


def test_message_event_never_reads_the_body() -> None:
    payload = {
        "type": "InboundMessage",
        "locationId": "loc1",
        "contactId": "c1",
        "conversationId": "conv",
        "messageType": "SMS",
        "direction": "inbound",
        "body": "my email is maria@example.com",
        "dateAdded": "2026-09-21T14:13:20.000Z",
    }
    event = message_event(payload, at_ms=T0)
    assert event == MessageEvent("loc1", "c1", "inbound", T0, "SMS")
    assert "maria" not in repr(event)
    assert message_event({**payload, "type": "ContactUpdate"}, at_ms=T0) is None
    assert message_event({**payload, "contactId": ""}, at_ms=T0) is None
    assert (
        message_event({**payload, "direction": None, "type": "OutboundMessage"}, at_ms=T0).direction
        == "outbound"
    )


def test_counters_feed_conversation_data_and_change_the_feature() -> None:
    request = lead_request("c1")
    before = extract_features(request["features"]).as_dict()["communication_engagement"]
    e = Engagement()
    for i in range(10):
        e = e.apply(msg("outbound", T0 + i * 10 * MIN)).apply(
            msg("inbound", T0 + i * 10 * MIN + MIN)
        )
    enriched = with_engagement(request, e)
    assert enriched["features"]["conversation_data"] == {
        "message_count": 20,
        "avg_response_time_seconds": 60.0,
    }
    after = extract_features(enriched["features"]).as_dict()["communication_engagement"]
    assert before == 0.5 and after > 0.6
    assert "conversation_data" not in request["features"]  # the input is not modified


def test_fields_from_the_payload_win() -> None:
    request = lead_request("c1")
    request["features"]["conversation_data"] = {"message_count": 3}
    e = Engagement().apply(msg("outbound", T0)).apply(msg("inbound", T0 + MIN))
    out = with_engagement(request, e)
    assert out["features"]["conversation_data"] == {
        "message_count": 3,
        "avg_response_time_seconds": 60.0,
    }
    assert with_engagement(request, None) == request
