"""Split an uploaded training file into the part the job trains on and the gate's part.

The retrain function streams the checked upload through `split_lines` once, before it starts
a job: rows go to the training part (the job's only channel) or to the gate part (kept under
``evaluation/<job>/``, never given to the job), and the promote function measures the
candidate on the gate part. Deterministic: a row's side depends only on its own bytes
(sha256), so the same upload always splits the same way, duplicates of a row stay on one side
(no leak of a row into its own evaluation), and a re-delivered S3 event writes the same parts.

A row that names its lead (a ``contact_id`` column or key, as every loop export writes) is
placed by that id instead of its bytes: a lead is on the same side in every upload, whatever
the layout it is written in. The champion was trained on an earlier export of the same leads,
often in another layout (a location's first model reads every column the leads carried, its
retraining its champion's schema), so a byte hash sent most of the leads the champion learned
from into the next candidate's gate part, where the champion, scored on its own training rows,
looked better than it is and every retrained candidate was refused as worse. Keyed by the
lead, the next gate part holds only leads the champion's own gate part held, and the
snapshots of one lead never straddle the two parts.

Rows are CSV records as the one CSV reader (`leadscore.columns.csv_reader`) reads them, so
a quoted field holding line breaks stays in its record, or JSON Lines lines; a CSV's header
goes to both parts. Targets are read by the one label parser (`leadscore.columns.labels`).
Pure logic over iterables of bytes lines; no AWS in here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from leadscore.columns.csv_reader import CsvReader, EmptyCsv
from leadscore.columns.labels import DEFAULT_RULE, LabelRule

GATE_FRACTION = 0.2
GATE_MAX_ROWS = 50_000  # the gate needs thousands of rows, not millions; the rest trains
_BUCKETS = 10_000
TARGET = "converted"
LEAD_KEY = "contact_id"
SPLIT_METHOD = (
    f"row -> gate part iff int(sha256(key)[:8], 16) mod {_BUCKETS} < "
    f"{int(GATE_FRACTION * _BUCKETS)} (while the gate part holds fewer than {GATE_MAX_ROWS} "
    f"rows); key = b'{LEAD_KEY}:' + the row's {LEAD_KEY} when it has a non-empty one, else "
    "the row's bytes; a CSV row is a whole record (quoted line breaks included); CSV header "
    "in both parts; blank lines dropped"
)


def goes_to_gate(row: bytes) -> bool:
    digest = hashlib.sha256(row).hexdigest()
    return int(digest[:8], 16) % _BUCKETS < int(GATE_FRACTION * _BUCKETS)


def split_key(row: bytes, lead: str | None) -> bytes:
    """What decides a row's side: its lead's id when it names one, else its own bytes."""
    return f"{LEAD_KEY}:{lead}".encode() if lead else row


def jsonl_goes_to_gate(row: bytes) -> bool:
    """Whether `split_lines` sends this JSON Lines row to the gate part (while that part is not
    full): the loop's export asks before it carries a row a champion trained on, so that row
    can never become the next gate's evidence."""
    line = row.rstrip(b"\r\n")
    _, lead = _jsonl_row(line)
    return goes_to_gate(split_key(line, lead))


@dataclass
class PartCounts:
    rows: int = 0
    converted: int = 0
    not_converted: int = 0
    unlabelled: int = 0  # target unresolved (leadscore.columns.labels): left out, counted

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


def _jsonl_row(row: bytes) -> tuple[int | None, str | None]:
    """(label, lead id) of a JSON Lines row; (None, None) for a line that is not an object."""
    try:
        record = json.loads(row)
    except ValueError:
        return None, None
    if not isinstance(record, dict):
        return None, None
    lead = record.get(LEAD_KEY)
    return DEFAULT_RULE.label(record.get(TARGET)), _lead_text(lead)


def _lead_text(value: object) -> str | None:
    if value is None or isinstance(value, bool | dict | list):
        return None
    text = str(value).strip()
    return text or None


def split_lines(
    lines: Iterable[bytes],
    *,
    csv_format: bool,
    write_train: Callable[[bytes], object],
    write_gate: Callable[[bytes], object],
    target: str = TARGET,
    positive: tuple[str, ...] = (),
    negative: tuple[str, ...] = (),
    name: str = "the upload",
) -> SplitResult:
    """Stream `lines` (each without or with its line ending) into the two writers.

    A CSV goes through the one CSV reader: a record is whole even when a quoted field holds
    line breaks, and a record the reader cannot parse raises `CsvRefused` naming its line.
    Every written row ends with b"\\n". Returns the row and class counts of each part.
    """
    result = SplitResult()
    if not csv_format:
        for line in lines:
            row = line.rstrip(b"\r\n")
            if row.strip():
                label, lead = _jsonl_row(row)
                _route(result, row, label, split_key(row, lead), write_train, write_gate)
        return result
    try:
        reader = CsvReader(lines, name)
    except EmptyCsv:
        return result
    write_train(reader.header_record.raw + b"\n")
    write_gate(reader.header_record.raw + b"\n")
    index = reader.header.index(target) if target in reader.header else -1
    lead_at = reader.header.index(LEAD_KEY) if LEAD_KEY in reader.header else -1
    rule = LabelRule.of(positive, negative)
    for record in reader.records():
        label = rule.label(record.cells[index]) if index >= 0 else None
        lead = _lead_text(record.cells[lead_at]) if 0 <= lead_at < len(record.cells) else None
        _route(result, record.raw, label, split_key(record.raw, lead), write_train,
               write_gate)
    return result


def _route(result: SplitResult, row: bytes, label: int | None, key: bytes,
           write_train: Callable[[bytes], object], write_gate: Callable[[bytes], object]
           ) -> None:
    if result.gate.rows < GATE_MAX_ROWS and goes_to_gate(key):
        write_gate(row + b"\n")
        result.gate.add(label)
    else:
        write_train(row + b"\n")
        result.train.add(label)
