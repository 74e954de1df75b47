"""Backfill: page through a location's contacts, score every one, queue its write-back.

Resumable: after every page the checkpoint (cursor, done, total, counters) is saved, so an
interrupted run (a Lambda timeout, a crash, Ctrl-C) continues from the last saved page and
scores each page once more at most. Progress (done / total, rate, ETA) goes to a callback
that the CLI prints and the job logs.

The writes to HighLevel are not made here: each score becomes an ordinary write-back queue
message, so the write-back function applies the location's request budget (token bucket),
its skip rule and its dead-letter handling to backfill writes exactly as to webhook writes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ContactsPage:
    contacts: Sequence[Mapping[str, Any]]
    total: int
    next_cursor: Any  # None when this was the last page


class ContactSource(Protocol):
    def page(self, location_id: str, cursor: Any, limit: int) -> ContactsPage: ...


@dataclass(frozen=True)
class Checkpoint:
    location_id: str
    job_id: str
    cursor: Any = None
    done: int = 0
    total: int = 0
    scored: int = 0
    skipped: int = 0
    failed: int = 0
    finished: bool = False
    started_at_ms: int = 0
    updated_at_ms: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        value = json.loads(text)
        return cls(**{k: value[k] for k in cls.__dataclass_fields__ if k in value})


class CheckpointStore(Protocol):
    def load(self, location_id: str, job_id: str) -> Checkpoint | None: ...
    def save(self, checkpoint: Checkpoint) -> None: ...


@dataclass(frozen=True)
class Progress:
    location_id: str
    done: int
    total: int
    rate_per_second: float
    eta_seconds: float | None
    scored: int
    skipped: int
    failed: int
    finished: bool

    def line(self) -> str:
        eta = "?" if self.eta_seconds is None else f"{self.eta_seconds:,.0f}s"
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return (
            f"{self.location_id}: {self.done:,}/{self.total:,} ({pct:.1f} %) "
            f"{self.rate_per_second:,.1f}/s ETA {eta} "
            f"scored={self.scored} skipped={self.skipped} failed={self.failed}"
        )


class ContactOutcome:
    SCORED = "scored"
    SKIPPED = "skipped"  # no contact id / nothing to score
    FAILED = "failed"  # invalid lead data: recorded, not retried


ScoreContact = Callable[[str, Mapping[str, Any]], str]


@runtime_checkable
class PageAware(Protocol):
    """A contact step that also wants each page before and after its contacts are scored
    (to read what a page needs in one call, and to send what it produced in batches)."""

    def begin_page(self, location_id: str, contacts: Sequence[Mapping[str, Any]]) -> None: ...
    def end_page(self, location_id: str) -> None: ...


def run_backfill(
    location_id: str,
    source: ContactSource,
    score_contact: ScoreContact,
    checkpoints: CheckpointStore,
    *,
    job_id: str = "default",
    page_size: int = 100,
    clock: Callable[[], float] = time.time,
    deadline: float | None = None,
    progress: Callable[[Progress], None] | None = None,
    restart: bool = False,
) -> Checkpoint:
    """Run (or resume) the backfill of one location until it is finished or ``deadline``
    (a ``clock()`` value; the Lambda job passes "now + remaining time - margin") passes.
    Returns the last saved checkpoint; ``finished`` tells whether another run is needed."""
    saved = None if restart else checkpoints.load(location_id, job_id)
    now_ms = int(clock() * 1000)
    checkpoint = saved or Checkpoint(location_id, job_id, started_at_ms=now_ms)
    if checkpoint.finished:
        return checkpoint
    run_started = clock()
    run_start_done = checkpoint.done

    def report(cp: Checkpoint) -> None:
        if progress is None:
            return
        elapsed = max(clock() - run_started, 1e-9)
        rate = (cp.done - run_start_done) / elapsed
        left = max(cp.total - cp.done, 0)
        eta = left / rate if rate > 0 else None
        progress(
            Progress(
                location_id, cp.done, cp.total, rate, eta if not cp.finished else 0.0,
                cp.scored, cp.skipped, cp.failed, cp.finished,
            )
        )

    while True:
        if deadline is not None and clock() >= deadline:
            return checkpoint
        page = source.page(location_id, checkpoint.cursor, page_size)
        counts = {ContactOutcome.SCORED: 0, ContactOutcome.SKIPPED: 0, ContactOutcome.FAILED: 0}
        page_aware = score_contact if isinstance(score_contact, PageAware) else None
        if page_aware is not None:
            page_aware.begin_page(location_id, page.contacts)
        for contact in page.contacts:
            counts[score_contact(location_id, contact)] += 1
        if page_aware is not None:
            page_aware.end_page(location_id)  # before the checkpoint says the page is done
        checkpoint = replace(
            checkpoint,
            cursor=page.next_cursor,
            done=checkpoint.done + len(page.contacts),
            total=max(page.total, checkpoint.done + len(page.contacts)),
            scored=checkpoint.scored + counts[ContactOutcome.SCORED],
            skipped=checkpoint.skipped + counts[ContactOutcome.SKIPPED],
            failed=checkpoint.failed + counts[ContactOutcome.FAILED],
            finished=page.next_cursor is None or not page.contacts,
            updated_at_ms=int(clock() * 1000),
        )
        checkpoints.save(checkpoint)
        report(checkpoint)
        if checkpoint.finished:
            return checkpoint


class MemoryCheckpoints:
    """Checkpoints in a dict (tests, the simulation, the CLI without a table)."""

    def __init__(self) -> None:
        self.saved: dict[tuple[str, str], str] = {}

    def load(self, location_id: str, job_id: str) -> Checkpoint | None:
        text = self.saved.get((location_id, job_id))
        return None if text is None else Checkpoint.from_json(text)

    def save(self, checkpoint: Checkpoint) -> None:
        self.saved[(checkpoint.location_id, checkpoint.job_id)] = checkpoint.to_json()
