"""Records off the request path: a per-container buffer sent in batches.

``/score`` must not wait for storage (p50 may grow by at most 0.1 ms), so a scored lead only
appends a small tuple to an in-memory buffer; building the record, serialising it and sending
the batch (Firehose ``PutRecordBatch``: at most 500 records / 4 MiB per call) happen on a
background thread, when ``max_records`` are waiting or the oldest waited ``max_age_seconds``.

Failure rules: storage trouble never reaches the caller. A batch call that fails is retried
(``max_attempts``), records the service reports as failed are re-sent; what still fails is
counted in ``dropped`` and logged by id (never by content). The buffer is bounded
(``max_buffered``); beyond it the oldest records are dropped and counted.

Lambda freezes a container between invocations: the thread stops with it and resumes on the
next invocation, so a batch waits at most ``max_age_seconds`` of *running* time. A container
that is reclaimed while frozen loses what it buffered since its last send (at most
``max_age_seconds`` of traffic); ``flush()`` is registered with ``atexit`` and is what tests,
the backfill and the simulation call. docs/LOOP.md discusses this bound.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

#: What a sender answers: how many of the records it could not store (they are retried).
Sender = Callable[[Sequence[dict[str, Any]]], Sequence[int]]
RecordFactory = Callable[[], dict[str, Any] | None]

FIREHOSE_MAX_RECORDS = 500


@dataclass
class SinkStats:
    accepted: int = 0
    sent: int = 0
    dropped: int = 0
    batches: int = 0
    failures: int = 0


class BatchingSink:
    """``put(factory)`` is cheap and thread-safe; batches go out on a background thread.

    ``sender(records)`` stores a batch and answers the indexes of the records it failed to
    store (an empty sequence when all were stored); it may raise for a failed call.
    """

    def __init__(
        self,
        sender: Sender,
        *,
        max_records: int = FIREHOSE_MAX_RECORDS,
        max_age_seconds: float = 1.0,
        max_buffered: int = 20_000,
        max_attempts: int = 3,
        background: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= max_records <= FIREHOSE_MAX_RECORDS:
            raise ValueError(f"max_records must be 1..{FIREHOSE_MAX_RECORDS}")
        self._sender = sender
        self.max_records = max_records
        self.max_age_seconds = max_age_seconds
        self.max_buffered = max_buffered
        self.max_attempts = max_attempts
        self._clock = clock
        self._buffer: deque[RecordFactory] = deque()
        self._oldest: float | None = None
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self.stats = SinkStats()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="record-sink", daemon=True)
            self._thread.start()
            atexit.register(self.close)

    # ------------------------------------------------------------------ the request path

    def put(self, factory: RecordFactory) -> None:
        """Queue one record, built later by ``factory()`` (off the request path)."""
        with self._lock:
            if len(self._buffer) >= self.max_buffered:
                self._buffer.popleft()
                self.stats.dropped += 1
            self._buffer.append(factory)
            self.stats.accepted += 1
            if self._oldest is None:
                self._oldest = self._clock()
            full = len(self._buffer) >= self.max_records
        if full:
            self._wake.set()

    # ------------------------------------------------------------------ sending

    def _take(self) -> list[RecordFactory]:
        with self._lock:
            n = min(len(self._buffer), self.max_records)
            taken = [self._buffer.popleft() for _ in range(n)]
            self._oldest = self._clock() if self._buffer else None
            return taken

    def _due(self) -> bool:
        with self._lock:
            if not self._buffer:
                return False
            if len(self._buffer) >= self.max_records:
                return True
            return self._oldest is not None and (
                self._clock() - self._oldest >= self.max_age_seconds
            )

    def _send(self, factories: list[RecordFactory]) -> None:
        records: list[dict[str, Any]] = []
        for factory in factories:
            try:
                record = factory()
            except Exception:
                logger.exception("a record could not be built; dropped")
                self.stats.dropped += 1
                continue
            if record is not None:
                records.append(record)
        attempt = 0
        while records:
            attempt += 1
            self.stats.batches += 1
            try:
                failed = list(self._sender(records))
            except Exception:
                logger.warning("record batch failed (attempt %d)", attempt, exc_info=True)
                self.stats.failures += 1
                failed = list(range(len(records)))
            self.stats.sent += len(records) - len(failed)
            records = [records[i] for i in failed]
            if records and attempt >= self.max_attempts:
                logger.error("dropping %d records after %d attempts", len(records), attempt)
                self.stats.dropped += len(records)
                return
            if records:
                time.sleep(min(0.05 * 2**attempt, 1.0))

    def flush(self) -> None:
        """Send everything buffered now (blocking)."""
        with self._send_lock:
            while True:
                batch = self._take()
                if not batch:
                    return
                self._send(batch)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(timeout=max(self.max_age_seconds / 4, 0.01))
            self._wake.clear()
            if self._due():
                with self._send_lock:
                    while self._due():
                        self._send(self._take())

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self.flush()

    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)
