"""What the open routes (/health) and the key routes (/model) may show about the deployment.

Answers never name infrastructure: no bucket, table or queue names, account ids, ARNs, S3 or
file URIs, or absolute paths (a bucket name carries the account id; a path tells an attacker
the layout). The logs keep the detail. Two tools:

* ``public_reason(detail)``: the reason a model is not loaded, from a fixed vocabulary;
* ``redact(value, names)``: a deep copy of an answer with every string that looks like
  infrastructure (or contains one of the deployment's own resource names) replaced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlparse

REDACTED = "[redacted]"

# The fixed answers for "no model": the first says what the operator must do.
NOT_CONFIGURED = "no model is configured"
UNAVAILABLE = "the model could not be loaded; the function's logs say why"

_INFRASTRUCTURE = re.compile(
    r"s3://|file://|arn:aws[\w-]*:|https?://|(?<![\w.])/[\w.\-]+/|\b\d{12}\b|"
    r"\.amazonaws\.com",
    re.IGNORECASE,
)


def public_reason(detail: str | None) -> str:
    """The reason to show for a model that is not loaded (the detail goes to the logs)."""
    if detail and detail.startswith("MODEL_URI is not set"):
        return NOT_CONFIGURED
    return UNAVAILABLE


def names_in(*locations: str) -> list[str]:
    """Resource names inside configuration values (s3://bucket/..., queue URLs, table names)."""
    names: list[str] = []
    for location in locations:
        if not location:
            continue
        parsed = urlparse(location)
        if parsed.scheme == "s3" and parsed.netloc:
            names.append(parsed.netloc)
        elif parsed.scheme in ("http", "https"):
            names += [p for p in parsed.path.split("/") if p][-1:]
        elif parsed.scheme == "":
            names.append(location)
    return [n for n in names if len(n) >= 3]


def _looks_like_infrastructure(text: str, names: Iterable[str]) -> bool:
    return bool(_INFRASTRUCTURE.search(text)) or any(n in text for n in names)


def redact(value: Any, names: Iterable[str] = ()) -> Any:
    """A copy of ``value`` (JSON-like) with infrastructure-looking strings replaced."""
    names = tuple(names)
    if isinstance(value, str):
        return REDACTED if _looks_like_infrastructure(value, names) else value
    if isinstance(value, Mapping):
        return {k: redact(v, names) for k, v in value.items()
                if not _looks_like_infrastructure(str(k), names)}
    if isinstance(value, list | tuple):
        return [redact(v, names) for v in value]
    return value
