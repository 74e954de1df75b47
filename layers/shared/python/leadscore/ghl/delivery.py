"""HighLevel's delivery rules: signatures and replay, retries and delivery health.

* Retries re-send the original body with its original ``timestamp``; manual re-sends from the
  Webhook Logs can come much later. So a delivery is identified by its ``webhookId`` (or, when
  a signed body has none, by the SHA-256 of the signed bytes) and remembered for longer than
  the freshness window; the freshness window (days, a setting) applies only to deliveries not
  seen before. A repeat is answered 200 ``duplicate``.
* Every app shares HighLevel's signing key, so a signature proves "sent by HighLevel", not
  "sent for this app": ``appId`` must be this app's (when one is configured).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from leadscore.ghl.auth import parse_timestamp

#: A delivery may carry a timestamp this far ahead of our clock (clock skew) and still count.
MAX_FUTURE_SECONDS = 300
DEFAULT_MAX_AGE_SECONDS = 3 * 24 * 3600
#: Remember delivery ids this much longer than the freshness window, so that a repeat is
#: always either remembered (duplicate) or too old (parked), never processed twice.
DEDUPE_MARGIN_SECONDS = 24 * 3600


def delivery_id(payload: Mapping[str, Any], body: bytes) -> str:
    """``webhookId`` when the delivery has one, else ``sha256:<digest of the signed body>``."""
    webhook_id = payload.get("webhookId")
    if isinstance(webhook_id, str) and webhook_id.strip():
        return webhook_id.strip()
    return "sha256:" + hashlib.sha256(body).hexdigest()


def dedupe_ttl_seconds(max_age_seconds: int) -> int:
    return max_age_seconds + DEDUPE_MARGIN_SECONDS


def freshness_problem(value: Any, now: float, max_age_seconds: int) -> str | None:
    """None when a first-seen delivery's ``timestamp`` is within the window, else the reason
    (from `leadscore.ghl.parking`)."""
    from leadscore.ghl import parking

    try:
        moment = parse_timestamp(value).timestamp()
    except (ValueError, OverflowError, OSError):
        return parking.NO_TIMESTAMP
    if moment - now > MAX_FUTURE_SECONDS:
        return parking.FUTURE
    if now - moment > max_age_seconds:
        return parking.TOO_OLD
    return None


def app_matches(payload: Mapping[str, Any], app_id: str) -> bool:
    """True when no app id is configured or the delivery names it."""
    return not app_id or payload.get("appId") == app_id
