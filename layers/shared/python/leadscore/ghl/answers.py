"""What HighLevel gets back for a delivery: the one rule, in one place.

HighLevel sends a webhook again only when it was answered 429 (its help article "Automated
Webhook Retries": six more tries, about ten minutes apart). Any other non-2xx answer, and a
timeout, loses the delivery for good. So, for a delivery that passed authentication (or whose
authentication could not even be tried because the secret store did not answer):

* **2xx once it is durably recorded**: processed, queued for the write-back, or parked with
  its reason;
* **429 (with Retry-After) when it cannot be recorded right now**: a secret, table, queue or
  bucket unavailable, or anything unexpected;
* **never a 5xx**: :func:`acknowledge` turns a 5xx from any step, and any exception, into
  that 429.

401 (authentication failed), 400 and 413 (a request that is not a delivery we could ever
record) are the sender's answers and pass unchanged. API Gateway's own 5xx answers (an
integration timeout, a function error) are mapped to the same 429 by the API's gateway
responses in template.yaml (docs/RELIABILITY.md says why they apply to the whole API).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(child=True)

#: Advisory only (HighLevel keeps its own schedule): about when its next try comes.
RETRY_AFTER_SECONDS = 600
RETRY_LATER_BODY = {"error": "try again later"}


@dataclass(frozen=True)
class Outcome:
    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def retry_later() -> Outcome:
    """The answer for a delivery that could not be recorded now: HighLevel sends it again."""
    return Outcome(429, dict(RETRY_LATER_BODY), {"Retry-After": str(RETRY_AFTER_SECONDS)})


def acknowledge(step: Callable[[], Outcome]) -> Outcome:
    """Run one delivery's flow and apply the rule to whatever it produced or raised."""
    try:
        outcome = step()
    except Exception:
        logger.exception("delivery not recorded: unexpected error")
        return retry_later()
    if outcome.status_code >= 500:
        logger.error("delivery not recorded", extra={"status": outcome.status_code})
        return retry_later()
    return outcome
