"""Parked HighLevel deliveries in S3: ``<prefix><YYYY-MM-DD>/<HHMMSS>-<digest>.json``, those
waiting for a first model per contact: ``<prefix>awaiting-model/<location>/<contact>/...``.

The artifact bucket (SSE, versioned, public access blocked); the template's lifecycle rule
expires the prefix after 30 days (parked bodies may hold personal data).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from leadscore.adapters import client
from leadscore.ghl.parking import ParkedDelivery, dumps

DEFAULT_PREFIX = "ghl/parked/"


class S3ParkedStore:
    def __init__(self, bucket: str, prefix: str = DEFAULT_PREFIX,
                 s3_client: Any | None = None, *, record: bool = False) -> None:
        if not bucket:
            raise ValueError("PARKED_BUCKET is not set")
        self.bucket = bucket
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self._client = s3_client
        # record=True (the webhook route): parking is the last way to record a delivery
        # before answering 429, so it gets the RECORD profile (1.5 s at worst)
        self._record = record

    @property
    def s3(self) -> Any:
        if self._client is None:
            self._client = client("s3", record=self._record)
        return self._client

    def _key(self, parked_id: str) -> str:
        if ".." in parked_id or parked_id.startswith("/"):
            raise ValueError("bad parked id")
        return f"{self.prefix}{parked_id}.json"

    def park(self, record: ParkedDelivery) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self._key(record.parked_id),
                           Body=dumps(record), ContentType="application/json")

    def list(self, folder: str = "") -> Iterator[ParkedDelivery]:
        for parked_id in self.ids(folder):
            yield self.get(parked_id)

    def ids(self, folder: str = "") -> Iterator[str]:
        # S3 lists keys in UTF-8 binary order: sorted, as the protocol asks
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + folder):
            for obj in page.get("Contents", []):
                key = str(obj["Key"])
                if key.endswith(".json"):
                    yield key[len(self.prefix):-len(".json")]

    def get(self, parked_id: str) -> ParkedDelivery:
        answer = self.s3.get_object(Bucket=self.bucket, Key=self._key(parked_id))
        return ParkedDelivery.from_json(json.loads(answer["Body"].read()))

    def delete(self, parked_id: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self._key(parked_id))
