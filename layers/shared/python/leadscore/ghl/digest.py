"""The per-contact digest of scoring inputs that keeps our own writes from coming back as work.

Writing the score, the class and the class tag onto a contact makes HighLevel send
``ContactUpdate`` / ``ContactTagUpdate`` for that contact again. Those deliveries carry the
same scoring inputs as the one we just scored (our own fields and tags are not inputs), so the
webhook flow computes :func:`inputs_digest` of the parsed scoring request and skips scoring
when it equals the digest remembered for the contact (``adapters.ghl_state.DynamoInputDigests``,
item ``inputs#<location>#<contact>``). A real change to any input changes the digest.

The digest covers exactly what is scored: ``features`` of the scoring request (after the
field map), or for a bundle trained on a team's own columns its ``fields`` (every column read
from the contact), canonical JSON (sorted keys, no whitespace, floats as Python's repr),
SHA-256.
Numbers that differ only in spelling (``"800000"`` vs ``800000``) are already equal after
parsing, so they do not count as changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

#: Remember a contact's inputs this long; after it the next update is scored again.
DIGEST_TTL_SECONDS = 30 * 24 * 3600


def inputs_digest(request: Mapping[str, Any], model_version: str = "") -> str:
    """SHA-256 hex of the canonical JSON of the scoring inputs: ``request["features"]``, or
    ``{"fields": request["fields"]}`` for a team's own columns (wrapped, so the two forms never
    share a digest; a ``features`` digest is what it always was).

    ``model_version``, when the caller knows which model would score, is part of the digest:
    a new champion then re-scores a contact on its next update even if no input changed."""
    inputs = request.get("features")
    if inputs is None and request.get("fields") is not None:
        inputs = {"fields": request["fields"]}
    canonical = json.dumps(
        inputs if inputs is not None else {},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=True,
        default=str,
    )
    return hashlib.sha256(f"{model_version}\n{canonical}".encode()).hexdigest()


def digest_key(location_id: str, contact_id: str) -> str:
    """The DynamoDB partition key of the remembered digest (ARCHITECTURE.md)."""
    return f"inputs#{location_id}#{contact_id}"
