"""The write-back queue message: one writer and one reader (ARCHITECTURE.md, "Write-back queue
message"). The webhook route and the score API queue it; the write-back function reads it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leadscore.classes import CLASSES

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
        if cls not in CLASSES:
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

