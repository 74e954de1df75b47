"""S3 ObjectCreated under training-data/ -> check the head of the file -> SageMaker training job.

Thin: the flow is `leadscore.registry.uploads.handle_upload` (the rules: which keys, which
columns, the job request, the split, in `leadscore.registry.retraining` and `split`); this
reads the event, counts and answers.
S3 delivers events at least once; the job name is derived from the object's key and version,
so a repeated event finds its job already there and starts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from leadscore.adapters.tracing import make_tracer
from leadscore.registry import retraining
from leadscore.registry.uploads import TrainingJobs, UploadObjects, UploadResult, handle_upload
from leadscore.settings import RetrainSettings
from leadscore.wiring.container import PerContainer
from leadscore.wiring.registry import retrain_access

logger = Logger(service="retrain")
tracer = make_tracer("retrain")
metrics = Metrics(namespace="LeadScoring", service="retrain")


@dataclass
class Container:
    settings: RetrainSettings
    objects: UploadObjects
    jobs: TrainingJobs


def _from_env() -> Container:
    objects, jobs = retrain_access()
    return Container(RetrainSettings.from_env(), objects, jobs)


_container = PerContainer(_from_env)


def set_container(new: Container | None) -> None:
    """Install a container (tests) or forget it (the next event builds one from the env)."""
    _container.set(new)


def _count(result: UploadResult) -> None:
    if result.status == "duplicate":
        logger.info("training job already started", extra={"job": result.job})
    elif result.status == "refused":
        logger.warning("training data refused", extra={"key": result.key,
                                                       "reasons": result.reasons})
        metrics.add_metric(name="TrainingDataRefused", unit=MetricUnit.Count, value=1)
    elif result.status == "started":
        logger.info("training job started", extra={"job": result.job, "key": result.key,
                                                   "train_rows": result.train_rows,
                                                   "gate_rows": result.gate_rows})
        metrics.add_metric(name="TrainingJobsStarted", unit=MetricUnit.Count, value=1)


@tracer.capture_method
def upload(bucket: str, key: str, version_id: str | None, etag: str | None) -> dict[str, Any]:
    c = _container.get()
    result = handle_upload(bucket, key, version_id, etag, objects=c.objects, jobs=c.jobs,
                           settings=c.settings)
    _count(result)
    return result.answer()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    missing = retraining.missing_settings(_container.get().settings)
    if missing:
        raise RuntimeError(f"retrain function is missing configuration: {', '.join(missing)}")
    results = []
    for record in event.get("Records", []):
        s3 = record.get("s3", {})
        bucket = str(s3.get("bucket", {}).get("name", ""))
        obj = s3.get("object", {})
        key = unquote_plus(str(obj.get("key", "")))
        version_id = obj.get("versionId") or None
        etag = obj.get("eTag") or None
        results.append(upload(bucket, key, version_id, etag))
    return {"results": results}
