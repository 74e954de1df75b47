"""What the snapshot and outcome records share: schema version, times, ids, storage layout.

Both kinds are JSON objects, one per line, stored under
``loop/<kind>s/dt=YYYY-MM-DD/location_id=<loc>/`` (ARCHITECTURE.md, "Closing the loop").
``dt`` is taken from the record itself (the UTC date of ``scored_at`` / ``received_at``),
never from the arrival time, so the same record always lands in the same partition.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

SCHEMA_VERSION = 1
SNAPSHOT = "snapshot"
OUTCOME = "outcome"
#: a contact or a whole location whose records must go (`leadscore.loop.deletion`)
DELETION = "deletion"
RECORD_TYPES = (SNAPSHOT, OUTCOME, DELETION)
ROOT_PREFIX = "loop/"

#: Location id used for API calls that name no location (POST /score from a script).
NO_LOCATION = "_none"

_SAFE_PART = re.compile(r"[^A-Za-z0-9_\-]")


def iso_ms(epoch_ms: int) -> str:
    """1796032800123 -> '2026-12-01T10:00:00.123Z'."""
    moment = datetime.fromtimestamp(epoch_ms / 1000.0, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def day(epoch_ms: int) -> str:
    """The UTC date of an epoch-millisecond time, 'YYYY-MM-DD' (the ``dt`` partition)."""
    return datetime.fromtimestamp(epoch_ms / 1000.0, tz=UTC).strftime("%Y-%m-%d")


def epoch_ms(seconds: float) -> int:
    return round(seconds * 1000.0)


def record_id(*parts: Any) -> str:
    """A deterministic 32-hex id of the parts (the same event twice -> the same id)."""
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def partition_part(value: str) -> str:
    """A location id made safe for an S3 key segment / Hive partition value."""
    return _SAFE_PART.sub("_", value)[:128] or NO_LOCATION


def table_prefix(record_type: str) -> str:
    """'loop/snapshots/' or 'loop/outcomes/'."""
    if record_type not in RECORD_TYPES:
        raise ValueError(f"unknown record type {record_type!r}")
    return f"{ROOT_PREFIX}{record_type}s/"


def partition_prefix(record_type: str, dt: str, location_id: str) -> str:
    """'loop/snapshots/dt=2026-12-01/location_id=loc1/' (what Firehose's dynamic
    partitioning writes and what local mode writes too)."""
    return f"{table_prefix(record_type)}dt={dt}/location_id={partition_part(location_id)}/"
