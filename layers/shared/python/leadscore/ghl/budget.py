"""One request budget per HighLevel location, shared by every writer (pure logic, no AWS).

HighLevel allows each app 100 requests per 10 s per location (and 200,000 a day) and says so
in every answer (``X-RateLimit-Max``, ``-Remaining``, ``-Interval-Milliseconds``,
``-Daily-Remaining``). Several Lambda containers write for the same location at once, so the
budget is one token bucket per location, kept in DynamoDB (``adapters.ghl_budget``) and
changed only by a version-conditional write; this module is the arithmetic.

Why the bucket never lets a location see more than its limit in any window: the bucket holds
at most ``capacity`` tokens and refills at ``rate`` tokens per ms; in any interval of length
``window`` at most ``capacity + rate * window`` tokens can be taken. Both are chosen so that
sum is ``share * limit`` (90 of 100 by default): the remaining 10 % absorbs the spread between
the moment a token is taken and the moment HighLevel counts the request, and leaves room for
other callers (field discovery, backfills) that take tokens from the same bucket.

The answers feed the bucket: a new limit or window replaces the assumed one, a ``Remaining``
below our token count lowers it (someone else is using the location), a 429 or a spent daily
budget blocks the location for `rate_limit_wait`.

`rate_limit_wait` is THE wait rule after an answer, for every caller: the budget's block, the
write-back's wait before a message's next try and the API client's wait in place. The
announced reset (``Retry-After``, read by `retry_after_seconds` only) when there is one; else
a spent daily budget waits the daily probe (``WRITEBACK_DAILY_PROBE_SECONDS``) and a burst
limit one window (``X-RateLimit-Interval-Milliseconds``, else HighLevel's 10 s).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime

from leadscore.headers import header
from leadscore.settings import DAILY_LIMIT_PROBE_SECONDS

DEFAULT_LIMIT = 100
DEFAULT_WINDOW_MS = 10_000
#: Fraction of the announced limit our writers may use in any window.
DEFAULT_SHARE = 0.9
#: Fraction of the announced limit that may be taken at once (the bucket's depth).
BURST_FRACTION = 0.1
#: After a spent daily budget without Retry-After, look again this much later (the setting's
#: default: a stack's WRITEBACK_DAILY_PROBE_SECONDS is passed in by its budget and write-back).
DAILY_PROBE_SECONDS = DAILY_LIMIT_PROBE_SECONDS
#: No rate-limit wait is shorter: a ``Retry-After: 0`` must not turn into a tight retry loop.
MIN_WAIT_SECONDS = 0.5
#: Limits outside these bounds in a header are ignored (a broken proxy must not open the tap).
_LIMIT_BOUNDS = (1, 100_000)
_WINDOW_BOUNDS_MS = (10, 3_600_000)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float | None:
    """``Retry-After`` as seconds from ``now`` (delta-seconds or an HTTP date), else None."""
    text = header(headers, "Retry-After")
    if text is None:
        return None
    seconds = _number(text)
    if seconds is None:
        try:
            seconds = parsedate_to_datetime(text).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class RateLimitWait:
    """How long a location must wait after an answer."""

    seconds: float
    #: the day's budget is spent: waiting within one invocation cannot help
    daily: bool = False


def _window_ms(headers: Mapping[str, str]) -> float | None:
    window = _number(header(headers, "X-RateLimit-Interval-Milliseconds"))
    if window is not None and _WINDOW_BOUNDS_MS[0] <= window <= _WINDOW_BOUNDS_MS[1]:
        return window
    return None


def rate_limit_wait(status: int, headers: Mapping[str, str], now: float, *,
                    daily_probe_seconds: float = DAILY_PROBE_SECONDS,
                    window_ms: float | None = None) -> RateLimitWait | None:
    """THE wait after one HighLevel answer (see the module docstring); None when the answer
    does not hold the location back (a success with budget left). ``window_ms``: the window
    already learned for the location, for an answer that does not announce one."""
    retry_after = retry_after_seconds(headers, now)
    if daily_spent(headers):
        seconds = retry_after if retry_after is not None else daily_probe_seconds
        return RateLimitWait(max(MIN_WAIT_SECONDS, seconds), daily=True)
    remaining = _number(header(headers, "X-RateLimit-Remaining"))
    if status != 429 and (remaining is None or remaining > 0):
        return None
    if retry_after is None:
        retry_after = (_window_ms(headers) or window_ms or DEFAULT_WINDOW_MS) / 1000.0
    return RateLimitWait(max(MIN_WAIT_SECONDS, retry_after))


@dataclass(frozen=True)
class Bucket:
    """One location's budget. Times are epoch milliseconds (shared by all containers)."""

    tokens: float
    at_ms: int
    limit: int = DEFAULT_LIMIT
    window_ms: int = DEFAULT_WINDOW_MS
    blocked_until_ms: int = 0
    version: int = 0
    share: float = DEFAULT_SHARE

    @classmethod
    def fresh(
        cls,
        now_ms: int,
        *,
        limit: int = DEFAULT_LIMIT,
        window_ms: int = DEFAULT_WINDOW_MS,
        share: float = DEFAULT_SHARE,
    ) -> Bucket:
        empty = cls(tokens=0.0, at_ms=now_ms, limit=limit, window_ms=window_ms, share=share)
        return replace(empty, tokens=float(empty.capacity))

    @property
    def capacity(self) -> int:
        return max(1, math.floor(self.limit * BURST_FRACTION))

    @property
    def allowed_per_window(self) -> int:
        """The most our writers may send in any window: ``capacity + rate * window``."""
        return max(self.capacity, math.floor(self.limit * self.share))

    @property
    def rate_per_ms(self) -> float:
        return (self.allowed_per_window - self.capacity) / self.window_ms if self.window_ms else 0.0

    def refilled(self, now_ms: int) -> Bucket:
        elapsed = max(0, now_ms - self.at_ms)
        tokens = min(float(self.capacity), self.tokens + elapsed * self.rate_per_ms)
        return replace(self, tokens=tokens, at_ms=max(now_ms, self.at_ms))

    def take(self, n: int, now_ms: int) -> tuple[Bucket | None, float]:
        """``(new bucket, 0.0)`` when ``n`` tokens are granted, else ``(None, seconds to wait)``.

        ``n`` above the capacity can never be granted at once: callers take one per request.
        """
        if n < 1 or n > self.capacity:
            raise ValueError(f"take 1..{self.capacity} tokens, not {n}")
        if now_ms < self.blocked_until_ms:
            return None, (self.blocked_until_ms - now_ms) / 1000.0
        bucket = self.refilled(now_ms)
        if bucket.tokens >= n:
            return replace(bucket, tokens=bucket.tokens - n), 0.0
        missing = n - bucket.tokens
        rate = bucket.rate_per_ms
        wait_ms = missing / rate if rate > 0 else float(bucket.window_ms)
        return None, max(0.001, wait_ms / 1000.0)

    def observe(self, status: int, headers: Mapping[str, str], now_ms: int, *,
                daily_probe_seconds: float = DAILY_PROBE_SECONDS) -> Bucket:
        """The bucket after an answer from HighLevel (unchanged when it tells us nothing new)."""
        bucket = self.refilled(now_ms)
        limit = _number(header(headers, "X-RateLimit-Max"))
        window = _window_ms(headers)
        if limit is not None and _LIMIT_BOUNDS[0] <= limit <= _LIMIT_BOUNDS[1]:
            bucket = replace(bucket, limit=int(limit))
        if window is not None:
            bucket = replace(bucket, window_ms=int(window))
        bucket = replace(bucket, tokens=min(bucket.tokens, float(bucket.capacity)))

        remaining = _number(header(headers, "X-RateLimit-Remaining"))
        if remaining is not None:
            # HighLevel's count covers every caller of the location: never hold more than it.
            bucket = replace(bucket, tokens=min(bucket.tokens, max(0.0, remaining)))
        wait = rate_limit_wait(status, headers, now_ms / 1000.0,
                               daily_probe_seconds=daily_probe_seconds,
                               window_ms=bucket.window_ms)
        if wait is not None:
            until = now_ms + math.ceil(wait.seconds * 1000)
            bucket = replace(
                bucket, tokens=0.0, blocked_until_ms=max(bucket.blocked_until_ms, until)
            )
        return bucket

    def same_budget(self, other: Bucket) -> bool:
        """True when writing ``other`` instead of ``self`` would change nothing that matters
        (used to skip DynamoDB writes for answers that carry no news)."""
        return (
            self.limit == other.limit
            and self.window_ms == other.window_ms
            and self.blocked_until_ms == other.blocked_until_ms
            and other.tokens >= self.tokens - 1e-9
        )


def daily_spent(headers: Mapping[str, str]) -> bool:
    daily = _number(header(headers, "X-RateLimit-Daily-Remaining"))
    return daily is not None and daily <= 0
