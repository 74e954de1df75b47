"""EventBridge "SageMaker Training Job State Change" -> quality gate -> models/champion.json.

Completed: fetch the job's model.tar.gz, unpack it safely under /tmp, read the gate part the
retrain function kept under evaluation/<job>/ (rows the job never saw) and its split record,
and hand all of it to `leadscore.registry.promote` with the S3 store (verify, MEASURE the
candidate and the champion on those rows and on the platform-held evaluation set, copy, switch
the pointer). A candidate that changes what callers send is refused here: that promotion is an
operator's decision (`modelctl promote --allow-schema-change`).
Failed or Stopped (e.g. MaxRuntimeExceeded): record SageMaker's reason under
models/rejected/<job>.json and count TrainingJobsFailed (the TrainingJobFailedAlarm).
A bad bundle is never a crash: it is a rejection with its reasons, the champion untouched.
AWS errors (throttling, timeouts) do raise, so the asynchronous invocation is retried.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from leadscore import registry
from leadscore.adapters import client
from leadscore.adapters.s3_store import S3ObjectStore
from leadscore.adapters.tracing import make_tracer
from leadscore.registry import gate, retraining
from leadscore.settings import PromoteSettings

logger = Logger(service="promote")
tracer = make_tracer("promote")
metrics = Metrics(namespace="LeadScoring", service="promote")

settings = PromoteSettings.from_env()
store = S3ObjectStore(settings.artifact_bucket or "unset")


def _split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise registry.RegistryError(f"model artifact {uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket or not key:
        raise registry.RegistryError(f"model artifact {uri!r} names no object")
    return bucket, key


def _rejected(job: str, reasons: list[str], details: dict[str, Any]) -> dict[str, Any]:
    registry.reject(job, reasons, store, details=details)
    logger.warning("candidate refused", extra={"job": job, "reasons": reasons})
    metrics.add_metric(name="CandidatesRefused", unit=MetricUnit.Count, value=1)
    return {"job": job, "status": "rejected", "reasons": reasons}


def _training_ended_badly(job: str, status: str, detail: dict[str, Any]) -> dict[str, Any]:
    """A Failed or Stopped job: the rejection record names SageMaker's reason; the alarm fires."""
    secondary = str(detail.get("SecondaryStatus") or "")
    reason = str(detail.get("FailureReason") or secondary or f"the training job {status.lower()}")
    if secondary and secondary != status and secondary not in reason:
        reason = f"{secondary}: {reason}"
    metrics.add_metric(name="TrainingJobsFailed", unit=MetricUnit.Count, value=1)
    return _rejected(job, [f"training job {status.lower()}: {reason}"],
                     {"source": {"job_name": job}, "failure_reason": reason,
                      "training_status": status})


def _already_handled(job: str) -> bool:
    """A repeated EventBridge delivery: the job was promoted or refused before."""
    if store.exists(f"{registry.REJECTED_PREFIX}{job}.json"):
        return True
    champion = registry.get_champion(store) or {}
    records = [champion, *champion.get("previous", [])]
    return any(
        isinstance(r, dict) and (r.get("source") or {}).get("job_name") == job for r in records
    )


def _gate_inputs(
    job: str, bundle_dir: Path
) -> tuple[gate.EvalRows | None, gate.ClassCounts | None, str | None]:
    """The gate part the retrain function kept for `job`, and its split record's counts.

    (rows, counts, None), or (None, None, reason) when the job has no gate part: a candidate
    that cannot be measured is not promoted.
    """
    record_key = retraining.split_record_key(job)
    parts = [k for k in store.list(f"{retraining.EVALUATION_PREFIX}{job}/")
             if k != record_key]
    if not parts or not store.exists(record_key):
        return None, None, (f"no gate part under {retraining.EVALUATION_PREFIX}{job}/: the "
                            "candidate cannot be measured on rows it never saw")
    part = parts[0]
    try:
        record = json.loads(store.get_bytes(record_key))
        train = record["train"]
        counts = gate.ClassCounts(int(train["converted"]), int(train["not_converted"]),
                                  f"counted by the retrain function ({record_key})")
        rows, skipped = gate.read_rows_for_bundle(
            store.get_bytes(part), jsonl=part.endswith(".jsonl"), bundle_dir=bundle_dir,
            source=part)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        return None, None, f"gate part of {job} cannot be read: {type(exc).__name__}: {exc}"
    if skipped:
        logger.info("gate rows skipped", extra={"job": job, "skipped": skipped})
    return rows, counts, None


@tracer.capture_method
def handle_completed(job: str, artifact_uri: str) -> dict[str, Any]:
    details: dict[str, Any] = {"job_name": job, "artifact": artifact_uri}
    try:
        bucket, key = _split_s3_uri(artifact_uri)
    except registry.RegistryError as exc:
        return _rejected(job, [str(exc)], {"source": details})
    if bucket != settings.artifact_bucket:
        return _rejected(job, [f"model artifact is outside bucket {settings.artifact_bucket}"],
                         {"source": details})
    if not store.exists(key):
        return _rejected(job, [f"model artifact {artifact_uri} does not exist"],
                         {"source": details})
    s3 = client("s3")
    size = int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
    if size > settings.max_artifact_bytes:
        return _rejected(
            job, [f"model.tar.gz is {size} bytes, above {settings.max_artifact_bytes}"],
            {"source": details},
        )
    with tempfile.TemporaryDirectory(prefix="candidate-") as tmp:
        archive = Path(tmp) / "model.tar.gz"
        s3.download_file(bucket, key, str(archive))
        try:
            bundle_dir = registry.extract_bundle_archive(
                archive, Path(tmp) / "bundle", settings.max_artifact_bytes,
                max_members=settings.max_archive_members,
                max_member_bytes=settings.max_archive_member_bytes,
            )
        except registry.RegistryError as exc:
            return _rejected(job, [str(exc)], {"source": details})
        rows, counts, missing = _gate_inputs(job, bundle_dir)
        if missing:
            return _rejected(job, [missing], {"source": details})
        result = registry.promote(
            bundle_dir, store, settings, fallback_version=job, source=details,
            rows=rows, counts=counts,
        )
    if not result.promoted:
        logger.warning(
            "candidate refused",
            extra={"job": job, "version": result.version, "reasons": result.reasons},
        )
        metrics.add_metric(name="CandidatesRefused", unit=MetricUnit.Count, value=1)
        return {"job": job, "version": result.version, "status": "rejected",
                "reasons": result.reasons}
    status = "already-champion" if result.already_champion else "promoted"
    logger.info("candidate promoted", extra={"job": job, "version": result.version})
    if not result.already_champion:
        metrics.add_metric(name="ModelsPromoted", unit=MetricUnit.Count, value=1)
    return {"job": job, "version": result.version, "status": status}


def handle_event(event: dict[str, Any]) -> dict[str, Any]:
    detail = event.get("detail") or {}
    job = str(detail.get("TrainingJobName", ""))
    status = str(detail.get("TrainingJobStatus", ""))
    if not job or status not in ("Completed", "Failed", "Stopped"):
        return {"job": job, "status": "ignored", "training_status": status}
    if _already_handled(job):
        return {"job": job, "status": "duplicate"}
    if status in ("Failed", "Stopped"):
        return _training_ended_badly(job, status, detail)
    artifact = str((detail.get("ModelArtifacts") or {}).get("S3ModelArtifacts", ""))
    return handle_completed(job, artifact)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not settings.artifact_bucket:
        raise RuntimeError("promote function is missing configuration: ARTIFACT_BUCKET")
    return handle_event(event)
