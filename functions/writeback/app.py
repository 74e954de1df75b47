"""SQS -> HighLevel: the score and class custom fields, and the class tag, onto the contact.

Triggered by the write-back queue with ReportBatchItemFailures: a message that fails (still
rate-limited after the allowed wait, a 4xx/5xx from HighLevel, a webhook that still cannot be
scored) is reported as a batch item failure, returns to the queue and ends in the dead-letter
queue after the queue's maxReceiveCount, with its reason logged next to its message id.

Per message (``leadscore.writeback`` holds the decisions):
1. ``kind == "webhook"``: score the parsed request first (MODEL_URI, same layer);
2. skip when the class and rounded score equal the last write recorded for the contact;
3. ``PUT /contacts/{id}`` with the two custom fields, then (when the class changed) add the
   class tag and remove the other class tags;
4. record the write (``writeback#<location>#<contact>``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

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
from leadscore.errors import InvalidInput
from leadscore.settings import ScoreSettings, WritebackSettings
from leadscore.writeback import (
    LastWrite,
    MessageError,
    WritebackMessage,
    parse_message,
    plan_write,
)

logger = Logger()
tracer = make_tracer("writeback")
metrics = Metrics(namespace="LeadScoring")
# Every failed message is reported as a batch item failure, even when all of them failed (an
# invocation error would also return them to the queue, but counts as a function error).
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class ModelUnavailable(Exception):
    """A queued webhook still cannot be scored by the model: retry later."""


class Scorer(Protocol):
    def score(self, request: Mapping[str, Any], *, explain: bool = True) -> dict[str, Any]: ...


class StateStore(Protocol):
    def get(self, location_id: str, contact_id: str) -> LastWrite | None: ...
    def put(
        self, location_id: str, contact_id: str, state: LastWrite, model_version: str
    ) -> None: ...


@dataclass
class Container:
    """Everything built once per container (lazily: nothing AWS happens at import)."""

    settings: WritebackSettings
    api: Callable[[], GhlApiClient]  # a fresh client per message: its wait budget is per message
    state: StateStore
    scorer: Callable[[], Scorer]


def _build_container() -> Container:
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
            from leadscore.model_store import ModelStore
            from leadscore.scoring import ScoringService

            score_settings = ScoreSettings.from_env()
            scorer = ScoringService(
                ModelStore(
                    score_settings.model_uri,
                    refresh_seconds=score_settings.model_refresh_seconds,
                ),
                class_thresholds=score_settings.class_thresholds,
            )
        return scorer

    return Container(
        settings=settings,
        api=api,
        state=DynamoWritebackState(settings.writeback_state_table),
        scorer=get_scorer,
    )


_container: Container | None = None

#: monotonic time by which this invocation must be done (set per invocation).
_deadline: float = float("inf")


def wait_budget(settings: WritebackSettings) -> float:
    """How long one message may wait for rate limits: the configured bound, shortened so the
    batch finishes before the Lambda timeout (keeping room for the calls themselves). A
    message with no budget left fails fast and returns to the queue."""
    reserve = 4 * settings.http_timeout_seconds + 1.0
    left = _deadline - time.monotonic() - reserve
    return max(0.0, min(settings.max_rate_limit_wait_seconds, left))


def container() -> Container:
    global _container
    if _container is None:
        _container = _build_container()
    return _container


def _scored(message: WritebackMessage, c: Container) -> WritebackMessage:
    assert message.webhook is not None
    try:
        score = c.scorer().score(message.webhook, explain=False)
    except InvalidInput as exc:
        # Cannot get better by retrying, but the DLQ keeps it for a person to look at.
        raise MessageError(f"invalid lead data: {', '.join(exc.paths)}") from exc
    if score.get("source") != "ensemble":
        raise ModelUnavailable("model unavailable")
    return message.with_score(score)


def write_back(body: str, c: Container, log_keys: Mapping[str, str] | None = None) -> str:
    """One queue message -> "written", "fields" (PUT only) or "skipped". Raises to retry."""
    message = parse_message(body)
    keys = {
        **(log_keys or {}),
        "contact_id": message.contact_id,
        "location_id": message.location_id,
        "kind": message.kind,
    }
    if message.needs_scoring:
        message = _scored(message, c)
    try:
        last = c.state.get(message.location_id, message.contact_id)
    except Exception:
        # Without the record we cannot skip, but writing the same values again is harmless.
        logger.warning("write-back state unreadable; writing anyway", extra=keys)
        last = None
    plan = plan_write(
        message,
        last,
        score_field_id=c.settings.ghl_score_field_id,
        class_field_id=c.settings.ghl_class_field_id,
    )
    if plan.skip:
        logger.info("unchanged score, write skipped", extra=keys)
        metrics.add_metric(name="WritebackSkipped", unit=MetricUnit.Count, value=1)
        return "skipped"

    api = c.api()
    if plan.custom_fields:
        api.update_custom_fields(plan.contact_id, plan.put_body())
    if plan.add_tags:
        api.add_tags(plan.contact_id, list(plan.add_tags))
    if plan.remove_tags:
        api.remove_tags(plan.contact_id, list(plan.remove_tags))

    try:
        c.state.put(plan.location_id, plan.contact_id, plan.state, message.model_version or "")
    except Exception:
        logger.warning("write-back state not recorded", extra=keys)
    outcome = "written" if plan.add_tags else "fields"
    logger.info(
        "score written to HighLevel",
        extra={**keys, "predicted_class": plan.predicted_class, "score": plan.score,
               "outcome": outcome, "rate_limit_wait_seconds": api.waited_seconds},
    )
    metrics.add_metric(name="WritebackWritten", unit=MetricUnit.Count, value=1)
    return outcome


@tracer.capture_method
def record_handler(record: SQSRecord) -> str:
    keys = {"message_id": record.message_id}
    try:
        return write_back(record.body, container(), keys)
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
