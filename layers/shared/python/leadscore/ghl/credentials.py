"""Per-location credentials: each location's workflow secret and its ``/score`` API key.

One stack serves many sub-accounts, so a credential must say which location it may act for:
a secret shared by every sub-account let anyone in one of them score, write, label or
uninstall another. A credential is ``<kind>.<locationId>.<43 random base64url characters>``
(32 random bytes): the location is read from the credential itself, and the secret part is
checked against the hash stored in that location's installation record (never the secret:
it is shown once, when made, and a new one replaces it: rotation).

The stored value is HMAC-SHA256 keyed by the credential's kind, hex. A fast hash is enough
for 256 random bits (there is nothing to guess); the key keeps a workflow secret from ever
passing as an API key and the other way round. Comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from leadscore.identifiers import is_safe_id

if TYPE_CHECKING:  # a type only: a /score cold start reads no installation record
    from leadscore.ghl.installations import Installation

#: The workflow "Webhook" action's secret (header x-leadscore-secret or customData).
WORKFLOW = "lsw1"
#: A location's /score API key (header x-leadscore-key).
API_KEY = "lsk1"
KINDS = (WORKFLOW, API_KEY)
#: Where a /score caller presents its location's key (the stack's API Gateway key, in
#: x-api-key, is the operator's).
API_KEY_HEADER = "x-leadscore-key"
_RANDOM_BYTES = 32
_RANDOM_CHARS = 43  # base64url of 32 bytes without padding


@dataclass(frozen=True)
class Credential:
    kind: str
    location_id: str
    text: str  # the whole credential; never logged or stored


def parse(text: str) -> Credential | None:
    """The credential ``text`` is, or None when it is not one of ours (e.g. the stack's old
    shared secret)."""
    parts = text.strip().split(".")
    if len(parts) != 3:
        return None
    kind, location_id, random_part = parts
    if kind not in KINDS or not is_safe_id(location_id) or len(random_part) != _RANDOM_CHARS:
        return None
    return Credential(kind, location_id, text.strip())


def digest(kind: str, text: str) -> str:
    """What the installation record keeps for a credential."""
    return hmac.new(kind.encode("ascii"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def new_credential(kind: str, location_id: str) -> tuple[str, str]:
    """A new credential for ``location_id``: (the text to show once, the digest to store)."""
    if kind not in KINDS:
        raise ValueError(f"unknown credential kind {kind!r}")
    if not is_safe_id(location_id):
        raise ValueError("not a HighLevel location id")
    random_part = base64.urlsafe_b64encode(secrets.token_bytes(_RANDOM_BYTES)).rstrip(b"=")
    text = f"{kind}.{location_id}.{random_part.decode('ascii')}"
    return text, digest(kind, text)


def matches(credential: Credential, stored_digest: str) -> bool:
    """True when ``stored_digest`` (from the credential's own location) is this credential's."""
    if not stored_digest:
        return False
    return hmac.compare_digest(digest(credential.kind, credential.text), stored_digest)


class CredentialStore(Protocol):
    """The installations table (`adapters.installations.DynamoInstallations`)."""

    def installation(self, location_id: str, *, fresh: bool = False) -> Installation | None: ...

    def save(self, inst: Installation) -> None: ...


_FIELD = {WORKFLOW: "workflow_secret_hash", API_KEY: "api_key_hash"}


def issue(store: CredentialStore, location_id: str, kind: str,
          *, base: Installation | None = None) -> str:
    """Make (or rotate: the old one stops working at once) a location's credential; returns
    the text, to be shown once. ``base`` is the record to start from when the table has none
    (the single-location stack's parameters)."""
    current = store.installation(location_id, fresh=True) or base
    if current is None:
        raise LookupError(f"location {location_id} is not installed")
    text, stored = new_credential(kind, location_id)
    store.save(current.with_changes(**{_FIELD[kind]: stored}))
    return text
