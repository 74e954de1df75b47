"""What the export function can be asked, in one place: the event its senders build (the
monitoring run on confirmed drift, a location's finished backfill, an operator) and the export
function reads. Each sender once spelled its own dict, and the reader its own keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ExportRequest:
    #: one location's own export (never the agency's); None: the agency's export, and with
    #: per-location models on, every location's
    location_id: str | None = None
    #: the location's drift was confirmed: exported whatever its count of new outcomes
    drift: bool = False
    #: the agency's export without the new-outcomes minimum (never without its idempotence)
    force: bool = False
    #: the simulation's clock (milliseconds since the epoch); None: the real one
    now_ms: int | None = None

    def event(self) -> dict[str, Any]:
        """The Lambda event that asks for this export."""
        event: dict[str, Any] = {}
        if self.location_id is not None:
            event["location_id"] = self.location_id
            if self.drift:
                event["drift"] = True
        elif self.force:
            event["force"] = True
        if self.now_ms is not None:
            event["now_ms"] = self.now_ms
        return event

    @classmethod
    def of(cls, event: Any) -> ExportRequest:
        """The request an event makes; anything but a dict (a scheduler's empty input) is the
        ordinary daily export. Only a literal ``true`` turns ``drift`` or ``force`` on."""
        if not isinstance(event, dict):
            return cls()
        location = event.get("location_id")
        now_ms = event.get("now_ms")
        return cls(location_id=None if location is None else str(location),
                   drift=location is not None and event.get("drift") is True,
                   force=location is None and event.get("force") is True,
                   now_ms=now_ms if isinstance(now_ms, int) and not isinstance(now_ms, bool)
                   else None)
