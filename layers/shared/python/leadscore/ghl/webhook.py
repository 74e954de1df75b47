"""The webhook flow: one HighLevel delivery (headers + raw body) -> the answer to give.

``functions/score/ghl_routes.py`` is the route: it builds `GhlDeps` once per container and
calls :func:`handle_webhook` through `leadscore.ghl.answers.acknowledge`, the one rule for
what HighLevel gets back (2xx once recorded, 429 when it cannot be recorded now, never 5xx):

* 401 only for what fails authentication (signature, shared secret);
* a verified delivery gets a 2xx once recorded; what cannot be processed now is parked with
  its reason (`leadscore.ghl.parking`), counted, and replayed later with ``tools/ghlctl.py``;
* 429 (+ Retry-After) when even parking failed, or the workflow secret cannot be read:
  HighLevel then sends it again.

Steps for a verified delivery (docs/GHL_SETUP.md has the answer table for users):

1. JSON object, else parked; its identifiers must be ids HighLevel could make
   (`leadscore.identifiers`), else parked (signed) or 400 (a workflow call);
2. the location: a workflow credential is bound to one location (`leadscore.ghl.credentials`)
   and a body naming another is refused (403: nothing scored, written or recorded);
3. signed deliveries: ``appId`` must be ours (when GHL_APP_ID is set), else 200 ``ignored``;
   dedupe on ``webhookId`` (or the SHA-256 of the signed body) -> 200 ``duplicate``; the
   freshness window (days) only for deliveries not seen before, else parked;
4. time: only a signed delivery's ``timestamp`` orders anything (clamped to the receipt time);
   an unsigned one is ordered by when it came;
5. ``INSTALL`` / ``UNINSTALL`` -> `leadscore.ghl.lifecycle`, only when signed by HighLevel for
   this app (a workflow secret never changes an installation);
6. the location must be installed and enabled (else 200 ``ignored``);
7. ``ContactDelete`` -> the contact's data is forgotten (`leadscore.loop.deletion`); event
   types the loop consumes (opportunities, messages) -> its handler (`d.loop`);
   contact events and workflow calls: parsed with the location's field map, scored, the
   write-back queued (200 ``scored``); scoring impossible now -> queued for later (200
   ``queued``); anything else -> 200 ``ignored``.

Nothing about the lead is logged except contact, location and delivery ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from leadscore.columns.schema import Schema
from leadscore.errors import InvalidInput, SecretUnavailable
from leadscore.ghl import parking
from leadscore.ghl.answers import Outcome as Outcome  # re-exported: the flow's answer type
from leadscore.ghl.answers import retry_later
from leadscore.ghl.auth import (
    SIGNATURE_HEADER,
    AuthConfig,
    Verification,
    authenticate,
    parse_timestamp,
    signature_header,
)
from leadscore.ghl.delivery import app_matches, delivery_id, freshness_problem
from leadscore.ghl.digest import inputs_digest
from leadscore.ghl.installations import Installation, Installations, InstalledLocation
from leadscore.ghl.messages import WritebackMessage, score_message, webhook_message
from leadscore.ghl.payloads import (
    FLAT_NAMES,
    ParsedWebhook,
    WebhookError,
    collect_flat,
    detect_kind,
    parse_json_body,
    parse_webhook,
    unwrap_event,
    utc_now_iso,
)
from leadscore.identifiers import id_errors, is_safe_id
from leadscore.scoring.lead_score import goes_to_the_crm
from leadscore.scoring.scoped import Unscored
from leadscore.scoring.service import Scorer, scorer_schema
from leadscore.settings import ScoreSettings
from leadscore.throttle import LocationBuckets

logger = Logger(child=True)

INSTALL_EVENTS = frozenset({"INSTALL", "AppInstall"})
UNINSTALL_EVENTS = frozenset({"UNINSTALL", "AppUninstall"})
CONTACT_DELETE = "ContactDelete"


class ReplayGuard(Protocol):
    def claim(self, webhook_id: str) -> bool: ...
    def release(self, webhook_id: str) -> None: ...


class Queue(Protocol):
    def send(self, message: WritebackMessage) -> str: ...


class InputDigests(Protocol):
    """The digest of each contact's scoring inputs and the time they were current
    (adapters.ghl_state.DynamoInputDigests)."""

    def seen(self, location_id: str, contact_id: str) -> tuple[str, int] | None: ...
    def remember(self, location_id: str, contact_id: str, digest: str,
                 as_of_ms: int = 0) -> None: ...


class ContactEraser(Protocol):
    """`leadscore.loop.deletion.Eraser`: what ``ContactDelete`` removes."""

    def forget_contact(self, location_id: str, contact_id: str) -> dict[str, Any]: ...


class LoopEvents(Protocol):
    """`leadscore.loop.hooks.LoopHooks`: the events the loop consumes by type, engagement
    before scoring, the snapshot after (the loop sits above this flow and plugs into it)."""

    def event_handlers(self) -> Mapping[str, Callable[[Mapping[str, Any]], dict[str, Any]]]: ...
    def enrich(self, request: Mapping[str, Any], location_id: str,
               contact_id: str) -> dict[str, Any]: ...
    def scored(self, request: Mapping[str, Any], result: Mapping[str, Any], location_id: str,
               source: str) -> None: ...


class InstallEvents(Protocol):
    """`leadscore.ghl.lifecycle.Lifecycle` (INSTALL / UNINSTALL)."""

    def on_install(self, event: Mapping[str, Any]) -> dict[str, Any]: ...
    def on_uninstall(self, event: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass
class WaitingReplay:
    """Whether this container may still hold deliveries parked until a first model
    (`parking.NO_MODEL`). A new container does not know, so it looks once; it looks again
    after it parks one itself. ``batch``: contacts replayed per webhook call at most, so one
    call never carries a whole backlog (the rest follows with the next calls)."""

    batch: int = 200
    pending: bool = True
    running: bool = False


@dataclass
class GhlDeps:
    """What the flow needs; built once per container by the route's ``configure``."""

    settings: ScoreSettings
    scorer: Callable[[], Scorer]
    replay_guard: ReplayGuard | None = None
    queue: Queue | None = None
    #: None: nothing configured (local runs): every location is accepted
    installations: Installations | None = None
    lifecycle: InstallEvents | None = None
    parked: parking.ParkedStore | None = None
    #: counts a named event (CloudWatch metric in the route; a list in tests)
    count: Callable[[str], None] = lambda _name: None
    clock: Callable[[], float] = time.time
    # The loop: events it consumes by type, engagement before scoring, snapshots.
    loop: LoopEvents | None = None
    # The workflow secret, read when needed (Secrets Manager, cached; adapters/secrets.py).
    workflow_secret: Callable[[], str] | None = None
    #: our own writes fire ContactUpdate again: an update whose inputs did not change is not
    #: scored again; None: every update is scored
    digests: InputDigests | None = None
    #: ContactDelete: the contact's cached answers, digest, write-back state and records
    eraser: ContactEraser | None = None
    #: one token bucket per location for workflow calls (LOCATION_RATE_PER_SECOND); None: off
    buckets: LocationBuckets | None = None
    #: deliveries parked until a first model serves (`replay_waiting`), this container's view
    waiting: WaitingReplay = field(default_factory=lambda: WaitingReplay())

    @property
    def auth(self) -> AuthConfig:
        return self.auth_for(None)

    def auth_for(self, headers: Mapping[str, Any] | None) -> AuthConfig:
        """The verification settings for one call. The workflow secret (header or
        customData) is read only for a call without HighLevel's signature, so a Secrets
        Manager hiccup never touches signed webhooks; SecretUnavailable propagates."""
        settings = self.settings
        secret = settings.ghl_webhook_secret
        signed = signature_header(headers, SIGNATURE_HEADER) is not None
        if self.workflow_secret is not None and not signed:
            secret = self.workflow_secret()
        installs = self.installations
        if installs is None:  # local runs: nothing installed, the shared secret acts anywhere
            return AuthConfig(ed25519_public_key_pem=settings.ghl_public_key_ed25519,
                              rsa_public_key_pem=settings.ghl_public_key_rsa,
                              webhook_secret=secret)

        def location_secret(location_id: str, fresh: bool) -> str:
            if not is_safe_id(location_id):
                return ""
            try:
                inst = installs.installation(location_id, fresh=fresh)
            except Exception as exc:  # not the caller's fault: HighLevel retries a 503
                raise SecretUnavailable("installations unreadable") from exc
            return inst.workflow_secret_hash if inst is not None and inst.enabled else ""

        return AuthConfig(
            ed25519_public_key_pem=settings.ghl_public_key_ed25519,
            rsa_public_key_pem=settings.ghl_public_key_rsa,
            webhook_secret=secret,
            location_secret=location_secret,
            # An existing stack's shared secret keeps working for its one configured location
            # only; with none configured it is retired (each location has its own).
            shared_secret_location=settings.installs.location_id,
        )


class _Delivery:
    """One verified delivery on its way through the flow (what parking needs to keep it)."""

    def __init__(self, body: bytes, verdict: Verification, d: GhlDeps, *, replay: bool,
                 received_at: float | None = None) -> None:
        self.body = body
        self.scheme = verdict.scheme
        self.signed = verdict.signed
        #: the one location the credential may act for ("" = any: signed, or unbound)
        self.bound_location = verdict.location_id
        self.presented = verdict.presented
        self.d = d
        self.replay = replay
        #: when the delivery came (a replay: when it first came); orders unsigned deliveries
        self.received_at = d.clock() if received_at is None else received_at
        self.claimed = ""  # the delivery id claimed in the replay guard
        self.location_id = ""
        self.event_type = ""

    def park(self, reason: str, extra: Mapping[str, Any] | None = None,
             folder: str = "") -> Outcome:
        """Keep the delivery with its reason and acknowledge it (2xx); 429 if it cannot be
        kept (HighLevel sends it again)."""
        d = self.d
        keys = {"reason": reason, "location_id": self.location_id,
                "event_type": self.event_type}
        if self.replay:  # the CLI keeps the record it replayed; nothing new is parked
            return Outcome(200, {"status": "parked", "reason": reason, **(extra or {})})
        if d.parked is None:
            logger.error("verified delivery cannot be processed and no parking store",
                         extra=keys)
            return self.too_busy()
        record = parking.new_parked(parking.without_secrets(self.body, self.presented), reason,
                                    self.scheme, d.clock(),
                                    location_id=self.location_id or self.bound_location,
                                    event_type=self.event_type, folder=folder)
        try:
            d.parked.park(record)
        except Exception:
            logger.exception("parking a delivery failed", extra=keys)
            return self.too_busy()
        d.count("WebhookParked")
        logger.warning("delivery parked", extra={**keys, "parked_id": record.parked_id})
        return Outcome(200, {"status": "parked", "reason": reason,
                             "parked_id": record.parked_id, **(extra or {})})

    def too_busy(self) -> Outcome:
        """429 so HighLevel sends it again; the delivery id is forgotten so that the retry is
        processed rather than taken for a duplicate."""
        if self.claimed and self.d.replay_guard is not None:
            try:
                self.d.replay_guard.release(self.claimed)
            except Exception:
                logger.warning("replay guard release failed", extra={"delivery": self.claimed})
        return retry_later()

    def ignored(self, reason: str, **extra: Any) -> Outcome:
        self.d.count("WebhookIgnored")
        logger.info("delivery ignored", extra={"reason": reason, "location_id": self.location_id,
                                               "event_type": self.event_type})
        return Outcome(200, {"status": "ignored", "reason": reason, **extra})


def _rejected(reason: str) -> Outcome:
    return Outcome(401, {"error": "unauthorized", "reason": reason})


def _forbidden(delivery: _Delivery) -> Outcome:
    """A location's credential used for another location: refused, nothing done."""
    delivery.d.count("WebhookWrongLocation")
    logger.warning("credential used for another location",
                   extra={"location_id": delivery.bound_location})
    return Outcome(403, {"error": "forbidden",
                         "reason": "the credential is for another location"})


def handle_webhook(headers: Mapping[str, Any] | None, body: bytes, d: GhlDeps) -> Outcome:
    """One webhook call, from its headers and raw body bytes to the answer."""
    if len(body) > d.settings.max_body_bytes:
        return Outcome(413, {"error": "body too large"})
    try:
        verdict = authenticate(headers, body, d.auth_for(headers))
    except SecretUnavailable:
        # Not the caller's fault and not a verdict: the delivery cannot be checked, so it
        # cannot be recorded now (ghl/answers.py).
        logger.warning("workflow secret unavailable")
        return retry_later()
    except ValueError:
        # A configured key that cannot be parsed: a deployment error, never the caller's.
        logger.exception("GoHighLevel public key configuration is unusable")
        return _rejected("signature scheme not configured")
    if not verdict.ok:
        logger.warning("webhook rejected", extra={"reason": verdict.reason})
        return _rejected(verdict.reason)
    delivery = _Delivery(body, verdict, d, replay=False)
    try:
        return _verified(delivery)
    except Exception:
        # Not expected (each step catches what it expects): keep the delivery.
        logger.exception("unexpected error in the webhook flow")
        return delivery.park("unexpected error")


def replay_parked(record: parking.ParkedDelivery, d: GhlDeps) -> Outcome:
    """Process a parked delivery again (it was verified when it came): no authentication,
    no deduplication, no freshness window. A ``parked`` answer means it still fails."""
    # A workflow call stays bound to the location it was verified for (a record parked
    # before secrets were per location: the stack's configured location, or none at all).
    bound = ""
    if record.scheme not in ("ed25519", "rsa") and d.installations is not None:
        bound = record.location_id or d.settings.installs.location_id
        if not bound:
            return Outcome(200, {"status": "ignored",
                                 "reason": "a workflow call with no location to act for"})
    try:
        came = parse_timestamp(record.received_at).timestamp()
    except (ValueError, OverflowError, OSError):
        came = d.clock()
    delivery = _Delivery(record.body, Verification.verified(record.scheme, bound), d,
                         replay=True, received_at=came)
    return _verified(delivery)


_ID_PATHS_MARKETPLACE = ("type", "locationId", "id", "contactId", "companyId", "webhookId")
_ID_PATHS_ALWAYS = ("location_id", "contact_id")


def _identifier_problems(payload: Mapping[str, Any]) -> list[str]:
    """Paths whose value is not an id HighLevel could make (checked before any log line)."""
    values = {path: payload.get(path) for path in _ID_PATHS_ALWAYS}
    if isinstance(payload.get("type"), str):
        values.update({path: payload.get(path) for path in _ID_PATHS_MARKETPLACE})
    loc_obj = payload.get("location")
    if isinstance(loc_obj, Mapping):
        values["location.id"] = loc_obj.get("id")
    return [e.path for e in id_errors(values)]


def _named_locations(payload: Mapping[str, Any]) -> set[str]:
    loc_obj = payload.get("location")
    named = [payload.get("locationId"), payload.get("location_id"),
             loc_obj.get("id") if isinstance(loc_obj, Mapping) else None]
    return {v for v in named if isinstance(v, str) and v}


def _trusted_time(delivery: _Delivery, payload: Mapping[str, Any]) -> float:
    """When the delivery's content was current, as far as we can trust it: a signed
    ``timestamp`` (HighLevel's own; its retries keep it) never later than when it came; an
    unsigned one (anyone with a workflow secret writes it) is ignored: the receipt time."""
    if not delivery.signed:
        return delivery.received_at
    try:
        moment = parse_timestamp(payload.get("timestamp")).timestamp()
    except (ValueError, OverflowError, OSError):
        return delivery.received_at
    return min(moment, delivery.received_at)


def _verified(delivery: _Delivery) -> Outcome:
    d = delivery.d
    try:
        payload = unwrap_event(parse_json_body(delivery.body))
    except WebhookError as exc:
        return delivery.park(parking.NOT_JSON if "JSON" in str(exc) else str(exc))
    problems = _identifier_problems(payload)
    if problems:
        reason = f"invalid identifier: {', '.join(problems)}"
        if not delivery.signed and not delivery.replay:
            return Outcome(400, {"error": "invalid identifiers", "errors": [
                {"path": p, "message": "not a HighLevel id"} for p in problems]})
        return delivery.park(reason)
    delivery.event_type = str(payload.get("type") or "")
    named = _named_locations(payload)
    if delivery.bound_location:
        if named - {delivery.bound_location}:
            return _forbidden(delivery)
        delivery.location_id = delivery.bound_location
    elif len(named) > 1:
        return delivery.ignored("conflicting location ids")
    else:
        delivery.location_id = next(iter(named), "")

    if delivery.signed:
        if not app_matches(payload, d.settings.ghl_app_id):
            return delivery.ignored("another app's delivery")
        outcome = _dedupe_and_freshness(delivery, payload)
        if outcome is not None:
            return outcome
    elif d.buckets is not None and delivery.location_id and not delivery.replay:
        # One sub-account's workflow burst waits alone (HighLevel retries a 429); signed
        # deliveries are HighLevel's own pace and are never refused.
        wait = d.buckets.take(delivery.location_id)
        if wait > 0:
            d.count("WebhookThrottled")
            return Outcome(429, {"error": "this location is over its request rate"},
                           {"Retry-After": str(max(1, round(wait + 0.5)))})

    # From here on the payload carries the one location and a time that can be trusted.
    trusted = {**payload, "timestamp": utc_now_iso(_trusted_time(delivery, payload))}
    if not delivery.signed:
        trusted.pop("dateAdded", None)
    # Events read their location from ``locationId``; a workflow contact body keeps its own
    # shape (a ``locationId`` next to a contact's ``type`` would make it look like an event).
    consumers = set(d.loop.event_handlers()) if d.loop is not None else set()
    if delivery.location_id and ("locationId" in payload
                                 or delivery.event_type in consumers | {CONTACT_DELETE}):
        trusted["locationId"] = delivery.location_id
    payload = trusted

    if delivery.event_type in INSTALL_EVENTS or delivery.event_type in UNINSTALL_EVENTS:
        return _lifecycle(delivery, payload)

    installation: Installation | None = None
    if d.installations is not None:
        if not delivery.location_id:
            return delivery.ignored("no location id")
        try:
            installation = d.installations.installation(delivery.location_id)
        except Exception:
            logger.exception("installations table unreadable",
                             extra={"location_id": delivery.location_id})
            return delivery.park("installations unreadable")
        if installation is None:
            return delivery.ignored("location not installed")
        if not installation.enabled:
            return delivery.ignored("location disabled")

    if delivery.event_type == CONTACT_DELETE:
        return _forget_contact(delivery, payload)
    handler = d.loop.event_handlers().get(delivery.event_type) if d.loop is not None else None
    if handler is not None:
        try:
            answer = handler(payload)
        except Exception as exc:
            logger.exception("loop event not recorded", extra={"event_type": delivery.event_type})
            return delivery.park(f"event not recorded: {type(exc).__name__}")
        settled = answer.pop("settled", None) or ()
        if settled and delivery.location_id:
            answer["waiting_dropped"] = _drop_settled(d, delivery.location_id, settled)
        logger.info("loop event recorded", extra={"event_type": delivery.event_type,
                                                  "status": answer.get("status")})
        return Outcome(200, {**answer, "event_type": delivery.event_type})
    return _contact(delivery, payload, installation)


def _dedupe_and_freshness(delivery: _Delivery, payload: Mapping[str, Any]) -> Outcome | None:
    d = delivery.d
    if delivery.replay:
        return None
    key = delivery_id(payload, delivery.body)
    if d.replay_guard is not None:
        try:
            first_time = d.replay_guard.claim(key)
        except Exception:
            # The guard saves work, it is not a gate: processing twice is harmless (the
            # write-back skips unchanged scores); refusing a delivery is not.
            logger.warning("replay guard unavailable; processing anyway",
                           extra={"delivery": key})
            first_time = True
        if not first_time:
            d.count("WebhookDuplicate")
            logger.info("duplicate delivery acknowledged", extra={"delivery": key})
            return Outcome(200, {"status": "duplicate", "webhook_id": key})
        delivery.claimed = key
    problem = freshness_problem(payload.get("timestamp"), d.clock(),
                                d.settings.ghl_max_delivery_age_seconds)
    if problem is not None:
        return delivery.park(problem)
    return None


def _forget_contact(delivery: _Delivery, payload: Mapping[str, Any]) -> Outcome:
    d = delivery.d
    contact_id = str(payload.get("id") or payload.get("contactId") or "")
    if not contact_id:
        return delivery.ignored("no contact id")
    if d.eraser is None:
        return delivery.ignored("contact data deletion is not configured")
    try:
        answer = d.eraser.forget_contact(delivery.location_id, contact_id)
    except Exception as exc:
        logger.exception("contact data not deleted", extra={"location_id": delivery.location_id})
        return delivery.park(f"contact not deleted: {type(exc).__name__}")
    d.count("ContactForgotten")
    logger.info("contact data deleted", extra={"location_id": delivery.location_id,
                                               "contact_id": contact_id})
    return Outcome(200, {"status": "deleted", "contact_id": contact_id, **answer})


def _app_id(d: GhlDeps) -> str:
    """This app's id: configured, or derived from the OAuth client id by the lifecycle."""
    configured = d.settings.ghl_app_id or d.settings.installs.app_id
    if configured:
        return configured
    try:
        return str(getattr(d.lifecycle, "app_id", "") or "")
    except Exception:
        logger.exception("app id could not be derived from the OAuth client id")
        return ""


def _lifecycle(delivery: _Delivery, payload: Mapping[str, Any]) -> Outcome:
    d = delivery.d
    if d.lifecycle is None:
        return delivery.ignored("installs are not configured (no installations table)")
    # Every app shares HighLevel's signing key and anyone with a workflow secret can post an
    # UNINSTALL: only HighLevel's signature for THIS app changes an installation.
    if not delivery.signed:
        return delivery.ignored("install events are honoured only when signed by HighLevel")
    app_id = _app_id(d)
    if not app_id:
        return delivery.ignored("install events need this app's id (GHL_APP_ID)")
    if payload.get("appId") != app_id:
        return delivery.ignored("another app's delivery")
    try:
        if delivery.event_type in INSTALL_EVENTS:
            answer = d.lifecycle.on_install(payload)
        else:
            answer = d.lifecycle.on_uninstall(payload)
    except Exception as exc:
        logger.exception("install step failed", extra={"location_id": delivery.location_id})
        return delivery.park(f"{parking.INSTALL_FAILED}: {type(exc).__name__}")
    logger.info("install event handled", extra={"event_type": delivery.event_type,
                                                "location_id": delivery.location_id})
    return Outcome(200, answer)


def _custom_schema(d: GhlDeps, location_id: str = "") -> Schema | None:
    """The served bundle's own columns (docs/SCHEMA.md), when the scorer can tell: then the
    contact's fields are read by the schema's HighLevel field keys into a ``fields`` request.
    With per-location models, the columns of the model that scores this location."""
    scorer = d.scorer()
    schema_for = getattr(scorer, "schema_for", None)
    if callable(schema_for):
        found: Schema | None = schema_for(location_id)
        return found
    return scorer_schema(scorer)


def _as_of(payload: Mapping[str, Any], now: float) -> float:
    """When the inputs were current: the trusted ``timestamp`` the flow put in the payload."""
    try:
        return parse_timestamp(payload.get("timestamp")).timestamp()
    except (ValueError, OverflowError, OSError):
        return now


def _contact(delivery: _Delivery, payload: Mapping[str, Any],
             installation: Installation | None) -> Outcome:
    d = delivery.d
    location = InstalledLocation(installation, d.settings.ghl_field_map)
    schema = _custom_schema(d, delivery.location_id)
    if schema is not None and not delivery.replay:
        # a model reads the team's columns now: what came before it may be waiting
        replay_waiting(d)
    # No model says which columns a team's contact has: it waits for one, kept as it came.
    team = _team_fields(payload, location, installation) if schema is None else None
    try:
        webhook = parse_webhook(payload, location.field_map(), schema)
    except WebhookError as exc:
        return delivery.park(f"{parking.NOT_A_WEBHOOK}: {exc}")
    except InvalidInput as exc:
        logger.info("webhook with invalid lead data", extra={"paths": exc.paths})
        return delivery.park(f"{parking.INVALID_LEAD}: {', '.join(exc.paths)}",
                             {**exc.to_dict(), "contact_id": str(payload.get("id")
                                                                 or payload.get("contact_id")
                                                                 or "")})
    if not webhook.request:
        return delivery.ignored("not a contact event", event_type=webhook.event_type)
    # The one location the flow settled on (the credential's, else the body's) is the one
    # scored and written: never another key of the body.
    if delivery.location_id:
        webhook = replace(webhook, location_id=delivery.location_id)
    # The digest is of what would be scored: message counters change a score without any
    # contact field changing.
    webhook = _with_engagement(d, webhook)
    digest = inputs_digest(webhook.request)
    as_of = _as_of(payload, d.clock())
    as_of_ms = round(as_of * 1000)
    if d.digests is not None:
        try:
            seen = d.digests.seen(webhook.location_id, webhook.contact_id)
        except Exception:
            # A cost saver, not a gate: scoring again is harmless (the write is skipped).
            logger.warning("input digests unavailable; scoring anyway", extra=webhook.log_keys())
            seen = None
        if seen is not None:
            seen_digest, seen_ms = seen
            if as_of_ms < seen_ms:
                # Newer inputs were already seen (a late retry after an edit and its revert):
                # this older state must not replace them.
                d.count("WebhookStale")
                logger.info("older than the inputs already seen, not scored",
                            extra=webhook.log_keys())
                return Outcome(200, {"status": "stale", "contact_id": webhook.contact_id})
            if seen_digest == digest:
                # Unchanged, but newer: it still moves the contact's time forward, so an older
                # delivery arriving later is recognised as older.
                _remember(d, webhook, digest, as_of_ms)
                d.count("WebhookUnchanged")
                logger.info("scoring inputs unchanged, not scored again",
                            extra=webhook.log_keys())
                return Outcome(200, {"status": "unchanged", "contact_id": webhook.contact_id})
    outcome = _score_and_queue(delivery, webhook, utc_now_iso(as_of), location, team=team,
                               tags=payload.get("tags"))
    if outcome.body.get("status") in ("scored", "queued"):
        _remember(d, webhook, digest, as_of_ms)
    return outcome


def _team_fields(payload: Mapping[str, Any], location: InstalledLocation,
                 installation: Installation | None) -> dict[str, Any] | None:
    """The contact's fields by column when it is on a team's own columns rather than the
    real-estate contract, else None. Its installation says so (``model_columns``), or its
    fields do: the location's field map reads some of them as columns and none as a
    real-estate input."""
    field_map = location.field_map()
    if not field_map:
        return None
    named = collect_flat(payload, detect_kind(payload), field_map,
                         lambda key: field_map.get(key))
    on_team = bool(installation is not None and installation.model_columns) or (
        bool(named) and not any(name in FLAT_NAMES for name in named))
    return named if on_team else None


def replay_waiting(d: GhlDeps) -> int:
    """Replay the deliveries parked until a first model (`parking.NO_MODEL`), contact by
    contact, each one's newest first (`parking.by_contact`: the older ones come back
    ``stale``, so a contact is scored and written once), at most ``d.waiting.batch`` contacts
    per call; each one replayed is deleted. Stops when one still cannot be processed (it
    stays). Returns how many were replayed. Never raises: the call that triggered it is
    answered whatever happens here."""
    w = d.waiting
    if not w.pending or w.running or d.parked is None:
        return 0
    w.running = True
    done = 0
    try:
        contacts = list(islice(parking.by_contact(d.parked.ids(parking.WAITING_FOLDER)),
                               w.batch))
        for parked_ids in contacts:
            for parked_id in parked_ids:
                record = d.parked.get(parked_id)
                outcome = replay_parked(record, d)
                if outcome.body.get("status") == "parked":
                    logger.warning("a waiting delivery still cannot be processed",
                                   extra={"parked_id": record.parked_id,
                                          "reason": outcome.body.get("reason")})
                    return done
                d.parked.delete(record.parked_id)
                d.count("WebhookReplayed")
                done += 1
        if len(contacts) < w.batch:
            w.pending = False
    except Exception:
        logger.exception("replaying waiting deliveries failed")
    finally:
        w.running = False
    if done:
        logger.info("waiting deliveries replayed", extra={"replayed": done})
    return done


def _drop_settled(d: GhlDeps, location_id: str, contact_ids: Sequence[str]) -> int:
    """A contact whose outcome came while it waited for a first model is not scored when one
    arrives: the score would predict what has already happened, writing it costs the
    location's HighLevel calls, and its inputs were recorded when it came (the training row).
    Never raises: a delivery left behind is only replayed. A container that has found the
    waiting folder empty, and parked nothing there since (``d.waiting.pending`` false), does
    not look: once a model serves, every outcome event listed a folder the replay had emptied
    (a fifth of the bank file's simulation). A delivery another container parked meanwhile
    is replayed like any other."""
    if d.parked is None or not d.waiting.pending:
        return 0
    dropped = 0
    for contact_id in contact_ids:
        try:
            dropped += parking.drop_waiting(d.parked, location_id, contact_id)
        except Exception:
            logger.warning("waiting deliveries of a settled contact not dropped",
                           extra={"location_id": location_id})
    if dropped:
        d.count("WebhookWaitingSettled")
    return dropped


def _remember(d: GhlDeps, webhook: ParsedWebhook, digest: str, as_of_ms: int) -> None:
    if d.digests is None:
        return
    try:
        d.digests.remember(webhook.location_id, webhook.contact_id, digest, as_of_ms)
    except Exception:
        logger.warning("input digest not recorded", extra=webhook.log_keys())


def _wait_for_model(delivery: _Delivery, webhook: ParsedWebhook,
                    fields: dict[str, Any]) -> Outcome:
    """Keep a team's contact until a model serves (`replay_waiting` scores it then). Its
    inputs are recorded now, unscored: the outcomes of the leads that come before any model
    is what the loop trains the first one on (the snapshot drops personal columns)."""
    d = delivery.d
    d.count("WebhookWaitingForModel")
    if d.loop is not None:
        try:
            d.loop.scored({"contact_id": webhook.contact_id, "fields": fields},
                          {"contact_id": webhook.contact_id, "predicted_score": None},
                          webhook.location_id, "webhook")
        except Exception:
            logger.warning("an unscored lead was not recorded", extra=webhook.log_keys())
    outcome = delivery.park(parking.NO_MODEL, {"contact_id": webhook.contact_id},
                            folder=parking.waiting_folder(webhook.location_id,
                                                          webhook.contact_id))
    if outcome.body.get("parked_id"):
        d.waiting.pending = True
    return outcome


def _queue_for_later(delivery: _Delivery, webhook: ParsedWebhook, received_at: str,
                     reason: str) -> Outcome:
    """Scoring did not work: the write-back function scores it later."""
    d = delivery.d
    if d.queue is None:
        return delivery.park(f"{parking.QUEUE_DOWN}: no queue ({reason})")
    message = webhook_message(webhook.request, location_id=webhook.location_id,
                              received_at=received_at)
    try:
        d.queue.send(message)
    except Exception:
        logger.exception("write-back queue refused a webhook", extra=webhook.log_keys())
        return delivery.park(f"{parking.QUEUE_DOWN} ({reason})")
    logger.warning("webhook queued for scoring later",
                   extra={**webhook.log_keys(), "reason": reason})
    return Outcome(200, {"status": "queued", "contact_id": webhook.contact_id, "reason": reason})


def _with_engagement(d: GhlDeps, webhook: ParsedWebhook) -> ParsedWebhook:
    """The contact's request with its message counters (where the payload has none)."""
    if d.loop is None:
        return webhook
    try:
        return replace(webhook, request=d.loop.enrich(
            webhook.request, webhook.location_id, webhook.contact_id))
    except Exception:
        # Counters are an improvement, not a gate: score with what the payload carries.
        logger.warning("engagement counters unavailable", extra=webhook.log_keys())
        return webhook


def _score_and_queue(delivery: _Delivery, webhook: ParsedWebhook, received_at: str,
                     location: InstalledLocation, *,
                     team: dict[str, Any] | None = None, tags: Any = None) -> Outcome:
    """``team``: a team's contact (its fields by column) with no model to read it: kept until
    one serves instead of being queued in the real-estate form (which its model would
    refuse). ``tags``: the delivery's ``tags`` (a contact event carries the contact's)."""
    d = delivery.d
    keys = webhook.log_keys()
    try:
        # the location settled on picks the model scope (leadscore.scoring.scopes)
        score = d.scorer().score({**webhook.request, "location_id": webhook.location_id},
                                 explain=False)
    except InvalidInput as exc:
        logger.info("webhook with invalid lead data", extra={**keys, "paths": exc.paths})
        return delivery.park(f"{parking.INVALID_LEAD}: {', '.join(exc.paths)}",
                             {**exc.to_dict(), "contact_id": webhook.contact_id})
    except Unscored as exc:
        # No model may score this location: nothing is written to HighLevel, nothing queued
        # (a retry would get the same answer until the location has a model).
        d.count("WebhookUnscored")
        logger.info("no model scope scores this location; nothing written", extra=keys)
        return Outcome(200, {"status": "unscored", "contact_id": webhook.contact_id,
                             "location_id": webhook.location_id, "model_scope": "none",
                             "reason": exc.reason})
    except Exception:
        logger.exception("scoring failed", extra=keys)
        if team is not None:
            return _wait_for_model(delivery, webhook, team)
        return _queue_for_later(delivery, webhook, received_at, "scoring failed")

    to_crm = goes_to_the_crm(score)
    # The rules serve this location by its model scope (no model of its own is loaded and it
    # does not pool): never written into the CRM, and not queued to wait for a model like
    # the rules fallback (the location's next change is scored again).
    rules_scope = (not to_crm and score.get("model_scope") == "rules"
                   and bool(getattr(d.scorer(), "per_location", False)))
    if team is not None and not to_crm and not rules_scope:
        # Waits for a model, recorded in the team's own columns (`_wait_for_model`): the
        # rules' answer on the real-estate form it does not have is not a snapshot. Recorded
        # too, it tied with the kept one on time, and the export's pick of the latest
        # snapshot left out about half of a team's rows before its first model.
        return _wait_for_model(delivery, webhook, team)
    if d.loop is not None:
        d.loop.scored(webhook.request, score, webhook.location_id, "webhook")
    if rules_scope:
        d.count("WebhookRulesNotWritten")
        return Outcome(200, {"status": "scored", "contact_id": webhook.contact_id,
                             "location_id": webhook.location_id, "model_scope": "rules",
                             "writeback": "not written (rules)"})
    if not to_crm:
        # The rules fallback is an answer for an API caller, not what we write into the CRM.
        return _queue_for_later(delivery, webhook, received_at, "model unavailable")
    score = location.classify(score)

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
        "model_scope": score.get("model_scope"),
        "cached": score.get("cached", False),
        "writeback": "disabled",
    }
    if d.queue is not None:
        # The contact's tags as the event carried them: a first write removes only the
        # class tags the contact has, instead of a DELETE of every other class tag (one
        # HighLevel call fewer per new contact, against the location's 100 per 10 s).
        message = score_message(score, location_id=webhook.location_id,
                                received_at=received_at, tags=tags)
        try:
            d.queue.send(message)
        except Exception:
            logger.exception("write-back queue refused a score", extra=keys)
            return delivery.park(parking.QUEUE_DOWN)
        answer["writeback"] = "queued"
    logger.info("webhook scored", extra={**keys, "predicted_class": score["predicted_class"]})
    return Outcome(200, answer)
