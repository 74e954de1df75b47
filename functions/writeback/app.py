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
from leadscore.ghl.writeback import LoggingBatchProcessor, WritebackDeps, process_batch
from leadscore.settings import ScoreSettings, WritebackSettings
from leadscore.wiring.container import PerContainer
from leadscore.wiring.ghl import writeback_deps
from leadscore.wiring.scoring import queued_scorer

logger = Logger()
tracer = make_tracer("writeback")
metrics = Metrics(namespace="LeadScoring")
processor = LoggingBatchProcessor()


def _installation(location_id: str) -> Any:
    """A location's record (whether it pools), for its model scope."""
    installs = _deps.get().installations
    return None if installs is None else installs.installation(location_id)


# Queued webhooks are answered by the contact's experiment variant, as on /score, with the
# same request limits, and each location by its model scope (leadscore.wiring.scoring).
_scorer = PerContainer(lambda: queued_scorer(ScoreSettings.from_env(), installation=_installation))
_deps = PerContainer(lambda: writeback_deps(WritebackSettings.from_env(), _scorer.get))


def deps() -> WritebackDeps:
    return _deps.get()


def reset() -> None:
    """Forget the dependencies and the scorer (tests change the environment)."""
    _deps.set(None)
    _scorer.set(None)


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
