"""A tenant's data is its own: what ``ContactDelete`` and an uninstall remove, and where.

Where a location's data lives (every store of the stack):

* the cache table: ``inputs#<loc>#<contact>`` (digest), ``writeback#<loc>#<contact>`` (last
  write), ``engagement#<loc>#<contact>`` (message counters), ``backfill#<loc>#...``
  (checkpoints), ``ratelimit#<loc>`` (budget) and the cached answers ``score#<contact>#...``;
* the installations table: ``location#<loc>`` (configuration, tokens, credential digests);
* the loop's records in the artifact bucket:
  ``loop/{snapshots,outcomes,deletions}/dt=.../location_id=<loc>/...``;
* parked deliveries (``ghl/parked/``, each record names its location; those waiting for a
  location's first model are kept in a folder per contact, `leadscore.ghl.parking.waiting_folder`).

``ContactDelete`` (`Eraser.forget_contact`, on the webhook path, so only keyed writes): the
contact's digest, write-back state, counters and the deliveries it left waiting for a first
model (they hold its personal data, and replayed they would score a deleted contact) are
deleted, its cached answers dropped from
this container's memory (the remote cached answers expire within ``CACHE_TTL_SECONDS``; they
are only ever served to a request carrying the same contact id and the same inputs), and a
``deletion`` record is written to the loop's stream. The labelled export leaves out every
contact with a deletion record (`deleted_pairs`, `without_deleted`), and `compact` rewrites
the stored snapshot and outcome files without the contact's lines (``ghlctl purge``).

An uninstall schedules the whole location (``purge_after`` on its record, a grace period of
``leadscore.ghl.lifecycle.PURGE_GRACE_SECONDS``); `Eraser.purge_location` removes all of the
above (``ghlctl purge --location X`` now, ``ghlctl purge --due`` for every location whose
grace period is over).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from leadscore.ghl.digest import digest_key
from leadscore.ghl.parking import drop_waiting
from leadscore.ghl.write_plan import state_key
from leadscore.loop.engagement import engagement_key
from leadscore.loop.records import (
    DELETION,
    RECORD_TYPES,
    SCHEMA_VERSION,
    day,
    epoch_ms,
    iso_ms,
    partition_part,
    record_id,
    table_prefix,
)
from leadscore.scoring.cache import KEY_PREFIX as ANSWER_PREFIX

#: A deletion record's contact for "the whole location".
WHOLE_LOCATION = "*"


class KeyedItems(Protocol):
    """A DynamoDB table by partition key (`adapters.purge.DynamoItems`)."""

    def delete(self, keys: Iterable[str]) -> int: ...

    def keys_with_prefixes(self, prefixes: Sequence[str]) -> list[str]: ...


class Readable(Protocol):
    """Record files to read (any `ObjectStore`: the export's own store)."""

    def list(self, prefix: str) -> list[str]: ...

    def get_bytes(self, key: str) -> bytes: ...


class Objects(Readable, Protocol):
    """The loop's record files to rewrite (`adapters.purge.S3Objects`)."""

    def put_bytes(self, key: str, data: bytes, content_type: str = ...) -> None: ...

    def delete(self, key: str) -> None: ...


class Parked(Protocol):
    def list(self) -> Iterable[Any]: ...

    def ids(self, folder: str = "") -> Iterable[str]: ...

    def delete(self, parked_id: str) -> None: ...


Sender = Callable[[Sequence[dict[str, Any]]], Sequence[int]]


def contact_keys(location_id: str, contact_id: str) -> list[str]:
    """The cache-table items of one contact (its cached answers aside)."""
    return [digest_key(location_id, contact_id), state_key(location_id, contact_id),
            engagement_key(location_id, contact_id)]


def location_prefixes(location_id: str) -> list[str]:
    """Every cache-table key prefix that belongs to one location."""
    return [f"inputs#{location_id}#", f"writeback#{location_id}#",
            f"engagement#{location_id}#", f"backfill#{location_id}#"]


def location_keys(location_id: str) -> list[str]:
    """Cache-table items of one location with an exact key (its request budget)."""
    return [f"ratelimit#{location_id}"]


def deletion_record(location_id: str, contact_id: str, at_ms: int) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION, "record_type": DELETION,
        "deletion_id": record_id(DELETION, location_id, contact_id, at_ms),
        "location_id": location_id, "contact_id": contact_id,
        "deleted_at": iso_ms(at_ms), "deleted_at_ms": at_ms, "dt": day(at_ms),
    }


def _lines(data: bytes) -> list[dict[str, Any]]:
    out = []
    for line in data.splitlines():
        if line.strip():
            value = json.loads(line)
            if isinstance(value, dict):
                out.append(value)
    return out


#: (the deleted (location, contact) pairs, the wholly deleted locations)
Deleted = tuple[set[tuple[str, str]], set[str]]


def deleted_pairs(objects: Readable) -> Deleted:
    """(the deleted (location, contact) pairs, the wholly deleted locations) from the stored
    deletion records."""
    pairs: set[tuple[str, str]] = set()
    locations: set[str] = set()
    for key in objects.list(table_prefix(DELETION)):
        for record in _lines(objects.get_bytes(key)):
            location, contact = str(record.get("location_id")), str(record.get("contact_id"))
            if contact == WHOLE_LOCATION:
                locations.add(location)
            else:
                pairs.add((location, contact))
    return pairs, locations


def without_deleted(rows: Sequence[Mapping[str, Any]], objects: Readable, *,
                    deleted: Deleted | None = None) -> list[dict[str, Any]]:
    """Labelled rows minus those of deleted contacts and locations (the export's filter).
    ``deleted``: the records already read (`deleted_pairs`), so a caller that needs them
    again reads every deletion file once."""
    pairs, locations = deleted if deleted is not None else deleted_pairs(objects)
    return [dict(r) for r in rows
            if str(r["location_id"]) not in locations
            and (str(r["location_id"]), str(r["contact_id"])) not in pairs]


def _location_part(location_id: str) -> str:
    return f"/location_id={partition_part(location_id)}/"


def compact(objects: Objects, location_id: str, contacts: set[str]) -> int:
    """Rewrite the location's snapshot and outcome files without the contacts' lines; files
    left empty are deleted. Returns the number of lines removed."""
    removed = 0
    for kind in RECORD_TYPES:
        if kind == DELETION:
            continue
        for key in objects.list(table_prefix(kind)):
            if _location_part(location_id) not in key:
                continue
            records = _lines(objects.get_bytes(key))
            kept = [r for r in records if str(r.get("contact_id")) not in contacts]
            if len(kept) == len(records):
                continue
            removed += len(records) - len(kept)
            if kept:
                body = "".join(json.dumps(r, separators=(",", ":"), sort_keys=True) + "\n"
                               for r in kept)
                objects.put_bytes(key, body.encode("utf-8"), "application/x-ndjson")
            else:
                objects.delete(key)
    return removed


class Eraser:
    """Deletes a contact's or a location's data from the stores it was given."""

    def __init__(
        self,
        items: KeyedItems | None,
        *,
        installations: KeyedItems | None = None,
        objects: Objects | None = None,
        sender: Sender | None = None,
        memory_forget: Callable[[str], int] | None = None,
        parked: Parked | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.items = items
        self.installations = installations
        self.objects = objects
        self.sender = sender
        self.memory_forget = memory_forget
        self.parked = parked
        self.clock = clock

    def forget_contact(self, location_id: str, contact_id: str) -> dict[str, Any]:
        """``ContactDelete``: keyed deletes and a deletion record (see the module text)."""
        removed = self.items.delete(contact_keys(location_id, contact_id)) if self.items else 0
        waiting = 0 if self.parked is None else drop_waiting(self.parked, location_id,
                                                              contact_id)
        if self.memory_forget is not None:
            self.memory_forget(f"{ANSWER_PREFIX}{contact_id}#")
        marked = False
        if self.sender is not None:
            failed = self.sender([deletion_record(location_id, contact_id,
                                                  epoch_ms(self.clock()))])
            if failed:
                raise RuntimeError("deletion record not stored")
            marked = True
        return {"items_removed": removed, "waiting_removed": waiting, "records_marked": marked}

    def purge_location(self, location_id: str) -> dict[str, int]:
        """Everything of one location, from every store this eraser was given."""
        done = {"items": 0, "answers": 0, "record_files": 0, "parked": 0, "installation": 0}
        if self.items is not None:
            keys = self.items.keys_with_prefixes(location_prefixes(location_id))
            contacts = {k.split("#", 2)[2] for k in keys
                        if k.count("#") >= 2 and not k.startswith("backfill#")}
            done["items"] = self.items.delete(keys + location_keys(location_id))
            if contacts:
                answers = self.items.keys_with_prefixes(
                    [f"{ANSWER_PREFIX}{c}#" for c in sorted(contacts)])
                done["answers"] = self.items.delete(answers)
        if self.objects is not None:
            for kind in RECORD_TYPES:
                for key in self.objects.list(table_prefix(kind)):
                    if _location_part(location_id) in key:
                        self.objects.delete(key)
                        done["record_files"] += 1
        if self.parked is not None:
            for record in list(self.parked.list()):
                if getattr(record, "location_id", "") == location_id:
                    self.parked.delete(record.parked_id)
                    done["parked"] += 1
        if self.installations is not None:
            done["installation"] = self.installations.delete([f"location#{location_id}"])
        return done
