"""The one rule that says two spellings name the same column.

A team's file says ``List Price``, HighLevel's field key is ``contact.list_price``, an API
caller may send ``list-price``: all are the column ``list_price``. The webhook flow maps
HighLevel's fields by it, the scoring API falls back to it for a column not sent under its own
name, and the loop's export matches a team's uploaded history to its columns with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def normalise_key(key: str) -> str:
    """``"List Price"``, ``"list-price"``, ``"contact.list_price"`` -> ``"list_price"``."""
    text = key.strip()
    if "." in text:
        text = text.rsplit(".", 1)[1]
    text = re.sub(r"[\s\-]+", "_", text).lower()
    text = re.sub(r"[^a-z0-9_]", "", text)
    return text


def by_key(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` keyed by `normalise_key` (the first of two spellings of one key wins)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        out.setdefault(normalise_key(str(name)), value)
    return out
