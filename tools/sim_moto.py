"""moto, made fast enough for the simulation without changing what it answers.

**DynamoDB item calls straight to moto's own DynamoDB handler.**

Every product adapter asks `leadscore.adapters.client("dynamodb", ...)` for its client. In
the simulation that client goes through botocore (parameter serialisation, signing, event
hooks) and moto's HTTP emulation (a werkzeug request, the response serialiser) before moto's
DynamoDB code runs at all: measured on the shared 2-core machine, a `GetItem` cost ~7 ms and a
conditional `UpdateItem` ~18 ms, three quarters of it that plumbing. The write-back makes
5-8 such calls per contact (state claim and commit, a budget read and conditional put per
HighLevel call) and the webhook 2-4 (replay guard, input digest), so for the 29k contacts of a
40k-row file the plumbing alone was most of an hour.

`DirectDynamo` keeps what the simulation checks: the request is handled by moto's own
`DynamoHandler` method for the operation (its parameter checks, condition expressions, update
expressions, ``ReturnValues``), against the same in-memory tables the rest of the run (and
the run's own boto3 clients) sees, and moto's errors come back as the botocore `ClientError`
the adapters read (`error_code(exc) == "ConditionalCheckFailedException"`). What it skips is
the wire: the HTTP request and response botocore and moto build around the call. Operations
it does not take over (scans, paginators, batch calls, table admin) go to the real client.

**SQS's retention check reads the one attribute it needs.** moto checks every message a
receive looks at against the queue's retention period by building *all* the queue's
attributes, among them the approximate message counts, which scan every message: a receive
cost O(queued messages squared) (a third of the backfill's time with 100 messages queued).
`_retention_checked` reads ``MessageRetentionPeriod`` from the queue itself: the same value,
the same decision.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

#: The item-level calls the adapters make on a hot path.
DIRECT = frozenset({"get_item", "put_item", "update_item", "delete_item"})

_OPERATION = {"get_item": "GetItem", "put_item": "PutItem", "update_item": "UpdateItem",
              "delete_item": "DeleteItem"}


class DirectDynamo:
    """A boto3 DynamoDB client whose item calls run moto's handler in process."""

    def __init__(self, real: Any, region: str) -> None:
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.responses import DynamoHandler

        self._real = real
        self._handler = DynamoHandler()
        self._handler.current_account = DEFAULT_ACCOUNT_ID
        self._handler.region = region
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        if name in DIRECT:
            return lambda **params: self._call(name, params)
        return getattr(self._real, name)

    def _call(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import ClientError
        from moto.core.exceptions import JsonRESTError

        self.calls[name] = self.calls.get(name, 0) + 1
        handler = self._handler
        # moto's handler may keep references into the body: a private copy, as the wire gave
        handler.body = copy.deepcopy(params)
        try:
            result = getattr(handler, name)()
        except JsonRESTError as exc:
            code = str(getattr(exc, "error_type", "") or type(exc).__name__).split("#")[-1]
            raise ClientError({"Error": {"Code": code, "Message": str(exc.message)},
                               "ResponseMetadata": {"HTTPStatusCode": exc.code}},
                              _OPERATION[name]) from exc
        # a detached copy in the wire's shapes (never moto's own objects)
        return dict(json.loads(json.dumps(result.result)))


def _retention_checked(backend: Any, queue_name: str, message: Any) -> bool:
    from moto.core.utils import unix_time

    period = int(backend.get_queue(queue_name).message_retention_period)
    return bool(period + message.sent_timestamp / 1000 > unix_time())


def install(region: str = "us-east-1") -> Callable[[], None]:
    """Make `leadscore.adapters.client("dynamodb", ...)` return a `DirectDynamo` (one per
    client profile, as before) and moto's SQS retention check read its one attribute; the
    returned function undoes both."""
    import functools

    from leadscore import adapters
    from moto.sqs.models import SQSBackend

    original = adapters._cached_client

    @functools.cache
    def cached(service: str, profile: str | bool) -> Any:
        real = original(service, profile)
        return DirectDynamo(real, region) if service == "dynamodb" else real

    own_clear = cached.cache_clear

    def clear() -> None:
        own_clear()
        original.cache_clear()

    cached.cache_clear = clear  # type: ignore[method-assign]
    adapters._cached_client = cached

    retention = SQSBackend.is_message_valid_based_on_retention_period
    SQSBackend.is_message_valid_based_on_retention_period = _retention_checked  # type: ignore

    def undo() -> None:
        adapters._cached_client = original
        SQSBackend.is_message_valid_based_on_retention_period = retention  # type: ignore

    return undo
