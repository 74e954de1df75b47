"""The lead-score cache: an in-process LRU in front of an optional remote (DynamoDB) cache.

Key (ARCHITECTURE.md `CacheTable`):
``score#<contact_id>#<sha256 of the float32 feature vector bytes>#<model_version>``.
A ``feature_vector`` request is keyed by its values exactly like a ``features`` request, so
both kinds of request for the same lead share one entry.

Value: a :class:`CachedScore` — the lead score dict plus ``explained``, whether that dict
carries contributions and factors. The ``explain`` flag is deliberately *not* part of the key
(the key format is a contract): an ``explain=false`` request is served by any entry (its
contributions are stripped), an ``explain=true`` request only by an explained entry; a
non-explained entry is overwritten by the first explained answer for the same key.

A remote cache that fails (throttling, timeouts, bad data) is logged — key hash only, never the
payload — and bypassed: the caller never sees a cache error.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

logger = logging.getLogger(__name__)

KEY_PREFIX = "score#"


def cache_key(contact_id: str, x32: np.ndarray, model_version: str) -> str:
    """``score#<contact>#<sha256 of float32 vector bytes>#<model_version>``."""
    vec = np.ascontiguousarray(x32, dtype=np.float32)
    digest = hashlib.sha256(vec.tobytes()).hexdigest()
    return f"{KEY_PREFIX}{contact_id}#{digest}#{model_version}"


@dataclass(frozen=True)
class CachedScore:
    """One cached lead score. ``score`` is treated as immutable by every reader."""

    score: Mapping[str, Any]
    explained: bool

    def to_json_obj(self) -> dict[str, Any]:
        return {"score": dict(self.score), "explained": self.explained}

    @classmethod
    def from_json_obj(cls, obj: Any) -> CachedScore | None:
        """Rebuild from what :meth:`to_json_obj` wrote; ``None`` for anything else."""
        if not isinstance(obj, dict):
            return None
        score = obj.get("score")
        explained = obj.get("explained")
        if not isinstance(score, dict) or not isinstance(explained, bool):
            return None
        return cls(score=score, explained=explained)


class ScoreCache(Protocol):
    """What scoring needs from a cache."""

    def get(self, key: str) -> CachedScore | None: ...

    def put(self, key: str, value: CachedScore) -> None: ...


class RemoteCache(Protocol):
    """A remote store (the DynamoDB adapter). Implementations may raise; TieredCache guards."""

    def get(self, key: str) -> tuple[CachedScore, float] | None:
        """The value and its absolute expiry (epoch seconds), or None when absent/expired."""
        ...

    def put(self, key: str, value: CachedScore, expires_at: float) -> None: ...


class MemoryLRU:
    """A bounded, TTL-aware LRU. A lock makes it safe under threads (Lambda uses one)."""

    def __init__(
        self,
        max_size: int = 4096,
        ttl_seconds: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.max_size = max_size
        self.ttl_seconds = float(ttl_seconds)
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, CachedScore]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> CachedScore | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            expires_at, value = entry
            if expires_at <= self._clock():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def put(self, key: str, value: CachedScore, expires_at: float | None = None) -> None:
        if expires_at is None:
            expires_at = self._clock() + self.ttl_seconds
        with self._lock:
            self._data[key] = (expires_at, value)
            self._data.move_to_end(key)
            while len(self._data) > self.max_size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def _key_ref(key: str) -> str:
    """A log-safe reference to a key: never the contact id itself."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class TieredCache:
    """Memory first, then the remote cache; remote failures are logged and bypassed."""

    def __init__(
        self,
        memory: MemoryLRU,
        remote: RemoteCache | None = None,
        ttl_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.memory = memory
        self.remote = remote
        self.ttl_seconds = memory.ttl_seconds if ttl_seconds is None else float(ttl_seconds)
        self._clock = clock
        self.remote_errors = 0

    def get(self, key: str) -> CachedScore | None:
        value = self.memory.get(key)
        if value is not None or self.remote is None:
            return value
        try:
            found = self.remote.get(key)
        except Exception as exc:  # a failing cache is never the caller's problem
            self.remote_errors += 1
            logger.warning(
                "remote cache read failed; bypassed",
                extra={"key_ref": _key_ref(key), "error_type": type(exc).__name__},
            )
            return None
        if found is None:
            return None
        value, expires_at = found
        if expires_at <= self._clock():
            return None
        self.memory.put(key, value, expires_at=expires_at)
        return value

    def put(self, key: str, value: CachedScore) -> None:
        expires_at = self._clock() + self.ttl_seconds
        self.memory.put(key, value, expires_at=expires_at)
        if self.remote is None:
            return
        try:
            self.remote.put(key, value, expires_at)
        except Exception as exc:
            self.remote_errors += 1
            logger.warning(
                "remote cache write failed; bypassed",
                extra={"key_ref": _key_ref(key), "error_type": type(exc).__name__},
            )
