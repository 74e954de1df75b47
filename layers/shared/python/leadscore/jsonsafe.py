"""JSON text from outside (request bodies, webhook custom data, training uploads), parsed so
that its size and shape cannot turn into a crash or a wrong error path.

- An integer longer than Python's conversion limit (4,300 digits) would make `json.loads`
  refuse the *whole* body ("not valid JSON" at path ""); here it becomes a float (``inf``), so
  the extractor names the field that holds it ("must be a finite number").
- Nesting past the interpreter's recursion limit is an `UntrustedJSONError`, not a
  `RecursionError`; `too_deep(value, limit)` checks a parsed value iteratively, for callers
  that walk or re-serialise it (a lead needs depth 5; 32 is generous).
"""

from __future__ import annotations

import json
import sys
from typing import Any

#: Python's int <-> str conversion limit (digits).
_INT_DIGITS = sys.get_int_max_str_digits() or 4300


class UntrustedJSONError(ValueError):
    """The text is not JSON we can use; ``str(exc)`` is a safe, caller-facing reason."""


def _parse_int(digits: str) -> int | float:
    if len(digits) <= _INT_DIGITS:
        return int(digits)
    return float(digits)  # +-inf: "must be a finite number" at the field's own path


def loads(text: str | bytes) -> Any:
    """`json.loads` for untrusted text; raises `UntrustedJSONError` with a readable reason."""
    try:
        try:
            return json.loads(text)
        except ValueError as exc:
            if "digits" not in str(exc):  # only an over-long integer is worth a second pass
                raise
        # The per-integer hook costs a Python call per number: paid only when needed.
        return json.loads(text, parse_int=_parse_int)
    except RecursionError:
        raise UntrustedJSONError("nested too deeply") from None
    except (ValueError, TypeError):
        raise UntrustedJSONError("not valid JSON") from None


def too_deep(value: Any, limit: int) -> bool:
    """True when `value` nests lists/objects more than `limit` levels (iterative walk)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False
