"""Retraining, the plain logic: which uploads count, is the head of the file training data,
and the SageMaker CreateTrainingJob request (script mode) for it. No AWS in here.

Script mode, as the SageMaker Python SDK does it for a framework estimator: the framework
image runs `sagemaker_program` from the unpacked `sagemaker_submit_directory`; every
hyperparameter value is JSON-encoded into a string (`json.dumps(value)`), the training
toolkit decodes them and passes the ones not starting with `sagemaker_` to the script as
`--name value` arguments (so our names are train.py's flags: `test-size`, `random-seed`).

Hostile uploads: every check here returns readable reasons and never raises — a
line nested 5,000 levels deep, binary junk, UTF-16 or gzip under a .csv name, a 200 KB header
field, a 5,000-digit number. Reasons never echo more than a few dozen characters of the upload.
`row_problem` is the same judgement for one row of the whole file (the retrain-time split
calls it per row), `check_upload_size` the size limit (`upload_limit_bytes`: what the
retrain function's memory, timeout and /tmp allow).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from leadscore import jsonsafe
from leadscore.columns.csv_reader import CsvRefused, header_names
from leadscore.columns.schema import Schema, SchemaError
from leadscore.errors import InvalidInput
from leadscore.features.contract import FEATURE_NAMES, SECTIONS
from leadscore.features.nested import extract_features
from leadscore.settings import RetrainSettings

TRAINING_PREFIX = "training-data/"
REJECTED_DATA_PREFIX = "training-data/rejected/"
TRAINING_EXTENSIONS = (".csv", ".jsonl")
TARGET_COLUMN = "converted"
OPTIONAL_COLUMNS = ("contact_id", "true_probability")
CHANNEL_NAME = "training"
# The checked upload is split before a job starts (leadscore.split): the job's channel is its
# training part alone, under a prefix of its own; the gate part lives under evaluation/<job>/,
# which no training job can read (template.yaml: the SageMaker role reads jobs/*/input/ only).
JOB_INPUT_PREFIX = "jobs/"
EVALUATION_PREFIX = "evaluation/"
SPLIT_RECORD = "split.json"
JOB_NAME_PREFIX = "leadscore-"
SOURCE_KEY_TAG = "leadscore:source-key"
SOURCE_VERSION_TAG = "leadscore:source-version"
ENTRY_POINT = "train.py"
DEFAULT_HYPERPARAMETERS: dict[str, Any] = {"test-size": 0.2, "random-seed": 42}

MAX_NAMES_IN_REASON = 10
MAX_NAME_CHARS = 40
_BINARY_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip data"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\xff\xfe", "UTF-16 text"),
    (b"\xfe\xff", "UTF-16 text"),
    (b"PAR1", "a Parquet file"),
)
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SLUG_RE = re.compile(r"[^A-Za-z0-9]+")
_TAG_VALUE_RE = re.compile(r"[^\w .:/=+\-@]", re.UNICODE)


#: a team's schema beside an upload: ``<upload without its extension>.schema.json``
SCHEMA_SUFFIX = ".schema.json"
#: the job's schema file, inside its training channel (named after the training part, so the
#: channel's exact-key prefix holds it too) and passed to train.py as a relative --schema
SCHEMA_PART_SUFFIX = ".schema.json"
#: training hyperparameters a team's schema states itself (its own values win)
SCHEMA_OWNED_HYPERPARAMETERS = ("target", "positive", "negative")


def schema_key_beside(key: str) -> str:
    """Where the team's schema of an upload is (the loop's export writes it there)."""
    name = key.rsplit("/", 1)[-1]
    stem = key[: -len(name)] + (name.rsplit(".", 1)[0] if "." in name else name)
    return stem + SCHEMA_SUFFIX


def team_schema_keys(key: str, settings: RetrainSettings) -> list[str]:
    """Where an upload's team schema may be, in order: beside the upload, then the one set
    for the stack (``TEAM_SCHEMA_KEY``)."""
    return [k for k in (schema_key_beside(key), settings.team_schema_key) if k]


def read_team_schema(raw: bytes, key: str) -> Schema:
    """A team schema file; `SchemaError` with a one-line reason naming the key."""
    try:
        schema = Schema.from_dict(json.loads(raw.decode("utf-8-sig")))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SchemaError(f"the team schema {key} is unusable: {exc}") from None
    if not schema.target:
        raise SchemaError(f"the team schema {key} names no target")
    return schema


def job_schema_key(job: str, key: str) -> str:
    return train_part_key(job, key) + SCHEMA_PART_SUFFIX


def is_training_upload(key: str) -> bool:
    """training-data/**.csv|.jsonl, never the rejection records under training-data/rejected/."""
    return (
        key.startswith(TRAINING_PREFIX)
        and not key.startswith(REJECTED_DATA_PREFIX)
        and key.lower().endswith(TRAINING_EXTENSIONS)
    )


def rejection_key(key: str) -> str:
    """Where the refusal of `key` is written: training-data/rejected/<file name>.json."""
    return f"{REJECTED_DATA_PREFIX}{PurePosixPath(key).name}.json"


def job_name(key: str, version_id: str | None) -> str:
    """Deterministic, ≤ 63 chars of [a-zA-Z0-9-]: the same object version, the same job.

    "leadscore-" + slug of the file name (≤ 40) + "-" + sha256(key + version)[:12].
    """
    digest = hashlib.sha256(f"{key}\n{version_id or ''}".encode()).hexdigest()[:12]
    stem = PurePosixPath(key).name
    slug = _SLUG_RE.sub("-", stem).strip("-").lower()[:40].strip("-") or "data"
    return f"{JOB_NAME_PREFIX}{slug}-{digest}"


def _names(names: list[str]) -> str:
    """A few names for a reason, each shortened: never an echo of a whole upload."""
    shown = [n if len(n) <= MAX_NAME_CHARS else n[: MAX_NAME_CHARS - 1] + "…"
             for n in names[:MAX_NAMES_IN_REASON]]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def row_problem(line: bytes, *, jsonl: bool, settings: RetrainSettings) -> str | None:
    """Why one line (without its newline) is not a well-formed row; None when it is.

    Well-formed: at most `max_line_bytes`, UTF-8 text without NUL or other control bytes,
    and for JSON Lines one JSON object nested at most `max_json_depth` levels. (Whether its
    values are valid training data is train.py's judgement.)
    """
    if len(line) > settings.max_line_bytes:
        return (f"the line is longer than {settings.max_line_bytes} bytes "
                "(TRAINING_MAX_LINE_BYTES)")
    if b"\x00" in line:
        return "the line contains NUL bytes (binary data, or UTF-16 text)"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "the line is not UTF-8 text"
    if _CONTROL.search(line):
        return "the line contains control characters (binary data?)"
    if not jsonl:
        return None
    try:
        record = jsonsafe.loads(text)
    except jsonsafe.UntrustedJSONError as exc:
        return f"the line is {exc}"
    if not isinstance(record, dict):
        return "the line is not a JSON object"
    if jsonsafe.too_deep(record, settings.max_json_depth):
        return (f"the record is nested more than {settings.max_json_depth} levels "
                "(TRAINING_MAX_JSON_DEPTH)")
    return None


# -- how big an upload the retrain function can take (docs/RETRAINING.md, "How big") --------
# The function streams the upload once through the split, spooling both parts to /tmp (the
# training part and the gate part: together the upload's size), then uploads both. So the
# upload must fit /tmp, and the split must finish within the timeout on the CPU its memory
# buys. The function's sizing in template.yaml (a test keeps the two equal):
FUNCTION_MEMORY_MB = 1024
FUNCTION_TIMEOUT_SECONDS = 600
FUNCTION_EPHEMERAL_MB = 1024
# Lambda gives one full vCPU at 1,769 MB, and CPU in proportion to memory below that.
MB_PER_VCPU = 1769
# The split's rate, CSV (the slower format), measured in CPU time by bench/retrain_split.py:
# 13.0 MB per CPU second (JSON Lines: 24.5).
SPLIT_BYTES_PER_CPU_SECOND = 13_000_000
# Divides that rate: a Lambda (Graviton) vCPU slower than the measuring machine's core, the
# S3 read streamed through the split, the two uploads after it.
SPLIT_SAFETY_FACTOR = 3
# Kept back from the timeout (head check, job start) and from /tmp (the runtime's own files).
TIME_RESERVE_SECONDS = 60
TMP_RESERVE_MB = 64


def upload_limit_bytes(memory_mb: int = FUNCTION_MEMORY_MB,
                       timeout_seconds: int = FUNCTION_TIMEOUT_SECONDS,
                       ephemeral_mb: int = FUNCTION_EPHEMERAL_MB) -> int:
    """The largest upload a retrain function of this sizing can split and upload in time."""
    vcpu = min(1.0, memory_mb / MB_PER_VCPU)
    by_time = ((timeout_seconds - TIME_RESERVE_SECONDS) * SPLIT_BYTES_PER_CPU_SECOND * vcpu
               / SPLIT_SAFETY_FACTOR)
    by_disk = (ephemeral_mb - TMP_RESERVE_MB) * 1024 * 1024
    return max(0, int(min(by_time, by_disk)))


UPLOAD_LIMIT_BYTES = upload_limit_bytes()


def upload_limit(settings: RetrainSettings) -> int:
    """TRAINING_MAX_UPLOAD_BYTES may lower the computed limit, never raise it: a bigger file
    would fill /tmp or run past the timeout, and then no refusal would be written."""
    configured = settings.max_upload_bytes
    return min(configured, UPLOAD_LIMIT_BYTES) if configured > 0 else UPLOAD_LIMIT_BYTES


def check_upload_size(size: int | None, settings: RetrainSettings) -> str | None:
    """Why an object of `size` bytes is refused before it is read; None when it is not."""
    limit = upload_limit(settings)
    if size is not None and size > limit:
        return (f"the file is {size} bytes, more than the {limit} bytes the retrain function "
                f"can split within its {FUNCTION_TIMEOUT_SECONDS} s and {FUNCTION_EPHEMERAL_MB} "
                "MB of /tmp (TRAINING_MAX_UPLOAD_BYTES may lower it): split the file and "
                "upload the parts, or train it with `./leadscore train` and promote the bundle")
    return None


def _first_line(
    head: bytes, complete: bool, settings: RetrainSettings
) -> tuple[str | None, str | None]:
    """(first line, problem). `complete` says the head is the whole object."""
    for magic, what in _BINARY_MAGIC:
        if head.startswith(magic):
            return None, f"the file is {what}, not UTF-8 text (upload it unpacked, as UTF-8)"
    if not head.removeprefix(b"\xef\xbb\xbf").strip():
        return None, "the file is empty"
    newline = head.find(b"\n")
    if newline < 0 and not complete:
        return None, f"the first line is longer than the {len(head)} bytes read"
    raw = (head if newline < 0 else head[:newline]).removeprefix(b"\xef\xbb\xbf")
    problem = row_problem(raw.rstrip(b"\r"), jsonl=False, settings=settings)
    if problem is not None:
        return None, problem.replace("the line", "the first line", 1)
    return raw.decode("utf-8").rstrip("\r"), None


def check_csv_header(header_line: str) -> list[str]:
    """Problems with a CSV header: the 20 features + `converted`, optional id/truth columns."""
    try:
        columns = header_names(header_line)
    except CsvRefused as exc:
        return [f"the first line is not a CSV header: {exc}"]
    problems: list[str] = []
    counts: dict[str, int] = {}
    for c in columns:
        counts[c] = counts.get(c, 0) + 1
    duplicates = sorted(c for c, n in counts.items() if n > 1)
    if duplicates:
        problems.append(f"duplicate columns: {_names(duplicates)}")
    present = set(columns)
    if TARGET_COLUMN not in present:
        problems.append(f"Target column '{TARGET_COLUMN}' not found")
    missing = [name for name in FEATURE_NAMES if name not in present]
    if missing:
        problems.append(f"missing feature columns: {_names(missing)}")
    allowed = {*FEATURE_NAMES, TARGET_COLUMN, *OPTIONAL_COLUMNS}
    extra = [c for c in columns if c not in allowed]
    if extra:
        problems.append(
            f"unexpected columns: {_names(extra)} "
            f"(allowed besides the features: {TARGET_COLUMN}, {', '.join(OPTIONAL_COLUMNS)})"
        )
    return problems


def check_jsonl_line(line: str, settings: RetrainSettings | None = None) -> list[str]:
    """Problems with the first JSON Lines record: a raw lead (the scoring request's sections at
    the top level or under `features`, as training/train_data.py reads them) + `converted`."""
    settings = settings or RetrainSettings()
    try:
        record = jsonsafe.loads(line)
    except jsonsafe.UntrustedJSONError as exc:
        return [f"the first line is {exc}"]
    if not isinstance(record, dict):
        return ["the first line is not a JSON object (a lead with 'converted')"]
    if jsonsafe.too_deep(record, settings.max_json_depth):
        return [f"the first record is nested more than {settings.max_json_depth} levels "
                "(TRAINING_MAX_JSON_DEPTH)"]
    problems: list[str] = []
    if TARGET_COLUMN not in record:
        problems.append(f"Target column '{TARGET_COLUMN}' not found in the first record")
    elif str(record[TARGET_COLUMN]).strip().lower() not in ("0", "1", "0.0", "1.0", "true",
                                                             "false"):
        problems.append(f"'{TARGET_COLUMN}' must be 0 or 1 in the first record")
    nested = record.get("features")
    raw = nested if isinstance(nested, dict) else {
        k: v for k, v in record.items() if k in SECTIONS
    }
    if not raw:
        problems.append(
            "the first record is not a raw lead: no 'features' object and none of "
            + ", ".join(SECTIONS)
        )
    else:
        try:
            extract_features(raw)
        except InvalidInput as exc:
            problems.append("the first record has invalid fields: " + _names(exc.paths))
    return problems


def check_custom_csv_header(header_line: str, target: str) -> list[str]:
    """Problems with the header of a team's own export (the stack trains with a `target`
    hyperparameter, docs/SCHEMA.md): the target column and at least one other, no duplicates.
    The job itself checks the rest (kinds, positives, leaks) and refuses in one line."""
    try:
        columns = header_names(header_line)
    except CsvRefused as exc:
        return [f"the first line is not a CSV header: {exc}"]
    problems: list[str] = []
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        problems.append(f"duplicate columns: {', '.join(duplicates)}")
    if target not in columns:
        problems.append(f"Target column '{target}' not found")
    elif len(set(columns)) < 2:
        problems.append("no column besides the target")
    return problems


def check_training_head(
    key: str, head: bytes, *, complete: bool, settings: RetrainSettings | None = None,
    target: str | None = None,
) -> list[str]:
    """Every reason the object starting with `head` cannot be training data ([] = looks fine).

    When the stack trains on a team's own columns (``target``: a team schema's, else the
    ``target`` training hyperparameter, docs/SCHEMA.md), any CSV with that column passes,
    never JSON Lines.
    Never raises: a check that fails unexpectedly is itself the reason (by exception type).
    """
    settings = settings or RetrainSettings()
    try:
        line, problem = _first_line(head, complete, settings)
        if problem is not None or line is None:
            return [problem or "the file is empty"]
        target = target or custom_target(settings)
        if target:
            if key.lower().endswith(".jsonl"):
                return ["a model on your own columns trains from a .csv export, not JSON Lines"]
            return check_custom_csv_header(line, target)
        if key.lower().endswith(".jsonl"):
            return check_jsonl_line(line, settings)
        return check_csv_header(line)
    except Exception as exc:  # a refusal with a reason, never a crash and an async retry
        return [f"the file could not be checked ({type(exc).__name__})"]


def custom_positive(settings: RetrainSettings) -> tuple[str, ...]:
    """The ``positive`` training hyperparameter (the target's converted values), if any."""
    return _custom_values(settings, "positive")


def custom_negative(settings: RetrainSettings) -> tuple[str, ...]:
    """The ``negative`` training hyperparameter (the target's not-converted values), if any."""
    return _custom_values(settings, "negative")


def _custom_values(settings: RetrainSettings, key: str) -> tuple[str, ...]:
    raw = settings.training_hyperparameters.get(key)
    value = _decode_setting(raw) if isinstance(raw, str) else raw
    if value is None or value == "":
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return tuple(p for p in (v.strip() for v in str(value).split(",")) if p)


def custom_target(settings: RetrainSettings) -> str | None:
    """The ``target`` training hyperparameter when the stack trains on custom columns."""
    raw = settings.training_hyperparameters.get("target")
    value = _decode_setting(raw) if isinstance(raw, str) else raw
    return str(value) if value else None


def part_extension(key: str) -> str:
    return ".jsonl" if key.lower().endswith(".jsonl") else ".csv"


def train_part_key(job: str, key: str) -> str:
    """The one object the job's channel holds: jobs/<job>/input/train.<ext>."""
    return f"{JOB_INPUT_PREFIX}{job}/input/train{part_extension(key)}"


def gate_part_key(job: str, key: str) -> str:
    """The rows the job never sees; the promote function measures the candidate on them."""
    return f"{EVALUATION_PREFIX}{job}/gate{part_extension(key)}"


def split_record_key(job: str) -> str:
    return f"{EVALUATION_PREFIX}{job}/{SPLIT_RECORD}"


def rejection_record(
    key: str, version_id: str | None, reasons: list[str], rejected_at: str
) -> dict[str, Any]:
    return {
        "source_key": key,
        "source_version": version_id,
        "rejected_at": rejected_at,
        "reasons": reasons,
    }


def encode_hyperparameters(values: Mapping[str, Any]) -> dict[str, str]:
    """JSON-encode every value, as the SageMaker Python SDK does for script mode."""
    return {str(name): json.dumps(value) for name, value in values.items()}


def _decode_setting(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _tag_value(value: str) -> str:
    return _TAG_VALUE_RE.sub("_", value)[:256]


def training_job_request(
    bucket: str,
    key: str,
    version_id: str | None,
    settings: RetrainSettings,
    region: str,
    *,
    team_schema: bool = False,
) -> dict[str, Any]:
    """The CreateTrainingJob arguments (boto3 names) for one uploaded object version.

    ``team_schema``: the job's team schema is in its channel (`job_schema_key`); train.py
    reads it with ``--schema`` and the schema's target and label values replace the
    ``target`` / ``positive`` / ``negative`` training hyperparameters."""
    name = job_name(key, version_id)
    channel_key = train_part_key(name, key)
    user = {**DEFAULT_HYPERPARAMETERS}
    user.update({k: _decode_setting(v) for k, v in settings.training_hyperparameters.items()})
    if team_schema:
        for owned in SCHEMA_OWNED_HYPERPARAMETERS:
            user.pop(owned, None)
        user["schema"] = job_schema_key(name, key).rsplit("/", 1)[-1]
    hyperparameters = encode_hyperparameters(
        {
            **{k: v for k, v in user.items() if not k.startswith("sagemaker_")},
            "sagemaker_program": ENTRY_POINT,
            "sagemaker_submit_directory": f"s3://{bucket}/{settings.training_source_key}",
            "sagemaker_region": region,
            "sagemaker_container_log_level": 20,
            "sagemaker_job_name": name,
        }
    )
    content_type = "application/jsonlines" if key.lower().endswith(".jsonl") else "text/csv"
    tags = [
        {"Key": "project", "Value": "leadscore"},
        {"Key": SOURCE_KEY_TAG, "Value": _tag_value(key)},
    ]
    if version_id:
        tags.append({"Key": SOURCE_VERSION_TAG, "Value": _tag_value(version_id)})
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": settings.training_image_uri,
            "TrainingInputMode": "File",
        },
        "RoleArn": settings.training_role_arn,
        "HyperParameters": hyperparameters,
        "InputDataConfig": [
            {
                "ChannelName": CHANNEL_NAME,
                "DataSource": {
                    "S3DataSource": {
                        # The training part's exact key as an S3Prefix: the channel holds
                        # this one object, never the gate part.
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{bucket}/{channel_key}",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": content_type,
                "CompressionType": "None",
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/jobs/"},
        "ResourceConfig": {
            "InstanceType": settings.training_instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": settings.training_volume_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.training_max_runtime_seconds},
        "Tags": tags,
    }


def missing_settings(settings: RetrainSettings) -> list[str]:
    names = {
        "ARTIFACT_BUCKET": settings.artifact_bucket,
        "TRAINING_IMAGE_URI": settings.training_image_uri,
        "TRAINING_ROLE_ARN": settings.training_role_arn,
    }
    return [name for name, value in names.items() if not value]
