"""Every environment variable the application reads, in one typed place.

Each function builds its settings once per container (`XxxSettings.from_env()`) and passes
them down; no other module reads `os.environ`. A default is written once, on its field;
`from_env` reads it from there (``cls.<field>``) when the variable is unset or empty.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, TypeVar

from leadscore.classes import validate_thresholds
from leadscore.errors import MAX_ERROR_PATHS, InvalidInput

DEFAULT_GHL_API_BASE = "https://services.leadconnectorhq.com"

# Enough data is a count, not a rate: a model needs this many conversions AND this many
# non-conversions to learn from (Salesforce Einstein asks for 120 of each), whatever the base
# rate. Training refuses fewer; the gate's MIN_CONVERSIONS defaults to it.
MIN_CONVERSIONS = 120


class SettingsError(ValueError):
    """A configuration value is present but unusable."""


def _str(env: Mapping[str, str], name: str, default: str = "") -> str:
    return env.get(name, default).strip()


_Number = TypeVar("_Number", int, float)


def _parsed(
    env: Mapping[str, str], name: str, default: _Number, kind: type[_Number], what: str
) -> _Number:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be {what}, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _parsed(env, name, default, float, "a number")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return _parsed(env, name, default, int, "an integer")


def _json_object(env: Mapping[str, str], name: str) -> dict[str, str]:
    raw = env.get(name, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{name} must be a JSON object") from exc
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise SettingsError(f"{name} must be a JSON object of strings")
    return value


def _thresholds(env: Mapping[str, str], name: str) -> dict[str, float] | None:
    """Class thresholds from JSON text, checked by the one check (`classes.validate_thresholds`)
    that also guards request and manifest thresholds."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(
            f'{name} must be JSON like {{"hot": 0.8, "warm": 0.6, "lukewarm": 0.4}}'
        ) from exc
    try:
        return validate_thresholds(value, path=name)
    except InvalidInput as exc:
        problems = "; ".join(f"{e.path}: {e.message}" for e in exc.errors)
        raise SettingsError(f"{name} is not valid: {problems}") from exc


#: HighLevel's published Ed25519 webhook key (the same for every app). The deployment
#: parameter defaults to it; an explicit empty value turns the scheme off.
HIGHLEVEL_ED25519_PUBLIC_KEY_PEM = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=\n"
    "-----END PUBLIC KEY-----\n"
)

#: A first-seen HighLevel delivery older than this is parked instead of processed (retries
#: keep their original timestamp and span hours; manual re-sends can come days later).
DEFAULT_MAX_DELIVERY_AGE_SECONDS = 3 * 24 * 3600


@dataclass(frozen=True)
class InstallSettings:
    """Where HighLevel installations and their tokens come from (score and write-back).

    ``installations_table``: the per-location table (OAuth and hand-added PIT locations);
    ``location_id`` + ``token_secret_arn`` (+ field ids / map): the single sub-account stack
    with a Private Integration Token, used when the table has no record for that location.
    Neither configured: every location is accepted with no token (local runs only).
    """

    installations_table: str = ""
    token_key_id: str = ""
    oauth_secret_arn: str = ""
    oauth_user_type: str = "Location"
    oauth_redirect_uri: str = ""
    app_id: str = ""
    api_base: str = DEFAULT_GHL_API_BASE
    location_id: str = ""
    token_secret_arn: str = ""
    score_field_id: str = ""
    class_field_id: str = ""
    field_map: dict[str, str] = field(default_factory=dict)
    #: the function that runs an agency's setup and first backfills in the background (the
    #: backfill function); "" = run them inline (local runs)
    setup_function: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.installations_table or self.location_id)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InstallSettings:
        env = os.environ if env is None else env
        return cls(
            installations_table=_str(env, "INSTALLATIONS_TABLE"),
            token_key_id=_str(env, "GHL_TOKEN_KEY_ID"),
            oauth_secret_arn=_str(env, "GHL_OAUTH_SECRET_ARN"),
            oauth_user_type=_str(env, "GHL_OAUTH_USER_TYPE", cls.oauth_user_type) or "Location",
            oauth_redirect_uri=_str(env, "GHL_OAUTH_REDIRECT_URI"),
            app_id=_str(env, "GHL_APP_ID"),
            api_base=_str(env, "GHL_API_BASE", cls.api_base).rstrip("/"),
            location_id=_str(env, "GHL_LOCATION_ID"),
            token_secret_arn=_str(env, "GHL_TOKEN_SECRET_ARN"),
            score_field_id=_str(env, "GHL_SCORE_FIELD_ID"),
            class_field_id=_str(env, "GHL_CLASS_FIELD_ID"),
            field_map=_json_object(env, "GHL_FIELD_MAP"),
            setup_function=_str(env, "INSTALL_SETUP_FUNCTION"),
        )


#: How long a secret read from Secrets Manager is reused before it is read again (a rotated
#: value is picked up within it): every secret reader's cache age.
SECRET_MAX_AGE_SECONDS: Final[int] = 300
#: Request limits' defaults, shared by ScoreSettings and a ScoringService built without
#: settings (tools, tests): leads per /score/batch, items of one list (comparables,
#: price_drops: a real CMA uses a few dozen). The error-path cap is errors.MAX_ERROR_PATHS.
DEFAULT_MAX_BATCH_SIZE: Final[int] = 1000
DEFAULT_MAX_LIST_ITEMS: Final[int] = 50
#: Per-location models (LOCATION_MODELS): the share of the function's memory their cache may
#: hold (onnxruntime, numpy, the answer cache and the request need the rest), and the budget
#: without a memory setting (tools, tests). LOCATION_MODEL_BYTES overrides both.
LOCATION_MODELS_MEMORY_SHARE: Final[float] = 0.4
DEFAULT_LOCATION_MODEL_BYTES: Final[int] = 256 * 1024 * 1024


def location_model_budget(env: Mapping[str, str]) -> int:
    """The per-location models' budget in bytes: LOCATION_MODEL_BYTES, else a share of
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE (MB), else the default."""
    given = _int(env, "LOCATION_MODEL_BYTES", 0)
    if given > 0:
        return given
    memory_mb = _int(env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 0)
    if memory_mb > 0:
        return int(memory_mb * 1024 * 1024 * LOCATION_MODELS_MEMORY_SHARE)
    return DEFAULT_LOCATION_MODEL_BYTES


@dataclass(frozen=True)
class ScoreSettings:
    """The scoring API (functions/score), including its GoHighLevel webhook route."""

    model_uri: str = ""
    cache_table: str = ""
    cache_ttl_seconds: int = 3600
    model_refresh_seconds: int = 60
    # Where bundles are downloaded (Lambda's only writable directory; tests give each
    # function a fresh one, as a new container has).
    model_cache_dir: str = "/tmp/leadscore-models"  # noqa: S108  # nosec B108
    memory_cache_size: int = 4096
    # Request limits (documented in openapi.json and docs): every list a request can
    # multiply is bounded, every answer too. A refusal names the limit (400 or 413).
    memory_cache_bytes: int = 32 * 1024 * 1024  # the in-memory cache, JSON bytes of its answers
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE  # leads per /score/batch
    # After the remote cache tier fails, it is skipped this long (then one request retries it).
    remote_cache_skip_seconds: float = 30.0
    # A due champion-pointer refresh runs in the background; the request that starts it waits
    # at most this long (an unchanged pointer is read within it), then the current model serves.
    model_refresh_wait_seconds: float = 0.05
    # With no model yet (a cold start), a request waits this long for the load, then gets the
    # rules fallback while the load goes on (API Gateway gives a request 29 s).
    model_first_load_wait_seconds: float = 10.0
    max_body_bytes: int = 1_000_000
    max_list_items: int = DEFAULT_MAX_LIST_ITEMS  # comparables, price_drops
    max_error_paths: int = MAX_ERROR_PATHS  # error paths listed in one 400 (per lead in a batch)
    max_answer_bytes: int = 6_000_000  # one answer (Lambda's response limit is 6 MB)
    max_lead_answer_bytes: int = 1_000_000  # one lead's score inside it
    class_thresholds: dict[str, float] | None = None
    # GoHighLevel webhook route
    ghl_public_key_ed25519: str = HIGHLEVEL_ED25519_PUBLIC_KEY_PEM
    ghl_public_key_rsa: str = ""
    # The workflow webhooks' shared secret: its Secrets Manager ARN when deployed; the plain
    # value only for local runs (make serve / demo, tests), never set by the template.
    ghl_webhook_secret_arn: str = ""
    ghl_webhook_secret: str = ""
    ghl_field_map: dict[str, str] = field(default_factory=dict)
    ghl_app_id: str = ""
    ghl_max_delivery_age_seconds: int = DEFAULT_MAX_DELIVERY_AGE_SECONDS
    parked_bucket: str = ""
    installs: InstallSettings = field(default_factory=InstallSettings)
    webhook_dedup_table: str = ""
    writeback_queue_url: str = ""
    # Tenants: /score callers must present their location's own key (x-leadscore-key), and
    # each location's calls are throttled alone (requests per second and burst, per
    # container; 0 = off).
    require_location_key: bool = False
    location_rate_per_second: float = 0.0
    location_burst: int = 20
    # A model per location (leadscore.scoring.scopes): each location's own champion beside
    # the agency's, in a cache bounded in bytes (off: one champion serves every location).
    location_models: bool = False
    location_model_bytes: int = DEFAULT_LOCATION_MODEL_BYTES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ScoreSettings:
        env = os.environ if env is None else env
        return cls(
            model_uri=_str(env, "MODEL_URI"),
            cache_table=_str(env, "CACHE_TABLE"),
            cache_ttl_seconds=_int(env, "CACHE_TTL_SECONDS", cls.cache_ttl_seconds),
            model_refresh_seconds=_int(env, "MODEL_REFRESH_SECONDS", cls.model_refresh_seconds),
            model_cache_dir=_str(env, "MODEL_CACHE_DIR", cls.model_cache_dir),
            memory_cache_size=_int(env, "MEMORY_CACHE_SIZE", cls.memory_cache_size),
            memory_cache_bytes=_int(env, "MEMORY_CACHE_BYTES", cls.memory_cache_bytes),
            remote_cache_skip_seconds=_float(
                env, "REMOTE_CACHE_SKIP_SECONDS", cls.remote_cache_skip_seconds
            ),
            model_refresh_wait_seconds=_float(
                env, "MODEL_REFRESH_WAIT_SECONDS", cls.model_refresh_wait_seconds),
            model_first_load_wait_seconds=_float(
                env, "MODEL_FIRST_LOAD_WAIT_SECONDS", cls.model_first_load_wait_seconds),
            max_batch_size=_int(env, "MAX_BATCH_SIZE", cls.max_batch_size),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", cls.max_body_bytes),
            max_list_items=_int(env, "MAX_LIST_ITEMS", cls.max_list_items),
            max_error_paths=_int(env, "MAX_ERROR_PATHS", cls.max_error_paths),
            max_answer_bytes=_int(env, "MAX_ANSWER_BYTES", cls.max_answer_bytes),
            max_lead_answer_bytes=_int(env, "MAX_LEAD_ANSWER_BYTES", cls.max_lead_answer_bytes),
            class_thresholds=_thresholds(env, "CLASS_THRESHOLDS"),
            ghl_public_key_ed25519=env.get(
                "GHL_PUBLIC_KEY_ED25519", HIGHLEVEL_ED25519_PUBLIC_KEY_PEM).strip(),
            ghl_public_key_rsa=_str(env, "GHL_PUBLIC_KEY_RSA"),
            ghl_webhook_secret_arn=_str(env, "GHL_WEBHOOK_SECRET_ARN"),
            ghl_webhook_secret=_str(env, "GHL_WEBHOOK_SECRET"),
            ghl_field_map=_json_object(env, "GHL_FIELD_MAP"),
            ghl_app_id=_str(env, "GHL_APP_ID"),
            ghl_max_delivery_age_seconds=_int(
                env, "GHL_MAX_DELIVERY_AGE_SECONDS", DEFAULT_MAX_DELIVERY_AGE_SECONDS),
            parked_bucket=_str(env, "PARKED_BUCKET"),
            installs=InstallSettings.from_env(env),
            webhook_dedup_table=_str(env, "WEBHOOK_DEDUP_TABLE") or _str(env, "CACHE_TABLE"),
            writeback_queue_url=_str(env, "WRITEBACK_QUEUE_URL"),
            require_location_key=_bool(env, "REQUIRE_LOCATION_KEY", cls.require_location_key),
            location_rate_per_second=_float(env, "LOCATION_RATE_PER_SECOND",
                                            cls.location_rate_per_second),
            location_burst=_int(env, "LOCATION_BURST", cls.location_burst),
            location_models=_bool(env, "LOCATION_MODELS", cls.location_models),
            location_model_bytes=location_model_budget(env),
        )


@dataclass(frozen=True)
class RetrainSettings:
    """functions/retrain: S3 upload -> SageMaker training job."""

    artifact_bucket: str = ""
    training_image_uri: str = ""
    training_role_arn: str = ""
    training_instance_type: str = "ml.m5.large"
    training_source_key: str = "code/sourcedir.tar.gz"
    training_max_runtime_seconds: int = 3600
    training_volume_gb: int = 10
    # Extra script-mode hyperparameters (train.py flags), JSON object of strings.
    training_hyperparameters: dict[str, str] = field(default_factory=dict)
    head_bytes: int = 65536
    # Upload checks: a malformed upload is refused with a written reason.
    # The whole object; 0 = the most the retrain function's sizing allows
    # (leadscore.registry.retraining.upload_limit_bytes), which a value here may only lower.
    max_upload_bytes: int = 0
    max_line_bytes: int = 65536  # one CSV row / JSON Lines record
    max_json_depth: int = 32  # nesting of one JSON Lines record (a lead needs 5)
    region: str = ""
    # a team's hand-edited schema for the stack (an artifact-bucket key, `TeamSchemaKey`):
    # uploads without a schema beside them train with it
    team_schema_key: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RetrainSettings:
        env = os.environ if env is None else env
        return cls(
            artifact_bucket=_str(env, "ARTIFACT_BUCKET"),
            training_image_uri=_str(env, "TRAINING_IMAGE_URI"),
            training_role_arn=_str(env, "TRAINING_ROLE_ARN"),
            training_instance_type=_str(env, "TRAINING_INSTANCE_TYPE", cls.training_instance_type),
            training_source_key=_str(env, "TRAINING_SOURCE_KEY", cls.training_source_key),
            training_max_runtime_seconds=_int(
                env, "TRAINING_MAX_RUNTIME_SECONDS", cls.training_max_runtime_seconds
            ),
            training_volume_gb=_int(env, "TRAINING_VOLUME_GB", cls.training_volume_gb),
            training_hyperparameters=_json_object(env, "TRAINING_HYPERPARAMETERS"),
            head_bytes=_int(env, "TRAINING_HEAD_BYTES", cls.head_bytes),
            max_upload_bytes=_int(env, "TRAINING_MAX_UPLOAD_BYTES", cls.max_upload_bytes),
            max_line_bytes=_int(env, "TRAINING_MAX_LINE_BYTES", cls.max_line_bytes),
            max_json_depth=_int(env, "TRAINING_MAX_JSON_DEPTH", cls.max_json_depth),
            region=_str(env, "AWS_REGION") or _str(env, "AWS_DEFAULT_REGION"),
            team_schema_key=_str(env, "TEAM_SCHEMA_KEY"),
        )


@dataclass(frozen=True)
class PromoteSettings:
    """functions/promote: the quality gate."""

    artifact_bucket: str = ""
    min_auc: float = 0.70
    max_auc_drop: float = 0.01  # the AUC margin of the decision rule below
    max_brier: float = 0.20
    max_artifact_bytes: int = 256 * 1024 * 1024  # model.tar.gz, and what it unpacks to
    max_archive_members: int = 200  # entries in model.tar.gz (a bundle has about ten)
    max_archive_member_bytes: int = 256 * 1024 * 1024  # one unpacked file
    # Conversions AND non-conversions the training rows must hold; `modelctl promote --force`
    # overrides it.
    min_conversions: int = MIN_CONVERSIONS
    # Against a champion, on the same rows: promoted only when the one-sided upper confidence
    # bound (at gate_confidence) of the candidate's loss stays within the margin, per metric.
    # MAX_AUC_DROP is the AUC margin. A small gate set has wide bounds, so it refuses.
    gate_confidence: float = 0.95
    max_brier_loss: float = 0.002  # Brier score (lower is better)
    max_ece_loss: float = 0.02  # expected calibration error, equal-count groups of leads
    max_top_precision_loss: float = 0.05  # conversions among the top `top_fraction` of leads
    top_fraction: float = 0.10

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PromoteSettings:
        env = os.environ if env is None else env
        return cls(
            artifact_bucket=_str(env, "ARTIFACT_BUCKET"),
            min_auc=_float(env, "MIN_AUC", cls.min_auc),
            max_auc_drop=_float(env, "MAX_AUC_DROP", cls.max_auc_drop),
            max_brier=_float(env, "MAX_BRIER", cls.max_brier),
            max_artifact_bytes=_int(env, "MAX_ARTIFACT_BYTES", cls.max_artifact_bytes),
            max_archive_members=_int(env, "MAX_ARCHIVE_MEMBERS", cls.max_archive_members),
            max_archive_member_bytes=_int(
                env, "MAX_ARCHIVE_MEMBER_BYTES", cls.max_archive_member_bytes
            ),
            min_conversions=_int(env, "MIN_CONVERSIONS", cls.min_conversions),
            gate_confidence=_float(env, "GATE_CONFIDENCE", cls.gate_confidence),
            max_brier_loss=_float(env, "MAX_BRIER_LOSS", cls.max_brier_loss),
            max_ece_loss=_float(env, "MAX_ECE_LOSS", cls.max_ece_loss),
            max_top_precision_loss=_float(env, "MAX_TOP_PRECISION_LOSS",
                                          cls.max_top_precision_loss),
            top_fraction=_float(env, "TOP_FRACTION", cls.top_fraction),
        )


#: After HighLevel says a location's daily budget is spent without a Retry-After, nothing is
#: sent for it for this long (WRITEBACK_DAILY_PROBE_SECONDS), then one call probes again.
DAILY_LIMIT_PROBE_SECONDS: Final[float] = 900.0


@dataclass(frozen=True)
class WritebackSettings:
    """functions/writeback: scores back onto the GoHighLevel contact."""

    ghl_api_base: str = DEFAULT_GHL_API_BASE
    ghl_token_secret_arn: str = ""
    ghl_score_field_id: str = ""
    ghl_class_field_id: str = ""
    writeback_state_table: str = ""
    #: the longest one message sleeps inside an invocation for a rate limit (else re-queued)
    max_rate_limit_wait_seconds: float = 20.0
    #: the most one HighLevel call may take (cut further to fit the invocation's deadline)
    http_timeout_seconds: float = 10.0
    installs: InstallSettings = field(default_factory=InstallSettings)
    #: re-queue (delays, retries) and dead-letter targets
    writeback_queue_url: str = ""
    writeback_dlq_url: str = ""
    #: real errors (5xx, timeouts, ...) before a message is dead-lettered; the backoff
    #: doubles from retry_base_seconds up to SQS's 15-minute delay limit (10 attempts: ~4 h)
    max_attempts: int = 10
    retry_base_seconds: float = 30.0
    #: delays (rate limits, no model, contact busy) before a message is dead-lettered (~5 days)
    max_waits: int = 500
    #: a message received more often than this without finishing (crashes) is dead-lettered
    max_receives: int = 9
    model_retry_seconds: float = 300.0
    #: another writer holds the contact's lease: look again after this long
    busy_retry_seconds: float = 2.0
    #: after a call whose fate is unknown (no answer, 5xx) the contact stays leased this long
    inflight_grace_seconds: float = 30.0
    #: a spent daily budget without Retry-After: look again after this long (the location's
    #: budget blocks every writer for the same time: leadscore.ghl.budget.rate_limit_wait)
    daily_limit_probe_seconds: float = DAILY_LIMIT_PROBE_SECONDS
    #: kept free at the end of an invocation (state commit, re-queues, the batch answer)
    #: kept after the last message: its state write, one worker send (WORKER_SEND, ~7 s at
    #: worst), the batch answer
    deadline_reserve_seconds: float = 8.0
    #: no HighLevel call is started with less time than this for it
    min_call_seconds: float = 1.0
    #: the share of each location's announced limit our writers may use in any window
    budget_share: float = 0.9

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WritebackSettings:
        env = os.environ if env is None else env
        return cls(
            ghl_api_base=_str(env, "GHL_API_BASE", cls.ghl_api_base).rstrip("/"),
            ghl_token_secret_arn=_str(env, "GHL_TOKEN_SECRET_ARN"),
            ghl_score_field_id=_str(env, "GHL_SCORE_FIELD_ID"),
            ghl_class_field_id=_str(env, "GHL_CLASS_FIELD_ID"),
            writeback_state_table=_str(env, "WRITEBACK_STATE_TABLE") or _str(env, "CACHE_TABLE"),
            max_rate_limit_wait_seconds=_float(
                env, "MAX_RATE_LIMIT_WAIT_SECONDS", cls.max_rate_limit_wait_seconds
            ),
            http_timeout_seconds=_float(env, "HTTP_TIMEOUT_SECONDS", cls.http_timeout_seconds),
            installs=InstallSettings.from_env(env),
            writeback_queue_url=_str(env, "WRITEBACK_QUEUE_URL"),
            writeback_dlq_url=_str(env, "WRITEBACK_DLQ_URL"),
            max_attempts=_int(env, "WRITEBACK_MAX_ATTEMPTS", cls.max_attempts),
            retry_base_seconds=_float(env, "WRITEBACK_RETRY_BASE_SECONDS", cls.retry_base_seconds),
            max_waits=_int(env, "WRITEBACK_MAX_WAITS", cls.max_waits),
            max_receives=_int(env, "WRITEBACK_MAX_RECEIVES", cls.max_receives),
            model_retry_seconds=_float(
                env, "WRITEBACK_MODEL_RETRY_SECONDS", cls.model_retry_seconds
            ),
            busy_retry_seconds=_float(env, "WRITEBACK_BUSY_RETRY_SECONDS", cls.busy_retry_seconds),
            inflight_grace_seconds=_float(
                env, "WRITEBACK_INFLIGHT_GRACE_SECONDS", cls.inflight_grace_seconds
            ),
            daily_limit_probe_seconds=_float(
                env, "WRITEBACK_DAILY_PROBE_SECONDS", cls.daily_limit_probe_seconds
            ),
            deadline_reserve_seconds=_float(
                env, "WRITEBACK_DEADLINE_RESERVE_SECONDS", cls.deadline_reserve_seconds
            ),
            min_call_seconds=_float(env, "WRITEBACK_MIN_CALL_SECONDS", cls.min_call_seconds),
            budget_share=_float(env, "GHL_BUDGET_SHARE", cls.budget_share),
        )


@dataclass(frozen=True)
class TrainingSettings:
    """training/train.py in SageMaker mode: the container's /opt/ml layout.

    SageMaker sets the SM_* variables; `LEADSCORE_OPT_ML_ROOT` moves the whole /opt/ml root
    (tests and local runs redirect it to a temporary directory). An SM_* variable wins over
    the root-derived default.
    """

    opt_ml_root: str = "/opt/ml"
    channel_training: str = "/opt/ml/input/data/training"
    model_dir: str = "/opt/ml/model"
    input_config_dir: str = "/opt/ml/input/config"
    output_dir: str = "/opt/ml/output"
    output_data_dir: str = "/opt/ml/output/data"

    @property
    def hyperparameters_path(self) -> str:
        return f"{self.input_config_dir}/hyperparameters.json"

    @property
    def failure_path(self) -> str:
        return f"{self.output_dir}/failure"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TrainingSettings:
        env = os.environ if env is None else env
        root = _str(env, "LEADSCORE_OPT_ML_ROOT", "/opt/ml").rstrip("/") or "/opt/ml"
        return cls(
            opt_ml_root=root,
            channel_training=_str(env, "SM_CHANNEL_TRAINING", f"{root}/input/data/training"),
            model_dir=_str(env, "SM_MODEL_DIR", f"{root}/model"),
            input_config_dir=_str(env, "SM_INPUT_CONFIG_DIR", f"{root}/input/config"),
            output_dir=_str(env, "SM_OUTPUT_DIR", f"{root}/output"),
            output_data_dir=_str(env, "SM_OUTPUT_DATA_DIR", f"{root}/output/data"),
        )


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class LoopSettings:
    """Closing the loop: snapshots, outcomes, engagement, export, backfill.

    Snapshots and outcomes go to the Firehose stream ``RECORD_STREAM`` (AWS) or, in local
    mode, to the directory ``RECORD_DIR`` in the same layout; with neither they are off.
    """

    record_stream: str = ""
    record_dir: str = ""
    snapshots_enabled: bool = True
    snapshot_max_age_seconds: float = 1.0
    outcome_rules: str = ""
    # engagement counters and backfill checkpoints (the cache table unless LOOP_TABLE is set)
    loop_table: str = ""
    # the labelled export
    artifact_bucket: str = ""
    athena_work_group: str = ""
    glue_database: str = ""
    export_window_days: int = 365
    export_snapshot_lookback_days: int = 365
    export_min_new_outcomes: int = 200
    export_include_backfilled: bool = False
    # a team's hand-edited schema for the stack (an artifact-bucket key); "" = the champion's
    team_schema_key: str = ""
    # what the stack's training jobs are given (their target and its positive values say the
    # team's layout while no model and no schema does)
    training_hyperparameters: dict[str, str] = field(default_factory=dict)
    # the backfill job
    backfill_page_size: int = 100
    backfill_function_name: str = ""
    # a model per location (LOCATION_MODELS): each location's own export, and the number of
    # conversions (and of non-conversions) the part a location's first model trains on must
    # hold (leadscore.loop.location_export)
    location_models: bool = False
    location_min_conversions: int = MIN_CONVERSIONS
    # the export function the backfill asks for a location's export when it finishes
    export_function_name: str = ""

    @property
    def records_on(self) -> bool:
        return bool(self.record_stream or self.record_dir)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LoopSettings:
        env = os.environ if env is None else env
        settings = cls(
            record_stream=_str(env, "RECORD_STREAM"),
            record_dir=_str(env, "RECORD_DIR"),
            snapshots_enabled=_bool(env, "SNAPSHOTS_ENABLED", cls.snapshots_enabled),
            snapshot_max_age_seconds=_float(
                env, "SNAPSHOT_MAX_AGE_SECONDS", cls.snapshot_max_age_seconds
            ),
            outcome_rules=_str(env, "OUTCOME_RULES"),
            loop_table=_str(env, "LOOP_TABLE") or _str(env, "CACHE_TABLE"),
            artifact_bucket=_str(env, "ARTIFACT_BUCKET"),
            athena_work_group=_str(env, "ATHENA_WORK_GROUP"),
            glue_database=_str(env, "GLUE_DATABASE"),
            export_window_days=_int(env, "EXPORT_WINDOW_DAYS", cls.export_window_days),
            export_snapshot_lookback_days=_int(
                env, "EXPORT_SNAPSHOT_LOOKBACK_DAYS", cls.export_snapshot_lookback_days
            ),
            export_min_new_outcomes=_int(
                env, "EXPORT_MIN_NEW_OUTCOMES", cls.export_min_new_outcomes
            ),
            export_include_backfilled=_bool(
                env, "EXPORT_INCLUDE_BACKFILLED", cls.export_include_backfilled
            ),
            backfill_page_size=_int(env, "BACKFILL_PAGE_SIZE", cls.backfill_page_size),
            backfill_function_name=_str(env, "BACKFILL_FUNCTION_NAME"),
            team_schema_key=_str(env, "TEAM_SCHEMA_KEY"),
            location_models=_bool(env, "LOCATION_MODELS", cls.location_models),
            location_min_conversions=_int(env, "LOCATION_MIN_CONVERSIONS",
                                          cls.location_min_conversions),
            export_function_name=_str(env, "EXPORT_FUNCTION_NAME"),
            training_hyperparameters=_json_object(env, "TRAINING_HYPERPARAMETERS"),
        )
        # OUTCOME_RULES is the loop's own format: checked where the loop's settings are read
        # for a container (leadscore.wiring.loop.loop_settings), refused at start-up there.
        if not 1 <= settings.backfill_page_size <= 500:
            raise SettingsError("BACKFILL_PAGE_SIZE must be 1..500 (HighLevel's pageLimit)")
        if settings.location_min_conversions < 1:
            raise SettingsError("LOCATION_MIN_CONVERSIONS must be at least 1")
        return settings


@dataclass(frozen=True)
class MonitorSettings:
    """The scheduled model monitoring: drift, calibration, importance, pages.

    The query engine and the store are the loop's (`LoopSettings`: Athena or RECORD_DIR).
    """

    model_uri: str = ""
    window_days: int = 7
    psi_threshold: float = 0.25
    min_rows: int = 20
    max_rows: int = 20_000
    retrain_on_drift: bool = False
    export_function_name: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MonitorSettings:
        env = os.environ if env is None else env
        settings = cls(
            model_uri=_str(env, "MODEL_URI"),
            window_days=_int(env, "MONITOR_WINDOW_DAYS", cls.window_days),
            psi_threshold=_float(env, "DRIFT_PSI_THRESHOLD", cls.psi_threshold),
            min_rows=_int(env, "MONITOR_MIN_ROWS", cls.min_rows),
            max_rows=_int(env, "MONITOR_MAX_ROWS", cls.max_rows),
            retrain_on_drift=_bool(env, "RETRAIN_ON_DRIFT", cls.retrain_on_drift),
            export_function_name=_str(env, "EXPORT_FUNCTION_NAME"),
        )
        if not 1 <= settings.window_days <= 90:
            raise SettingsError("MONITOR_WINDOW_DAYS must be 1..90")
        if not 0 < settings.psi_threshold <= 10:
            raise SettingsError("DRIFT_PSI_THRESHOLD must be in (0, 10]")
        if not 1 <= settings.min_rows <= settings.max_rows <= 1_000_000:
            raise SettingsError("need 1 <= MONITOR_MIN_ROWS <= MONITOR_MAX_ROWS <= 1,000,000")
        return settings
