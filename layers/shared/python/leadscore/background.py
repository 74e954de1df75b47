"""A refresh that a request starts but never waits out: the one copy of that rule.

What a container re-reads now and then (the champion pointer, the running experiment) can sit
behind a dependency that stops answering. `BackgroundRefresh.run(wait)` runs the refresh on a
background thread, at most one at a time, and lets the caller wait at most ``wait`` seconds
for it: when the dependency answers (the usual case) the request sees the result at once;
when it does not, the request goes on with what the container already has and the refresh
finishes (or fails) on its own. ``wait=None`` runs it inline (tools, and tests that step a
fake clock). Pure logic, thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class BackgroundRefresh:
    def __init__(self, refresh: Callable[[], None], name: str = "refresh") -> None:
        self._refresh = refresh
        self._name = name
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.started = 0  # background runs started (for benchmarks and tests)

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def run(self, wait: float | None) -> bool:
        """Refresh now, waiting at most ``wait`` seconds (None: inline). False when a refresh
        started earlier is still running (the caller waits for nothing then)."""
        if wait is None:
            self._refresh()
            return True
        with self._lock:
            if self.running:
                return False
            thread = threading.Thread(target=self._refresh, daemon=True, name=self._name)
            self._thread = thread
            self.started += 1
            thread.start()
        thread.join(wait)
        return True

    def join(self, timeout: float | None = None) -> None:
        """Block until the background refresh (if any) has finished (tests, benchmarks)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
