"""The write-back SQS queue (score function -> writeback function)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from leadscore.adapters import client
from leadscore.ghl.messages import WritebackMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class SqsWritebackQueue:
    def __init__(self, queue_url: str, sqs_client: SQSClient | None = None) -> None:
        if not queue_url:
            raise ValueError("WRITEBACK_QUEUE_URL is not set")
        self.queue_url = queue_url
        self._client = sqs_client

    @property
    def sqs(self) -> SQSClient:
        if self._client is None:
            # The default profile (three attempts): a webhook that cannot be queued is
            # answered 429, so a single slow attempt must not decide that.
            self._client = client("sqs")
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
