"""The per-location HighLevel budget (``leadscore.ghl.budget.Bucket``) in DynamoDB.

Item ``ratelimit#<locationId>`` in the cache table: ``tokens`` N, ``at_ms`` N, ``limit`` N,
``window_ms`` N, ``blocked_until_ms`` N, ``version`` N, ``expires_at`` N (a day after the last
change; an expired bucket starts full again, which is what an idle location has anyway).

Every change is a read (consistent) and a put conditional on the version read, so two
containers can never both spend the last token; the loser reads again. After a few lost races
in a row the caller is told to wait a moment instead of spinning on the item.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from leadscore.adapters import client, error_code
from leadscore.ghl.budget import (
    DAILY_PROBE_SECONDS,
    DEFAULT_LIMIT,
    DEFAULT_SHARE,
    DEFAULT_WINDOW_MS,
    Bucket,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BUDGET_TTL_SECONDS = 24 * 3600
_MAX_RACES = 6
_CONTENDED_WAIT_SECONDS = 0.05


def budget_key(location_id: str) -> str:
    return f"ratelimit#{location_id}"


class DynamoLocationBudget:
    """``take(location, n) -> seconds to wait`` (0.0 = granted) and ``observe(...)``."""

    def __init__(
        self,
        table_name: str,
        ddb_client: DynamoDBClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
        share: float = DEFAULT_SHARE,
        default_limit: int = DEFAULT_LIMIT,
        default_window_ms: int = DEFAULT_WINDOW_MS,
        jitter: Callable[[], float] = random.random,
        sleep: Callable[[float], None] = time.sleep,
        daily_probe_seconds: float = DAILY_PROBE_SECONDS,
    ) -> None:
        if not table_name:
            raise ValueError("the budget needs a DynamoDB table (CACHE_TABLE)")
        self.table_name = table_name
        self._client = ddb_client
        self._clock = clock
        self._share = share
        self._default_limit = default_limit
        self._default_window_ms = default_window_ms
        self._jitter = jitter
        self._sleep = sleep
        #: the stack's WRITEBACK_DAILY_PROBE_SECONDS: the block and the write-back's wait agree
        self._daily_probe = daily_probe_seconds
        self.races = 0  # lost conditional writes (a figure for the soak)
        # The bucket as last read or written per location: an answer that brings no news
        # against it costs no DynamoDB call at all (most answers).
        self._seen: dict[str, Bucket] = {}

    @property
    def ddb(self) -> DynamoDBClient:
        if self._client is None:
            self._client = client("dynamodb", fast=True)
        return self._client

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _read(self, location_id: str, now_ms: int) -> Bucket:
        answer = self.ddb.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": budget_key(location_id)}},
            ConsistentRead=True,
        )
        item = answer.get("Item")
        fresh = Bucket.fresh(
            now_ms, limit=self._default_limit, window_ms=self._default_window_ms, share=self._share
        )
        if not item:
            self._seen[location_id] = fresh
            return fresh
        try:
            version = int(item["version"]["N"])
            if int(item.get("expires_at", {}).get("N", "0")) * 1000 <= now_ms:
                return replace(fresh, version=version)
            bucket = Bucket(
                tokens=float(item["tokens"]["N"]),
                at_ms=int(item["at_ms"]["N"]),
                limit=int(item["limit"]["N"]),
                window_ms=int(item["window_ms"]["N"]),
                blocked_until_ms=int(item["blocked_until_ms"]["N"]),
                version=version,
                share=self._share,
            )
            self._seen[location_id] = bucket
            return bucket
        except (KeyError, ValueError):
            # An item we cannot read is replaced (keeping the version so the put still races).
            version = int(item.get("version", {}).get("N", "0") or 0)
            return replace(fresh, version=version)

    def _write(self, location_id: str, old: Bucket, new: Bucket, now_ms: int) -> bool:
        """Put ``new`` if the item still has ``old``'s version; False when another won."""
        item = {
            "pk": {"S": budget_key(location_id)},
            "tokens": {"N": repr(round(new.tokens, 6))},
            "at_ms": {"N": str(new.at_ms)},
            "limit": {"N": str(new.limit)},
            "window_ms": {"N": str(new.window_ms)},
            "blocked_until_ms": {"N": str(new.blocked_until_ms)},
            "version": {"N": str(old.version + 1)},
            "expires_at": {"N": str(now_ms // 1000 + BUDGET_TTL_SECONDS)},
        }
        if old.version == 0:
            condition = "attribute_not_exists(pk) OR version = :v"
        else:
            condition = "version = :v"
        try:
            self.ddb.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeValues={":v": {"N": str(old.version)}},
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                self.races += 1
                return False
            raise
        self._seen[location_id] = replace(new, version=old.version + 1)
        return True

    def take(self, location_id: str, n: int = 1) -> float:
        """Take ``n`` tokens: 0.0 when granted, else the seconds to wait before asking again."""
        for _ in range(_MAX_RACES):
            now_ms = self._now_ms()
            bucket = self._read(location_id, now_ms)
            granted, wait = bucket.take(n, now_ms)
            if granted is None:
                return wait
            if self._write(location_id, bucket, granted, now_ms):
                return 0.0
            self._sleep(0.005 * self._jitter())
        return _CONTENDED_WAIT_SECONDS * (1.0 + self._jitter())

    def observe(self, location_id: str, status: int, headers: Mapping[str, str]) -> None:
        """Feed an answer's rate-limit headers (and a 429) into the location's bucket."""
        seen = self._seen.get(location_id)
        if seen is not None:
            now_ms = self._now_ms()
            # Another writer may have spent tokens since: comparing against what we saw can
            # only find MORE news, never hide a 429 or a lower Remaining.
            if seen.refilled(now_ms).same_budget(seen.observe(
                    status, headers, now_ms, daily_probe_seconds=self._daily_probe)):
                return
        for _ in range(_MAX_RACES):
            now_ms = self._now_ms()
            bucket = self._read(location_id, now_ms)
            current = bucket.refilled(now_ms)
            updated = bucket.observe(status, headers, now_ms,
                                     daily_probe_seconds=self._daily_probe)
            if current.same_budget(updated):
                return
            if self._write(location_id, bucket, updated, now_ms):
                return
            self._sleep(0.005 * self._jitter())
