"""EventBridge Scheduler (daily by default) -> the labelled export (leadscore.loop.export).

Thin: the settings pick the query engine (Athena over the Glue tables in AWS; DuckDB over
``RECORD_DIR`` in local mode) and the store the export is written to (the artifact bucket, or
``RECORD_DIR`` locally). A written export lands under ``training-data/auto/`` and starts the
ordinary retraining path; its most recently resolved rows are kept back under
``evaluation/holdout/`` (the platform-held evaluation set the promote gate measures on).
With a team's own columns (the champion's schema, or the stack's ``TEAM_SCHEMA_KEY``) the
export is a CSV in the team's layout with the schema beside it (`leadscore.loop.export`).
The event (`leadscore.loop.export_request.ExportRequest`, its one owner) may carry
``{"force": true}`` (skip the new-outcomes minimum, never the idempotence) and
``{"now_ms": ...}`` (the simulation's clock).

With ``LOCATION_MODELS=true`` each run also exports per location (`leadscore.loop.location_export`:
a location's first model once its resolved leads hold enough conversions, then its retraining
on its own new outcomes); ``{"location_id": ID}`` runs that one location only (the backfill's
end, an operator), ``{"location_id": ID, "drift": true}`` exports it because its drift was
confirmed, whatever its count of new outcomes.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from leadscore.loop.export import ExportConfig, QueryRunner, run_export, stack_schema
from leadscore.loop.export_request import ExportRequest
from leadscore.loop.location_export import LocationExport, run_location_exports
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


def _location_exports(runner: QueryRunner, store: ObjectStore, config: ExportConfig,
                      request: ExportRequest, now_ms: int) -> dict[str, Any]:
    only = None if request.location_id is None else [request.location_id]
    results = run_location_exports(runner, store, config, now_ms=now_ms,
                                   min_conversions=loop_settings().location_min_conversions,
                                   locations=only, drift=only if only and request.drift else [])
    for r in results:
        _count_location(r)
    return {r.location_id: r.as_dict() for r in results}


def _count_location(result: LocationExport) -> None:
    logger.info("location export", extra=result.as_dict())
    if result.status == "exported":
        name = "LocationFirstModelExports" if result.kind == "first_model" else \
            "LocationRetrainExports"
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runner, store, config = components()
    request = ExportRequest.of(event)
    now_ms = request.now_ms if request.now_ms is not None else epoch_ms(time.time())
    if request.location_id is not None:  # one location's own export, never the agency's
        return {"locations": _location_exports(runner, store, config, request, now_ms)}
    result = run_export(
        runner,
        store,
        config,
        now_ms=now_ms,
        force=request.force,
        # read each run: a promotion may switch the stack to (or from) a team's columns
        schema=stack_schema(store, loop_settings().team_schema_key,
                            loop_settings().training_hyperparameters),
        unscored=not loop_settings().location_models,
    )
    answer = result.as_dict()
    logger.info("labelled export", extra=answer)
    metrics.add_metric(name="ExportNewOutcomes", unit=MetricUnit.Count, value=result.new_outcomes)
    if result.status == "exported":
        metrics.add_metric(name="ExportRows", unit=MetricUnit.Count, value=result.rows)
    if loop_settings().location_models:
        answer["locations"] = _location_exports(runner, store, config, request, now_ms)
    return answer
