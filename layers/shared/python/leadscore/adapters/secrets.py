"""Secrets from Secrets Manager, read with Powertools Parameters and cached per container.

A secret never travels in a plain environment variable (readable by anyone with
lambda:GetFunctionConfiguration): the function gets the secret's ARN and reads the value
here. Powertools caches it for ``max_age_seconds``, so a rotated value is picked up within
that time without a call per request.

Every read goes through :func:`get_secret`: Powertools' own default client waits 60 s to
connect and 60 s to read, with retries, so a secret store that does not answer held a webhook
past API Gateway's 29 s (a 504, which HighLevel never retries). Here the provider uses the
RECORD client profile (one attempt, 1.5 s at worst), and the provider is also installed as
Powertools' default, so a direct ``parameters.get_secret`` gets the same bound.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from leadscore.adapters import client
from leadscore.circuit import CircuitBreaker
from leadscore.errors import SecretUnavailable
from leadscore.settings import SECRET_MAX_AGE_SECONDS

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

#: After a read of a secret failed, reads of it fail at once for this long, while one
#: background read tries the store again (a webhook then gets its 429 in milliseconds
#: instead of waiting out another timeout).
SECRET_SKIP_SECONDS = 10.0

_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def provider() -> SecretsProvider:
    """The container's Powertools secrets provider on the RECORD client profile."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    bounded = client("secretsmanager", record=True)  # a new one after reset_clients()
    current = DEFAULT_PROVIDERS.get("secrets")
    if not isinstance(current, SecretsProvider) or current.client is not bounded:
        # parameters.clear_caches() empties DEFAULT_PROVIDERS: the next read builds it again
        current = SecretsProvider(boto3_client=bounded)
        DEFAULT_PROVIDERS["secrets"] = current
    return current


def get_secret(arn: str, *, max_age_seconds: int = SECRET_MAX_AGE_SECONDS,
               force_fetch: bool = False) -> str | bytes:
    """The secret's value, cached for ``max_age_seconds``; the one way secrets are read.
    Errors propagate (botocore's, or Powertools' GetSecretError)."""
    value = provider().get(arn, max_age=max_age_seconds, force_fetch=force_fetch)
    if not isinstance(value, str | bytes):  # no transform asked: GetSecretValue's own types
        raise TypeError("unexpected secret value type")
    return value


def _breaker(arn: str, max_age_seconds: int) -> CircuitBreaker:
    with _breakers_lock:
        breaker = _breakers.get(arn)
        if breaker is None:
            breaker = CircuitBreaker(
                open_seconds=SECRET_SKIP_SECONDS,
                probe=lambda: get_secret(arn, max_age_seconds=max_age_seconds, force_fetch=True))
            _breakers[arn] = breaker
        return breaker


def reset_breakers() -> None:
    """Forget failed reads (tests switch endpoints)."""
    with _breakers_lock:
        _breakers.clear()


def secret_string(arn: str, *, max_age_seconds: int = SECRET_MAX_AGE_SECONDS) -> str:
    """The secret's current string value (cached); raises SecretUnavailable, at once while a
    recent read of it failed."""
    breaker = _breaker(arn, max_age_seconds)
    if not breaker.allow():
        raise SecretUnavailable("secret could not be read recently; retried in the background")
    try:
        value = get_secret(arn, max_age_seconds=max_age_seconds)
    except Exception as exc:  # GetSecretValue failed: never a silent empty secret
        breaker.failure()
        raise SecretUnavailable(f"secret could not be read: {type(exc).__name__}") from exc
    breaker.success()
    text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
    return text.strip()


def workflow_secret(arn: str, local_value: str = "") -> Callable[[], str]:
    """The shared secret of HighLevel workflow webhooks (header ``x-leadscore-secret``).

    Deployed: read from the secret ``arn`` (GHL_WEBHOOK_SECRET_ARN). Local runs without an
    ARN (make serve, make demo, tests) may pass the value itself; "" = workflow webhooks off.
    """
    if arn:
        return lambda: secret_string(arn)
    return lambda: local_value
