"""DynamoDB items of the GoHighLevel integration, in the cache table (ARCHITECTURE.md).

* ``webhook#<webhookId or sha256:digest>``: the replay guard, a conditional put with a TTL
  (``expires_at``) longer than the freshness window (leadscore.ghl.delivery).
* ``writeback#<location>#<contact>``: the class and rounded score last written to HighLevel.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from leadscore.adapters import client, error_code
from leadscore.ghl.delivery import dedupe_ttl_seconds
from leadscore.ghl.payloads import replay_key
from leadscore.ghl.write_plan import STATE_TTL_SECONDS, LastWrite, state_key
from leadscore.settings import DEFAULT_MAX_DELIVERY_AGE_SECONDS

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class _TtlTable:
    """Items of the cache table that expire after `ttl_seconds` (client made on first use)."""

    default_ttl_seconds: int
    fast_client: bool  # ~1 s timeouts: for calls on a request path

    def __init__(
        self,
        table_name: str,
        ddb_client: DynamoDBClient | None = None,
        clock: Callable[[], float] = time.time,
        ttl_seconds: int | None = None,
    ) -> None:
        self.table_name = table_name
        self._client = ddb_client
        self._clock = clock
        self._ttl = self.default_ttl_seconds if ttl_seconds is None else ttl_seconds

    @property
    def ddb(self) -> DynamoDBClient:
        if self._client is None:
            self._client = client("dynamodb", fast=self.fast_client)
        return self._client


class DynamoReplayGuard(_TtlTable):
    """Remembers webhook ids. Errors other than "already seen" propagate to the caller."""

    default_ttl_seconds = dedupe_ttl_seconds(DEFAULT_MAX_DELIVERY_AGE_SECONDS)
    fast_client = True

    def claim(self, webhook_id: str) -> bool:
        """True the first time ``webhook_id`` is seen (within the TTL), False for a replay."""
        now = self._clock()
        try:
            self.ddb.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": replay_key(webhook_id)},
                    "expires_at": {"N": str(int(now + self._ttl))},
                },
                # An expired record that DynamoDB has not yet deleted does not count.
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release(self, webhook_id: str) -> None:
        """Forget a claim (the webhook was answered 429 and HighLevel will send it again)."""
        self.ddb.delete_item(TableName=self.table_name, Key={"pk": {"S": replay_key(webhook_id)}})


class DynamoWritebackState(_TtlTable):
    """The last write per contact; ``get`` ignores expired records."""

    default_ttl_seconds = STATE_TTL_SECONDS
    fast_client = False

    def get(self, location_id: str, contact_id: str) -> LastWrite | None:
        answer = self.ddb.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": state_key(location_id, contact_id)}},
            ConsistentRead=True,
        )
        item = answer.get("Item")
        if not item:
            return None
        if float(item.get("expires_at", {}).get("N", "0")) <= self._clock():
            return None
        try:
            return LastWrite(
                predicted_class=item["predicted_class"]["S"], score=int(item["score"]["N"])
            )
        except (KeyError, ValueError):
            return None

    def put(self, location_id: str, contact_id: str, state: LastWrite, model_version: str) -> None:
        now = self._clock()
        self.ddb.put_item(
            TableName=self.table_name,
            Item={
                "pk": {"S": state_key(location_id, contact_id)},
                "predicted_class": {"S": state.predicted_class},
                "score": {"N": str(state.score)},
                "model_version": {"S": model_version},
                "written_at": {"N": str(int(now))},
                "expires_at": {"N": str(int(now + self._ttl))},
            },
        )
