"""The write-back flow: one queue message -> HighLevel API calls, never a stale or half write.

Per message (``process_record``; every outcome is logged once, with its reason):

1. time: not enough left in this invocation for even one call -> a batch item failure,
   untouched (``Leftover``); SQS hands it out again;
2. parse (a malformed message is dead-lettered with its reason) and find the location's
   installation (not installed or disabled: dropped, logged);
3. ``kind == "webhook"``: score it now; no model yet -> *delayed* (waiting is not failing);
4. the stale guard: the contact's state keeps the order key ``(received_at, scored_at)`` of
   the last score written; a message whose key is not newer is dropped as ``stale``;
5. the skip rule: same class and rounded score as the last write -> nothing sent (the state's
   order key still moves forward, conditionally);
6. a per-contact lease (conditional write, held until this invocation's deadline) so that two
   writers never interleave calls for one contact; held by another -> delayed;
7. each HTTP call: a deadline check and a timeout sized to the time left for the calls still
   to come, a token from the location's shared budget (``DynamoLocationBudget``), the answer's
   rate-limit headers fed back into it; a 401 refreshes the token once;
8. the state is committed (conditional on still holding the lease) and the lease released.

What happens to a message that is not written now:

* waiting (rate limited, burst or daily; no model; contact busy): re-queued with a delay and
  ``waits + 1``; the original is deleted, so it never counts toward the queue's
  ``maxReceiveCount`` (after ``max_waits`` it is dead-lettered: something is stuck);
* a transient error (5xx, timeout, no or broken answer, token store down): re-queued with an
  exponential backoff and ``attempt + 1``; dead-lettered after ``max_attempts``;
* a permanent error (malformed message, invalid lead data, a 4xx such as 404 contact gone):
  dead-lettered at once. Dead-lettered copies carry ``reason``, ``status`` and ``attempts`` as
  message attributes.

Only when re-queueing or dead-lettering itself fails is the message a batch item failure.
"""

from __future__ import annotations

import math
import random
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from leadscore.errors import InvalidInput
from leadscore.ghl.api import ApiResponse, GhlApiError, NoAnswer
from leadscore.ghl.deadline import Deadline, DeadlineReached
from leadscore.ghl.installations import (
    Installation,
    Installations,
    InstalledLocation,
    TokenUnavailable,
)
from leadscore.ghl.messages import (
    MAX_DELAY_SECONDS,
    MessageError,
    WritebackMessage,
    parse_message,
)
from leadscore.ghl.write_plan import ApiCall, ContactState, WritePlan, plan_write
from leadscore.scoring.lead_score import goes_to_the_crm
from leadscore.scoring.model_store import ModelUnavailable
from leadscore.scoring.scoped import Unscored
from leadscore.scoring.service import Scorer
from leadscore.settings import WritebackSettings

logger = Logger(child=True)
metrics = Metrics(namespace="LeadScoring")

#: HTTP answers worth retrying later (besides 5xx and 429).
RETRYABLE_STATUSES = frozenset({401, 408, 409, 423, 425})


class Outcome(StrEnum):
    WRITTEN = "written"  # fields and tags
    FIELDS = "fields"  # fields only (the class, hence the tags, did not change)
    SKIPPED = "skipped"  # same class and rounded score as the last write
    STALE = "stale"  # a newer score was already written
    NOT_INSTALLED = "not_installed"
    DELAYED = "delayed"  # waiting: re-queued with a delay, not an error
    RETRY_LATER = "retry_later"  # a transient error: re-queued with a backoff
    DEAD_LETTERED = "dead_lettered"
    UNSCORED = "unscored"  # no model scope may score the location: nothing written


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reason: str = ""
    status: int = 0
    delay_seconds: int = 0


class Leftover(Exception):
    """Returned to SQS as a batch item failure (not started, or could not be re-queued)."""


class _Wait(Exception):
    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds = seconds
        self.reason = reason


class _Transient(Exception):
    def __init__(self, reason: str, status: int = 0, *, ambiguous: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        #: the request may have been applied (no answer, 5xx): hold the contact's lease
        self.ambiguous = ambiguous


class _Permanent(Exception):
    def __init__(self, reason: str, status: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# --------------------------------------------------------------------------- what it needs


class ContactStates(Protocol):
    def read(self, location_id: str, contact_id: str) -> ContactState | None: ...
    def claim(
        self, location_id: str, contact_id: str, order: str, owner: str, lease_until_ms: int
    ) -> tuple[bool, ContactState]: ...
    def advance(
        self, location_id: str, contact_id: str, order: str, predicted_class: str, score: int
    ) -> ContactState | None: ...
    def commit(
        self, location_id: str, contact_id: str, owner: str, order: str, predicted_class: str,
        score: int, model_version: str, received_at: str, scored_at: str,
    ) -> bool: ...
    def hold(self, location_id: str, contact_id: str, owner: str, until_ms: int) -> None: ...
    def release(
        self, location_id: str, contact_id: str, owner: str, *, untouched: bool = False
    ) -> None: ...


class Budget(Protocol):
    def take(self, location_id: str, n: int = 1) -> float: ...
    def observe(self, location_id: str, status: int, headers: Mapping[str, str]) -> None: ...


class Requeue(Protocol):
    def delay(self, body: str, delay_seconds: int) -> None: ...
    def dead_letter(self, body: str, reason: str, attributes: Mapping[str, str]) -> None: ...


class Api(Protocol):
    def send(self, call: ApiCall, token: str, timeout: float) -> ApiResponse: ...


@dataclass
class WritebackDeps:
    settings: WritebackSettings
    installations: Installations
    states: ContactStates
    budget: Budget
    requeue: Requeue
    api: Api
    scorer: Callable[[], Scorer]
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random


# --------------------------------------------------------------------------- one message


@dataclass
class _Context:
    """One message in flight."""

    deps: WritebackDeps
    deadline: Deadline
    message: WritebackMessage
    installation: Installation
    keys: dict[str, Any] = field(default_factory=dict)
    waited_seconds: float = 0.0
    calls_sent: int = 0

    @property
    def location_id(self) -> str:
        return self.message.location_id

    def send(self, call: ApiCall, calls_left: int) -> ApiResponse:
        """One HTTP call within the deadline and the location's budget; raises _Wait,
        _Transient, _Permanent or DeadlineReached."""
        d = self.deps
        refreshed = False
        rate_limited = 0
        while True:
            # The access token first: its lookup (a table read, a secret, a refresh) must not
            # sit between taking a budget token and sending, or requests granted in one window
            # reach HighLevel in the next and the window sees more than the budget allowed.
            try:
                token = d.installations.access_token(self.location_id, refresh=refreshed)
            except TokenUnavailable as exc:
                raise _Transient(f"token unavailable: {exc.reason}") from exc
            try:
                wait = d.budget.take(self.location_id)
            except Exception as exc:  # the budget is a courtesy; HighLevel's 429 is the rule
                self.keys["budget"] = f"bypassed: {type(exc).__name__}"
                wait = 0.0
            if wait > 0:
                self._wait_here_or_later(wait, calls_left, "rate limited (location budget)")
                continue
            d_timeout = self.deadline.call_timeout(calls_left, d.settings.http_timeout_seconds)
            started = time.monotonic()
            try:
                answer = d.api.send(call, token, d_timeout)
            except NoAnswer as exc:
                raise _Transient(exc.reason, ambiguous=True) from exc
            finally:
                self.calls_sent += 1
                self.deadline.record_call(time.monotonic() - started)
            try:
                d.budget.observe(self.location_id, answer.status, answer.headers)
            except Exception as exc:
                self.keys["budget"] = f"not updated: {type(exc).__name__}"
            if 200 <= answer.status < 300:
                return answer
            if answer.status == 429:
                rate_limited += 1
                wait = _rate_limit_wait(answer, d.clock(), d.settings)
                if rate_limited >= 3:  # keeps being refused: come back later
                    raise _Wait(wait, "rate limited (HighLevel 429)")
                self._wait_here_or_later(wait, calls_left, "rate limited (HighLevel 429)")
                continue
            if answer.status == 401 and not refreshed:
                refreshed = True  # the token may have been rotated or expired: once more
                continue
            reason = f"HighLevel {answer.status}: {answer.reason or call.method + ' failed'}"
            if answer.status >= 500 or answer.status in RETRYABLE_STATUSES:
                raise _Transient(reason, answer.status, ambiguous=answer.status >= 500)
            raise _Permanent(reason, answer.status)

    def _wait_here_or_later(self, seconds: float, calls_left: int, reason: str) -> None:
        """Sleep when it is short and fits the invocation; else raise _Wait (re-queue)."""
        s = self.deps.settings
        if (
            self.waited_seconds + seconds <= s.max_rate_limit_wait_seconds
            and self.deadline.can_wait(seconds, calls_left)
        ):
            self.waited_seconds += seconds
            self.deps.sleep(seconds)
            return
        raise _Wait(seconds, reason)


def _rate_limit_wait(answer: ApiResponse, now: float, settings: WritebackSettings) -> float:
    from leadscore.ghl.budget import rate_limit_wait

    wait = rate_limit_wait(answer.status, answer.headers, now,
                           daily_probe_seconds=settings.daily_limit_probe_seconds)
    # only called for a 429, which always waits; a bare fallback keeps the type honest
    return wait.seconds if wait is not None else settings.busy_retry_seconds


def _score(message: WritebackMessage, deps: WritebackDeps,
           installation: Installation | None = None) -> WritebackMessage:
    assert message.webhook is not None
    try:
        # the message's location picks the model scope (leadscore.scoring.scopes)
        scorer = deps.scorer()
        score = scorer.score({**message.webhook, "location_id": message.location_id},
                             explain=False)
    except InvalidInput as exc:
        raise _Permanent(f"invalid lead data: {', '.join(exc.paths)}") from exc
    except ModelUnavailable as exc:
        raise _Wait(deps.settings.model_retry_seconds, "model unavailable") from exc
    if not goes_to_the_crm(score):
        if score.get("model_scope") == "rules" and getattr(scorer, "per_location", False):
            # the rules serve this location by its scope (no model of its own is loaded and it
            # does not pool): never written, and not waited on like the rules fallback
            raise Unscored(message.location_id, "the rules serve this location: not written")
        raise _Wait(deps.settings.model_retry_seconds, "model unavailable")
    # classed as the immediate webhook classes it (the fields were read by the webhook that
    # queued it, with the same location's map)
    return message.with_score(InstalledLocation(installation).classify(score),
                              scored_at_ms=int(deps.clock() * 1000))


def _plan(c: _Context, state: ContactState | None) -> WritePlan:
    inst = c.installation
    return plan_write(
        c.message,
        state.last if state else None,
        score_field_id=inst.score_field_id,
        class_field_id=inst.class_field_id,
        class_tags=inst.class_tags,
        score_as_number=inst.score_field_numeric,
        unfinished=state.unfinished if state else False,
    )


#: Conditional state writes refused because the state changed under us: looks before the
#: message is delayed as "contact busy".
_CLAIM_TRIES = 3


def _write(c: _Context) -> Result:
    """Plan against the contact's state, then either move the order key forward (nothing to
    send) or take the contact's lease, RE-PLAN against the state as it is under the lease,
    send, and commit. Every state change is conditional, so a writer holding an older score
    can neither write nor move the order key back, and two writers never interleave."""
    d, m = c.deps, c.message
    loc, contact = m.location_id, m.contact_id
    try:
        state = d.states.read(loc, contact)
    except Exception as exc:
        raise _Transient(f"write-back state unreadable: {type(exc).__name__}") from exc
    for _ in range(_CLAIM_TRIES):
        if state is not None and state.order >= m.order:
            return Result(Outcome.STALE, "a newer score was already written")
        if state is not None and state.lease_until_ms > int(d.clock() * 1000):
            _busy(state, d)
        plan = _plan(c, state)
        if plan.skip:
            try:
                refused = d.states.advance(loc, contact, m.order, plan.predicted_class, plan.score)
            except Exception as exc:
                raise _Transient(f"write-back state not updated: {type(exc).__name__}") from exc
            if refused is None:
                return Result(Outcome.SKIPPED)
            state = refused  # changed under us: look again
            continue
        if not c.deadline.can_start(len(plan.calls())):
            raise Leftover(f"deadline: {c.deadline.remaining():.1f} s left")
        owner = f"{c.keys.get('message_id', '')}:{uuid.uuid4().hex[:12]}"
        lease_until_ms = int((d.clock() + max(0.0, c.deadline.remaining()) + 5.0) * 1000)
        try:
            claimed, held = d.states.claim(loc, contact, m.order, owner, lease_until_ms)
        except Exception as exc:
            raise _Transient(f"write-back lease not taken: {type(exc).__name__}") from exc
        if not claimed:
            state = held
            continue
        return _send_and_commit(c, owner, _plan(c, held), held.unfinished)
    raise _Wait(1.0, "contact busy")


def _send_and_commit(c: _Context, owner: str, plan: WritePlan, unfinished: bool) -> Result:
    """With the contact's lease held: the calls, then the state (releasing the lease).
    ``unfinished``: an earlier writer left a write unfinished (the plan is a whole write)."""
    d, m = c.deps, c.message
    loc, contact = m.location_id, m.contact_id
    calls = [] if plan.skip else plan.calls()
    try:
        for i, call in enumerate(calls):
            c.send(call, calls_left=len(calls) - i)
    except BaseException as exc:
        try:
            if isinstance(exc, _Transient) and exc.ambiguous:
                # The request may still land (lost answer, request delayed in flight): no
                # other writer may write this contact until it surely has.
                grace = d.settings.inflight_grace_seconds
                d.states.hold(loc, contact, owner, int((d.clock() + grace) * 1000))
            else:
                # A call that was sent may have changed the contact's tags (a failure after
                # the POST of the class tag): the item stays marked unfinished, so the next
                # writer sends a whole write instead of trusting the last recorded class.
                d.states.release(loc, contact, owner,
                                 untouched=c.calls_sent == 0 and not unfinished)
        except Exception:
            c.keys["lease"] = "not released (expires by itself)"
        raise
    try:
        committed = d.states.commit(
            loc, contact, owner, m.order, plan.predicted_class, plan.score,
            m.model_version or "", m.received_at, m.scored_at or m.received_at,
        )
        if not committed:
            c.keys["lease"] = "lost before commit"
    except Exception as exc:
        # Written but not recorded: the next message for the contact writes again (harmless).
        c.keys["state"] = f"not recorded: {type(exc).__name__}"
    c.keys.update(predicted_class=plan.predicted_class, score=plan.score)
    if not calls:
        return Result(Outcome.SKIPPED)
    return Result(Outcome.WRITTEN if plan.add_tags or plan.remove_tags else Outcome.FIELDS)


def _busy(state: ContactState, deps: WritebackDeps) -> None:
    """Another writer holds the contact's lease: come back soon (leases end at the holder's
    deadline, but most are released within a second or two)."""
    now_ms = int(deps.clock() * 1000)
    busy = min((state.lease_until_ms - now_ms) / 1000.0, deps.settings.busy_retry_seconds)
    raise _Wait(max(1.0, busy), "contact busy")


def process_record(
    body: str,
    deps: WritebackDeps,
    deadline: Deadline,
    *,
    message_id: str = "",
    receive_count: int = 1,
    sent_at_ms: int = 0,
) -> Result:
    """One queue message; returns what became of it (logged once) or raises Leftover."""
    keys: dict[str, Any] = {"message_id": message_id}
    if not deadline.can_start(1):
        raise Leftover(f"deadline: {deadline.remaining():.1f} s left")
    try:
        message = parse_message(body, sent_at_ms=sent_at_ms)
    except MessageError as exc:
        return _finish(_dead_letter(body, deps, str(exc), 0, 0), keys, deps)
    keys.update(
        location_id=message.location_id,
        contact_id=message.contact_id,
        kind=message.kind,
        attempt=message.attempt,
        waits=message.waits,
    )
    s = deps.settings
    if receive_count > s.max_receives:
        reason = f"received {receive_count} times without finishing"
        return _finish(_dead_letter(body, deps, reason, 0, message.attempt), keys, deps)
    c: _Context | None = None
    try:
        installation = deps.installations.installation(message.location_id)
        if installation is None or not installation.enabled:
            return _finish(Result(Outcome.NOT_INSTALLED, "location not installed"), keys, deps)
        if message.needs_scoring:
            message = _score(message, deps, installation)
        c = _Context(deps, deadline, message, installation, keys)
        result = _write(c)
    except Unscored as exc:
        result = Result(Outcome.UNSCORED, exc.reason)
    except _Wait as wait:
        result = _delay(message, deps, wait.seconds, wait.reason)
    except _Transient as exc:
        result = _retry_later(message, deps, exc.reason, exc.status)
    except _Permanent as exc:
        result = _dead_letter(message.to_json(), deps, exc.reason, exc.status, message.attempt)
    except DeadlineReached as exc:
        raise Leftover(f"deadline: {exc}") from exc
    except GhlApiError as exc:  # an installation lookup that failed
        result = _retry_later(message, deps, f"installation: {exc.reason}", exc.status)
    finally:
        if c is not None and c.waited_seconds:
            keys["waited_seconds"] = round(c.waited_seconds, 3)
        if c is not None:
            keys["calls"] = c.calls_sent
    return _finish(result, keys, deps)


def _delay(message: WritebackMessage, deps: WritebackDeps, seconds: float, reason: str) -> Result:
    s = deps.settings
    if message.waits >= s.max_waits:
        return _dead_letter(
            message.to_json(), deps, f"still waiting after {message.waits} delays: {reason}",
            429 if "rate" in reason else 0, message.attempt,
        )
    delay = min(MAX_DELAY_SECONDS, max(1, math.ceil(seconds * (1.0 + 0.1 * deps.jitter()))))
    _requeue(message.delayed(), deps, delay)
    return Result(Outcome.DELAYED, reason, 429 if "429" in reason else 0, delay)


def _retry_later(
    message: WritebackMessage, deps: WritebackDeps, reason: str, status: int
) -> Result:
    s = deps.settings
    attempt = message.attempt + 1
    if attempt >= s.max_attempts:
        return _dead_letter(
            message.to_json(), deps, f"{reason} ({attempt} attempts)", status, attempt
        )
    backoff = min(MAX_DELAY_SECONDS, s.retry_base_seconds * 2 ** (attempt - 1))
    delay = max(1, math.ceil(backoff * (0.5 + 0.5 * deps.jitter())))
    _requeue(message.retried(), deps, delay)
    return Result(Outcome.RETRY_LATER, reason, status, delay)


def _requeue(message: WritebackMessage, deps: WritebackDeps, delay: int) -> None:
    try:
        deps.requeue.delay(message.to_json(), delay)
    except Exception as exc:
        raise Leftover(f"could not re-queue: {type(exc).__name__}") from exc


def _dead_letter(body: str, deps: WritebackDeps, reason: str, status: int, attempts: int) -> Result:
    try:
        deps.requeue.dead_letter(
            body, reason, {"reason": reason, "status": str(status), "attempts": str(attempts)}
        )
    except Exception as exc:
        raise Leftover(f"could not dead-letter ({reason}): {type(exc).__name__}") from exc
    return Result(Outcome.DEAD_LETTERED, reason, status)


_LEVELS = {
    Outcome.WRITTEN: "info",
    Outcome.FIELDS: "info",
    Outcome.SKIPPED: "info",
    Outcome.STALE: "info",
    Outcome.NOT_INSTALLED: "warning",
    Outcome.DELAYED: "info",
    Outcome.RETRY_LATER: "warning",
    Outcome.DEAD_LETTERED: "error",
    Outcome.UNSCORED: "info",
}
_METRICS = {
    Outcome.WRITTEN: "WritebackWritten",
    Outcome.FIELDS: "WritebackWritten",
    Outcome.SKIPPED: "WritebackSkipped",
    Outcome.STALE: "WritebackStale",
    Outcome.NOT_INSTALLED: "WritebackNotInstalled",
    Outcome.DELAYED: "WritebackDelayed",
    Outcome.RETRY_LATER: "WritebackRetried",
    Outcome.DEAD_LETTERED: "WritebackDeadLettered",
    Outcome.UNSCORED: "WritebackUnscored",
}


def _finish(result: Result, keys: dict[str, Any], deps: WritebackDeps) -> Result:
    """The one log line of a message that was not a batch item failure."""
    extra = {**keys, "outcome": result.outcome.value}
    if result.reason:
        extra["reason"] = result.reason
    if result.status:
        extra["status"] = result.status
    if result.delay_seconds:
        extra["delay_seconds"] = result.delay_seconds
    getattr(logger, _LEVELS[result.outcome])(f"write-back {result.outcome.value}", extra=extra)
    metrics.add_metric(name=_METRICS[result.outcome], unit=MetricUnit.Count, value=1)
    return result


# --------------------------------------------------------------------------- the batch


class LoggingBatchProcessor(BatchProcessor):
    """Powertools' SQS BatchProcessor that logs every batch item failure exactly once, with
    its reason and no message content (the stock logger would print the exception text and
    its traceback, which may quote the message)."""

    def __init__(self) -> None:
        super().__init__(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def failure_handler(self, record: Any, exception: Any) -> Any:
        exc = exception[1]
        extra: dict[str, Any] = {"message_id": getattr(record, "message_id", "")}
        if isinstance(exc, Leftover):
            extra.update(outcome="returned", reason=str(exc))
            logger.warning("write-back returned to the queue", extra=extra)
            metrics.add_metric(name="WritebackReturned", unit=MetricUnit.Count, value=1)
        else:
            # Unexpected: the type and the code locations, never the exception's text.
            tb = exception[2]
            frames = traceback.extract_tb(tb)[-5:] if tb is not None else []
            extra.update(
                outcome="failed",
                reason=f"unexpected {type(exc).__name__}",
                where=[f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in frames],
            )
            logger.error("write-back failed unexpectedly", extra=extra)
            metrics.add_metric(name="WritebackFailed", unit=MetricUnit.Count, value=1)
        return super().failure_handler(record, exception)


def process_batch(
    event: Mapping[str, Any],
    deps: WritebackDeps,
    deadline: Deadline,
    processor: BatchProcessor,
) -> PartialItemFailureResponse:
    """An SQS event -> ``{"batchItemFailures": [...]}`` (ReportBatchItemFailures)."""

    def record_handler(record: SQSRecord) -> str:
        attributes = record.raw_event.get("attributes") or {}
        sent = str(attributes.get("SentTimestamp") or "")
        received = str(attributes.get("ApproximateReceiveCount") or "1")
        return process_record(
            record.body,
            deps,
            deadline,
            message_id=record.message_id,
            receive_count=int(received) if received.isdigit() else 1,
            sent_at_ms=int(sent) if sent.isdigit() else 0,
        ).outcome.value

    records = list(event.get("Records") or [])
    with processor(records, record_handler):
        processor.process()
    return processor.response()
