"""EventBridge Scheduler (daily by default) -> one monitoring run (leadscore.monitoring.job).

Thin: the champion from MODEL_URI, the loop's tables through Athena (DuckDB over RECORD_DIR
locally), then drift / calibration / importance / health pages, and CloudWatch metrics:
``MaxFeaturePSI`` (the drift alarm's metric), ``ScorePSI``, ``DriftAlarm`` (1/0),
``DriftedFeatures``, ``MonitorSnapshots``, ``ResolvedLeads``, ``CalibrationGap`` and
``FeaturePSI`` per ``Feature``; with LOCATION_MODELS a location with its own champion is
judged against it, and each location's model, scope and drift is logged (``location
health``, the dashboard's table). The event may carry ``{"now_ms": ...}`` (the simulation's
clock). A confirmed drift with RETRAIN_ON_DRIFT invokes the export function with
``{"force": true}``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from leadscore.experiments.rows import scope_results
from leadscore.loop.export import QueryRunner
from leadscore.loop.export_request import ExportRequest
from leadscore.monitoring.job import (
    Champion,
    MonitorConfig,
    MonitorResult,
    champion_from_model,
    run_monitor,
)
from leadscore.monitoring.sources import resolved_rows
from leadscore.registry.store import ObjectStore
from leadscore.scoring.model_store import ModelProvider
from leadscore.settings import MonitorSettings, ScoreSettings
from leadscore.wiring.container import PerContainer
from leadscore.wiring.loop import loop_settings, query_and_store
from leadscore.wiring.scoring import OwnChampion, location_champions, model_store

NAMESPACE = "LeadScoring"
logger = Logger(service="monitor")
metrics = Metrics(namespace=NAMESPACE, service="monitor")

def _build() -> tuple[MonitorSettings, QueryRunner, ObjectStore, ModelProvider]:
    settings, loop = MonitorSettings.from_env(), loop_settings()
    runner, store = query_and_store(loop)
    return settings, runner, store, model_store(settings.model_uri)


_built = PerContainer(_build)


def _own_models() -> OwnChampion:
    """With LOCATION_MODELS on, a location's own champion (as the score function finds it)."""
    score = ScoreSettings.from_env()
    return location_champions(score) if score.location_models else (lambda _location: None)


_own = PerContainer(_own_models)


def own_champion(location_id: str) -> Champion | None:
    model = _own.get()(location_id)
    return champion_from_model(model) if model is not None else None


def components() -> tuple[MonitorSettings, QueryRunner, ObjectStore, ModelProvider]:
    return _built.get()


def reset() -> None:
    """Forget the components (tests and the simulation change the environment)."""
    _built.set(None)
    _own.set(None)


def _request_export(function_name: str, location_id: str | None = None) -> bool:
    """An early labelled export: the agency's (``force``), or one location's own because its
    drift was confirmed (the export function's per-location payload)."""
    if not function_name:
        return False
    from leadscore.adapters import client

    request = (ExportRequest(force=True) if location_id is None
               else ExportRequest(location_id=location_id, drift=True))
    client("lambda").invoke(FunctionName=function_name, InvocationType="Event",
                            Payload=json.dumps(request.event()).encode())
    return True


def _publish(result: MonitorResult) -> None:
    drift = result.drift
    metrics.add_metric(name="ResolvedLeads", unit=MetricUnit.Count, value=result.resolved_rows)
    if drift is None:
        return
    metrics.add_metric(name="MonitorSnapshots", unit=MetricUnit.Count, value=drift.rows)
    metrics.add_metric(name="DriftAlarm", unit=MetricUnit.Count, value=int(drift.alarm))
    metrics.add_metric(name="DriftedFeatures", unit=MetricUnit.Count, value=len(drift.drifted))
    if not drift.enough_rows:
        return  # a thin window's PSI is noise: no PSI figures, so no alarm from it
    top = drift.max_feature
    if top is not None:
        metrics.add_metric(name="MaxFeaturePSI", unit=MetricUnit.NoUnit, value=top[1])
    metrics.add_metric(name="ScorePSI", unit=MetricUnit.NoUnit, value=drift.score_psi)
    calibration = drift.calibration or {}
    if calibration.get("rows"):
        gap = abs(calibration["mean_predicted"] - calibration["observed_rate"])
        metrics.add_metric(name="CalibrationGap", unit=MetricUnit.NoUnit, value=gap)
    for feature, value in drift.feature_psi.items():
        with single_metric(name="FeaturePSI", unit=MetricUnit.NoUnit, value=value,
                           namespace=NAMESPACE) as metric:
            metric.add_dimension(name="Feature", value=feature)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings, runner, store, models = components()
    payload = event if isinstance(event, dict) else {}
    now_ms = payload.get("now_ms")
    now = datetime.fromtimestamp(
        (now_ms if isinstance(now_ms, int) else time.time() * 1000) / 1000, tz=UTC)
    model = models.current()
    # each scope's running experiment (the agency's, a location's own), one query for all
    experiments = scope_results(store, runner, now)
    if model is None:
        reason = models.status().reason
        logger.warning("no champion to monitor", extra={"reason": reason})
        metrics.add_metric(name="MonitorNoModel", unit=MetricUnit.Count, value=1)
        return {"status": "no_model"}
    result = run_monitor(
        runner, store, champion_from_model(model), now=now,
        config=MonitorConfig(window_days=settings.window_days,
                             psi_threshold=settings.psi_threshold, min_rows=settings.min_rows,
                             max_rows=settings.max_rows,
                             retrain_on_drift=settings.retrain_on_drift),
        labelled_rows=lambda since, until: resolved_rows(runner, since, until),
        experiment=experiments(None),
        request_export=lambda: _request_export(settings.export_function_name),
        own_champion=own_champion,
        request_location_export=lambda location_id: _request_export(
            settings.export_function_name, location_id),
        location_experiment=experiments,
    )
    _publish(result)
    for location_id, health in sorted(result.locations.items()):
        # one line per location: the dashboard's table of each location's model, scope, drift
        logger.info("location health", extra={"location_id": location_id, **health})
    record = result.to_record()
    logger.info("monitoring run", extra={"drift": record["drift"] and {
        k: record["drift"][k] for k in ("rows", "alarm", "drifted_features", "max_feature",
                                         "max_feature_psi", "score_psi")},
        "confirmed_drift": result.confirmed_drift, "pages": record["pages"]})
    return {"status": "done", **record}
