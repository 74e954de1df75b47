"""Secrets from Secrets Manager, read with Powertools Parameters and cached per container.

A secret never travels in a plain environment variable (readable by anyone with
lambda:GetFunctionConfiguration): the function gets the secret's ARN and reads the value
here. Powertools caches it for ``max_age_seconds``, so a rotated value is picked up within
that time without a call per request.
"""

from __future__ import annotations

from collections.abc import Callable

from leadscore.errors import SecretUnavailable

SECRET_MAX_AGE_SECONDS = 300


def secret_string(arn: str, *, max_age_seconds: int = SECRET_MAX_AGE_SECONDS) -> str:
    """The secret's current string value (cached); raises SecretUnavailable."""
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_secret(arn, max_age=max_age_seconds)
    except Exception as exc:  # GetSecretValue failed: never a silent empty secret
        raise SecretUnavailable(f"secret could not be read: {type(exc).__name__}") from exc
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
