"""A training upload, from S3's ObjectCreated event to a started training job.

The head of the object version is checked (`retraining.check_training_head`, the size limit),
the version is streamed once into the job's training part and the gate's part (`split`), and
the job is started with the request `retraining.training_job_request` builds. The job is named
after the key and the object's version id (versioned bucket) or, without one, its ETag: an
event delivered twice maps to the same job and starts nothing the second time.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import IO, Any, Protocol

from leadscore.columns.csv_reader import CsvRefused
from leadscore.columns.schema import Schema, SchemaError
from leadscore.registry import retraining
from leadscore.registry.locations import first_model_hyperparameters, location_of_upload
from leadscore.registry.split import SplitResult, split_lines
from leadscore.settings import RetrainSettings


class UploadObjects(Protocol):
    """The artifact bucket's objects as the retrain function reads and writes them
    (`leadscore.adapters.s3_store.S3Uploads`)."""

    def head(self, bucket: str, key: str, version_id: str | None,
             length: int) -> tuple[bytes, bool, int | None]:
        """The first `length` bytes of the version, whether that is all of it, its size."""

    def lines(self, bucket: str, key: str, version_id: str | None) -> Iterable[bytes]: ...
    def upload(self, handle: IO[bytes], bucket: str, key: str) -> None: ...
    def put_json(self, bucket: str, key: str, value: Any) -> None: ...
    def put_bytes(self, bucket: str, key: str, body: bytes) -> None: ...

    def read(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes; None when it is not there (or the role may not read it)."""


class TrainingJobs(Protocol):
    """SageMaker's training jobs (`leadscore.adapters.sagemaker_jobs.SageMakerJobs`)."""

    def exists(self, name: str) -> bool: ...

    def start(self, request: dict[str, Any]) -> bool:
        """Create the job; False when a job of that name already exists."""


@dataclass
class UploadResult:
    key: str
    status: str  # ignored | duplicate | refused | started
    job: str | None = None
    reason: str | None = None
    reasons: list[str] = field(default_factory=list)
    train_rows: int = 0
    gate_rows: int = 0

    def answer(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "status": self.status}
        if self.reason:
            out["reason"] = self.reason
        if self.reasons:
            out["reasons"] = self.reasons
        if self.job:
            out["job"] = self.job
        return out


def team_schema(objects: UploadObjects, bucket: str, key: str,
                settings: RetrainSettings) -> tuple[Schema | None, bytes]:
    """The upload's team schema (beside it, else the stack's TEAM_SCHEMA_KEY) and its bytes;
    (None, b"") when there is none. Raises SchemaError for one that cannot be used."""
    for candidate in retraining.team_schema_keys(key, settings):
        raw = objects.read(bucket, candidate)
        if raw is not None:
            return retraining.read_team_schema(raw, candidate), raw
    return None, b""


def split_upload(objects: UploadObjects, bucket: str, key: str, version_id: str | None,
                 job: str, settings: RetrainSettings,
                 schema: Schema | None = None) -> SplitResult:
    """Stream the checked object version once into its training and gate parts."""
    with tempfile.TemporaryFile() as train, tempfile.TemporaryFile() as gate_part:
        target = schema.target if schema is not None else retraining.custom_target(settings)
        if schema is not None:  # the schema's own label values count the conversions
            positive, negative = schema.positive, schema.negative
        else:
            positive = retraining.custom_positive(settings) if target else ()
            negative = retraining.custom_negative(settings) if target else ()
        result = split_lines(objects.lines(bucket, key, version_id),
                             csv_format=retraining.part_extension(key) == ".csv",
                             write_train=train.write, write_gate=gate_part.write,
                             target=target or "converted", positive=positive,
                             negative=negative, name=key.rsplit("/", 1)[-1])
        for handle, part_key in ((train, retraining.train_part_key(job, key)),
                                 (gate_part, retraining.gate_part_key(job, key))):
            handle.seek(0)
            objects.upload(handle, bucket, part_key)
    objects.put_json(bucket, retraining.split_record_key(job), result.record(key, version_id))
    return result


def refuse(objects: UploadObjects, bucket: str, key: str, version_id: str | None,
           reasons: list[str]) -> UploadResult:
    record = retraining.rejection_record(
        key, version_id, reasons, datetime.now(UTC).isoformat().replace("+00:00", "Z"))
    objects.put_json(bucket, retraining.rejection_key(key), record)
    return UploadResult(key, "refused", reasons=reasons)


#: what the stack's own training data says about its columns: never applied to a location's
#: rows, which are another business's
_STACK_COLUMN_HYPERPARAMETERS = ("target", "positive", "negative", "exclude", "keep")


def location_settings(settings: RetrainSettings, key: str,
                      has_schema: bool = False) -> RetrainSettings:
    """The settings an upload trains with: the stack's for the agency's uploads; for a
    location's (``training-data/locations/<id>/``), without the stack's team schema and
    column hyperparameters, labelled by the first-model outcome column unless a schema
    beside the upload says otherwise (a location that has a model of its own)."""
    if location_of_upload(key) is None:
        return settings
    hyper = {k: v for k, v in settings.training_hyperparameters.items()
             if k not in _STACK_COLUMN_HYPERPARAMETERS}
    if not has_schema:
        hyper.update(first_model_hyperparameters())
    return replace(settings, team_schema_key="", training_hyperparameters=hyper)


def handle_upload(bucket: str, key: str, version_id: str | None, etag: str | None, *,
                  objects: UploadObjects, jobs: TrainingJobs,
                  settings: RetrainSettings) -> UploadResult:
    """One uploaded object: ignored, refused with a reason, already started, or started."""
    if not retraining.is_training_upload(key):
        return UploadResult(key, "ignored")
    if bucket != settings.artifact_bucket:
        return UploadResult(key, "ignored", reason="not the artifact bucket")
    identity = version_id or (f"etag:{etag}" if etag else None)
    name = retraining.job_name(key, identity)
    if jobs.exists(name):
        return UploadResult(key, "duplicate", job=name)
    settings = location_settings(settings, key)
    try:
        schema, schema_bytes = team_schema(objects, bucket, key, settings)
    except SchemaError as exc:
        return refuse(objects, bucket, key, version_id, [str(exc)])
    if schema is not None:
        settings = location_settings(settings, key, has_schema=True)
    head, complete, size = objects.head(bucket, key, version_id, settings.head_bytes)
    too_large = retraining.check_upload_size(size, settings)
    problems = [too_large] if too_large else retraining.check_training_head(
        key, head, complete=complete, settings=settings,
        target=schema.target if schema is not None else None,
    )
    if problems:
        return refuse(objects, bucket, key, version_id, problems)
    try:
        split = split_upload(objects, bucket, key, version_id, name, settings, schema)
    except CsvRefused as exc:  # a record the split cannot cut: refused, with its line
        return refuse(objects, bucket, key, version_id, [str(exc)])
    if schema is not None:  # into the job's channel, beside its rows (train.py --schema)
        objects.put_bytes(bucket, retraining.job_schema_key(name, key), schema_bytes)
    request = retraining.training_job_request(bucket, key, identity, settings, settings.region,
                                              team_schema=schema is not None)
    if not jobs.start(request):
        return UploadResult(key, "duplicate", job=name)
    return UploadResult(key, "started", job=name, train_rows=split.train.rows,
                        gate_rows=split.gate.rows)
