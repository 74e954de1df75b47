"""Reasons in a custom schema's own words (the real-estate wording is `leadscore.scoring.reasons`).

A column may carry templates in its schema entry: ``reason_up`` (used when the column raised
the score) and ``reason_down`` (lowered it), with the placeholders ``{label}``, ``{value}``
and ``{typical}`` (the bundle's baseline value for the column). Without templates:

- a value:      "Previous contacts is 3 (typical: 0)" / "Job is student"
- missing:      "Pdays is not filled in"
- unseen level: "Job is astronaut (not seen in training, scored as other)"

Never raises: a template with an unknown placeholder falls back to the default sentence.
"""

from __future__ import annotations

from typing import Any

from leadscore.columns.schema import ColumnSpec


def _text(value: Any) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.3g}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _value_text(col: ColumnSpec, value: Any) -> str:
    if value is None:
        return "not filled in"
    if col.kind == "boolean":
        return "yes" if float(value) >= 0.5 else "no"
    if col.kind == "date":
        return f"{_text(float(value))} days old"
    return _text(value)


def column_reason(col: ColumnSpec, value: Any, contribution: float, typical: Any,
                  *, unseen: bool = False) -> str:
    """One sentence about one column's part in a score."""
    shown = _value_text(col, value)
    typical_text = _value_text(col, typical) if typical is not None else ""
    template = col.reason_up if contribution > 0 else col.reason_down
    if template:
        try:
            return template.format(label=col.title, value=shown, typical=typical_text)
        except (KeyError, IndexError, ValueError):
            pass
    if value is None:
        return f"{col.title} is not filled in"
    if unseen:
        return f"{col.title} is {shown} (not seen in training, scored as other)"
    if col.kind in ("numeric", "date") and typical_text and typical_text != shown:
        return f"{col.title} is {shown} (typical: {typical_text})"
    return f"{col.title} is {shown}"
