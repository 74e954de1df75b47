"""Identifiers from outside (location, contact, opportunity, company, delivery ids): checked as
text HighLevel can produce before they reach a log line, a cache key or a storage key.

HighLevel's ids are short ASCII tokens (letters, digits, ``-``, ``_``). Anything else is not
an id HighLevel made: a lone surrogate (``"\\ud800"`` is valid JSON) cannot be encoded to
UTF-8, so it lost the request's log line and made the DynamoDB cache tier fail (500, breaker
open for every location); a ``#`` or ``/`` would reach into another item's key or S3 prefix;
an id of megabytes would be written into every key. The check is one regular expression.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from leadscore.errors import FieldError

MAX_ID_LENGTH = 128
_SAFE_ID = re.compile(r"[A-Za-z0-9_\-]{1,128}")
ID_RULE = f"must be 1-{MAX_ID_LENGTH} letters, digits, '-' or '_'"


def is_safe_id(value: Any) -> bool:
    """True for a string HighLevel could use as an id."""
    return isinstance(value, str) and _SAFE_ID.fullmatch(value) is not None


def has_lone_surrogate(text: str) -> bool:
    """True when ``text`` cannot be encoded as UTF-8 (a JSON ``\\ud800`` escape alone)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def id_errors(values: Mapping[str, Any]) -> list[FieldError]:
    """One error per path whose value is present (not None / "") and not a safe id."""
    return [FieldError(path, ID_RULE) for path, value in values.items()
            if value not in (None, "") and not is_safe_id(value)]
