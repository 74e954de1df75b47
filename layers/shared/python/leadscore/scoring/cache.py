"""The lead-score cache: an in-process LRU in front of an optional remote (DynamoDB) cache.

Key (ARCHITECTURE.md `CacheTable`): ``score#<contact_id>#<digest>#<model_version>``, where the
digest is the sha256 of everything besides the model that changes the answer
(`answer_key`): the float32 feature vector and the float64 values, the input form
(``features``, ``feature_vector``, ...), the missing fields, the ``explain`` flag and, for an
explained ``features`` answer (and any ``fields`` answer), the raw lead as canonical JSON (the
reasons quote its amounts: two leads with the same vector can read differently; an answer
without reasons reads nothing else of the lead, so it is not serialised again for its key).
So a cached answer is byte-for-byte the answer a fresh computation would give, apart from
``cached`` and ``prediction_timestamp``. A raw lead that the key needs and that cannot be
written as canonical JSON (nested past the recursion limit) is not cached.

Value: a :class:`CachedScore` — the lead score dict plus ``explained``. The memory tier keeps
each answer as its compact JSON bytes: it is bounded by entries (`MEMORY_CACHE_SIZE`) *and* by
those bytes (`MEMORY_CACHE_BYTES`), and every hit is a fresh dict nobody else holds.

A remote cache that fails (throttling, timeouts, bad data) is logged — key hash only, never the
payload — and bypassed: the caller never sees a cache error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from leadscore.circuit import CircuitBreaker
from leadscore.scoring import answer_json

logger = logging.getLogger(__name__)

KEY_PREFIX = "score#"
#: What the remote tier's background trial reads (inside the function's own key prefix).
PROBE_KEY = f"{KEY_PREFIX}circuit-probe"
#: Per-entry bookkeeping beyond the JSON bytes (key, tuple, OrderedDict node), for the budget.
ENTRY_OVERHEAD_BYTES = 200


def cache_key(contact_id: str, x32: np.ndarray, model_version: str, inputs: bytes = b"") -> str:
    """``score#<contact>#<sha256 of float32 vector bytes + inputs>#<model_version>``."""
    vec = np.ascontiguousarray(x32, dtype=np.float32)
    digest = hashlib.sha256(vec.tobytes() + inputs).hexdigest()
    return f"{KEY_PREFIX}{contact_id}#{digest}#{model_version}"


# Built once: json.dumps with options builds an encoder for every call (what these write is
# what json.dumps with the same options writes).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=True, default=repr)


def canonical_json(value: Any) -> bytes | None:
    """Sorted-key compact JSON bytes, or None when `value` cannot be written (too deep)."""
    try:
        text = _CANONICAL.encode(value)
    except (RecursionError, ValueError, TypeError):
        return None
    return text.encode("utf-8", "surrogatepass")


def answer_key(
    contact_id: str,
    x32: np.ndarray,
    model_version: str,
    *,
    form: str,
    raw: Any,
    missing: Iterable[str],
    explain: bool,
    values: np.ndarray | None = None,
) -> str | None:
    """The key of one answer: everything that changes it is in the digest; None = uncachable.

    `raw` is what the answer reads besides the numbers (the ``features`` object its reasons
    quote; None for a ready-made vector, or for an answer without reasons). `values` are the
    float64 values the rules score reads (the float32 vector alone could not tell two of
    them apart).
    """
    raw_json = b"" if raw is None else canonical_json(raw)
    if raw_json is None:
        return None
    exact = b"" if values is None else np.ascontiguousarray(values, dtype=np.float64).tobytes()
    inputs = b"\0".join([
        form.encode(), b"explain" if explain else b"no-explain",
        "\n".join(missing).encode("utf-8", "surrogatepass"), raw_json, exact,
    ])
    return cache_key(contact_id, x32, model_version, b"\0" + inputs)


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
    """A TTL-aware LRU bounded by entries and by bytes. A lock makes it thread-safe."""

    def __init__(
        self,
        max_size: int = 4096,
        ttl_seconds: float = 3600.0,
        clock: Callable[[], float] = time.time,
        max_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        if max_size < 1 or max_bytes < 1:
            raise ValueError("max_size and max_bytes must be >= 1")
        self.max_size = max_size
        self.max_bytes = max_bytes
        self.ttl_seconds = float(ttl_seconds)
        self._clock = clock
        # key -> (expires_at, JSON bytes of the score, explained)
        self._data: OrderedDict[str, tuple[float, bytes, bool]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        """What the entries count against `max_bytes` (JSON bytes + per-entry overhead)."""
        return self._bytes

    @staticmethod
    def _cost(key: str, body: bytes) -> int:
        return len(body) + len(key) + ENTRY_OVERHEAD_BYTES

    def _drop(self, key: str) -> None:
        _, body, _ = self._data.pop(key)
        self._bytes -= self._cost(key, body)

    def get(self, key: str) -> CachedScore | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            expires_at, body, explained = entry
            if expires_at <= self._clock():
                self._drop(key)
                return None
            self._data.move_to_end(key)
        return CachedScore(score=json.loads(body), explained=explained)

    def put(self, key: str, value: CachedScore, expires_at: float | None = None) -> None:
        if expires_at is None:
            expires_at = self._clock() + self.ttl_seconds
        # kept for the response too: the route writes this answer again, with keys added
        body = answer_json.remember(value.score).encode()
        cost = self._cost(key, body)
        with self._lock:
            if key in self._data:
                self._drop(key)
            if cost > self.max_bytes:
                return  # larger than the whole budget: never kept, evicts nothing
            self._data[key] = (expires_at, body, value.explained)
            self._bytes += cost
            while len(self._data) > self.max_size or self._bytes > self.max_bytes:
                self._drop(next(iter(self._data)))

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def forget_prefix(self, prefix: str) -> int:
        """Drop every entry whose key starts with ``prefix`` (a deleted contact's answers)."""
        with self._lock:
            keys = [k for k in self._data if k.startswith(prefix)]
            for key in keys:
                self._drop(key)
        return len(keys)


def _key_ref(key: str) -> str:
    """A log-safe reference to a key: never the contact id itself."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class TieredCache:
    """Memory first, then the remote cache; remote failures are logged and bypassed.

    A circuit breaker guards the remote tier: after a failure (a timeout costs up to the
    request-path client's read timeout) the tier is skipped for ``breaker.open_seconds``,
    then tried again by one background read of `PROBE_KEY` (never by a request).
    """

    def __init__(
        self,
        memory: MemoryLRU,
        remote: RemoteCache | None = None,
        ttl_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.memory = memory
        self.remote = remote
        self.ttl_seconds = memory.ttl_seconds if ttl_seconds is None else float(ttl_seconds)
        self._clock = clock
        self.breaker = breaker or CircuitBreaker()
        if remote is not None:
            self.breaker.use_probe(lambda: remote.get(PROBE_KEY))
        self.remote_errors = 0

    def get(self, key: str) -> CachedScore | None:
        value = self.memory.get(key)
        if value is not None or self.remote is None or not self.breaker.allow():
            return value
        try:
            found = self.remote.get(key)
        except Exception as exc:  # a failing cache is never the caller's problem
            self._failed("read", key, exc)
            return None
        self.breaker.success()
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
        if self.remote is None or not self.breaker.allow():
            return
        try:
            self.remote.put(key, value, expires_at)
        except Exception as exc:
            self._failed("write", key, exc)
            return
        self.breaker.success()

    def _failed(self, what: str, key: str, exc: Exception) -> None:
        self.remote_errors += 1
        self.breaker.failure()
        logger.warning(
            f"remote cache {what} failed; bypassed",
            extra={"key_ref": _key_ref(key), "error_type": type(exc).__name__,
                   "skipped_for_seconds": self.breaker.open_seconds},
        )
