"""The backfill's moving parts over HighLevel: contacts paged by ``POST /contacts/search``,
historical opportunities by ``GET /opportunities/search``, and the per-contact step (map the
contact's fields exactly as a webhook's, add the engagement counters, score, snapshot, queue
the write-back). Used by the Lambda job (functions/backfill) and the CLI (tools/backfill.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from leadscore.errors import InvalidInput
from leadscore.ghl.installations import InstalledLocation
from leadscore.ghl.messages import WritebackMessage, score_message
from leadscore.ghl.payloads import WebhookError, location_fields, parse_webhook, utc_now_iso
from leadscore.loop.backfill import ContactOutcome, ContactsPage
from leadscore.loop.engagement import with_engagement
from leadscore.loop.outcomes import OutcomeRuleBook, outcomes_from_opportunities
from leadscore.loop.recorder import LoopRecorder
from leadscore.scoring.lead_score import goes_to_the_crm
from leadscore.scoring.scoped import Unscored
from leadscore.scoring.service import Scorer, scorer_schema

TERMINAL_STATUSES = ("won", "lost", "abandoned")


class SearchApi(Protocol):
    def search_contacts(self, body: Mapping[str, Any]) -> Any: ...
    def search_opportunities(self, query: Mapping[str, str]) -> Any: ...


class Budget(Protocol):
    """The per-location request budget (writeback lane's token bucket)."""

    def take(self, location_id: str, n: int = 1) -> float: ...


class Queue(Protocol):
    def send(self, message: WritebackMessage) -> str: ...


def _wait_for_budget(
    budget: Budget | None, location_id: str, sleep: Callable[[float], None]
) -> None:
    while budget is not None:
        wait = budget.take(location_id, 1)
        if wait <= 0:
            return
        sleep(wait)


@dataclass
class GhlContactSource:
    """Contacts of a location, oldest first, paged with ``searchAfter`` (no 10,000 limit)."""

    api: Callable[[str], SearchApi]
    budget: Budget | None = None
    sleep: Callable[[float], None] = time.sleep

    def page(self, location_id: str, cursor: Any, limit: int) -> ContactsPage:
        body: dict[str, Any] = {"locationId": location_id, "pageLimit": limit}
        if cursor:
            body["searchAfter"] = cursor
        else:
            body["page"] = 1
        _wait_for_budget(self.budget, location_id, self.sleep)
        answer = self.api(location_id).search_contacts(body)
        contacts = [c for c in answer.get("contacts", []) if isinstance(c, Mapping)]
        total = int(answer.get("total") or 0)
        after = contacts[-1].get("searchAfter") if contacts else None
        more = len(contacts) == limit and after is not None
        return ContactsPage(contacts, total, after if more else None)


def historical_opportunities(
    api: SearchApi,
    location_id: str,
    *,
    budget: Budget | None = None,
    sleep: Callable[[float], None] = time.sleep,
    limit: int = 100,
) -> Iterator[Mapping[str, Any]]:
    """Every won / lost / abandoned opportunity of the location (``startAfter`` paging)."""
    for status in TERMINAL_STATUSES:
        query = {"location_id": location_id, "status": status, "limit": str(limit)}
        while True:
            _wait_for_budget(budget, location_id, sleep)
            answer = api.search_opportunities(query)
            yield from (o for o in answer.get("opportunities", []) if isinstance(o, Mapping))
            meta = answer.get("meta") or {}
            if not meta.get("startAfterId") or not meta.get("startAfter"):
                break
            query = {
                **query,
                "startAfter": str(meta["startAfter"]),
                "startAfterId": str(meta["startAfterId"]),
            }


def _closed_at_ms(opportunity: Mapping[str, Any]) -> int:
    from leadscore.ghl.auth import parse_timestamp

    for key in ("lastStatusChangeAt", "updatedAt", "createdAt"):
        try:
            return int(parse_timestamp(opportunity.get(key)).timestamp() * 1000)
        except (ValueError, OverflowError, OSError):
            continue
    return 0


def import_outcomes(
    api: SearchApi,
    location_id: str,
    recorder: LoopRecorder,
    rules: OutcomeRuleBook,
    *,
    budget: Budget | None = None,
) -> set[str]:
    """``--outcomes``: historical opportunities -> outcome records marked not point-in-time.
    Returns the contact ids that got one (their current fields are snapshotted, also marked
    not point-in-time, when the contacts are scored)."""
    records = outcomes_from_opportunities(
        location_id,
        historical_opportunities(api, location_id, budget=budget),
        rules,
        received_at_ms=recorder.now_ms(),
        occurred_at_ms_of=_closed_at_ms,
    )
    for start in range(0, len(records), 400):
        recorder.outcomes(records[start : start + 400])
    return {r["contact_id"] for r in records}


@dataclass
class ContactStep:
    """Score one contact the way a ContactUpdate webhook would be scored."""

    scorer: Callable[[], Scorer]
    recorder: LoopRecorder
    queue: Queue | None
    #: the location's installation: how its fields are read and its scores classed, as a
    #: webhook of the location would be
    location_for: Callable[[str], InstalledLocation] = lambda location_id: InstalledLocation()
    closed_contacts: set[str] = field(default_factory=set)
    clock: Callable[[], float] = time.time
    _counters: dict[str, Any] | None = None
    _pending: list[WritebackMessage] = field(default_factory=list)

    def begin_page(self, location_id: str, contacts: Sequence[Mapping[str, Any]]) -> None:
        """Read the page's engagement counters in batches rather than one call per contact."""
        store = self.recorder.engagement
        get_many = getattr(store, "get_many", None)
        if get_many is None:
            self._counters = None
            return
        ids = [str(c.get("id")) for c in contacts if c.get("id")]
        self._counters = get_many(location_id, ids)

    def end_page(self, location_id: str) -> None:
        """Queue the page's write-backs (10 per call where the queue can batch)."""
        pending, self._pending = self._pending, []
        if not pending or self.queue is None:
            return
        send_batch = getattr(self.queue, "send_batch", None)
        if send_batch is not None:
            send_batch(pending)
        else:
            for message in pending:
                self.queue.send(message)

    def __call__(self, location_id: str, contact: Mapping[str, Any]) -> str:
        payload = {**contact, "type": "ContactUpdate", "locationId": location_id}
        location = self.location_for(location_id)
        try:
            # the served bundle's own columns when it has them, as the webhook reads them
            parsed = parse_webhook(payload, location.field_map(), scorer_schema(self.scorer()))
        except (WebhookError, InvalidInput):
            return ContactOutcome.FAILED
        if not parsed.request:
            return ContactOutcome.SKIPPED
        request = parsed.request
        engagement = self.recorder.engagement
        if self._counters is not None:
            request = with_engagement(request, self._counters.get(parsed.contact_id))
        elif engagement is not None:
            request = with_engagement(request, engagement.get(location_id, parsed.contact_id))
        try:
            # the location picks the model scope (leadscore.scoring.scopes)
            score = self.scorer().score({**request, "location_id": location_id}, explain=False)
        except InvalidInput:
            return ContactOutcome.FAILED
        except Unscored:
            # No model may score this location: nothing is written to HighLevel. A contact
            # whose outcome is known is kept with the location's own fields and no score:
            # the location's first model learns from them (leadscore.loop.location_export).
            if parsed.contact_id in self.closed_contacts:
                fields = location_fields(payload, location.field_map())
                if fields:
                    self.recorder.snapshot(
                        {"contact_id": parsed.contact_id, "fields": fields},
                        {"contact_id": parsed.contact_id, "scored": False},
                        location_id=location_id, source="backfill", point_in_time=False)
            return ContactOutcome.SKIPPED
        self.recorder.snapshot(request, score, location_id=location_id, source="backfill")
        if parsed.contact_id in self.closed_contacts:
            self.recorder.snapshot(
                request, score, location_id=location_id, source="backfill", point_in_time=False
            )
        if self.queue is not None and goes_to_the_crm(score):
            self._pending.append(
                score_message(
                    location.classify(score),
                    location_id=location_id,
                    received_at=utc_now_iso(self.clock()),
                    tags=contact.get("tags"),
                )
            )
        return ContactOutcome.SCORED
