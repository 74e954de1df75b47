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

Bounded answers: a hostile request can carry hundreds of thousands of bad items, so
an error list in an answer is capped — the first `max_paths` (default `MAX_ERROR_PATHS`, the
`MAX_ERROR_PATHS` setting of the score function) plus `error_count`, the total — and a path
that echoes a caller's key is shortened to `MAX_PATH_CHARS` characters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: Default cap of the error list in one answer (ScoreSettings.max_error_paths overrides it).
MAX_ERROR_PATHS = 50
#: A path longer than this (it echoes a caller's key) is cut and ends with "…".
MAX_PATH_CHARS = 200


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
        path = self.path
        if len(path) > MAX_PATH_CHARS:
            path = path[: MAX_PATH_CHARS - 1] + "…"
        return {"path": path, "message": self.message}


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

    def to_dict(self, max_paths: int = MAX_ERROR_PATHS) -> dict[str, Any]:
        """The 400 body: the first `max_paths` errors and the total count."""
        answer = {"error": "invalid input", **capped_errors(self.errors, max_paths)}
        if answer.get("errors_truncated"):
            answer["error"] = (
                f"invalid input: {answer['error_count']} errors, the first {max_paths} listed "
                "(MAX_ERROR_PATHS)"
            )
        return answer

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.errors]

    def with_prefix(self, prefix: str) -> InvalidInput:
        """The same errors with `prefix` put in front of every path (e.g. ``"[17]"``)."""
        return InvalidInput(FieldError(join_path(prefix, e.path), e.message) for e in self.errors)


def capped_errors(errors: list[FieldError], max_paths: int) -> dict[str, Any]:
    """``{"errors": [first max_paths], "error_count": n}`` (+ ``"errors_truncated": true``)."""
    shown = [e.to_dict() for e in errors[: max(max_paths, 0)]]
    out: dict[str, Any] = {"errors": shown, "error_count": len(errors)}
    if len(errors) > len(shown):
        out["errors_truncated"] = True
    return out


class SecretUnavailable(Exception):
    """A secret could not be read (Secrets Manager failed): the caller answers so that the
    sender retries; never treated as an empty secret."""
