"""What to write back onto a HighLevel contact, and when to skip (pure logic, no AWS).

The queue message (ARCHITECTURE.md, "Write-back queue message") becomes a ``WritePlan``:

* ``PUT /contacts/{id}`` with the score (rounded int 0-100, as text) and the class custom
  fields; never ``tags`` in that body (it would replace every tag of the contact);
* ``POST /contacts/{id}/tags`` adding ``<class>-lead``;
* ``DELETE /contacts/{id}/tags`` removing the other class tags.

When the last write recorded for the contact has the same class and rounded score, nothing is
written (ContactUpdate storms must not burn the rate limit). When only the score changed,
the tags are already right and only the PUT is sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leadscore.classes import CLASSES

#: Class names from best to worst (leadscore.classes decides which one a score gets).
CLASS_NAMES: tuple[str, ...] = CLASSES
TAG_SUFFIX = "-lead"

#: Keep the last-write record long enough to absorb update storms, short enough that a field
#: edited by hand in HighLevel is eventually corrected.
STATE_TTL_SECONDS = 30 * 24 * 3600

KIND_SCORE = "score"
KIND_WEBHOOK = "webhook"


class MessageError(ValueError):
    """A queue message that can never be written (malformed): retrying will not help."""


def class_tag(predicted_class: str) -> str:
    return f"{predicted_class}{TAG_SUFFIX}"


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

    @property
    def needs_scoring(self) -> bool:
        return self.kind == KIND_WEBHOOK

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
        if self.webhook is not None:
            body["webhook"] = self.webhook
        return json.dumps(body, separators=(",", ":"))

    def with_score(self, score: Mapping[str, Any]) -> WritebackMessage:
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
        )


def score_message(
    score: Mapping[str, Any], *, location_id: str, received_at: str
) -> WritebackMessage:
    """The message the webhook route queues after scoring a lead."""
    return WritebackMessage(
        kind=KIND_SCORE,
        contact_id=str(score["contact_id"]),
        location_id=location_id,
        predicted_score=float(score["predicted_score"]),
        predicted_class=str(score["predicted_class"]),
        model_version=str(score.get("model_version") or ""),
        webhook=None,
        received_at=received_at,
    )


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


def parse_message(body: str) -> WritebackMessage:
    """A queue message body -> WritebackMessage; MessageError when it can never be used."""
    try:
        raw = json.loads(body)
    except json.JSONDecodeError as exc:
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
        if cls not in CLASS_NAMES:
            raise MessageError(f"unknown predicted_class {cls!r}")
        rounded_score(float(score))  # finiteness
    version = raw.get("model_version")
    return WritebackMessage(
        kind=kind,
        contact_id=contact_id,
        location_id=location_id,
        predicted_score=float(score) if isinstance(score, int | float) else None,
        predicted_class=cls if isinstance(cls, str) else None,
        model_version=version if isinstance(version, str) else None,
        webhook=webhook if isinstance(webhook, dict) else None,
        received_at=str(raw.get("received_at") or ""),
    )


@dataclass(frozen=True)
class LastWrite:
    """What was last written onto a contact (the ``writeback#`` state item)."""

    predicted_class: str
    score: int


@dataclass(frozen=True)
class WritePlan:
    contact_id: str
    location_id: str
    score: int
    predicted_class: str
    custom_fields: tuple[tuple[str, str], ...]
    add_tags: tuple[str, ...]
    remove_tags: tuple[str, ...]
    skip: bool

    def put_body(self) -> dict[str, Any]:
        """The PUT /contacts/{id} body: custom fields only, never ``tags``."""
        return {"customFields": [{"id": fid, "field_value": v} for fid, v in self.custom_fields]}

    @property
    def state(self) -> LastWrite:
        return LastWrite(predicted_class=self.predicted_class, score=self.score)


def state_key(location_id: str, contact_id: str) -> str:
    """The DynamoDB partition key of the last-write record (ARCHITECTURE.md)."""
    return f"writeback#{location_id}#{contact_id}"


def plan_write(
    message: WritebackMessage,
    last: LastWrite | None,
    *,
    score_field_id: str,
    class_field_id: str,
) -> WritePlan:
    """Decide the requests for a scored message given the last recorded write."""
    if message.predicted_score is None or message.predicted_class is None:
        raise MessageError("the message has not been scored")
    if message.predicted_class not in CLASS_NAMES:
        raise MessageError(f"unknown predicted_class {message.predicted_class!r}")
    score = rounded_score(message.predicted_score)
    cls = message.predicted_class
    fields: list[tuple[str, str]] = []
    if score_field_id:
        fields.append((score_field_id, str(score)))
    if class_field_id:
        fields.append((class_field_id, cls))
    unchanged = last is not None and last.predicted_class == cls and last.score == score
    tags_current = last is not None and last.predicted_class == cls
    add = () if tags_current else (class_tag(cls),)
    remove = () if tags_current else tuple(class_tag(c) for c in CLASS_NAMES if c != cls)
    return WritePlan(
        contact_id=message.contact_id,
        location_id=message.location_id,
        score=score,
        predicted_class=cls,
        custom_fields=tuple(fields),
        add_tags=add,
        remove_tags=remove,
        skip=unchanged,
    )
