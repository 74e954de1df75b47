"""A circuit breaker: after a dependency fails, stop calling it for a while.

A remote cache tier that times out costs its whole timeout on every request; once it has
failed, the next requests skip it (open) for ``open_seconds``, then one request tries it
again (half-open): success closes the circuit, failure opens it for another period. Pure
logic, thread-safe; the clock is injectable (monotonic seconds).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CircuitBreaker:
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"

    def __init__(
        self,
        *,
        failure_threshold: int = 1,
        open_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or open_seconds < 0:
            raise ValueError("failure_threshold >= 1 and open_seconds >= 0 are required")
        self.failure_threshold = failure_threshold
        self.open_seconds = float(open_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False
        self.skipped = 0  # calls refused while open (for metrics and tests)
        self.opened = 0  # how often the circuit opened

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return self.CLOSED
        if self._clock() - self._opened_at < self.open_seconds:
            return self.OPEN
        return self.HALF_OPEN

    def allow(self) -> bool:
        """Whether a call may go to the dependency now (one trial call when half-open)."""
        with self._lock:
            state = self._state()
            if state == self.CLOSED:
                return True
            if state == self.HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return True
            self.skipped += 1
            return False

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_running = False

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._trial_running or self._failures >= self.failure_threshold:
                if self._opened_at is None or self._trial_running:
                    self.opened += 1
                self._opened_at = self._clock()
            self._trial_running = False
