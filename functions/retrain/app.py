"""S3 ObjectCreated under training-data/ -> check the head of the file -> SageMaker training job.

Thin: the rules (which keys, which columns, the job request, the split) live in
`leadscore.registry.retraining` and `leadscore.registry.split`.
S3 delivers events at least once; the job name is derived from the object's key and version,
so a repeated event finds its job already there and starts nothing.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from leadscore.adapters import client, error_code
from leadscore.adapters.tracing import make_tracer
from leadscore.columns.csv_reader import CsvRefused
from leadscore.columns.schema import Schema, SchemaError
from leadscore.registry import retraining
from leadscore.registry.split import SplitResult, split_lines
from leadscore.settings import RetrainSettings

logger = Logger(service="retrain")
tracer = make_tracer("retrain")
metrics = Metrics(namespace="LeadScoring", service="retrain")

settings = RetrainSettings.from_env()



def _read_head(bucket: str, key: str, version_id: str | None) -> tuple[bytes, bool, int | None]:
    """The first `head_bytes` of the object version, whether that is the whole object, and
    the object's size when S3 said it."""
    last = settings.head_bytes - 1
    args: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": f"bytes=0-{last}"}
    if version_id:
        args["VersionId"] = version_id
    answer = client("s3").get_object(**args)
    head = bytes(answer["Body"].read(settings.head_bytes))
    content_range = str(answer.get("ContentRange", ""))
    total = content_range.rpartition("/")[2] if content_range else ""
    complete = (total.isdigit() and int(total) <= len(head)) or (
        not content_range and len(head) < settings.head_bytes
    )
    size = int(total) if total.isdigit() else (len(head) if complete else None)
    return head, complete, size


def _job_exists(name: str) -> bool:
    try:
        client("sagemaker").describe_training_job(TrainingJobName=name)
    except Exception as exc:
        if error_code(exc) in ("ValidationException", "ResourceNotFound"):
            return False
        raise
    return True


def _refuse(bucket: str, key: str, version_id: str | None, reasons: list[str]) -> dict[str, Any]:
    record = retraining.rejection_record(
        key, version_id, reasons, datetime.now(UTC).isoformat().replace("+00:00", "Z")
    )
    client("s3").put_object(
        Bucket=bucket,
        Key=retraining.rejection_key(key),
        Body=json.dumps(record, indent=2).encode("utf-8"),
        ContentType="application/json",
    )
    logger.warning("training data refused", extra={"key": key, "reasons": reasons})
    metrics.add_metric(name="TrainingDataRefused", unit=MetricUnit.Count, value=1)
    return {"key": key, "status": "refused", "reasons": reasons}


def _team_schema(bucket: str, key: str) -> tuple[Schema | None, bytes]:
    """The upload's team schema (beside it, else the stack's TEAM_SCHEMA_KEY) and its bytes;
    (None, b"") when there is none. Raises SchemaError for one that cannot be used."""
    for candidate in retraining.team_schema_keys(key, settings):
        try:
            raw = bytes(client("s3").get_object(Bucket=bucket, Key=candidate)["Body"].read())
        except Exception as exc:
            # Without s3:ListBucket S3 answers a missing key with 403; the role may read every
            # training-data/*.json, so a refusal there means "no such schema" too.
            if error_code(exc) in ("NoSuchKey", "404", "NotFound", "AccessDenied", "403"):
                continue
            raise
        return retraining.read_team_schema(raw, candidate), raw
    return None, b""


def _split_upload(bucket: str, key: str, version_id: str | None, job: str,
                  schema: Schema | None = None) -> SplitResult:
    """Stream the checked object version once into its training and gate parts (S3)."""
    args: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        args["VersionId"] = version_id
    s3 = client("s3")
    body = s3.get_object(**args)["Body"]
    with tempfile.TemporaryFile() as train, tempfile.TemporaryFile() as gate_part:
        target = schema.target if schema is not None else retraining.custom_target(settings)
        if schema is not None:  # the schema's own label values count the conversions
            positive, negative = schema.positive, schema.negative
        else:
            positive = retraining.custom_positive(settings) if target else ()
            negative = retraining.custom_negative(settings) if target else ()
        result = split_lines(body.iter_lines(keepends=True),
                             csv_format=retraining.part_extension(key) == ".csv",
                             write_train=train.write, write_gate=gate_part.write,
                             target=target or "converted", positive=positive,
                             negative=negative, name=key.rsplit("/", 1)[-1])
        for handle, part_key in ((train, retraining.train_part_key(job, key)),
                                 (gate_part, retraining.gate_part_key(job, key))):
            handle.seek(0)
            s3.upload_fileobj(handle, bucket, part_key)
    s3.put_object(Bucket=bucket, Key=retraining.split_record_key(job),
                  Body=json.dumps(result.record(key, version_id), indent=2).encode("utf-8"),
                  ContentType="application/json")
    return result


@tracer.capture_method
def handle_upload(
    bucket: str, key: str, version_id: str | None, etag: str | None = None
) -> dict[str, Any]:
    """One uploaded object: ignored, refused with a reason, already started, or started.

    The job is named after the key and the object's version id (versioned bucket) or, without
    one, its ETag: the same upload delivered twice maps to the same job.
    """
    if not retraining.is_training_upload(key):
        return {"key": key, "status": "ignored"}
    if bucket != settings.artifact_bucket:
        return {"key": key, "status": "ignored", "reason": "not the artifact bucket"}
    identity = version_id or (f"etag:{etag}" if etag else None)
    name = retraining.job_name(key, identity)
    if _job_exists(name):
        logger.info("training job already started", extra={"job": name})
        return {"key": key, "status": "duplicate", "job": name}
    try:
        schema, schema_bytes = _team_schema(bucket, key)
    except SchemaError as exc:
        return _refuse(bucket, key, version_id, [str(exc)])
    head, complete, size = _read_head(bucket, key, version_id)
    too_large = retraining.check_upload_size(size, settings)
    problems = [too_large] if too_large else retraining.check_training_head(
        key, head, complete=complete, settings=settings,
        target=schema.target if schema is not None else None,
    )
    if problems:
        return _refuse(bucket, key, version_id, problems)
    try:
        split = _split_upload(bucket, key, version_id, name, schema)
    except CsvRefused as exc:  # a record the split cannot cut: refused, with its line
        return _refuse(bucket, key, version_id, [str(exc)])
    if schema is not None:  # into the job's channel, beside its rows (train.py --schema)
        client("s3").put_object(Bucket=bucket, Key=retraining.job_schema_key(name, key),
                                Body=schema_bytes, ContentType="application/json")
    request = retraining.training_job_request(bucket, key, identity, settings, settings.region,
                                              team_schema=schema is not None)
    try:
        client("sagemaker").create_training_job(**request)
    except Exception as exc:
        if error_code(exc) == "ResourceInUse":
            return {"key": key, "status": "duplicate", "job": name}
        raise
    logger.info("training job started", extra={"job": name, "key": key,
                                               "train_rows": split.train.rows,
                                               "gate_rows": split.gate.rows})
    metrics.add_metric(name="TrainingJobsStarted", unit=MetricUnit.Count, value=1)
    return {"key": key, "status": "started", "job": name}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    missing = retraining.missing_settings(settings)
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
        results.append(handle_upload(bucket, key, version_id, etag))
    return {"results": results}
