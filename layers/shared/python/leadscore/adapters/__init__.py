"""boto3 access, in small adapters created once per container.

Pure logic never imports boto3; it receives one of these adapters (or a test double).
Clients are built lazily and reused: `client("s3")` returns the same client every time.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:  # type stubs only (requirements/dev.txt): nothing of this ships or runs
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

# botocore's DEBUG wire log prints every request's parameters (botocore.endpoint) and every
# response body (botocore.parsers): a secret's value, a KMS plaintext, a token. A function
# whose root logger is at DEBUG (Lambda's log-level setting) must not write them, so these two
# never log below INFO; the rest of botocore's DEBUG output (retries, endpoints) stays.
WIRE_LOGGERS = ("botocore.endpoint", "botocore.parsers")
for _name in WIRE_LOGGERS:
    logging.getLogger(_name).setLevel(logging.INFO)

# Client profiles. botocore's `total_max_attempts` counts every attempt (its `max_attempts`
# counts retries: "2" meant three calls, measured 3.05 s against an endpoint that never
# answers). API Gateway gives a request 29 s.
#
# REQUEST_PATH: calls a request can do without (the remote cache tier, the webhook replay
# guard): one attempt, 0.2 s to connect, 0.5 s to read. A DynamoDB GetItem answers in single
# milliseconds; one that has not answered in 0.5 s is bypassed (and the cache's circuit
# breaker then skips the table for a while).
REQUEST_PATH_CONFIG: dict[str, Any] = {
    "connect_timeout": 0.2,
    "read_timeout": 0.5,
    "retries": {"total_max_attempts": 1, "mode": "standard"},
}
# RECORD: calls that record a verified HighLevel delivery, or read what accepting it needs (the
# workflow secret, the write-back queue send, parking in S3): one attempt, 0.5 s to connect,
# 1 s to read. A delivery that cannot be recorded is answered 429 and HighLevel sends it again
# (ghl/answers.py), so a second attempt would only make that answer slower; worst case per
# call 1.5 s, which keeps "429 within 3 s" for a delivery whose secret cannot be read.
RECORD_CONFIG: dict[str, Any] = {
    "connect_timeout": 0.5,
    "read_timeout": 1.0,
    "retries": {"total_max_attempts": 1, "mode": "standard"},
}
# DEFAULT: everything else (model loads, queue sends, job starts, write-back state): three
# attempts, 1 s to connect, 5 s per read. Worst case 3 x 6 s + standard-mode backoff (< 3 s)
# = 21 s: a function on the API still answers (rules fallback, 429) within 29 s.
DEFAULT_CONFIG: dict[str, Any] = {
    "connect_timeout": 1.0,
    "read_timeout": 5.0,
    "retries": {"total_max_attempts": 3, "mode": "standard"},
}
# WORKER_SEND: the write-back function's own queue sends (a delayed copy, a dead letter). A
# failed send returns the message to the queue, where each return counts toward the poison
# guard: the 10,000-write soak dead-lettered 10 writable messages after ten 0.5 s read
# timeouts in a row (the REQUEST_PATH profile it used then). Two attempts of 1 s + 2 s, worst
# case about 7 s, which the write-back deadline keeps in reserve after its last message.
WORKER_SEND_CONFIG: dict[str, Any] = {
    "connect_timeout": 1.0,
    "read_timeout": 2.0,
    "retries": {"total_max_attempts": 2, "mode": "standard"},
}
#: Worst case of one WORKER_SEND call: attempts x (connect + read) + standard-mode backoff.
WORKER_SEND_WORST_SECONDS = 2 * (1.0 + 2.0) + 1.0


@overload
def client(service: Literal["s3"], *, fast: bool = ..., record: bool = ...) -> S3Client: ...
@overload
def client(service: Literal["dynamodb"], *, fast: bool = ...,
           record: bool = ...) -> DynamoDBClient: ...
@overload
def client(service: Literal["sqs"], *, fast: bool = ..., record: bool = ...) -> SQSClient: ...
@overload
def client(service: Literal["sagemaker"], *, fast: bool = ...,
           record: bool = ...) -> SageMakerClient: ...
@overload
def client(service: Literal["secretsmanager"], *, fast: bool = ...,
           record: bool = ...) -> SecretsManagerClient: ...
@overload
def client(service: str, *, fast: bool = ..., record: bool = ...) -> Any: ...


def client(service: str, *, fast: bool = False, record: bool = False) -> Any:
    """One boto3 client per (service, profile) per container, typed by service.

    ``fast=True`` is the REQUEST_PATH profile (one attempt, sub-second timeouts) for calls a
    request can do without; ``record=True`` the RECORD profile (one attempt, 1.5 s at worst)
    for the calls that record a webhook delivery; the default profile fits API Gateway's 29 s
    with three attempts.
    """
    if fast and record:
        raise ValueError("one profile per client: fast or record")
    return _cached_client(service, "request" if fast else "record" if record else "default")


#: The profiles by name (`client` picks one; tests and the benchmark read them).
PROFILES: dict[str, dict[str, Any]] = {
    "request": REQUEST_PATH_CONFIG, "record": RECORD_CONFIG, "default": DEFAULT_CONFIG,
}


def worst_case_seconds(config: dict[str, Any]) -> float:
    """The longest one call of a profile can take against an endpoint that never answers:
    every attempt waits its connect + read timeout, and standard-mode backoff before attempt
    n (n >= 2) is at most 2**(n-2) s (botocore: random() * 2**(attempt-1), base 1)."""
    attempts = int(config["retries"]["total_max_attempts"])
    backoff = sum(2.0 ** (n - 2) for n in range(2, attempts + 1))
    return attempts * (float(config["connect_timeout"]) + float(config["read_timeout"])) + backoff


@functools.cache
def _cached_client(service: str, profile: str | bool) -> Any:
    import boto3
    from botocore.config import Config

    if isinstance(profile, bool):  # the former (service, fast) signature
        profile = "request" if profile else "default"
    made = boto3.client(service, config=Config(**PROFILES[profile]))
    if service == "s3" and profile == "record":
        # A RECORD put is a parked delivery of a few KB. botocore asks S3 for "100-continue"
        # before any body and waits up to 1 s for it: against an S3 that never answers, a
        # delivery that could not be parked took 2 s (wait, then the 1 s read) before its 429.
        from botocore.handlers import add_expect_header

        made.meta.events.unregister("before-call.s3", add_expect_header)
    return made


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("NoSuchKey", ...), or "" for anything else."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


@functools.cache
def worker_send_client() -> SQSClient:
    """The SQS client of the write-back function's own sends (WORKER_SEND profile)."""
    import boto3
    from botocore.config import Config

    sqs: SQSClient = boto3.client("sqs", config=Config(**WORKER_SEND_CONFIG))
    return sqs


def reset_clients() -> None:
    """Forget cached clients (tests switch moto on and off)."""
    from leadscore.adapters.secrets import reset_breakers

    _cached_client.cache_clear()
    worker_send_client.cache_clear()
    reset_breakers()
