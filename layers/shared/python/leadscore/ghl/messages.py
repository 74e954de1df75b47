"""The write-back queue message: one writer and one reader (ARCHITECTURE.md, "Write-back queue
message"). The webhook route and the score API queue it; the write-back function reads it.

Ordering: ``received_at`` is when the scoring INPUTS were current (HighLevel's own delivery
``timestamp``, which its retries keep, else the time we received them) and ``scored_at`` when
the score was made. ``order`` combines them into one sortable key: a score of newer inputs
wins; for the same inputs, the later score (a newer model) wins. The write-back never writes
a message whose key is not newer than the key of the last score written to the contact.

Counters: ``attempt`` counts real errors (5xx, timeouts, ...) and ``waits`` the delays for rate
limits or a missing model; both travel with a re-queued message (a re-queued message is a new
SQS message, so waiting never counts toward the queue's ``maxReceiveCount``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from leadscore.classes import CLASSES

#: SQS cannot delay a message longer than 15 minutes.
MAX_DELAY_SECONDS = 900

KIND_SCORE = "score"
KIND_WEBHOOK = "webhook"


class MessageError(ValueError):
    """A queue message that can never be written (malformed): retrying will not help."""


def rounded_score(predicted_score: float) -> int:
    """0.874 -> 87, 0.875 -> 88 (half up, not banker's rounding), clipped to 0..100."""
    if not math.isfinite(predicted_score):
        raise MessageError("predicted_score must be finite")
    return max(0, min(100, math.floor(predicted_score * 100 + 0.5)))


@dataclass(frozen=True)
class WritebackMessage:
    kind: str
    contact_id: str
    location_id: str
    predicted_score: float | None
    predicted_class: str | None
    model_version: str | None
    webhook: dict[str, Any] | None
    received_at: str
    scored_at: str = ""
    attempt: int = 0
    waits: int = 0
    #: The contact's tags when its inputs were read (a backfill page), None when unknown.
    #: A first write removes only the other class tags the contact carried (write_plan).
    contact_tags: tuple[str, ...] | None = None
    #: which model scope produced the score (leadscore.scoring.scopes); None when unknown
    model_scope: str | None = None

    @property
    def needs_scoring(self) -> bool:
        return self.kind == KIND_WEBHOOK

    @property
    def order(self) -> str:
        """The sortable key of this score (see the module doc)."""
        return order_key(self.received_at, self.scored_at or self.received_at)

    def delayed(self) -> WritebackMessage:
        """The copy to re-queue after a wait (rate limit, no model, contact busy)."""
        return replace(self, waits=self.waits + 1)

    def retried(self) -> WritebackMessage:
        """The copy to re-queue after a transient error."""
        return replace(self, attempt=self.attempt + 1)

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "kind": self.kind,
            "contact_id": self.contact_id,
            "location_id": self.location_id,
            "predicted_score": self.predicted_score,
            "predicted_class": self.predicted_class,
            "model_version": self.model_version,
            "received_at": self.received_at,
        }
        if self.scored_at:
            body["scored_at"] = self.scored_at
        if self.webhook is not None:
            body["webhook"] = self.webhook
        if self.attempt:
            body["attempt"] = self.attempt
        if self.waits:
            body["waits"] = self.waits
        if self.contact_tags is not None:
            body["contact_tags"] = list(self.contact_tags)
        if self.model_scope:
            body["model_scope"] = self.model_scope
        return json.dumps(body, separators=(",", ":"))

    def with_score(self, score: Mapping[str, Any], *, scored_at_ms: int) -> WritebackMessage:
        """The same message once scored (``score`` is a ScoringService answer)."""
        return WritebackMessage(
            kind=KIND_SCORE,
            contact_id=self.contact_id,
            location_id=self.location_id,
            predicted_score=float(score["predicted_score"]),
            predicted_class=str(score["predicted_class"]),
            model_version=str(score.get("model_version") or ""),
            webhook=None,
            received_at=self.received_at,
            scored_at=iso_ms(scored_at_ms),
            attempt=self.attempt,
            waits=self.waits,
            contact_tags=self.contact_tags,
            model_scope=_scope(score),
        )


def iso_ms(epoch_ms: int) -> str:
    """Epoch milliseconds -> ``2026-02-05T10:00:00.000Z``."""
    moment = datetime.fromtimestamp(epoch_ms / 1000.0, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def epoch_ms(text: str) -> int | None:
    """ISO-8601 (``Z`` or an offset; naive means UTC) -> epoch milliseconds, None if not one."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def order_key(received_at: str, scored_at: str) -> str:
    """``received_at`` and ``scored_at`` as one key that sorts like time ("" sorts first)."""
    return f"{max(0, epoch_ms(received_at) or 0):015d}.{max(0, epoch_ms(scored_at) or 0):015d}"


#: More tags than this on a contact: not carried in the message (the write treats them as
#: unknown and removes every other class tag, as without them).
MAX_CONTACT_TAGS = 100


def contact_tags(value: Any) -> tuple[str, ...] | None:
    """A contact's ``tags`` as HighLevel returns them -> a tuple, or None when unusable."""
    if not isinstance(value, list) or len(value) > MAX_CONTACT_TAGS:
        return None
    if not all(isinstance(tag, str) and len(tag) <= 256 for tag in value):
        return None
    return tuple(value)


def score_message(
    score: Mapping[str, Any],
    *,
    location_id: str,
    received_at: str,
    scored_at: str = "",
    tags: Any = None,
) -> WritebackMessage:
    """The message the webhook route (and the backfill) queues after scoring a lead;
    ``tags``: the contact's tags as read with its inputs, when the caller has them."""
    return WritebackMessage(
        kind=KIND_SCORE,
        contact_id=str(score["contact_id"]),
        location_id=location_id,
        predicted_score=float(score["predicted_score"]),
        predicted_class=str(score["predicted_class"]),
        model_version=str(score.get("model_version") or ""),
        webhook=None,
        received_at=received_at,
        scored_at=scored_at or received_at,
        contact_tags=contact_tags(tags),
        model_scope=_scope(score),
    )


def _scope(score: Mapping[str, Any]) -> str | None:
    scope = score.get("model_scope")
    return scope if isinstance(scope, str) and scope else None


def webhook_message(
    request: Mapping[str, Any], *, location_id: str, received_at: str
) -> WritebackMessage:
    """The message the webhook route queues when it could not score: scored later."""
    return WritebackMessage(
        kind=KIND_WEBHOOK,
        contact_id=str(request["contact_id"]),
        location_id=location_id,
        predicted_score=None,
        predicted_class=None,
        model_version=None,
        webhook=dict(request),
        received_at=received_at,
    )


#: The largest message SQS carries is 256 KiB; anything bigger did not come from our writers.
MAX_MESSAGE_CHARS = 256 * 1024


def _counter(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def parse_message(body: str, *, sent_at_ms: int = 0) -> WritebackMessage:
    """A queue message body -> WritebackMessage; MessageError when it can never be used.

    ``sent_at_ms`` (SQS ``SentTimestamp``) stands in for a missing or unreadable
    ``received_at`` (messages queued before it was written)."""
    if len(body) > MAX_MESSAGE_CHARS:
        raise MessageError("message body too large")
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError) as exc:
        # RecursionError: "[[[[..." nested deeper than the parser's stack.
        raise MessageError("message body is not JSON") from exc
    if not isinstance(raw, dict):
        raise MessageError("message body must be a JSON object")
    kind = raw.get("kind")
    if kind not in (KIND_SCORE, KIND_WEBHOOK):
        raise MessageError(f"unknown message kind {kind!r}")
    contact_id = raw.get("contact_id")
    if not isinstance(contact_id, str) or not contact_id:
        raise MessageError("contact_id missing")
    location_id = raw.get("location_id")
    location_id = location_id if isinstance(location_id, str) else ""
    webhook = raw.get("webhook")
    score = raw.get("predicted_score")
    cls = raw.get("predicted_class")
    if kind == KIND_WEBHOOK:
        if not isinstance(webhook, dict):
            raise MessageError("a webhook message needs the parsed scoring request")
    else:
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise MessageError("predicted_score missing")
        if cls not in CLASSES:
            raise MessageError(f"unknown predicted_class {cls!r}")
        rounded_score(float(score))  # finiteness
    version = raw.get("model_version")
    received_at = str(raw.get("received_at") or "")
    if epoch_ms(received_at) is None and sent_at_ms > 0:
        received_at = iso_ms(sent_at_ms)
    scored_at = raw.get("scored_at")
    return WritebackMessage(
        kind=kind,
        contact_id=contact_id,
        location_id=location_id,
        predicted_score=float(score) if isinstance(score, int | float) else None,
        predicted_class=cls if isinstance(cls, str) else None,
        model_version=version if isinstance(version, str) else None,
        webhook=webhook if isinstance(webhook, dict) else None,
        received_at=received_at,
        scored_at=scored_at if isinstance(scored_at, str) else "",
        attempt=_counter(raw.get("attempt")),
        waits=_counter(raw.get("waits")),
        # An unusable hint is dropped, not fatal: without it every other class tag is removed.
        contact_tags=contact_tags(raw.get("contact_tags")),
        model_scope=_scope(raw),
    )

