"""Once per container: the one mechanism for the objects a Lambda execution environment keeps
between invocations (clients, the model, the cache, the flows' dependencies).

`PerContainer(build)` builds its object on first use and hands the same one to every later
invocation; `set(value)` installs another (tests, the simulation) and `set(None)` forgets it,
so the next use builds it again from the environment. `forget_all()` forgets every one of
them at once (a test that changes the environment of several functions).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

_EVERY: list[PerContainer[object]] = []


class PerContainer(Generic[T]):
    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()
        _EVERY.append(self)  # type: ignore[arg-type]

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:  # two first requests on two threads build it once
                if self._value is None:
                    self._value = self._build()
                value = self._value
        return value

    def set(self, value: T | None) -> None:
        self._value = value

    @property
    def built(self) -> bool:
        return self._value is not None


def forget_all() -> None:
    for once in _EVERY:
        once.set(None)
