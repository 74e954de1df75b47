"""The stores `leadscore.loop.deletion.Eraser` deletes from: a DynamoDB table by key, the
loop's record files in S3."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from leadscore.adapters import client


class DynamoItems:
    """Items of a table with the partition key ``pk`` (the cache or installations table)."""

    def __init__(self, table_name: str, ddb_client: Any | None = None,
                 *, fast: bool = False) -> None:
        self.table_name = table_name
        self._client = ddb_client
        self._fast = fast

    @property
    def ddb(self) -> Any:
        if self._client is None:
            self._client = client("dynamodb", fast=self._fast)
        return self._client

    def delete(self, keys: Iterable[str]) -> int:
        """Delete each key; returns how many existed."""
        removed = 0
        for key in keys:
            answer = self.ddb.delete_item(TableName=self.table_name, Key={"pk": {"S": key}},
                                          ReturnValues="ALL_OLD")
            removed += 1 if answer.get("Attributes") else 0
        return removed

    def keys_with_prefixes(self, prefixes: Sequence[str]) -> list[str]:
        """Every key starting with one of ``prefixes`` (a Scan: an operator's purge, never a
        request path)."""
        found: list[str] = []
        paginator = self.ddb.get_paginator("scan")
        for page in paginator.paginate(TableName=self.table_name, ProjectionExpression="pk"):
            for item in page.get("Items", []):
                key = item["pk"]["S"]
                if key.startswith(tuple(prefixes)):
                    found.append(key)
        return found


class S3Objects:
    """Objects under a bucket (list, read, rewrite, delete)."""

    def __init__(self, bucket: str, s3_client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = s3_client

    @property
    def s3(self) -> Any:
        if self._client is None:
            self._client = client("s3")
        return self._client

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                      Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def get_bytes(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/json") -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=key)
