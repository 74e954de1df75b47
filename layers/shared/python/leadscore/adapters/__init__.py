"""boto3 access, in small adapters created once per container.

Pure logic never imports boto3; it receives one of these adapters (or a test double).
Clients are built lazily and reused: `client("s3")` returns the same client every time.
"""

from __future__ import annotations

import functools
from typing import Any

FAST_TIMEOUTS: dict[str, Any] = {
    "connect_timeout": 1,
    "read_timeout": 1,
    "retries": {"max_attempts": 2, "mode": "standard"},
}


@functools.cache
def client(service: str, *, fast: bool = False) -> Any:
    """One boto3 client per (service, timeout profile) per container.

    ``fast=True`` gives ~1 s connect/read timeouts and two attempts: for calls on the request
    path (the DynamoDB cache) that must never stall a request.
    """
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
    client.cache_clear()
