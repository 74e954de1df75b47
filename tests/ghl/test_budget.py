"""The per-location token bucket: the arithmetic (property-tested) and the DynamoDB adapter
(moto, with racing writers)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from leadscore.ghl.budget import DAILY_PROBE_SECONDS, Bucket, retry_after_seconds

from tests.fixtures.ghl import GhlAws

WINDOW_MS = 10_000


def _max_in_window(times_ms: list[int], window_ms: int) -> int:
    times = sorted(times_ms)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window_ms:
            start += 1
        best = max(best, end - start + 1)
    return best


events = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=400),  # ms since the previous event
        st.sampled_from(["take", "take", "take", "remaining", "429"]),
        st.integers(min_value=0, max_value=100),  # X-RateLimit-Remaining
    ),
    min_size=1,
    max_size=600,
)


@settings(max_examples=150, deadline=None)
@given(events)
def test_no_window_ever_sees_more_than_the_allowed_share(seq: list[tuple[int, str, int]]) -> None:
    bucket = Bucket.fresh(0)
    now, granted = 0, []
    for gap, kind, remaining in seq:
        now += gap
        if kind == "take":
            new, wait = bucket.take(1, now)
            if new is not None:
                bucket = new
                granted.append(now)
            else:
                assert wait > 0
        elif kind == "remaining":
            bucket = bucket.observe(200, {"X-RateLimit-Remaining": str(remaining)}, now)
        else:
            bucket = bucket.observe(429, {}, now)
    assert bucket.allowed_per_window == 90
    assert _max_in_window(granted, WINDOW_MS) <= 90


def test_a_hungry_writer_gets_exactly_the_share() -> None:
    """Taking as fast as allowed for a minute: 90 per 10 s window, every window."""
    bucket, granted, now = Bucket.fresh(0), [], 0
    while now < 60_000:
        new, wait = bucket.take(1, now)
        if new is None:
            now += max(1, int(wait * 1000))
            continue
        bucket = new
        granted.append(now)
    assert 88 <= _max_in_window(granted, WINDOW_MS) <= 90
    assert 480 <= len(granted) <= 496  # 10 at once, then 8.1 per second


def test_headers_set_the_limit_and_a_429_blocks_until_retry_after() -> None:
    bucket = Bucket.fresh(0).observe(
        200, {"x-ratelimit-max": "50", "X-RateLimit-Interval-Milliseconds": "1000"}, 0)
    assert (bucket.limit, bucket.window_ms, bucket.capacity) == (50, 1000, 5)
    blocked = bucket.observe(429, {"Retry-After": "7"}, 1000)
    new, wait = blocked.take(1, 2000)
    assert new is None and wait == pytest.approx(6.0)
    assert blocked.take(1, 8000)[0] is not None
    daily = Bucket.fresh(0).observe(200, {"X-RateLimit-Daily-Remaining": "0"}, 0)
    assert daily.take(1, 1000)[1] == pytest.approx(DAILY_PROBE_SECONDS - 1)
    nonsense = Bucket.fresh(0).observe(200, {"X-RateLimit-Max": "1e12"}, 0)
    assert nonsense.limit == 100  # a broken header never opens the tap


def test_retry_after_as_http_date() -> None:
    assert retry_after_seconds({"Retry-After": "Thu, 01 Jan 1970 00:01:40 GMT"}, 40.0) == 60.0
    assert retry_after_seconds({"Retry-After": "soon"}, 0.0) is None


def test_racing_containers_never_spend_one_token_twice(ghl_aws: GhlAws) -> None:
    """Eight threads (each its own adapter, like separate Lambda containers) drain a fresh
    bucket at a frozen clock: exactly `capacity` takes succeed; the others lose the
    conditional write or find the bucket empty."""
    import boto3
    from leadscore.adapters.ghl_budget import DynamoLocationBudget

    granted: list[int] = []
    lock = threading.Lock()

    def writer() -> None:
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        budget = DynamoLocationBudget(ghl_aws.table, ddb, clock=lambda: 1_000.0)
        for _ in range(5):
            if budget.take("loc-race") == 0.0:
                with lock:
                    granted.append(1)

    _serialise_moto_dynamodb()
    # One call from this thread first: the IAM proof's hook (tests/fixtures/iam.py) parses the
    # calling modules once and caches them; parsing from eight threads at once is not safe.
    DynamoLocationBudget(ghl_aws.table, ghl_aws.ddb, clock=lambda: 1_000.0).take("warm-up")
    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == Bucket.fresh(0).capacity == 10


def _serialise_moto_dynamodb() -> None:
    """DynamoDB applies each conditional write atomically; moto's in-process backend does
    not lock, so its item operations are serialised here (once per process)."""
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend, "_serialised", False):
        return
    lock = threading.RLock()
    for name in ("get_item", "put_item", "update_item", "delete_item"):
        original = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, locked)
    DynamoDBBackend._serialised = True  # type: ignore[attr-defined]
