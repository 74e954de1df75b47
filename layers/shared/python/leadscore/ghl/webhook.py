"""The webhook flow: one HighLevel webhook call (headers + raw body) -> the answer to give.

``functions/score/ghl_routes.py`` is the route: it builds `GhlDeps` once per container and
calls :func:`handle_webhook`. The answer codes (docs/API.md explains them to users):

* 401: not authenticated (bad or missing signature, wrong secret, stale timestamp);
* 400: authenticated but unusable (not JSON, no contact id, lead values that are not numbers);
  HighLevel does not retry it, and the failure shows in the workflow's execution log;
* 200 ``scored``: scored and the write-back queued;
* 200 ``duplicate``: a ``webhookId`` already seen: acknowledged, not scored again;
* 200 ``queued``: scoring did not work (no model, an error): the webhook is queued and scored
  by the write-back function, ending in the dead-letter queue if it never can be;
* 200 ``ignored``: a verified marketplace event that is not a contact create/update;
* 429: the queue refused the message too; HighLevel retries on 429 (never a 5xx, which it
  would not retry).

Nothing about the lead is logged except contact, location and webhook ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from leadscore.columns.schema import Schema
from leadscore.errors import InvalidInput
from leadscore.ghl.auth import AuthConfig, authenticate, check_timestamp
from leadscore.ghl.messages import WritebackMessage, score_message, webhook_message
from leadscore.ghl.payloads import (
    ParsedWebhook,
    WebhookError,
    parse_json_body,
    parse_webhook,
    utc_now_iso,
)
from leadscore.loop.hooks import LoopHooks
from leadscore.scoring.service import Scorer
from leadscore.settings import ScoreSettings

logger = Logger(child=True)


class ReplayGuard(Protocol):
    def claim(self, webhook_id: str) -> bool: ...
    def release(self, webhook_id: str) -> None: ...


class Queue(Protocol):
    def send(self, message: WritebackMessage) -> str: ...


@dataclass
class GhlDeps:
    """What the flow needs; built once per container by the route's ``configure``."""

    settings: ScoreSettings
    scorer: Callable[[], Scorer]
    replay_guard: ReplayGuard | None = None
    queue: Queue | None = None
    clock: Callable[[], float] = time.time
    # The loop (issue 14): events it consumes by type, engagement before scoring, snapshots.
    loop: LoopHooks | None = None

    @property
    def auth(self) -> AuthConfig:
        settings = self.settings
        return AuthConfig(
            ed25519_public_key_pem=settings.ghl_public_key_ed25519,
            rsa_public_key_pem=settings.ghl_public_key_rsa,
            webhook_secret=settings.ghl_webhook_secret,
            max_clock_skew_seconds=settings.ghl_max_clock_skew_seconds,
        )


@dataclass(frozen=True)
class Outcome:
    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _rejected(reason: str) -> Outcome:
    return Outcome(401, {"error": "unauthorized", "reason": reason})


def _too_busy(webhook: ParsedWebhook, d: GhlDeps) -> Outcome:
    """Answer 429 so HighLevel sends the webhook again, and forget its id so the retry is
    not taken for a replay."""
    if webhook.webhook_id and d.replay_guard is not None:
        try:
            d.replay_guard.release(webhook.webhook_id)
        except Exception:
            logger.warning("replay guard release failed", extra=webhook.log_keys())
    return Outcome(
        429,
        {"error": "try again later", "contact_id": webhook.contact_id},
        {"Retry-After": "600"},
    )


def _queue_for_retry(webhook: ParsedWebhook, d: GhlDeps, reason: str) -> Outcome:
    """Scoring did not work: keep the webhook on the queue and acknowledge it."""
    if d.queue is None:
        logger.error("cannot score and no write-back queue", extra=webhook.log_keys())
        return _too_busy(webhook, d)
    message = webhook_message(
        webhook.request, location_id=webhook.location_id, received_at=utc_now_iso(d.clock())
    )
    try:
        d.queue.send(message)
    except Exception:
        logger.exception("write-back queue refused a webhook", extra=webhook.log_keys())
        return _too_busy(webhook, d)
    logger.warning(
        "webhook queued for scoring later", extra={**webhook.log_keys(), "reason": reason}
    )
    return Outcome(200, {"status": "queued", "contact_id": webhook.contact_id, "reason": reason})


def handle_webhook(headers: Mapping[str, Any] | None, body: bytes, d: GhlDeps) -> Outcome:
    """One webhook call, from its headers and raw body bytes to the answer."""
    if len(body) > d.settings.max_body_bytes:
        return Outcome(413, {"error": "body too large"})

    try:
        verdict = authenticate(headers, body, d.auth)
    except ValueError:
        # A configured key that cannot be parsed: a deployment error, never the caller's.
        logger.exception("GoHighLevel public key configuration is unusable")
        return _rejected("signature scheme not configured")
    if not verdict.ok:
        logger.warning("webhook rejected", extra={"reason": verdict.reason})
        return _rejected(verdict.reason)

    try:
        payload = parse_json_body(body)
    except WebhookError as exc:
        return Outcome(400, {"error": str(exc)})

    if verdict.signed:
        stale = check_timestamp(
            payload.get("timestamp"), d.clock(), d.settings.ghl_max_clock_skew_seconds
        )
        if stale is not None:
            logger.warning(
                "webhook rejected",
                extra={"reason": stale, "webhook_id": str(payload.get("webhookId", ""))},
            )
            return _rejected(stale)

    try:
        webhook = parse_webhook(payload, d.settings.ghl_field_map, _custom_schema(d))
    except WebhookError as exc:
        return Outcome(400, {"error": str(exc)})
    except InvalidInput as exc:
        logger.info("webhook with invalid lead data", extra={"paths": exc.paths})
        contact = payload.get("id") or payload.get("contact_id") or ""
        return Outcome(400, {**exc.to_dict(), "contact_id": str(contact)})

    keys = webhook.log_keys()
    handler = None
    if not webhook.request and d.loop is not None:
        handler = d.loop.event_handlers().get(webhook.event_type)
    if not webhook.request and handler is None:
        logger.info("webhook ignored", extra=keys)
        return Outcome(200, {"status": "ignored", "event_type": webhook.event_type})

    if webhook.webhook_id and d.replay_guard is not None:
        try:
            first_time = d.replay_guard.claim(webhook.webhook_id)
        except Exception:
            # The guard is a cost saver, not a gate: scoring twice is harmless (the write-back
            # skips unchanged scores), refusing a lead is not.
            logger.warning("replay guard unavailable; scoring anyway", extra=keys)
            first_time = True
        if not first_time:
            logger.info("duplicate webhook acknowledged", extra=keys)
            return Outcome(
                200,
                {
                    "status": "duplicate",
                    "contact_id": webhook.contact_id,
                    "webhook_id": webhook.webhook_id,
                },
            )

    if handler is not None:
        try:
            answer = handler(payload)
        except Exception:
            logger.exception("loop event not recorded; HighLevel will retry", extra=keys)
            return _too_busy(webhook, d)
        logger.info("loop event recorded", extra={**keys, "status": answer.get("status")})
        return Outcome(200, {**answer, "event_type": webhook.event_type})

    try:
        return _score_and_queue(webhook, d)
    except Exception:
        # Not expected (the steps catch their own failures); the id is released by _too_busy
        # so HighLevel's retry is scored rather than taken for a replay.
        logger.exception("unexpected error while scoring a webhook", extra=keys)
        return _too_busy(webhook, d)


def _custom_schema(d: GhlDeps) -> Schema | None:
    """The served bundle's own columns (docs/SCHEMA.md), when the scorer can tell: then the
    contact's fields are read by the schema's HighLevel field keys into a ``fields`` request."""
    scorer = d.scorer()
    custom = getattr(scorer, "custom_schema", None)  # optional: test doubles may lack it
    return custom() if callable(custom) else None


def _score_and_queue(webhook: ParsedWebhook, d: GhlDeps) -> Outcome:
    keys = webhook.log_keys()
    if d.loop is not None:
        try:
            webhook = replace(
                webhook,
                request=d.loop.enrich(webhook.request, webhook.location_id, webhook.contact_id),
            )
        except Exception:
            # Counters are an improvement, not a gate: score with what the payload carries.
            logger.warning("engagement counters unavailable", extra=keys)
    try:
        score = d.scorer().score(webhook.request, explain=False)
    except InvalidInput as exc:
        logger.info("webhook with invalid lead data", extra={**keys, "paths": exc.paths})
        return Outcome(400, {**exc.to_dict(), "contact_id": webhook.contact_id})
    except Exception:
        logger.exception("scoring failed", extra=keys)
        return _queue_for_retry(webhook, d, "scoring failed")

    if d.loop is not None:
        d.loop.scored(webhook.request, score, webhook.location_id, "webhook")
    if score.get("source") != "ensemble":
        # The rules score is an answer for an API caller, not what we write into the CRM.
        return _queue_for_retry(webhook, d, "model unavailable")

    answer: dict[str, Any] = {
        "status": "scored",
        "contact_id": webhook.contact_id,
        "location_id": webhook.location_id,
        "predicted_score": score["predicted_score"],
        "predicted_class": score["predicted_class"],
        "confidence_interval": score.get("confidence_interval"),
        "should_prioritize": score.get("should_prioritize"),
        "model_version": score.get("model_version"),
        "source": score.get("source"),
        "cached": score.get("cached", False),
        "writeback": "disabled",
    }
    if d.queue is not None:
        message = score_message(
            score, location_id=webhook.location_id, received_at=utc_now_iso(d.clock())
        )
        try:
            d.queue.send(message)
        except Exception:
            logger.exception("write-back queue refused a score", extra=keys)
            return _too_busy(webhook, d)
        answer["writeback"] = "queued"
    logger.info("webhook scored", extra={**keys, "predicted_class": score["predicted_class"]})
    return Outcome(200, answer)
