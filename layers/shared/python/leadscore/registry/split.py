"""Split an uploaded training file into the part the job trains on and the gate's part.

The retrain function streams the checked upload through `split_lines` once, before it starts
a job: rows go to the training part (the job's only channel) or to the gate part (kept under
``evaluation/<job>/``, never given to the job), and the promote function measures the
candidate on the gate part. Deterministic: a row's side depends only on its own bytes
(sha256), so the same upload always splits the same way, duplicates of a row stay on one side
(no leak of a row into its own evaluation), and a re-delivered S3 event writes the same parts.

Rows are lines (CSV without quoted line breaks, JSON Lines); a CSV's header goes to both parts.
Pure logic over iterables of bytes lines; no AWS in here.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

GATE_FRACTION = 0.2
GATE_MAX_ROWS = 50_000  # the gate needs thousands of rows, not millions; the rest trains
_BUCKETS = 10_000
TARGET = "converted"
SPLIT_METHOD = (
    f"row -> gate part iff int(sha256(row bytes)[:8], 16) mod {_BUCKETS} < "
    f"{int(GATE_FRACTION * _BUCKETS)} (while the gate part holds fewer than {GATE_MAX_ROWS} "
    "rows); CSV header in both parts; blank lines dropped"
)


def goes_to_gate(row: bytes) -> bool:
    digest = hashlib.sha256(row).hexdigest()
    return int(digest[:8], 16) % _BUCKETS < int(GATE_FRACTION * _BUCKETS)


@dataclass
class PartCounts:
    rows: int = 0
    converted: int = 0
    not_converted: int = 0
    unlabelled: int = 0  # target missing or not 0/1: the job or the gate refuses/skips them

    def add(self, label: int | None) -> None:
        self.rows += 1
        if label == 1:
            self.converted += 1
        elif label == 0:
            self.not_converted += 1
        else:
            self.unlabelled += 1

    def as_dict(self) -> dict[str, int]:
        return {"rows": self.rows, "converted": self.converted,
                "not_converted": self.not_converted, "unlabelled": self.unlabelled}


@dataclass
class SplitResult:
    train: PartCounts = field(default_factory=PartCounts)
    gate: PartCounts = field(default_factory=PartCounts)

    def record(self, source_key: str, source_version: str | None) -> dict[str, Any]:
        """`evaluation/<job>/split.json`: what the promote function trusts about the data."""
        return {"source_key": source_key, "source_version": source_version,
                "train": self.train.as_dict(), "gate": self.gate.as_dict(),
                "method": SPLIT_METHOD}


def _label(value: Any) -> int | None:
    text = str(value).strip().lower()
    if text in ("1", "1.0", "true"):
        return 1
    if text in ("0", "0.0", "false"):
        return 0
    return None


def _csv_labeller(header: bytes, target: str, positive: tuple[str, ...]
                  ) -> Callable[[bytes], int | None]:
    columns = [c.strip() for c in next(csv.reader(io.StringIO(
        header.decode("utf-8-sig", errors="replace"))), [])]
    index = columns.index(target) if target in columns else -1
    wanted = {p.strip().lower() for p in positive}

    def label(row: bytes) -> int | None:
        if index < 0:
            return None
        cells = next(csv.reader(io.StringIO(row.decode("utf-8", errors="replace"))), [])
        if index >= len(cells):
            return None
        if wanted:  # a team's own target: its positive values, anything else non-empty is 0
            text = cells[index].strip().lower()
            return (1 if text in wanted else 0) if text else None
        return _label(cells[index])

    return label


def _jsonl_label(row: bytes) -> int | None:
    try:
        record = json.loads(row)
    except ValueError:
        return None
    return _label(record.get(TARGET)) if isinstance(record, dict) else None


def split_lines(
    lines: Iterable[bytes],
    *,
    csv_format: bool,
    write_train: Callable[[bytes], object],
    write_gate: Callable[[bytes], object],
    target: str = TARGET,
    positive: tuple[str, ...] = (),
) -> SplitResult:
    """Stream `lines` (each without or with its line ending) into the two writers.

    Every written row ends with b"\\n". Returns the row and class counts of each part.
    """
    result = SplitResult()
    rows: Iterator[bytes] = (line.rstrip(b"\r\n") for line in lines)
    label: Callable[[bytes], int | None] = _jsonl_label
    if csv_format:
        header = next((r for r in rows if r.strip()), None)
        if header is None:
            return result
        write_train(header + b"\n")
        write_gate(header + b"\n")
        label = _csv_labeller(header, target, positive)
    for row in rows:
        if not row.strip():
            continue
        if result.gate.rows < GATE_MAX_ROWS and goes_to_gate(row):
            write_gate(row + b"\n")
            result.gate.add(label(row))
        else:
            write_train(row + b"\n")
            result.train.add(label(row))
    return result
