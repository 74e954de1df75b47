"""The one label parser: what counts as converted, everywhere a target value is read.

The retrain split's counts, the promotion gate, training and the loop's outcome records all
call `LabelRule.label` (docs/SCHEMA.md lists the spellings), so a row that trains as converted
is counted converted by the split and measured converted by the gate.

Without ``positive`` values (the real-estate ``converted`` column, or a team's target given
without ``--positive``):

- converted: a number equal to 1 (``1``, ``1.00``, ``1e0``), ``true``, ``yes``, JSON ``true``;
- not converted: a number equal to 0 (``0``, ``0.0``), ``false``, ``no``, JSON ``false``;
- unresolved: empty, ``open`` and anything else.

With ``positive`` values (``--positive won``, case-insensitive): those values are converted;
the ``negative`` values (``--negative lost``) are not converted, or, when no negative values
are given, every other non-empty value; empty (and, with negatives given, any value in
neither list) is unresolved. Unresolved rows are left out of training and the gate, and
counted wherever they are left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

CONVERTED_WORDS = frozenset({"true", "yes"})
NOT_CONVERTED_WORDS = frozenset({"false", "no"})


def _canonical(text: str) -> str:
    """Lower-case text; a whole number reads as its integer (``1.0`` and ``1e0`` are ``1``), so
    ``--positive 1`` matches what a spreadsheet wrote as ``1.0``."""
    text = text.strip().lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if math.isfinite(number) and number.is_integer() else text


def _norm(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({_canonical(str(v)) for v in values if str(v).strip()}))


@dataclass(frozen=True)
class LabelRule:
    """How one target column's values map to 1 (converted), 0 (not) or None (unresolved)."""

    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()

    @classmethod
    def of(cls, positive: Iterable[str] = (), negative: Iterable[str] = ()) -> LabelRule:
        return cls(_norm(positive), _norm(negative))

    def label(self, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(value)
        else:
            text = str(value).strip().lower()
        if not text:
            return None
        if self.positive:
            text = _canonical(text)
            if text in self.positive:
                return 1
            if self.negative:
                return 0 if text in self.negative else None
            return 0
        if text in CONVERTED_WORDS:
            return 1
        if text in NOT_CONVERTED_WORDS:
            return 0
        try:
            number = float(text)
        except ValueError:
            return None
        if math.isfinite(number) and number in (0.0, 1.0):
            return int(number)
        return None

    def describe(self) -> str:
        if not self.positive:
            return ("converted = 1/true/yes, not converted = 0/false/no, anything else "
                    "unresolved")
        negative = (" or ".join(self.negative) if self.negative
                    else "any other non-empty value")
        unresolved = "empty or anything else" if self.negative else "empty"
        return (f"converted = {' or '.join(self.positive)}, not converted = {negative}, "
                f"{unresolved} unresolved")


DEFAULT_RULE = LabelRule()


def parse_label(value: Any, positive: Iterable[str] = (), negative: Iterable[str] = ()
                ) -> int | None:
    """1, 0 or None for one target value (see the module docstring)."""
    return LabelRule.of(positive, negative).label(value)
