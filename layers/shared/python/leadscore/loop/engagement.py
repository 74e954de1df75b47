"""Engagement counters from HighLevel ``InboundMessage`` / ``OutboundMessage`` webhooks.

``message_count`` and ``avg_response_time_seconds`` are not HighLevel contact fields, so
without these counters every HighLevel lead scored with the docs/FEATURES.md defaults. Per
(location, contact) we keep counts and times only; the message body (personal data) is never
read into a record, stored or logged.

Definitions (docs/LOOP.md):

* ``message_count`` = inbound + outbound messages of the contact's conversations.
* a *response* is the first inbound message after one or more unanswered outbound messages;
  its time is inbound time - the earliest unanswered outbound time. The lead's response time
  is what docs/FEATURES.md's ``avg_response_time_seconds`` describes (a seller who answers fast
  is engaged). ``avg_response_time_seconds`` = mean over responses; absent until the first
  response (the extractor then uses its default).
* A message older than the last one seen (out-of-order delivery) is counted but does not
  open or close a response.

Counters fill ``conversation_data`` only where the contact payload did not carry those
fields itself (a deployment mapping real custom fields keeps them).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

MESSAGE_EVENTS = frozenset({"InboundMessage", "OutboundMessage"})
INBOUND = "inbound"
OUTBOUND = "outbound"


@dataclass(frozen=True)
class MessageEvent:
    location_id: str
    contact_id: str
    direction: str  # inbound | outbound
    at_ms: int
    message_type: str = ""


@dataclass(frozen=True)
class Engagement:
    inbound: int = 0
    outbound: int = 0
    responses: int = 0
    response_seconds_total: float = 0.0
    awaiting_since_ms: int | None = None
    last_message_ms: int = 0

    @property
    def message_count(self) -> int:
        return self.inbound + self.outbound

    @property
    def avg_response_time_seconds(self) -> float | None:
        if self.responses == 0:
            return None
        return self.response_seconds_total / self.responses

    def apply(self, event: MessageEvent) -> Engagement:
        in_order = event.at_ms >= self.last_message_ms
        last = max(self.last_message_ms, event.at_ms)
        if event.direction == OUTBOUND:
            awaiting = self.awaiting_since_ms
            if in_order and awaiting is None:
                awaiting = event.at_ms
            return replace(
                self, outbound=self.outbound + 1, awaiting_since_ms=awaiting, last_message_ms=last
            )
        if in_order and self.awaiting_since_ms is not None:
            seconds = max(0.0, (event.at_ms - self.awaiting_since_ms) / 1000.0)
            return replace(
                self,
                inbound=self.inbound + 1,
                responses=self.responses + 1,
                response_seconds_total=self.response_seconds_total + seconds,
                awaiting_since_ms=None,
                last_message_ms=last,
            )
        return replace(self, inbound=self.inbound + 1, last_message_ms=last)

    def conversation_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"message_count": self.message_count}
        avg = self.avg_response_time_seconds
        if avg is not None:
            data["avg_response_time_seconds"] = round(avg, 3)
        return data

    def to_item(self) -> dict[str, Any]:
        return {
            "inbound": self.inbound,
            "outbound": self.outbound,
            "responses": self.responses,
            "response_seconds_total": self.response_seconds_total,
            "awaiting_since_ms": self.awaiting_since_ms,
            "last_message_ms": self.last_message_ms,
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Engagement:
        awaiting = item.get("awaiting_since_ms")
        return cls(
            inbound=int(item.get("inbound", 0)),
            outbound=int(item.get("outbound", 0)),
            responses=int(item.get("responses", 0)),
            response_seconds_total=float(item.get("response_seconds_total", 0.0)),
            awaiting_since_ms=None if awaiting is None else int(awaiting),
            last_message_ms=int(item.get("last_message_ms", 0)),
        )


def _fields(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    data = payload.get("data")
    return {**payload, **data} if isinstance(data, Mapping) else payload


def message_event(payload: Mapping[str, Any], *, at_ms: int) -> MessageEvent | None:
    """A verified message webhook -> counts-only event (the body is not read). ``at_ms`` is
    the message time the caller parsed (``dateAdded``, else the envelope's ``timestamp``)."""
    fields = _fields(payload)
    event_type = fields.get("type")
    if event_type not in MESSAGE_EVENTS:
        return None
    contact_id = fields.get("contactId")
    location_id = fields.get("locationId")
    if not isinstance(contact_id, str) or not contact_id or not isinstance(location_id, str):
        return None
    # The event type decides: HighLevel's own OutboundMessage example carries
    # "direction": "inbound", so the field cannot be trusted over the type.
    direction = INBOUND if event_type == "InboundMessage" else OUTBOUND
    message_type = fields.get("messageType")
    return MessageEvent(
        location_id=location_id,
        contact_id=contact_id,
        direction=direction,
        at_ms=at_ms,
        message_type=message_type if isinstance(message_type, str) else "",
    )


def with_engagement(request: Mapping[str, Any], engagement: Engagement | None) -> dict[str, Any]:
    """The scoring request with ``conversation_data`` filled from the counters where the
    payload left it absent. The request passed in is not modified."""
    out = dict(request)
    if engagement is None or engagement.message_count == 0:
        return out
    fields = out.get("fields")
    if isinstance(fields, Mapping):
        # A team's columns: the counters under their own names (leadscore.ghl.payloads
        # ENGAGEMENT_COLUMNS); a schema without such columns ignores them.
        filled = dict(fields)
        counters = {**engagement.conversation_data(), "inbound_messages": engagement.inbound,
                    "outbound_messages": engagement.outbound}
        for key, value in counters.items():
            if filled.get(key) is None:
                filled[key] = value
        out["fields"] = filled
        return out
    features = out.get("features")
    if not isinstance(features, Mapping):
        return out
    merged = copy.deepcopy(dict(features))
    conversation = merged.get("conversation_data")
    conversation = dict(conversation) if isinstance(conversation, Mapping) else {}
    for key, value in engagement.conversation_data().items():
        if conversation.get(key) is None:
            conversation[key] = value
    merged["conversation_data"] = conversation
    out["features"] = merged
    return out


def engagement_key(location_id: str, contact_id: str) -> str:
    """The DynamoDB partition key (ARCHITECTURE.md, table keys)."""
    return f"engagement#{location_id}#{contact_id}"
