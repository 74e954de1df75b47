"""HighLevel webhook authentication: signatures, the shared secret, timestamps, raw bodies.

Pure logic (no AWS, no logging of lead data), following HighLevel's webhook documentation:

* marketplace ``ContactCreate`` / ``ContactUpdate`` webhooks are signed: ``x-ghl-signature``
  (Ed25519, base64, over the raw body bytes) or, only where an RSA key is configured, the
  legacy ``x-wh-signature`` (RSA PKCS#1 v1.5 with SHA-256). When ``x-ghl-signature`` is
  present only it is checked. Their ``timestamp`` must be within the allowed clock skew.
* workflow "Webhook" actions are not signed: they authenticate with the location's own
  workflow secret (`leadscore.ghl.credentials`) in the ``x-leadscore-secret`` header or the
  body's Custom Data; the credential names the one location the call may act for. The stack's
  older shared secret is accepted only for its single configured location.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from leadscore import jsonsafe
from leadscore.ghl import credentials
from leadscore.headers import header

SIGNATURE_HEADER = "x-ghl-signature"
LEGACY_SIGNATURE_HEADER = "x-wh-signature"
SECRET_HEADER = "x-leadscore-secret"  # noqa: S105 (a header name)


@dataclass(frozen=True)
class AuthConfig:
    """What the deployment trusts (from ScoreSettings)."""

    ed25519_public_key_pem: str = ""
    rsa_public_key_pem: str = ""
    webhook_secret: str = ""
    #: (location id, re-read) -> the stored digest of that location's workflow secret ("" none)
    location_secret: Callable[[str, bool], str] | None = None
    #: the one location the shared secret may act for; None = any (nothing is installed: local
    #: runs); "" = none (a stack with installed locations but no GHL_LOCATION_ID)
    shared_secret_location: str | None = None


@dataclass(frozen=True)
class Verification:
    """The outcome of authenticating one webhook call.

    ``ok`` with the scheme that vouched for it (``ed25519``, ``rsa`` or ``secret``), or not
    ``ok`` with a short reason that is safe to return in a 401 and to log.
    """

    ok: bool
    scheme: str = ""
    reason: str = ""
    #: the location the credential is bound to ("" = any: a signature, or an unbound secret)
    location_id: str = ""
    #: the secret the caller presented, only to keep it out of parked records
    presented: str = field(default="", repr=False, compare=False)

    @property
    def status_code(self) -> int:
        return 200 if self.ok else 401

    @classmethod
    def verified(cls, scheme: str, location_id: str = "", presented: str = "") -> Verification:
        return cls(ok=True, scheme=scheme, location_id=location_id, presented=presented)

    @classmethod
    def rejected(cls, reason: str) -> Verification:
        return cls(ok=False, reason=reason)

    @property
    def signed(self) -> bool:
        return self.ok and self.scheme in ("ed25519", "rsa")




# --------------------------------------------------------------------------- raw request


def raw_body(body: str | bytes | None, is_base64_encoded: bool) -> bytes:
    """The bytes the sender signed: API Gateway's body, base64-decoded when flagged."""
    if body is None:
        return b""
    data = body if isinstance(body, bytes) else body.encode("utf-8")
    if is_base64_encoded:
        return base64.b64decode(data)
    return data


# --------------------------------------------------------------------------- signatures


# `cryptography` is imported where a signature is checked: the scoring function imports this
# module for its webhook route, and its /score cold start should not load OpenSSL bindings
# that only a signed delivery needs.


@lru_cache(maxsize=8)
def _load_public_key(pem: str) -> Any:
    from cryptography.hazmat.primitives import serialization

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
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

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
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

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


#: The key of the shared secret in a free workflow "Webhook" action's Custom Data (that action
#: cannot set headers; docs/GHL_SETUP.md).
CUSTOM_DATA_SECRET_KEY = "leadscore_secret"  # noqa: S105 (a key name)

#: Header values HighLevel sends for "no signature of this kind": a header present with "N/A"
#: or empty is treated as absent (its marketplace deliveries carry both kinds of header).
_ABSENT_VALUES = frozenset({"", "n/a"})


def signature_header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """A signature/secret header, or None when missing, empty or ``N/A``."""
    value = header(headers, name)
    if value is None or value.strip().lower() in _ABSENT_VALUES:
        return None
    return value


def _same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _custom_data_secret(body: bytes) -> str | None:
    """``customData.leadscore_secret`` of a workflow Webhook body, if there is one."""
    try:
        payload = jsonsafe.loads(body.decode("utf-8"))  # a 4,400-digit number is no reason
    except ValueError:  # not UTF-8, not JSON, too deep (UntrustedJSONError is a ValueError)
        return None
    if not isinstance(payload, dict):
        return None
    custom = payload.get("customData")
    if not isinstance(custom, Mapping):
        return None
    value = custom.get(CUSTOM_DATA_SECRET_KEY)
    return value if isinstance(value, str) and value else None


def authenticate(
    headers: Mapping[str, Any] | None, body: bytes, config: AuthConfig
) -> Verification:
    """Who vouches for this call, from the headers and the raw body only.

    Order: ``x-ghl-signature`` (and nothing else when it is present), then the legacy
    ``x-wh-signature`` when an RSA key is configured, then the workflow shared secret in the
    ``x-leadscore-secret`` header, then the same secret in the body's
    ``customData.leadscore_secret`` (the free Webhook action cannot send headers). Empty and
    ``N/A`` header values count as absent. Secrets are compared in constant time.
    """
    signature = signature_header(headers, SIGNATURE_HEADER)
    if signature is not None:
        if not config.ed25519_public_key_pem:
            return Verification.rejected("signature scheme not configured")
        if verify_ed25519(config.ed25519_public_key_pem, body, signature):
            return Verification.verified("ed25519")
        return Verification.rejected("invalid signature")

    legacy = signature_header(headers, LEGACY_SIGNATURE_HEADER)
    if legacy is not None and config.rsa_public_key_pem:
        if verify_rsa_sha256(config.rsa_public_key_pem, body, legacy):
            return Verification.verified("rsa")
        return Verification.rejected("invalid signature")

    secret = signature_header(headers, SECRET_HEADER)
    if secret is not None:
        return _secret_verdict(secret, "secret", config)

    in_body = _custom_data_secret(body)
    if in_body is not None:
        return _secret_verdict(in_body, "custom-data-secret", config)

    return Verification.rejected("missing signature")


def _secret_verdict(given: str, scheme: str, config: AuthConfig) -> Verification:
    """A workflow call's secret: a location's own (bound to it) or the stack's shared one
    (bound to its single configured location). A rotated secret is found by re-reading the
    record once (the container keeps records for a few seconds)."""
    credential = credentials.parse(given)
    if credential is not None and credential.kind == credentials.WORKFLOW:
        if config.location_secret is None:
            return Verification.rejected("per-location secrets not configured")
        for fresh in (False, True):
            if credentials.matches(credential, config.location_secret(credential.location_id,
                                                                      fresh)):
                return Verification.verified(scheme, credential.location_id, given)
        return Verification.rejected("invalid secret")
    if not config.webhook_secret:
        return Verification.rejected("shared secret not configured")
    if not _same_secret(given, config.webhook_secret):
        return Verification.rejected("invalid secret")
    if config.shared_secret_location == "":
        return Verification.rejected("shared secret retired: use the location's own secret")
    return Verification.verified(scheme, config.shared_secret_location or "", given)


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


