"""EventBridge Scheduler (daily by default) -> the labelled export (leadscore.loop.export).

Thin: the settings pick the query engine (Athena over the Glue tables in AWS; DuckDB over
``RECORD_DIR`` in local mode) and the store the export is written to (the artifact bucket, or
``RECORD_DIR`` locally). A written export lands under ``training-data/auto/`` and starts the
ordinary retraining path; its most recently resolved rows are kept back under
``evaluation/holdout/`` (the platform-held evaluation set the promote gate measures on).
With a team's own columns (the champion's schema, or the stack's ``TEAM_SCHEMA_KEY``) the
export is a CSV in the team's layout with the schema beside it (`leadscore.loop.export`).
The event may carry ``{"force": true}`` (skip the new-outcomes
minimum, never the idempotence) and ``{"now_ms": ...}`` (the simulation's clock).
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from leadscore.loop.export import ExportConfig, QueryRunner, run_export, stack_schema
from leadscore.loop.records import epoch_ms
from leadscore.registry.store import ObjectStore
from leadscore.settings import LoopSettings
from leadscore.wiring.container import PerContainer
from leadscore.wiring.loop import loop_settings, query_and_store

logger = Logger(service="export")
metrics = Metrics(namespace="LeadScoring", service="export")


def build(settings: LoopSettings) -> tuple[QueryRunner, ObjectStore, ExportConfig]:
    runner, store = query_and_store(settings)
    config = ExportConfig(
        window_days=settings.export_window_days,
        snapshot_lookback_days=settings.export_snapshot_lookback_days,
        min_new_outcomes=settings.export_min_new_outcomes,
        include_backfilled=settings.export_include_backfilled,
    )
    return runner, store, config


_built = PerContainer(lambda: build(loop_settings()))


def components() -> tuple[QueryRunner, ObjectStore, ExportConfig]:
    return _built.get()


def reset() -> None:
    """Forget the components (tests and the simulation change the environment)."""
    _built.set(None)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runner, store, config = components()
    payload = event if isinstance(event, dict) else {}
    now_ms = payload.get("now_ms")
    result = run_export(
        runner,
        store,
        config,
        now_ms=int(now_ms) if isinstance(now_ms, int) else epoch_ms(time.time()),
        force=payload.get("force") is True,
        # read each run: a promotion may switch the stack to (or from) a team's columns
        schema=stack_schema(store, loop_settings().team_schema_key,
                            loop_settings().training_hyperparameters),
    )
    answer = result.as_dict()
    logger.info("labelled export", extra=answer)
    metrics.add_metric(name="ExportNewOutcomes", unit=MetricUnit.Count, value=result.new_outcomes)
    if result.status == "exported":
        metrics.add_metric(name="ExportRows", unit=MetricUnit.Count, value=result.rows)
    return answer
