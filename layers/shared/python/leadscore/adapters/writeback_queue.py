"""The write-back SQS queue (score function -> writeback function)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from leadscore.adapters import client, worker_send_client
from leadscore.ghl.messages import MAX_DELAY_SECONDS, WritebackMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class SqsWritebackQueue:
    """``record=True`` (the webhook route): the RECORD client profile, 1.5 s at worst; a send
    that fails there parks the delivery or answers 429, and HighLevel sends it again. The
    default profile (three attempts) is for senders without a caller waiting (the backfill)."""

    def __init__(self, queue_url: str, sqs_client: SQSClient | None = None, *,
                 record: bool = False) -> None:
        if not queue_url:
            raise ValueError("WRITEBACK_QUEUE_URL is not set")
        self.queue_url = queue_url
        self._client = sqs_client
        self._record = record

    @property
    def sqs(self) -> SQSClient:
        if self._client is None:
            self._client = client("sqs", record=self._record)
        return self._client

    def send(self, message: WritebackMessage) -> str:
        """Queue one message; returns the SQS message id. Errors propagate."""
        answer = self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=message.to_json())
        return str(answer.get("MessageId", ""))

    def send_batch(self, messages: list[WritebackMessage]) -> None:
        """Queue many messages, 10 per SendMessageBatch call (the backfill). Raises when SQS
        refuses any of them, naming how many."""
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            answer = self.sqs.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "MessageBody": m.to_json()} for i, m in enumerate(chunk)],
            )
            failed = answer.get("Failed") or []
            if failed:
                raise RuntimeError(f"SQS refused {len(failed)} of {len(chunk)} write-back messages")

class SqsRequeue:
    """The write-back function's own sends: a delayed copy back onto the write-back queue
    (waiting or retrying: a new message, so it never counts toward ``maxReceiveCount``) and
    a dead-lettered copy with its reason as message attributes."""

    def __init__(
        self, queue_url: str, dlq_url: str, sqs_client: SQSClient | None = None
    ) -> None:
        if not queue_url or not dlq_url:
            raise ValueError("WRITEBACK_QUEUE_URL and WRITEBACK_DLQ_URL must be set")
        self.queue_url = queue_url
        self.dlq_url = dlq_url
        self._client = sqs_client

    @property
    def sqs(self) -> SQSClient:
        if self._client is None:
            self._client = worker_send_client()
        return self._client

    def delay(self, body: str, delay_seconds: int) -> None:
        self.sqs.send_message(
            QueueUrl=self.queue_url,
            MessageBody=body,
            DelaySeconds=max(0, min(MAX_DELAY_SECONDS, int(delay_seconds))),
        )

    def dead_letter(self, body: str, reason: str, attributes: Mapping[str, str]) -> None:
        self.sqs.send_message(
            QueueUrl=self.dlq_url,
            MessageBody=body,
            MessageAttributes={
                name: {"DataType": "String", "StringValue": (value or "-")[:1000]}
                for name, value in {**attributes, "reason": reason}.items()
            },
        )
