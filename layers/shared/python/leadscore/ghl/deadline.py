"""The write-back's time budget inside one Lambda invocation (pure logic).

An SQS-triggered invocation that runs past its timeout is killed and its WHOLE batch comes
back, messages already written included. So time is checked before each message and before
each HTTP call, and every call's timeout is cut so that the calls still to come in the same
message fit before the deadline, with ``reserve`` seconds kept for the bookkeeping after them
(recording the write, re-queueing, answering the batch). A message is only started when
its calls fit at the pace HighLevel is answering right now (the slowest of the recent calls
in this invocation, never less than ``min_call_seconds``); otherwise it is returned as a batch
item failure, untouched, instead of being cut off half written.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


class DeadlineReached(Exception):
    """Not enough time left to start (or continue) a message in this invocation."""


@dataclass
class Deadline:
    """Monotonic time by which the invocation must have answered."""

    ends_at: float
    reserve_seconds: float = 3.0
    min_call_seconds: float = 1.0
    clock: Callable[[], float] = field(default=time.monotonic)
    #: how long the last few HighLevel calls took (this invocation)
    recent_calls: deque[float] = field(default_factory=lambda: deque(maxlen=5))

    @classmethod
    def after(
        cls,
        seconds: float,
        *,
        reserve_seconds: float = 3.0,
        min_call_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> Deadline:
        return cls(clock() + seconds, reserve_seconds, min_call_seconds, clock)

    def remaining(self) -> float:
        return self.ends_at - self.clock()

    def usable(self) -> float:
        """Seconds that may still be spent on HTTP calls and waits."""
        return self.remaining() - self.reserve_seconds

    def record_call(self, seconds: float) -> None:
        self.recent_calls.append(max(0.0, seconds))

    def expected_call_seconds(self) -> float:
        """What one call should be given: the slowest recent call, at least the minimum."""
        return max([self.min_call_seconds, *self.recent_calls])

    def can_start(self, calls: int) -> bool:
        """Is there time for ``calls`` HTTP calls at the current pace?"""
        return self.usable() >= max(1, calls) * self.expected_call_seconds()

    def call_timeout(self, calls_left: int, max_timeout: float) -> float:
        """The timeout for the next call so that ``calls_left`` calls (this one included)
        still fit; raises DeadlineReached when that would be under ``min_call_seconds``."""
        share = self.usable() / max(1, calls_left)
        if share < self.min_call_seconds:
            raise DeadlineReached(f"{self.remaining():.1f} s left for {calls_left} calls")
        return min(max_timeout, share)

    def can_wait(self, seconds: float, calls_left: int) -> bool:
        """May we sleep ``seconds`` here and still make ``calls_left`` calls afterwards?"""
        return self.usable() - seconds >= max(1, calls_left) * self.min_call_seconds
