"""SQS -> HighLevel: the write-back function's wiring. The flow is `leadscore.ghl.writeback`.

Triggered by the write-back queue with ReportBatchItemFailures: a message that fails (still
rate-limited after the allowed wait, a 4xx/5xx from HighLevel, a webhook that still cannot be
scored) is reported as a batch item failure, returns to the queue and ends in the dead-letter
queue after the queue's maxReceiveCount, with its reason logged next to its message id.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from leadscore.adapters.ghl_api import GhlApiClient, GhlApiError
from leadscore.adapters.tracing import make_tracer
from leadscore.ghl.messages import MessageError
from leadscore.ghl.writeback import WritebackDeps, write_back
from leadscore.scoring.model_store import ModelUnavailable
from leadscore.scoring.service import Scorer
from leadscore.settings import ScoreSettings, WritebackSettings

logger = Logger()
tracer = make_tracer("writeback")
metrics = Metrics(namespace="LeadScoring")
# Every failed message is reported as a batch item failure, even when all of them failed (an
# invocation error would also return them to the queue, but counts as a function error).
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _build_deps() -> WritebackDeps:
    from leadscore.adapters.ghl_api import refresh_secret, secret_token_provider
    from leadscore.adapters.ghl_state import DynamoWritebackState

    settings = WritebackSettings.from_env()
    token = secret_token_provider(settings.ghl_token_secret_arn)
    scorer: Scorer | None = None

    def api() -> GhlApiClient:
        return GhlApiClient(
            settings.ghl_api_base,
            token,
            timeout_seconds=settings.http_timeout_seconds,
            max_wait_seconds=wait_budget(settings),
            on_unauthorized=lambda: refresh_secret(settings.ghl_token_secret_arn),
        )

    def get_scorer() -> Scorer:
        nonlocal scorer
        if scorer is None:
            from leadscore.experiments.serving import scorer_from_settings

            # Queued webhooks are answered by the contact's experiment variant, as on /score.
            scorer = scorer_from_settings(ScoreSettings.from_env())
        return scorer

    return WritebackDeps(
        settings=settings,
        api=api,
        state=DynamoWritebackState(settings.writeback_state_table),
        scorer=get_scorer,
    )


_deps: WritebackDeps | None = None

#: monotonic time by which this invocation must be done (set per invocation).
_deadline: float = float("inf")


def wait_budget(settings: WritebackSettings) -> float:
    """How long one message may wait for rate limits: the configured bound, shortened so the
    batch finishes before the Lambda timeout (keeping room for the calls themselves). A
    message with no budget left fails fast and returns to the queue."""
    reserve = 4 * settings.http_timeout_seconds + 1.0
    left = _deadline - time.monotonic() - reserve
    return max(0.0, min(settings.max_rate_limit_wait_seconds, left))


def deps() -> WritebackDeps:
    global _deps
    if _deps is None:
        _deps = _build_deps()
    return _deps


@tracer.capture_method
def record_handler(record: SQSRecord) -> str:
    keys = {"message_id": record.message_id}
    try:
        return write_back(record.body, deps(), keys)
    except GhlApiError as exc:
        logger.error(
            "HighLevel write failed",
            extra={**keys, "status": exc.status, "reason": exc.reason,
                   "receive_count": record.attributes.approximate_receive_count},
        )
        metrics.add_metric(name="WritebackFailed", unit=MetricUnit.Count, value=1)
        raise
    except (MessageError, ModelUnavailable) as exc:
        logger.error("write-back message not written", extra={**keys, "reason": str(exc)})
        metrics.add_metric(name="WritebackFailed", unit=MetricUnit.Count, value=1)
        raise


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _deadline
    started = time.monotonic()
    _deadline = started + context.get_remaining_time_in_millis() / 1000.0
    answer = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    logger.debug("batch done", extra={"seconds": round(time.monotonic() - started, 3)})
    return dict(answer)
