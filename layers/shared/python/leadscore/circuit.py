"""A circuit breaker: after a dependency fails, stop calling it for a while.

A remote cache tier that times out costs its whole timeout on every request; once it has
failed, the next requests skip it (open) for ``open_seconds``, then one trial call decides
(half-open): success closes the circuit, failure opens it for another period.

With a ``probe`` (what request paths use), the trial is the probe, run on a background
thread: the request that finds the circuit half-open skips the dependency like any other and
never waits for the trial, so a dependency that never answers costs requests nothing after
the first timeout (at one request per second, a trial inside a request cost that request the
client's whole read timeout once per period). Without a probe the caller's own next call is
the trial. Pure logic, thread-safe; the clock is injectable (monotonic seconds).
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
        probe: Callable[[], object] | None = None,
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
        self._probe = probe
        self._trial: threading.Thread | None = None
        self.trials = 0  # background trials started
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
        """Whether a call may go to the dependency now. Half-open: the one trial is the probe
        on a background thread (this call is skipped), or this call when there is no probe."""
        with self._lock:
            state = self._state()
            if state == self.CLOSED:
                return True
            if state == self.HALF_OPEN and not self._trial_running:
                self._trial_running = True
                if self._probe is None:
                    return True
                self.trials += 1
                self._trial = threading.Thread(target=self._run_probe, daemon=True,
                                               name="circuit-trial")
                self._trial.start()
            self.skipped += 1
            return False

    def use_probe(self, probe: Callable[[], object]) -> None:
        """Run trials as ``probe`` on a background thread from now on."""
        with self._lock:
            self._probe = probe

    def _run_probe(self) -> None:
        assert self._probe is not None
        try:
            self._probe()
        except Exception:  # the dependency still fails: open for another period
            self.failure()
        else:
            self.success()

    def wait_for_trial(self, timeout: float | None = None) -> None:
        """Block until the running background trial (if any) has decided (tests, benchmarks)."""
        trial = self._trial
        if trial is not None:
            trial.join(timeout)

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
