"""What a HighLevel API call answers or raises: the vocabulary the flows (write-back, backfill,
installs) catch and read, whoever makes the call (`leadscore.adapters.ghl_api` is the client
that raises them)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

__all__ = ["ApiResponse", "GhlApiError", "NoAnswer", "RateLimited"]


class GhlApiError(Exception):
    """A HighLevel call that failed. ``status`` 0 means no HTTP answer (network, timeout)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HighLevel API {status}: {reason}")
        self.status = status
        self.reason = reason


class NoAnswer(GhlApiError):
    """No usable answer: refused or reset connection, timeout, a status line that is not HTTP,
    a body cut short (status 0). Worth retrying later."""

    def __init__(self, reason: str) -> None:
        super().__init__(0, reason)


class RateLimited(GhlApiError):
    """Still rate-limited after the allowed wait: retry later (the message stays queued)."""


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def reason(self) -> str:
        """HighLevel's error message, e-mail addresses and phone numbers masked."""
        return _reason(self.body)


# reason is logged, so e-mail addresses and phone-like numbers are masked (edit by the
# reliability work: tests/reliability/test_no_pii_in_logs.py).
_EMAIL_RE = re.compile(r"[^\s@\"'<>]+@[^\s@\"'<>]+")
_PHONE_RE = re.compile(r"\+?\d[\d\s().-]{5,}\d")


def _reason(body: bytes) -> str:
    """A short reason from an error answer (HighLevel sends {"message": ...}), with e-mail
    addresses and phone numbers masked."""
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return ""
    if isinstance(parsed, dict):
        message = parsed.get("message") or parsed.get("error") or ""
        if isinstance(message, list):
            message = "; ".join(str(m) for m in message)
        masked = _EMAIL_RE.sub("<email>", str(message))
        return _PHONE_RE.sub("<phone>", masked)[:200]
    return ""
