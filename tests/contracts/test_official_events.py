"""HighLevel's own example payloads (tests/contracts/highlevel/docs/webhook events) are
fixtures the webhook handles: each is delivered signed, with the delivery envelope
(``timestamp``, ``webhookId``) every delivery carries around the event's fields, and gets the
answer its kind should get. A message's direction comes from its ``type``: the official
``OutboundMessage`` example says ``"direction": "inbound"``."""

from __future__ import annotations

from typing import Any

import pytest
from leadscore.loop.engagement import INBOUND, OUTBOUND, message_event

from tests.contracts.spec import webhook_examples
from tests.ghl.test_webhook_route import Harness, harness, iso  # noqa: F401 - the fixture

#: event page -> the route's answer status for its examples
HANDLED = {
    "ContactCreate": "scored",
    "ContactUpdate": "scored",
}
MESSAGE_PAGES = ("InboundMessage", "OutboundMessage")


def test_every_official_message_example_takes_its_direction_from_its_type() -> None:
    examples = [e for page in MESSAGE_PAGES for e in webhook_examples(page)]
    assert len(examples) >= 7
    contradicting = [e for e in examples
                     if e.get("direction") != ("inbound" if e["type"] == "InboundMessage"
                                               else "outbound")]
    assert contradicting  # the official pages do contain such examples
    for example in examples:
        event = message_event(example, at_ms=0)
        assert event is not None, example
        assert event.direction == (INBOUND if example["type"] == "InboundMessage"
                                   else OUTBOUND), example


def delivered(h: Harness, example: dict[str, Any], n: int) -> dict[str, Any]:
    return {**example, "timestamp": iso(h.clock[0]), "webhookId": f"official-{n}"}


@pytest.mark.parametrize("page", sorted(HANDLED))
def test_official_contact_examples_are_scored(harness: Harness, page: str) -> None:  # noqa: F811
    examples = webhook_examples(page)
    assert examples
    for n, example in enumerate(examples):
        status, answer = harness.post(*harness.signed(delivered(harness, example, n)))
        assert status == 200 and answer["status"] == HANDLED[page], (page, answer)
        assert answer["contact_id"] == example["id"]


@pytest.mark.parametrize("page", ["ContactTagUpdate", "InboundMessage", "OutboundMessage",
                                  "OpportunityCreate",
                                  "OpportunityStatusUpdate", "OpportunityStageUpdate",
                                  "ContactDelete", "OpportunityDelete", "AppInstall",
                                  "AppUninstall"])
def test_every_other_official_example_is_acknowledged_not_refused(
    harness: Harness, page: str,  # noqa: F811
) -> None:
    """A verified delivery is never refused: 200 with what was done (or why nothing was)."""
    examples = webhook_examples(page)
    assert examples
    for n, example in enumerate(examples):
        status, answer = harness.post(*harness.signed(delivered(harness, example, n)))
        assert status == 200, (page, answer)
        assert answer.get("status") not in (None, "error"), (page, answer)
