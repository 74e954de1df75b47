"""The one object the handlers call to record what the loop needs, built once per container.

* ``snapshot(...)``: off the request path (``BatchingSink``): appends a closure, nothing else.
* ``outcomes(...)``: synchronous (one ``PutRecordBatch``): an outcome is rare and cannot be
  rebuilt, so the webhook is acknowledged only after it is stored; a failure raises and the
  webhook flow keeps the delivery (parked / retried) instead of losing it.
* ``engagement``: the message counters store (DynamoDB), or None.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from leadscore.loop.engagement import Engagement, MessageEvent
from leadscore.loop.outcomes import OutcomeRuleBook
from leadscore.loop.records import epoch_ms
from leadscore.loop.sink import BatchingSink, Sender
from leadscore.loop.snapshots import build_snapshot


class EngagementStore(Protocol):
    def get(self, location_id: str, contact_id: str) -> Engagement | None: ...
    def apply(self, event: MessageEvent) -> Engagement: ...


class RecordsNotStored(RuntimeError):
    """Outcome records that the record stream did not accept."""


class LoopRecorder:
    def __init__(
        self,
        sender: Sender | None,
        *,
        rules: OutcomeRuleBook | None = None,
        engagement: EngagementStore | None = None,
        snapshots_enabled: bool = True,
        max_age_seconds: float = 1.0,
        background: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sender = sender
        self.rules = rules or OutcomeRuleBook()
        self.engagement = engagement
        self._clock = clock
        self.sink: BatchingSink | None = None
        if sender is not None and snapshots_enabled:
            self.sink = BatchingSink(
                sender, max_age_seconds=max_age_seconds, background=background
            )

    def now_ms(self) -> int:
        return epoch_ms(self._clock())

    def snapshot(
        self,
        request: Mapping[str, Any],
        result: Mapping[str, Any],
        *,
        location_id: str,
        source: str,
        point_in_time: bool = True,
    ) -> None:
        """Record one scored lead (cheap: the record is built on the sink's thread)."""
        if self.sink is None:
            return
        at = self.now_ms()

        def make() -> dict[str, Any]:
            return build_snapshot(
                request,
                result,
                location_id=location_id,
                source=source,
                scored_at_ms=at,
                point_in_time=point_in_time,
            )

        self.sink.put(make)

    def outcomes(self, records: Sequence[dict[str, Any]]) -> None:
        """Store outcome records now; raises RecordsNotStored when any was not stored."""
        if not records or self.sender is None:
            return
        failed = self.sender(list(records))
        if failed:
            raise RecordsNotStored(f"{len(failed)} of {len(records)} outcome records not stored")

    def flush(self) -> None:
        if self.sink is not None:
            self.sink.flush()
