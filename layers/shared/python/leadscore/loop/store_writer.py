"""Local mode's stand-in for Firehose: a batch of records -> one JSON Lines object per
partition, in the same layout Firehose's dynamic partitioning writes in AWS."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from leadscore.loop.records import partition_prefix
from leadscore.registry.store import ObjectStore


def record_line(record: dict[str, Any]) -> bytes:
    """One record as the JSON line stored (Firehose and local mode alike)."""
    return (json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n").encode("utf-8")


def lines_by_partition(records: Sequence[dict[str, Any]]) -> dict[str, list[bytes]]:
    """The records' stored lines grouped by their partition prefix, in arrival order."""
    groups: dict[str, list[bytes]] = defaultdict(list)
    for record in records:
        prefix = partition_prefix(
            str(record["record_type"]), str(record["dt"]), str(record["location_id"])
        )
        groups[prefix].append(record_line(record))
    return groups


class StoreRecordWriter:
    """A ``BatchingSink`` sender writing into an ``ObjectStore`` (a directory or a bucket)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._sequence = 0

    def __call__(self, records: Sequence[dict[str, Any]]) -> Sequence[int]:
        groups = lines_by_partition(records)
        for prefix, lines in groups.items():
            self._sequence += 1
            first = json.loads(lines[0])
            name = first.get("snapshot_id") or first.get("outcome_id") or "batch"
            key = f"{prefix}{self._sequence:08d}-{name}.jsonl"
            self.store.put_bytes(key, b"".join(lines), "application/x-ndjson")
        return []


class DirectoryRecordWriter:
    """Local mode: appends each batch to one file per partition and process (the same layout,
    far fewer files than one object per batch; DuckDB reads them all)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.name = f"part-{os.getpid()}.jsonl"

    def __call__(self, records: Sequence[dict[str, Any]]) -> Sequence[int]:
        groups = lines_by_partition(records)
        for prefix, lines in groups.items():
            directory = self.root / prefix
            directory.mkdir(parents=True, exist_ok=True)
            with open(directory / self.name, "ab") as fh:
                fh.write(b"".join(lines))
        return []
