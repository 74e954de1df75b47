"""What the webhook flow and the scoring routes call into the loop: one object per container.

* ``event_handlers()``: the marketplace events the loop consumes, by ``type``:
  ``OpportunityCreate`` / ``OpportunityStatusUpdate`` / ``OpportunityStageUpdate`` and
  ``ContactTagUpdate`` become outcome records (``OpportunityDelete`` one that withdraws);
  ``InboundMessage`` / ``OutboundMessage`` update
  the engagement counters (no body is read). Each handler answers the JSON body of the 200.
* ``enrich(request, location_id, contact_id)``: the engagement counters fill
  ``conversation_data`` before a contact is scored.
* ``scored(request, result, location_id, source)``: the snapshot (off the request path).

The flow dedupes deliveries (``webhookId``) before calling a handler; a handler that raises
leaves the delivery to the flow's retry path (nothing is half-recorded: outcomes are stored in
one batch call, a counter update is one conditional write).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from leadscore.loop.engagement import MESSAGE_EVENTS, message_event, with_engagement
from leadscore.loop.outcomes import OPPORTUNITY_DELETE, OPPORTUNITY_EVENTS, outcomes_from_event
from leadscore.loop.recorder import LoopRecorder
from leadscore.loop.records import epoch_ms

EventHandler = Callable[[Mapping[str, Any]], dict[str, Any]]
OUTCOME_EVENT_TYPES = frozenset(OPPORTUNITY_EVENTS | {"ContactTagUpdate", OPPORTUNITY_DELETE})


def _event_time_ms(payload: Mapping[str, Any], keys: tuple[str, ...], fallback_ms: int) -> int:
    from leadscore.ghl.auth import parse_timestamp

    data = payload.get("data")
    sources = [payload, data] if isinstance(data, Mapping) else [payload]
    for key in keys:
        for source in sources:
            if key in source:
                try:
                    return epoch_ms(parse_timestamp(source[key]).timestamp())
                except (ValueError, OverflowError, OSError):
                    continue
    return fallback_ms


class LoopHooks:
    def __init__(self, recorder: LoopRecorder) -> None:
        self.recorder = recorder

    def event_handlers(self) -> dict[str, EventHandler]:
        handlers: dict[str, EventHandler] = {t: self.on_outcome_event for t in OUTCOME_EVENT_TYPES}
        if self.recorder.engagement is not None:
            handlers.update({t: self.on_message for t in MESSAGE_EVENTS})
        return handlers

    def on_outcome_event(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        received = self.recorder.now_ms()
        # When it happened: the delivery's own timestamp (retries keep it), else now.
        occurred = _event_time_ms(payload, ("timestamp",), received)
        records = outcomes_from_event(
            payload, self.recorder.rules, occurred_at_ms=occurred, received_at_ms=received
        )
        self.recorder.outcomes(records)
        # the contacts whose outcome is now known (won or lost; not a reopened deal or a
        # withdrawn outcome): the webhook flow stops keeping them for a first model
        settled = sorted({r["contact_id"] for r in records if r["converted"] is not None})
        return {"status": "outcome" if records else "ignored", "outcomes": len(records),
                "settled": settled}

    def on_message(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        store = self.recorder.engagement
        now = self.recorder.now_ms()
        event = message_event(
            payload, at_ms=_event_time_ms(payload, ("dateAdded", "timestamp"), now)
        )
        if event is None or store is None:
            return {"status": "ignored"}
        counters = store.apply(event)
        return {
            "status": "counted",
            "contact_id": event.contact_id,
            "message_count": counters.message_count,
        }

    def enrich(
        self, request: Mapping[str, Any], location_id: str, contact_id: str
    ) -> dict[str, Any]:
        store = self.recorder.engagement
        if store is None or not location_id or not contact_id:
            return dict(request)
        return with_engagement(request, store.get(location_id, contact_id))

    def scored(
        self, request: Mapping[str, Any], result: Mapping[str, Any], location_id: str, source: str
    ) -> None:
        self.recorder.snapshot(request, result, location_id=location_id, source=source)
