"""Kinesis Data Firehose ``PutRecordBatch``: the AWS sender of ``leadscore.loop.sink``.

One call carries at most 500 records and 4 MiB; a bigger batch is split. Records the
service reports as failed (``ErrorCode`` in ``RequestResponses``) are answered back as
indexes, and the sink re-sends them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from leadscore.adapters import client
from leadscore.loop.store_writer import record_line

MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1000 * 1024


class FirehoseSender:
    def __init__(self, stream_name: str, firehose_client: Any | None = None) -> None:
        self.stream_name = stream_name
        self._client = firehose_client

    @property
    def firehose(self) -> Any:
        if self._client is None:
            self._client = client("firehose")
        return self._client

    def __call__(self, records: Sequence[dict[str, Any]]) -> Sequence[int]:
        failed: list[int] = []
        chunk: list[tuple[int, bytes]] = []
        size = 0
        for index, record in enumerate(records):
            data = record_line(record)
            if len(data) > MAX_RECORD_BYTES:
                continue  # cannot be stored by Firehose at all; a snapshot is ~2 KB
            if chunk and (len(chunk) >= MAX_BATCH_RECORDS or size + len(data) > MAX_BATCH_BYTES):
                failed.extend(self._put(chunk))
                chunk, size = [], 0
            chunk.append((index, data))
            size += len(data)
        if chunk:
            failed.extend(self._put(chunk))
        return failed

    def _put(self, chunk: list[tuple[int, bytes]]) -> list[int]:
        answer = self.firehose.put_record_batch(
            DeliveryStreamName=self.stream_name,
            Records=[{"Data": data} for _, data in chunk],
        )
        if not answer.get("FailedPutCount"):
            return []
        responses = answer.get("RequestResponses", [])
        return [
            chunk[i][0]
            for i, response in enumerate(responses)
            if i < len(chunk) and response.get("ErrorCode")
        ]
