"""boto3 access, in small adapters created once per container.

Pure logic never imports boto3; it receives one of these adapters (or a test double).
Clients are built lazily and reused: `client("s3")` returns the same client every time.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:  # type stubs only (requirements/dev.txt): nothing of this ships or runs
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

FAST_TIMEOUTS: dict[str, Any] = {
    "connect_timeout": 1,
    "read_timeout": 1,
    "retries": {"max_attempts": 2, "mode": "standard"},
}


@overload
def client(service: Literal["s3"], *, fast: bool = ...) -> S3Client: ...
@overload
def client(service: Literal["dynamodb"], *, fast: bool = ...) -> DynamoDBClient: ...
@overload
def client(service: Literal["sqs"], *, fast: bool = ...) -> SQSClient: ...
@overload
def client(service: Literal["sagemaker"], *, fast: bool = ...) -> SageMakerClient: ...
@overload
def client(service: Literal["secretsmanager"], *, fast: bool = ...) -> SecretsManagerClient: ...
@overload
def client(service: str, *, fast: bool = ...) -> Any: ...


def client(service: str, *, fast: bool = False) -> Any:
    """One boto3 client per (service, timeout profile) per container, typed by service.

    ``fast=True`` gives ~1 s connect/read timeouts and two attempts: for calls on the request
    path (the DynamoDB cache) that must never stall a request.
    """
    return _cached_client(service, fast)


@functools.cache
def _cached_client(service: str, fast: bool) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(**FAST_TIMEOUTS) if fast else Config(retries={"max_attempts": 3})
    return boto3.client(service, config=config)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("NoSuchKey", ...), or "" for anything else."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def reset_clients() -> None:
    """Forget cached clients (tests switch moto on and off)."""
    _cached_client.cache_clear()
