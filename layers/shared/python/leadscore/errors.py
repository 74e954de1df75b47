"""Validation errors that name every offending field path.

`InvalidInput` is what every parser of caller data raises (feature extraction, feature
vectors, CRM fields, class thresholds). It carries *all* problems found, never only the first,
and becomes a 400 answer through `to_dict()`:

    {"error": "invalid input", "errors": [{"path": "property_data.list_price",
                                           "message": "must be a number, not text"}]}

Paths are dotted, with list items in brackets: ``market_data.comparables[2].sale_price``.
A batch prefixes them with the row index: ``[17].property_data.list_price``.
Messages never echo the offending value (it may be personal data).

`InvalidInput` subclasses `ValueError`, so code that only cares "the value is bad" can catch
`ValueError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


def join_path(prefix: str, path: str) -> str:
    """Join two path parts.

    ``join_path("a", "b") == "a.b"``, ``join_path("a", "[2].b") == "a[2].b"``; an empty part
    leaves the other unchanged.
    """
    if not prefix:
        return path
    if not path:
        return prefix
    if path.startswith("["):
        return prefix + path
    return f"{prefix}.{path}"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field."""

    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class InvalidInput(ValueError):
    """The caller's data is malformed; `errors` lists every offending field path."""

    def __init__(self, errors: Iterable[FieldError]) -> None:
        self.errors: list[FieldError] = list(errors)
        if not self.errors:
            raise ValueError("InvalidInput needs at least one FieldError")
        summary = "; ".join(f"{e.path}: {e.message}" for e in self.errors[:5])
        more = len(self.errors) - 5
        if more > 0:
            summary += f"; and {more} more"
        super().__init__(f"invalid input: {summary}")

    def to_dict(self) -> dict[str, Any]:
        return {"error": "invalid input", "errors": [e.to_dict() for e in self.errors]}

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.errors]

    def with_prefix(self, prefix: str) -> InvalidInput:
        """The same errors with `prefix` put in front of every path (e.g. ``"[17]"``)."""
        return InvalidInput(FieldError(join_path(prefix, e.path), e.message) for e in self.errors)
