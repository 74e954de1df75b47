"""EventBridge "SageMaker Training Job State Change" -> quality gate -> models/champion.json.

Thin: the decision is `leadscore.registry.candidates.handle_training_event`; this counts it
and answers it. Completed: fetch the job's model.tar.gz, unpack it safely under /tmp, read
the gate part the retrain function kept under evaluation/<job>/ (rows the job never saw) and
its split record, and hand all of it to `leadscore.registry.promote` with the S3 store
(verify, MEASURE the candidate and the champion on those rows and on the platform-held
evaluation set, copy, switch the pointer). A candidate that changes what callers send is
refused here: that promotion is an operator's decision (`modelctl promote
--allow-schema-change`).
Failed or Stopped (e.g. MaxRuntimeExceeded): record SageMaker's reason under
models/rejected/<job>.json and count TrainingJobsFailed (the TrainingJobFailedAlarm).
A bad bundle is never a crash: it is a rejection with its reasons, the champion untouched.
AWS errors (throttling, timeouts) do raise, so the asynchronous invocation is retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from leadscore.adapters.tracing import make_tracer
from leadscore.registry.candidates import Artifacts, Decision, handle_training_event
from leadscore.registry.store import ObjectStore
from leadscore.settings import PromoteSettings
from leadscore.wiring.container import PerContainer
from leadscore.wiring.registry import promote_store

logger = Logger(service="promote")
tracer = make_tracer("promote")
metrics = Metrics(namespace="LeadScoring", service="promote")


@dataclass
class Container:
    settings: PromoteSettings
    store: ObjectStore
    artifacts: Artifacts


def _from_env() -> Container:
    settings = PromoteSettings.from_env()
    store, artifacts = promote_store(settings)
    return Container(settings, store, artifacts)


_container = PerContainer(_from_env)


def set_container(new: Container | None) -> None:
    """Install a container (tests) or forget it (the next event builds one from the env)."""
    _container.set(new)


def _count(decision: Decision) -> None:
    if decision.training_failed:
        metrics.add_metric(name="TrainingJobsFailed", unit=MetricUnit.Count, value=1)
    if decision.status == "rejected":
        logger.warning("candidate refused", extra={"job": decision.job,
                                                   "version": decision.version,
                                                   "location_id": decision.location_id,
                                                   "reasons": decision.reasons})
        metrics.add_metric(name="CandidatesRefused", unit=MetricUnit.Count, value=1)
    elif decision.status in ("promoted", "already-champion"):
        logger.info("candidate promoted", extra={"job": decision.job,
                                                 "version": decision.version,
                                                 "location_id": decision.location_id})
        if decision.status == "promoted":
            metrics.add_metric(name="ModelsPromoted", unit=MetricUnit.Count, value=1)


@tracer.capture_method
def handle_event(event: dict[str, Any]) -> dict[str, Any]:
    c = _container.get()
    decision = handle_training_event(event, c.store, c.artifacts, c.settings)
    _count(decision)
    return decision.answer()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not _container.get().settings.artifact_bucket:
        raise RuntimeError("promote function is missing configuration: ARTIFACT_BUCKET")
    return handle_event(event)
