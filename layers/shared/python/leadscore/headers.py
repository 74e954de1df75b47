"""HTTP header lookup, the one copy: names are case-insensitive (RFC 9110), and API Gateway,
urllib and http.server each keep the sender's case."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """The value of header `name` in `headers` (any case), or None when absent or null."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted and value is not None:
            return str(value)
    return None
