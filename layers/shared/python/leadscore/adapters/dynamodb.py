"""The DynamoDB score cache (table `CacheTable`: key `pk`, TTL attribute `expires_at`).

Items: ``{"pk": "score#...", "body": "<JSON of the cached score>", "expires_at": <epoch s>}``.
DynamoDB deletes expired items lazily (up to days later), so reads also check `expires_at`.
The client is the request-path profile (one attempt, 0.5 s read timeout) so a failing table
cannot stall a request; errors propagate to `TieredCache`, which logs and bypasses them and
skips the table for a while (circuit breaker).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from leadscore.adapters import client
from leadscore.scoring.cache import CachedScore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoScoreCache:
    def __init__(
        self,
        table_name: str,
        ddb_client: DynamoDBClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table_name = table_name
        self._client = ddb_client
        self._clock = clock

    @property
    def ddb(self) -> DynamoDBClient:
        if self._client is None:
            self._client = client("dynamodb", fast=True)
        return self._client

    def get(self, key: str) -> tuple[CachedScore, float] | None:
        answer = self.ddb.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": key}},
            ProjectionExpression="body, expires_at",
        )
        item = answer.get("Item")
        if not item:
            return None
        expires_at = float(item["expires_at"]["N"])
        if expires_at <= self._clock():
            return None
        value = CachedScore.from_json_obj(json.loads(item["body"]["S"]))
        if value is None:
            return None
        return value, expires_at

    def put(self, key: str, value: CachedScore, expires_at: float) -> None:
        self.ddb.put_item(
            TableName=self.table_name,
            Item={
                "pk": {"S": key},
                "body": {"S": json.dumps(value.to_json_obj(), separators=(",", ":"))},
                "expires_at": {"N": str(int(expires_at))},
            },
        )
