"""DynamoDB items of the loop, in the cache table (ARCHITECTURE.md, table keys):

* ``engagement#<location>#<contact>``: message counters (``leadscore.loop.engagement``),
  updated with an optimistic version check so concurrent webhooks do not lose a message;
* ``backfill#<location>#<job>``: the backfill checkpoint (JSON), saved after every page.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from leadscore.adapters import client, error_code
from leadscore.loop.backfill import Checkpoint
from leadscore.loop.engagement import Engagement, MessageEvent, engagement_key

ENGAGEMENT_TTL_SECONDS = 400 * 24 * 3600  # a conversation that is silent this long starts over
CHECKPOINT_TTL_SECONDS = 30 * 24 * 3600


class DynamoEngagementStore:
    def __init__(
        self,
        table_name: str,
        ddb_client: Any | None = None,
        *,
        fast: bool = True,
        clock: Callable[[], float] = time.time,
        max_attempts: int = 5,
    ) -> None:
        self.table_name = table_name
        self._client = ddb_client
        self._fast = fast
        self._clock = clock
        self.max_attempts = max_attempts

    @property
    def ddb(self) -> Any:
        if self._client is None:
            self._client = client("dynamodb", fast=self._fast)
        return self._client

    def _read(self, location_id: str, contact_id: str) -> tuple[Engagement | None, int]:
        answer = self.ddb.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": engagement_key(location_id, contact_id)}},
            ConsistentRead=True,
        )
        item = answer.get("Item")
        if not item:
            return None, 0
        return Engagement.from_item(json.loads(item["counters"]["S"])), int(item["version"]["N"])

    def get(self, location_id: str, contact_id: str) -> Engagement | None:
        return self._read(location_id, contact_id)[0]

    def get_many(self, location_id: str, contact_ids: list[str]) -> dict[str, Engagement]:
        """Counters of many contacts, 100 keys per BatchGetItem (the backfill reads a page)."""
        found: dict[str, Engagement] = {}
        wanted = list(dict.fromkeys(contact_ids))
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            keys = [{"pk": {"S": engagement_key(location_id, c)}} for c in chunk]
            request = {self.table_name: {"Keys": keys, "ConsistentRead": True}}
            for _ in range(self.max_attempts):
                answer = self.ddb.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self.table_name, []):
                    contact = item["pk"]["S"].split("#", 2)[2]
                    found[contact] = Engagement.from_item(json.loads(item["counters"]["S"]))
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
        return found

    def apply(self, event: MessageEvent) -> Engagement:
        """Count one message; retried on a concurrent update of the same contact."""
        for _ in range(self.max_attempts):
            current, version = self._read(event.location_id, event.contact_id)
            updated = (current or Engagement()).apply(event)
            item = {
                "pk": {"S": engagement_key(event.location_id, event.contact_id)},
                "counters": {"S": json.dumps(updated.to_item())},
                "version": {"N": str(version + 1)},
                "expires_at": {"N": str(int(self._clock() + ENGAGEMENT_TTL_SECONDS))},
            }
            condition = (
                {"ConditionExpression": "attribute_not_exists(pk)"}
                if version == 0
                else {
                    "ConditionExpression": "version = :v",
                    "ExpressionAttributeValues": {":v": {"N": str(version)}},
                }
            )
            try:
                self.ddb.put_item(TableName=self.table_name, Item=item, **condition)
            except Exception as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    continue
                raise
            return updated
        raise RuntimeError("engagement counters: too many concurrent updates")


class DynamoCheckpoints:
    def __init__(
        self, table_name: str, ddb_client: Any | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.table_name = table_name
        self._client = ddb_client
        self._clock = clock

    @property
    def ddb(self) -> Any:
        if self._client is None:
            self._client = client("dynamodb")
        return self._client

    @staticmethod
    def key(location_id: str, job_id: str) -> str:
        return f"backfill#{location_id}#{job_id}"

    def load(self, location_id: str, job_id: str) -> Checkpoint | None:
        answer = self.ddb.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": self.key(location_id, job_id)}},
            ConsistentRead=True,
        )
        item = answer.get("Item")
        return None if not item else Checkpoint.from_json(item["checkpoint"]["S"])

    def save(self, checkpoint: Checkpoint) -> None:
        self.ddb.put_item(
            TableName=self.table_name,
            Item={
                "pk": {"S": self.key(checkpoint.location_id, checkpoint.job_id)},
                "checkpoint": {"S": checkpoint.to_json()},
                "expires_at": {"N": str(int(self._clock() + CHECKPOINT_TTL_SECONDS))},
            },
        )
