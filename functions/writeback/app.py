"""SQS -> HighLevel: the write-back function's wiring. The flow is `leadscore.ghl.writeback`.

Triggered by the write-back queue with ReportBatchItemFailures. Each message is written,
skipped, dropped as stale, delayed (re-queued: rate limits, no model yet), retried later
(re-queued with a backoff) or dead-lettered with its reason; only messages that could not be
started before the deadline (or not re-queued) are batch item failures. Every outcome is
logged once, with its reason.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext
from leadscore.adapters.tracing import make_tracer
from leadscore.ghl.deadline import Deadline
from leadscore.ghl.installations import Installations
from leadscore.ghl.writeback import (
    LoggingBatchProcessor,
    WritebackDeps,
    process_batch,
)
from leadscore.scoring.service import Scorer
from leadscore.settings import ScoreSettings, WritebackSettings

logger = Logger()
tracer = make_tracer("writeback")
metrics = Metrics(namespace="LeadScoring")
processor = LoggingBatchProcessor()


def _build_deps() -> WritebackDeps:
    from leadscore.adapters.ghl_api import ApiSender, location_token_reader
    from leadscore.adapters.ghl_budget import DynamoLocationBudget
    from leadscore.adapters.ghl_state import DynamoWritebackState
    from leadscore.adapters.writeback_queue import SqsRequeue
    from leadscore.ghl.stack_installation import StackInstallations

    settings = WritebackSettings.from_env()
    scorer: Scorer | None = None

    def get_scorer() -> Scorer:
        nonlocal scorer
        if scorer is None:
            from leadscore.experiments.serving import scorer_from_settings

            # Queued webhooks are answered by the contact's experiment variant, as on /score.
            # each location by its model scope: the installation says whether it pools
            scorer = scorer_from_settings(
                ScoreSettings.from_env(),
                installation=lambda loc: installations.installation(loc) if installations
                else None)
        return scorer

    # The installations table and/or the stack's own location when configured;
    # else every location with the stack's field ids and token secret (one PIT, or a map).
    installations: Installations | None = None
    if settings.installs.configured:
        from leadscore.adapters.installations import installations_from_settings

        installations = installations_from_settings(settings.installs)
    if installations is None:
        installations = StackInstallations(
            settings.ghl_score_field_id,
            settings.ghl_class_field_id,
            location_token_reader(settings.ghl_token_secret_arn),
        )
    return WritebackDeps(
        settings=settings,
        installations=installations,
        states=DynamoWritebackState(settings.writeback_state_table),
        budget=DynamoLocationBudget(settings.writeback_state_table, share=settings.budget_share,
                                    daily_probe_seconds=settings.daily_limit_probe_seconds),
        requeue=SqsRequeue(settings.writeback_queue_url, settings.writeback_dlq_url),
        api=ApiSender(settings.ghl_api_base),
        scorer=get_scorer,
    )


_deps: WritebackDeps | None = None


def deps() -> WritebackDeps:
    global _deps
    if _deps is None:
        _deps = _build_deps()
    return _deps


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    d = deps()
    deadline = Deadline.after(
        context.get_remaining_time_in_millis() / 1000.0,
        reserve_seconds=d.settings.deadline_reserve_seconds,
        min_call_seconds=d.settings.min_call_seconds,
    )
    return dict(process_batch(event, d, deadline, processor))
