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

**A write-back send straight to moto's SQS backend.** The webhook queues one message per
scored contact (~3,600 a week on the bank file): through botocore and moto's HTTP emulation a
`SendMessage` cost 2.6–2.8 ms, against 0.05–0.06 ms at the backend (500 sends each).
`DirectSqs` hands a plain send
(``QueueUrl``, ``MessageBody``, ``DelaySeconds``) to the backend's own ``send_message`` (its
checks of the body and the delay, the same queue every receive reads) and answers with the
ids the wire would; a send with anything else (message attributes: the dead-letter copy) goes
to the real client.

**SQS's retention check reads the one attribute it needs.** moto checks every message a
receive looks at against the queue's retention period by building *all* the queue's
attributes, among them the approximate message counts, which scan every message: a receive
cost O(queued messages squared) (a third of the backfill's time with 100 messages queued).
`_retention_checked` reads ``MessageRetentionPeriod`` from the queue itself: the same value,
the same decision. A send read its one attribute (``ContentBasedDeduplication``) through the
same property: while moto sends, that property answers that attribute alone (a send with 300
messages queued: 17 → 5.6 ms; the counts a caller asks for are unchanged).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

#: The item-level calls the adapters make on a hot path.
DIRECT = frozenset({"get_item", "put_item", "update_item", "delete_item"})

_OPERATION = {"get_item": "GetItem", "put_item": "PutItem", "update_item": "UpdateItem",
              "delete_item": "DeleteItem"}


# ------------------------------------------------------------------ conditional writes
#
# moto evaluates a condition or update expression by parsing it, deep-copying the tree and
# walking it several times: ~13 ms per conditional UpdateItem on the shared machine, two of
# them per write-back (the lease claim and the commit). The adapters use a small part of the
# language: simple attribute names (or #names), :values, AND / OR / NOT, parentheses,
# attribute_exists / attribute_not_exists, = < <= > >=, and SET (with if_not_exists and +) /
# REMOVE. `_Expr` evaluates exactly that part; anything else (another function, a nested
# path, <>, ADD, another ReturnValues) raises `Unsupported` and the call goes to moto's
# handler. Items are read and written through moto's own tables, so every other reader sees
# the same data. tests/loop/test_sim_moto.py runs each adapter expression through both and
# compares the answers and the items.


class _Refused(Exception):
    """The condition is false (ConditionalCheckFailedException)."""


class Unsupported(Exception):
    """Outside the part of the expression language `_Expr` evaluates: moto's handler takes it."""


_TOKEN = re.compile(r"\s*(?:(?P<op><=|>=|=|<|>|\(|\)|,|\+)|(?P<value>:[A-Za-z0-9_]+)"
                    r"|(?P<name>#?[A-Za-z_][A-Za-z0-9_]*)|(?P<bad>\S))")
_COMPARE = {"=", "<", "<=", ">", ">="}


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "bad"
        if kind == "bad":
            raise Unsupported(text)
        out.append((kind, m.group(kind)))
    return out


def _number(value: Any) -> Decimal:
    return Decimal(str(value))


def _compare(op: str, left: Any, right: Any) -> bool:
    """DynamoDB's comparison: false when either side is missing or the types differ."""
    if left is None or right is None:
        return False
    (lt, lv), = left.items()
    (rt, rv), = right.items()
    if lt != rt or lt not in ("N", "S", "B"):
        if lt == rt and op == "=":
            return bool(lv == rv)
        return False
    a, b = (_number(lv), _number(rv)) if lt == "N" else (lv, rv)
    return bool({"=": a == b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])


class _Expr:
    """One expression's tokens, with its names and values, read against one item."""

    def __init__(self, text: str, names: dict[str, str] | None,
                 values: dict[str, Any] | None) -> None:
        self.tokens = _tokens(text)
        self.at = 0
        self.names = names or {}
        self.values = values or {}

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, kind: str | None = None, text: str | None = None) -> str:
        token = self.peek()
        if token is None or (kind and token[0] != kind) or (text and token[1] != text):
            raise Unsupported(f"expected {text or kind} at {token}")
        self.at += 1
        return token[1]

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token and token[0] == "name" and token[1].upper() == word:
            self.at += 1
            return True
        return False

    def attribute(self) -> str:
        name = self.take("name")
        if name.startswith("#"):
            if name not in self.names:
                raise Unsupported(name)
            return self.names[name]
        if name.upper() in ("AND", "OR", "NOT", "SET", "REMOVE", "ADD", "DELETE"):
            raise Unsupported(name)
        return name

    def value(self) -> Any:
        key = self.take("value")
        if key not in self.values:
            raise Unsupported(key)
        return self.values[key]

    # condition: or_ := and_ (OR and_)* ; and_ := not_ (AND not_)* ; not_ := NOT not_ | atom
    def condition(self, item: dict[str, Any]) -> bool:
        result = self._or(item)
        if self.peek() is not None:
            raise Unsupported(f"trailing {self.peek()}")
        return result

    def _or(self, item: dict[str, Any]) -> bool:
        result = self._and(item)
        while self.keyword("OR"):
            right = self._and(item)
            result = result or right
        return result

    def _and(self, item: dict[str, Any]) -> bool:
        result = self._not(item)
        while self.keyword("AND"):
            right = self._not(item)
            result = result and right
        return result

    def _not(self, item: dict[str, Any]) -> bool:
        if self.keyword("NOT"):
            return not self._not(item)
        token = self.peek()
        if token == ("op", "("):
            self.take("op", "(")
            result = self._or(item)
            self.take("op", ")")
            return result
        if token and token[0] == "name" and token[1] in ("attribute_exists",
                                                          "attribute_not_exists"):
            self.at += 1
            self.take("op", "(")
            present = self.attribute() in item
            self.take("op", ")")
            return present if token[1] == "attribute_exists" else not present
        left = self.operand(item)
        op = self.take("op")
        if op not in _COMPARE:
            raise Unsupported(op)
        return _compare(op, left, self.operand(item))

    def operand(self, item: dict[str, Any]) -> Any:
        token = self.peek()
        if token and token[0] == "value":
            return self.value()
        return item.get(self.attribute())

    # update: (SET a = term [+ term], ... | REMOVE a, ...)+ ; term := :v | a | if_not_exists(a, :v)
    def update(self, item: dict[str, Any]) -> dict[str, Any]:
        new = dict(item)
        seen = False
        while self.peek() is not None:
            if self.keyword("SET"):
                while True:
                    name = self.attribute()
                    self.take("op", "=")
                    value = self.term(item)
                    if self.peek() == ("op", "+"):
                        self.take("op", "+")
                        value = self._add(value, self.term(item))
                    if value is None:
                        raise Unsupported("SET from a missing attribute")
                    new[name] = value
                    if self.peek() != ("op", ","):
                        break
                    self.take("op", ",")
            elif self.keyword("REMOVE"):
                while True:
                    new.pop(self.attribute(), None)
                    if self.peek() != ("op", ","):
                        break
                    self.take("op", ",")
            else:
                raise Unsupported(f"clause {self.peek()}")
            seen = True
        if not seen:
            raise Unsupported("empty update")
        return new

    def term(self, item: dict[str, Any]) -> Any:
        token = self.peek()
        if token == ("name", "if_not_exists"):
            self.at += 1
            self.take("op", "(")
            name = self.attribute()
            self.take("op", ",")
            fallback = self.value()
            self.take("op", ")")
            return item.get(name, fallback)
        return self.operand(item)

    @staticmethod
    def _add(left: Any, right: Any) -> Any:
        if not left or not right or "N" not in left or "N" not in right:
            raise Unsupported("+ on something other than two numbers")
        return {"N": str(_number(left["N"]) + _number(right["N"]))}


def _client_error(code: str, message: str, status: int, operation: str) -> Exception:
    """moto's refusal as the botocore error the adapters read off the wire
    (`leadscore.adapters.error_code`)."""
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


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
        self._keys: dict[str, list[str]] = {}

    def __getattr__(self, name: str) -> Any:
        if name in DIRECT:
            return lambda **params: self._call(name, params)
        return getattr(self._real, name)

    def _call(self, name: str, params: dict[str, Any]) -> dict[str, Any]:

        self.calls[name] = self.calls.get(name, 0) + 1
        if name != "get_item" and ("ConditionExpression" in params
                                   or "UpdateExpression" in params):
            try:
                return self._conditional(name, params)
            except Unsupported:
                self.calls["moto"] = self.calls.get("moto", 0) + 1
            except _Refused:
                raise _client_error("ConditionalCheckFailedException",
                                    "The conditional request failed", 400,
                                    _OPERATION[name]) from None
        return self._handled(name, params)

    def _conditional(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """A conditional write (or an update) evaluated by `_Expr` against the item as moto
        holds it, then written back unconditionally (the simulation has one writer at a time:
        its handlers run in turn)."""
        allowed = {"TableName", "Key", "Item", "ConditionExpression", "UpdateExpression",
                   "ExpressionAttributeNames", "ExpressionAttributeValues", "ReturnValues"}
        if set(params) - allowed:
            raise Unsupported(f"parameters {sorted(set(params) - allowed)}")
        returns = params.get("ReturnValues", "NONE")
        if returns not in ("NONE", "ALL_NEW", "ALL_OLD") or (
                returns == "ALL_NEW" and name != "update_item"):
            raise Unsupported(f"ReturnValues {returns}")
        table = params["TableName"]
        names = params.get("ExpressionAttributeNames")
        values = params.get("ExpressionAttributeValues")
        key = params["Item"] if name == "put_item" else params["Key"]
        hash_key = next(k for k in self._key_names(table))
        key = {hash_key: key[hash_key]}
        current = self._handled("get_item", {"TableName": table, "Key": key,
                                             "ConsistentRead": True}).get("Item") or {}
        condition = params.get("ConditionExpression")
        # parse both before anything is decided, so an unsupported part never half-runs
        check = _Expr(condition, names, values) if condition else None
        update = (_Expr(params["UpdateExpression"], names, values)
                  if name == "update_item" else None)
        if check is not None and not check.condition(current):
            raise _Refused()
        # ALL_OLD: the item as it was before this write, when there was one (as DynamoDB)
        old = {"Attributes": current} if returns == "ALL_OLD" and current else {}
        if name == "delete_item":
            self._handled("delete_item", {"TableName": table, "Key": key})
            return old
        if name == "put_item":
            new = dict(params["Item"])
        else:
            if update is None:
                raise Unsupported("update_item without an UpdateExpression")
            new = update.update({**current, **key})
        self._handled("put_item", {"TableName": table, "Item": new})
        return {"Attributes": new} if returns == "ALL_NEW" else old

    def _key_names(self, table: str) -> list[str]:
        names = self._keys.get(table)
        if names is None:
            described = self._real.describe_table(TableName=table)["Table"]
            names = [k["AttributeName"] for k in described["KeySchema"]]
            if len(names) != 1:
                raise Unsupported("a table with a sort key")
            self._keys[table] = names
        return names

    def _handled(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        from moto.core.exceptions import JsonRESTError

        handler = self._handler
        # moto's handler may keep references into the body: a private copy, as the wire gave
        # (a JSON round trip: the wire's own shapes, several times cheaper than deepcopy)
        try:
            handler.body = json.loads(json.dumps(params))
        except TypeError:  # not JSON (bytes of a binary attribute): copied as it is
            handler.body = copy.deepcopy(params)
        try:
            result = getattr(handler, name)()
        except JsonRESTError as exc:
            code = str(getattr(exc, "error_type", "") or type(exc).__name__).split("#")[-1]
            raise _client_error(code, str(exc.message), exc.code, _OPERATION[name]) from exc
        # a detached copy in the wire's shapes (never moto's own objects)
        return dict(json.loads(json.dumps(result.result)))


class DirectSqs:
    """A boto3 SQS client whose plain ``send_message`` runs moto's backend in process."""

    _PLAIN = frozenset({"QueueUrl", "MessageBody", "DelaySeconds"})

    def __init__(self, real: Any, region: str) -> None:
        from moto.core.models import DEFAULT_ACCOUNT_ID

        self._real = real
        self._account = DEFAULT_ACCOUNT_ID
        self._region = region
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        if name == "send_message":
            return self._send
        return getattr(self._real, name)

    def _send(self, **params: Any) -> dict[str, Any]:
        from moto.core.exceptions import ServiceException
        from moto.sqs.models import sqs_backends

        if set(params) - self._PLAIN or "QueueUrl" not in params or "MessageBody" not in params:
            return dict(self._real.send_message(**params))
        self.calls += 1
        backend = sqs_backends[self._account][self._region]
        try:
            message = backend.send_message(str(params["QueueUrl"]).rsplit("/", 1)[-1],
                                           str(params["MessageBody"]),
                                           delay_seconds=params.get("DelaySeconds"))
        except ServiceException as exc:
            # the code botocore reads off the wire (SQS's query-compatible one)
            raise _client_error(str(exc.code), str(exc.message), 400, "SendMessage") from exc
        return {"MessageId": message.id, "MD5OfMessageBody": message.body_md5}


_SENDING = threading.local()


class _Sent:
    """Messages sent to any queue since `install` (the simulation drains by it)."""

    count = 0


SENT = _Sent()


def _sending(send: Callable[..., Any]) -> Callable[..., Any]:
    """moto's send_message reads one queue attribute (ContentBasedDeduplication) through the
    property that builds them all, message counts included: O(queued) per send. While a send
    runs, `_send_attributes` answers that one attribute the same way."""

    def sending(*args: Any, **kwargs: Any) -> Any:
        SENT.count += 1
        _SENDING.on = True
        try:
            return send(*args, **kwargs)
        finally:
            _SENDING.on = False

    return sending


def _send_attributes(full: Any) -> property:
    def attributes(queue: Any) -> dict[str, Any]:
        if getattr(_SENDING, "on", False):
            value = queue.content_based_deduplication
            return {"ContentBasedDeduplication":
                    str(value).lower() if isinstance(value, bool) else value}
        return dict(full.fget(queue))

    return property(attributes)


def _retention_checked(backend: Any, queue_name: str, message: Any) -> bool:
    from moto.core.utils import unix_time

    period = int(backend.get_queue(queue_name).message_retention_period)
    return bool(period + message.sent_timestamp / 1000 > unix_time())


def install(region: str = "us-east-1") -> Callable[[], None]:
    """Make `leadscore.adapters.client("dynamodb", ...)` return a `DirectDynamo` and
    ``client("sqs", ...)`` a `DirectSqs` (one per client profile, as before), and moto's SQS
    retention check read its one attribute; the returned function undoes all of it."""
    import functools

    from leadscore import adapters
    from moto.sqs.models import Queue, SQSBackend

    original = adapters._cached_client

    @functools.cache
    def cached(service: str, profile: str | bool) -> Any:
        real = original(service, profile)
        if service == "dynamodb":
            return DirectDynamo(real, region)
        return DirectSqs(real, region) if service == "sqs" else real

    own_clear = cached.cache_clear

    def clear() -> None:
        own_clear()
        original.cache_clear()

    cached.cache_clear = clear  # type: ignore[method-assign]
    adapters._cached_client = cached

    retention = SQSBackend.is_message_valid_based_on_retention_period
    SQSBackend.is_message_valid_based_on_retention_period = _retention_checked  # type: ignore
    send, attributes = SQSBackend.send_message, Queue.attributes
    SQSBackend.send_message = _sending(send)  # type: ignore[method-assign]
    Queue.attributes = _send_attributes(attributes)  # type: ignore[method-assign,assignment]

    def undo() -> None:
        adapters._cached_client = original
        SQSBackend.is_message_valid_based_on_retention_period = retention  # type: ignore
        SQSBackend.send_message = send  # type: ignore[method-assign]
        Queue.attributes = attributes  # type: ignore[method-assign]

    return undo
