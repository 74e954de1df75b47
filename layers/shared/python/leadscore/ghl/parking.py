"""Parked deliveries: verified HighLevel deliveries that could not be processed when they came.

HighLevel retries every non-2xx answer and pauses apps whose success rate drops, so a
verified delivery is always answered 2xx. What cannot be processed at that moment (a body that
is not JSON, lead values that are not numbers, a delivery older than the freshness window, an
install step HighLevel refused, the write-back queue down) is kept here with its reason,
counted (metric ``WebhookParked``) and replayed by an operator with
``tools/ghlctl.py replay`` once the cause is fixed. A replay skips authentication (the
delivery was verified when it came), deduplication and the freshness window.

A parked record holds the raw body (it may contain the lead's personal data: it is kept only
as long as the store's lifecycle allows, 30 days by default) and never a secret: headers are
not kept, and `without_secrets` takes the workflow secret out of the body (Custom Data) and
out of any other place the caller put the secret it presented.
"""

from __future__ import annotations

import base64
import hashlib
import json
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from typing import Any, Protocol

from leadscore import jsonsafe
from leadscore.identifiers import is_safe_id

#: Reasons (the start of `ParkedDelivery.reason`), for counting and for the CLI's filter.
NOT_JSON = "body is not JSON"
INVALID_LEAD = "invalid lead data"
TOO_OLD = "delivery older than the freshness window"
NO_TIMESTAMP = "signed delivery without a usable timestamp"
FUTURE = "timestamp in the future"
INSTALL_FAILED = "install step failed"
QUEUE_DOWN = "write-back queue refused"
NOT_A_WEBHOOK = "not a HighLevel webhook"
#: A contact on a team's own columns that came before any model was served: it cannot be
#: read, let alone scored, until a model says which columns it has; queued for the write-back
#: in the real-estate form it would be refused by the team's model and dead-lettered. Kept
#: in `WAITING_FOLDER` and replayed by the webhook flow once a model serves
#: (`leadscore.ghl.webhook.replay_waiting`).
NO_MODEL = "no model yet for the team's own columns"
WAITING_FOLDER = "awaiting-model/"


def waiting_folder(location_id: str, contact_id: str) -> str:
    """Where a contact's waiting deliveries are kept: one folder per contact, so the replay
    finds each contact's newest delivery from the ids alone (`by_contact`)."""
    if not (is_safe_id(location_id) and is_safe_id(contact_id)):
        return WAITING_FOLDER
    return f"{WAITING_FOLDER}{location_id}/{contact_id}/"


class WaitingStore(Protocol):
    """What `drop_waiting` needs of a `ParkedStore`."""

    def ids(self, folder: str = "") -> Iterable[str]: ...

    def delete(self, parked_id: str) -> None: ...


def drop_waiting(store: WaitingStore, location_id: str, contact_id: str) -> int:
    """Delete the deliveries a contact left waiting for a first model; returns how many. For
    a contact deleted in HighLevel, and for one whose outcome came while it waited (a score
    would predict what has already happened; its inputs were recorded when it came)."""
    folder = waiting_folder(location_id, contact_id)
    if folder == WAITING_FOLDER:  # an id unfit for a key: never the whole folder
        return 0
    parked_ids = list(store.ids(folder))
    for parked_id in parked_ids:
        store.delete(parked_id)
    return len(parked_ids)


def _contact_key(parked_id: str) -> str:
    parts = parked_id[len(WAITING_FOLDER):].split("/")
    # <location>/<contact>/<date>/<time>-<digest>; a record parked before the per-contact
    # folders (<date>/<time>-<digest>) is its own group
    return "/".join(parts[:2]) if len(parts) == 4 else parked_id


def by_contact(ids: Iterable[str]) -> Iterator[tuple[str, ...]]:
    """The waiting ids (sorted, as the stores list them) grouped by contact, each contact's
    newest first. Replayed in that order, the newest delivery is scored and each older one
    is answered ``stale`` by the flow's own check of the delivery's time (cheap: nothing
    scored or written); a retry that came late with newer content is still scored."""
    for _, group in groupby(ids, key=_contact_key):
        yield tuple(sorted(group, reverse=True))


@dataclass(frozen=True)
class ParkedDelivery:
    parked_id: str
    reason: str
    received_at: str
    scheme: str  # how it was verified: ed25519, rsa, secret, custom-data-secret
    body: bytes
    location_id: str = ""
    event_type: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "parked_id": self.parked_id, "reason": self.reason,
            "received_at": self.received_at, "scheme": self.scheme,
            "location_id": self.location_id, "event_type": self.event_type,
            "body_b64": base64.b64encode(self.body).decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ParkedDelivery:
        return cls(
            parked_id=str(data["parked_id"]), reason=str(data.get("reason", "")),
            received_at=str(data.get("received_at", "")), scheme=str(data.get("scheme", "")),
            body=base64.b64decode(str(data.get("body_b64", ""))),
            location_id=str(data.get("location_id", "")),
            event_type=str(data.get("event_type", "")),
        )


def new_parked(body: bytes, reason: str, scheme: str, now: float, *, location_id: str = "",
               event_type: str = "", folder: str = "") -> ParkedDelivery:
    """A record whose id sorts by time and is unique per body (the same body parked twice for
    the same reason in the same second is one record); ``folder`` keeps a kind apart
    (`WAITING_FOLDER`)."""
    stamp = datetime.fromtimestamp(now, tz=UTC)
    digest = hashlib.sha256(body + reason.encode()).hexdigest()[:16]
    parked_id = f"{folder}{stamp:%Y-%m-%d}/{stamp:%H%M%S}-{digest}"
    return ParkedDelivery(parked_id=parked_id, reason=reason,
                          received_at=stamp.isoformat(timespec="seconds").replace("+00:00", "Z"),
                          scheme=scheme, body=body, location_id=location_id,
                          event_type=event_type)


#: What replaces a secret in a parked body.
REDACTED = "[redacted]"
#: Body keys that hold a credential (the free Webhook action's Custom Data secret).
_SECRET_KEYS = ("leadscore_secret",)


def without_secrets(body: bytes, presented: str = "") -> bytes:
    """The body to park: Custom Data secret fields removed (JSON bodies), and the secret the
    caller presented replaced wherever else it appears (a body that is not JSON included)."""
    try:
        payload = jsonsafe.loads(body.decode("utf-8"))
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        changed = False
        for holder in (payload, payload.get("customData")):
            if isinstance(holder, dict):
                for key in _SECRET_KEYS:
                    if key in holder:
                        holder[key] = REDACTED
                        changed = True
        if changed:
            body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    if presented:
        body = body.replace(presented.encode("utf-8"), REDACTED.encode())
        # the same secret as JSON text (escaped characters) where it was written that way
        escaped = json.dumps(presented)[1:-1].encode()
        if escaped != presented.encode("utf-8"):
            body = body.replace(escaped, REDACTED.encode())
    return body


class ParkedStore(Protocol):
    def park(self, record: ParkedDelivery) -> None: ...

    def list(self, folder: str = "") -> Iterable[ParkedDelivery]:
        """The records (those whose id starts with ``folder``), oldest first."""
        ...

    def ids(self, folder: str = "") -> Iterable[str]:
        """The ids alone (no record read), sorted."""
        ...

    def get(self, parked_id: str) -> ParkedDelivery: ...

    def delete(self, parked_id: str) -> None: ...


class MemoryParkedStore:
    """In-process store (tests, `make demo`, `make simulate`). The ids are kept sorted as
    they come and go: a folder is listed by bisection, not by sorting every record (with
    tens of thousands of contacts waiting for a first model, every outcome event lists its
    contact's folder)."""

    def __init__(self) -> None:
        self.records: dict[str, ParkedDelivery] = {}
        self._sorted: list[str] = []

    def park(self, record: ParkedDelivery) -> None:
        if record.parked_id not in self.records:
            insort(self._sorted, record.parked_id)
        self.records[record.parked_id] = record

    def list(self, folder: str = "") -> Iterable[ParkedDelivery]:
        return [self.records[k] for k in self.ids(folder)]

    def ids(self, folder: str = "") -> Iterable[str]:
        keys = self._sorted
        at = bisect_left(keys, folder)
        found: list[str] = []
        while at < len(keys) and keys[at].startswith(folder):
            found.append(keys[at])
            at += 1
        return found

    def get(self, parked_id: str) -> ParkedDelivery:
        return self.records[parked_id]

    def delete(self, parked_id: str) -> None:
        if self.records.pop(parked_id, None) is not None:
            at = bisect_left(self._sorted, parked_id)
            del self._sorted[at]


def dumps(record: ParkedDelivery) -> bytes:
    return json.dumps(record.to_json(), separators=(",", ":")).encode("utf-8")
