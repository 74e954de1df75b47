"""GoHighLevel webhooks: authentication, payload kinds and the mapping to a scoring request.

Pure logic (no AWS, no logging of lead data). See ../shared/GHL.md for the facts this module
follows:

* marketplace ``ContactCreate`` / ``ContactUpdate`` webhooks are signed: ``x-ghl-signature``
  (Ed25519, base64, over the raw body bytes) or, only where an RSA key is configured, the
  legacy ``x-wh-signature`` (RSA PKCS#1 v1.5 with SHA-256). When ``x-ghl-signature`` is
  present only it is checked. Their ``timestamp`` must be within the allowed clock skew.
* workflow "Webhook" actions are not signed: they authenticate with a shared secret in the
  ``x-leadscore-secret`` header, compared in constant time.

The mapping turns either payload into ``{"contact_id", "features": nested}`` through
``leadscore.features.flat_to_nested`` (the one copy of the flat-name rules). By default a key
is read when its (normalised) name is a FEATURES.md flat name; ``GHL_FIELD_MAP`` maps a
deployment's custom field ids or keys onto flat names and wins over the default.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from leadscore.errors import InvalidInput
from leadscore.features import FLAT_FIELDS, flat_to_nested

SIGNATURE_HEADER = "x-ghl-signature"
LEGACY_SIGNATURE_HEADER = "x-wh-signature"
SECRET_HEADER = "x-leadscore-secret"  # noqa: S105 (a header name)

#: How long a seen ``webhookId`` is remembered (DynamoDB TTL). Far longer than the clock skew
#: window, so a replay is either stale (401) or remembered (acknowledged, not re-scored).
REPLAY_TTL_SECONDS = 24 * 3600

#: Marketplace events that carry a contact worth scoring.
CONTACT_EVENTS = frozenset({"ContactCreate", "ContactUpdate"})

#: The flat keys of FEATURES.md ("Flat names for CRM fields"), from the one copy of the rule.
FLAT_NAMES: frozenset[str] = frozenset(FLAT_FIELDS)


class PayloadKind(StrEnum):
    MARKETPLACE = "marketplace"
    WORKFLOW = "workflow"


class WebhookError(ValueError):
    """A verified webhook whose body cannot be used (not JSON, not a contact payload)."""


@dataclass(frozen=True)
class AuthConfig:
    """What the deployment trusts (from ScoreSettings)."""

    ed25519_public_key_pem: str = ""
    rsa_public_key_pem: str = ""
    webhook_secret: str = ""
    max_clock_skew_seconds: int = 300


@dataclass(frozen=True)
class Verification:
    """The outcome of authenticating one webhook call.

    ``ok`` with the scheme that vouched for it (``ed25519``, ``rsa`` or ``secret``), or not
    ``ok`` with a short reason that is safe to return in a 401 and to log.
    """

    ok: bool
    scheme: str = ""
    reason: str = ""

    @property
    def status_code(self) -> int:
        return 200 if self.ok else 401

    @classmethod
    def verified(cls, scheme: str) -> Verification:
        return cls(ok=True, scheme=scheme)

    @classmethod
    def rejected(cls, reason: str) -> Verification:
        return cls(ok=False, reason=reason)

    @property
    def signed(self) -> bool:
        return self.ok and self.scheme in ("ed25519", "rsa")


@dataclass(frozen=True)
class ParsedWebhook:
    """A webhook turned into what scoring needs, plus identifiers safe to log."""

    kind: PayloadKind
    contact_id: str
    location_id: str
    webhook_id: str
    event_type: str
    request: dict[str, Any] = field(default_factory=dict)

    def log_keys(self) -> dict[str, str]:
        """Identifiers only; never names, email, phone or field values."""
        return {
            "kind": self.kind.value,
            "contact_id": self.contact_id,
            "location_id": self.location_id,
            "webhook_id": self.webhook_id,
            "event_type": self.event_type,
        }


# --------------------------------------------------------------------------- raw request


def header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """A header's value, looked up case-insensitively (API Gateway keeps the sender's case)."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted and value is not None:
            return str(value)
    return None


def raw_body(body: str | bytes | None, is_base64_encoded: bool) -> bytes:
    """The bytes the sender signed: API Gateway's body, base64-decoded when flagged."""
    if body is None:
        return b""
    data = body if isinstance(body, bytes) else body.encode("utf-8")
    if is_base64_encoded:
        return base64.b64decode(data)
    return data


# --------------------------------------------------------------------------- signatures


@lru_cache(maxsize=8)
def _load_public_key(pem: str) -> Any:
    return serialization.load_pem_public_key(_pem_bytes(pem))


def _pem_bytes(pem: str) -> bytes:
    # Deployment parameters often flatten newlines to the two characters "\n".
    text = pem.strip().replace("\\n", "\n")
    return text.encode("ascii")


def _b64(signature: str) -> bytes | None:
    try:
        return base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def verify_ed25519(public_key_pem: str, body: bytes, signature_b64: str) -> bool:
    """True when ``signature_b64`` is an Ed25519 signature of ``body`` by the key."""
    signature = _b64(signature_b64)
    if signature is None:
        return False
    key = _load_public_key(public_key_pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("GHL_PUBLIC_KEY_ED25519 is not an Ed25519 public key")
    try:
        key.verify(signature, body)
    except InvalidSignature:
        return False
    return True


def verify_rsa_sha256(public_key_pem: str, body: bytes, signature_b64: str) -> bool:
    """True when ``signature_b64`` is an RSA PKCS#1 v1.5 SHA-256 signature of ``body``."""
    signature = _b64(signature_b64)
    if signature is None:
        return False
    key = _load_public_key(public_key_pem)
    if not isinstance(key, RSAPublicKey):
        raise ValueError("GHL_PUBLIC_KEY_RSA is not an RSA public key")
    try:
        key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def authenticate(
    headers: Mapping[str, Any] | None, body: bytes, config: AuthConfig
) -> Verification:
    """Who vouches for this call, from the headers and the raw body only.

    Order: ``x-ghl-signature`` (and nothing else when it is present), then the legacy
    ``x-wh-signature`` when an RSA key is configured, then the workflow shared secret.
    The timestamp of a signed body is checked afterwards by :func:`check_timestamp`.
    """
    signature = header(headers, SIGNATURE_HEADER)
    if signature is not None:
        if not config.ed25519_public_key_pem:
            return Verification.rejected("signature scheme not configured")
        if verify_ed25519(config.ed25519_public_key_pem, body, signature):
            return Verification.verified("ed25519")
        return Verification.rejected("invalid signature")

    legacy = header(headers, LEGACY_SIGNATURE_HEADER)
    if legacy is not None and config.rsa_public_key_pem:
        if verify_rsa_sha256(config.rsa_public_key_pem, body, legacy):
            return Verification.verified("rsa")
        return Verification.rejected("invalid signature")

    secret = header(headers, SECRET_HEADER)
    if secret is not None:
        if not config.webhook_secret:
            return Verification.rejected("shared secret not configured")
        if hmac.compare_digest(secret.encode("utf-8"), config.webhook_secret.encode("utf-8")):
            return Verification.verified("secret")
        return Verification.rejected("invalid secret")

    return Verification.rejected("missing signature")


# --------------------------------------------------------------------------- timestamps

_EPOCH_MS_THRESHOLD = 1e11  # seconds since 1970 stay below this until the year 5138


def parse_timestamp(value: Any) -> datetime:
    """ISO-8601 text (``Z`` or an offset), epoch seconds or epoch milliseconds -> aware UTC.

    Numeric text counts as a number. Raises ValueError for anything else.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError("timestamp missing")
    number: float | None = None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("timestamp missing")
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is None:
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
    else:
        raise ValueError("timestamp must be text or a number")
    if not math.isfinite(number):
        raise ValueError("timestamp must be finite")
    if abs(number) >= _EPOCH_MS_THRESHOLD:
        number /= 1000.0
    return datetime.fromtimestamp(number, tz=UTC)


def check_timestamp(value: Any, now: float, max_skew_seconds: int) -> str | None:
    """None when ``value`` is within ``max_skew_seconds`` of ``now``; otherwise the reason."""
    try:
        moment = parse_timestamp(value)
    except (ValueError, OverflowError, OSError):
        return "missing or invalid timestamp"
    if abs(moment.timestamp() - now) > max_skew_seconds:
        return "stale timestamp"
    return None


# --------------------------------------------------------------------------- payloads


def parse_json_body(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, too deep, int too long
        raise WebhookError("body is not JSON") from exc
    if not isinstance(payload, dict):
        raise WebhookError("body must be a JSON object")
    return payload


def detect_kind(payload: Mapping[str, Any]) -> PayloadKind:
    """Marketplace events carry ``type`` and ``locationId``; workflow calls ``contact_id``,
    ``location: {id}`` and ``customData``."""
    if isinstance(payload.get("type"), str) and "locationId" in payload:
        return PayloadKind.MARKETPLACE
    if (
        "contact_id" in payload
        or isinstance(payload.get("location"), Mapping)
        or isinstance(payload.get("customData"), Mapping)
    ):
        return PayloadKind.WORKFLOW
    raise WebhookError("not a HighLevel contact webhook")


def is_scorable(payload: Mapping[str, Any], kind: PayloadKind) -> bool:
    """Workflow calls always are; marketplace events only for contact create/update."""
    return kind is PayloadKind.WORKFLOW or payload.get("type") in CONTACT_EVENTS


def normalise_key(key: str) -> str:
    """``"List Price"``, ``"list-price"``, ``"contact.list_price"`` -> ``"list_price"``."""
    text = key.strip()
    if "." in text:
        text = text.rsplit(".", 1)[1]
    text = re.sub(r"[\s\-]+", "_", text).lower()
    text = re.sub(r"[^a-z0-9_]", "", text)
    return text


def _flat_name(key: str, field_map: Mapping[str, str]) -> str | None:
    if key in field_map:
        return field_map[key]
    name = normalise_key(key)
    return name if name in FLAT_NAMES else None


def _is_absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)


def collect_flat(
    payload: Mapping[str, Any], kind: PayloadKind, field_map: Mapping[str, str]
) -> dict[str, Any]:
    """The flat CRM pairs of a payload, keyed by FEATURES.md flat names.

    Sources, later ones only filling what earlier ones left absent:
    marketplace: ``customFields`` (by id) then root keys; workflow: ``customData`` then root
    keys. An empty string is absent.
    """
    sources: list[list[tuple[str, Any]]] = []
    if kind is PayloadKind.MARKETPLACE:
        fields = payload.get("customFields")
        pairs: list[tuple[str, Any]] = []
        if isinstance(fields, list):
            for item in fields:
                if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                    value = item.get("value", item.get("field_value"))
                    pairs.append((item["id"], value))
                    key = item.get("key")
                    if isinstance(key, str):
                        pairs.append((key, value))
        sources.append(pairs)
    else:
        custom = payload.get("customData")
        if isinstance(custom, Mapping):
            sources.append([(str(k), v) for k, v in custom.items()])
    nested = ("customData", "customFields")
    sources.append([(str(k), v) for k, v in payload.items() if k not in nested])

    flat: dict[str, Any] = {}
    for pairs in sources:
        for key, value in pairs:
            name = _flat_name(key, field_map)
            if name is None or name in flat or _is_absent(value):
                continue
            flat[name] = value
    return flat


def parse_webhook(
    payload: Mapping[str, Any], field_map: Mapping[str, str] | None = None
) -> ParsedWebhook:
    """A verified payload -> identifiers + the scoring request.

    Raises WebhookError for a payload that is no contact webhook, and
    ``InvalidInput`` (paths named by flat key) for values that are not numbers / lists.
    Range and category checks happen when the request is scored, as for ``POST /score``.
    """
    mapping = field_map or {}
    kind = detect_kind(payload)
    if kind is PayloadKind.MARKETPLACE:
        contact_id = _text(payload.get("id") or payload.get("contactId"))
        location_id = _text(payload.get("locationId"))
        webhook_id = _text(payload.get("webhookId"))
        event_type = _text(payload.get("type"))
    else:
        contact_id = _text(payload.get("contact_id"))
        location = payload.get("location")
        location_id = _text(location.get("id")) if isinstance(location, Mapping) else ""
        location_id = location_id or _text(payload.get("location_id"))
        webhook_id = ""
        event_type = "WorkflowWebhook"
    parsed = ParsedWebhook(
        kind=kind,
        contact_id=contact_id,
        location_id=location_id,
        webhook_id=webhook_id,
        event_type=event_type,
    )
    if not is_scorable(payload, kind):
        return parsed
    if not contact_id:
        raise WebhookError("webhook carries no contact id")
    flat = collect_flat(payload, kind, mapping)
    nested, errors = flat_to_nested(flat)
    if errors:
        raise InvalidInput(errors)
    request = {"contact_id": contact_id, "features": nested}
    return ParsedWebhook(
        kind=kind,
        contact_id=contact_id,
        location_id=location_id,
        webhook_id=webhook_id,
        event_type=event_type,
        request=request,
    )


def replay_key(webhook_id: str) -> str:
    """The DynamoDB partition key of the replay guard (ARCHITECTURE.md)."""
    return f"webhook#{webhook_id}"


def utc_now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
