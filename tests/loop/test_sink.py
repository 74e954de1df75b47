"""The batching sink: records leave the request path and go out in bounded batches."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from leadscore.loop.sink import BatchingSink


class Recorder:
    def __init__(self, fail_first: int = 0, raise_first: int = 0) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.fail_first = fail_first
        self.raise_first = raise_first

    def __call__(self, records: Sequence[dict[str, Any]]) -> Sequence[int]:
        if self.raise_first:
            self.raise_first -= 1
            raise ConnectionError("firehose unreachable")
        self.batches.append(list(records))
        if self.fail_first:
            failed = list(range(min(self.fail_first, len(records))))
            self.fail_first -= len(failed)
            return failed
        return []


def stored(rec: Recorder) -> list[int]:
    return [r["i"] for b in rec.batches for r in b]


def test_batches_of_at_most_max_records() -> None:
    rec = Recorder()
    sink = BatchingSink(rec, max_records=500, background=False)
    for i in range(1234):
        sink.put(lambda i=i: {"i": i})
    sink.flush()
    assert [len(b) for b in rec.batches] == [500, 500, 234]
    assert stored(rec) == list(range(1234))
    assert sink.stats.sent == 1234 and sink.stats.dropped == 0


def test_failed_records_are_resent_and_errors_never_reach_the_caller() -> None:
    rec = Recorder(fail_first=3, raise_first=1)
    sink = BatchingSink(rec, max_records=10, background=False)
    for i in range(10):
        sink.put(lambda i=i: {"i": i})
    sink.flush()
    assert sorted(stored(rec)) == sorted([*range(10), 0, 1, 2])  # 3 re-sent once
    assert sink.stats.sent == 10 and sink.stats.failures == 1


def test_persistent_failure_drops_after_max_attempts() -> None:
    rec = Recorder(raise_first=99)
    sink = BatchingSink(rec, max_records=5, max_attempts=2, background=False)
    sink.put(lambda: {"i": 1})
    sink.flush()
    assert sink.stats.dropped == 1 and sink.stats.sent == 0


def test_the_buffer_is_bounded() -> None:
    rec = Recorder()
    sink = BatchingSink(rec, max_records=5, max_buffered=7, background=False)
    for i in range(10):
        sink.put(lambda i=i: {"i": i})
    sink.flush()
    assert stored(rec) == [3, 4, 5, 6, 7, 8, 9] and sink.stats.dropped == 3


def test_a_record_that_cannot_be_built_is_dropped_alone() -> None:
    rec = Recorder()
    sink = BatchingSink(rec, max_records=5, background=False)
    sink.put(lambda: {"i": 1})
    sink.put(lambda: 1 / 0)  # type: ignore[return-value,arg-type]
    sink.put(lambda: {"i": 3})
    sink.flush()
    assert stored(rec) == [1, 3] and sink.stats.dropped == 1


def test_background_thread_sends_by_age_without_a_flush() -> None:
    rec = Recorder()
    sink = BatchingSink(rec, max_records=500, max_age_seconds=0.05)
    sink.put(lambda: {"i": 1})
    deadline = time.monotonic() + 5
    while not rec.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stored(rec) == [1]
    sink.close()


def test_put_is_thread_safe() -> None:
    rec = Recorder()
    sink = BatchingSink(rec, max_records=100, max_age_seconds=0.01)
    threads = [
        threading.Thread(
            target=lambda k=k: [sink.put(lambda j=j, k=k: {"i": k * 1000 + j}) for j in range(500)]
        )
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close()
    assert sorted(stored(rec)) == sorted(k * 1000 + j for k in range(4) for j in range(500))
