"""The one Lambda context for running handlers outside Lambda (tests, tools, benchmarks).

Powertools' own `LambdaContext` type, filled in as the Lambda runtime would, with a clock:
`get_remaining_time_in_millis` counts down from `timeout_ms` from the moment the context is
made, so deadline logic (the write-back's wait budget) sees a real, shrinking budget.
"""

from __future__ import annotations

import time
import uuid

from aws_lambda_powertools.utilities.typing import LambdaContext

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"


class LocalLambdaContext(LambdaContext):
    """A `LambdaContext` whose remaining time is measured from its creation."""

    def __init__(self, timeout_ms: int) -> None:
        self._deadline = time.monotonic() + timeout_ms / 1000.0

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def lambda_context(
    function_name: str = "ScoreFunction",
    *,
    memory_mb: int = 1024,
    timeout_ms: int = 30_000,
    request_id: str | None = None,
) -> LambdaContext:
    """A context for one invocation of `function_name` (a fresh request id unless given)."""
    context = LocalLambdaContext(timeout_ms)
    context._function_name = function_name
    context._function_version = "$LATEST"
    context._invoked_function_arn = (
        f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
    )
    context._memory_limit_in_mb = memory_mb
    context._aws_request_id = request_id or str(uuid.uuid4())
    context._log_group_name = f"/aws/lambda/{function_name}"
    context._log_stream_name = "local"
    context._tenant_id = None
    return context
