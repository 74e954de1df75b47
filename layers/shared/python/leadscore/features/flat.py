"""Flat CRM fields -> the nested request (one copy of the flat-name rules).

Flat CRM fields (`flat_to_nested`)
    The flat key of a raw field is its field name (`FLAT_FIELDS`). Text values are trimmed; ``""``
    means absent. Numeric text parses (``"800000"``, ``" 4.5 "``, ``"-3"``, ``"1e3"``, and
    ``"$800,000"``: an optional leading ``$`` and comma thousands groups); anything else is an
    error naming the flat key. ``price_drops`` and ``comparables`` take a list or JSON text of
    a list; numeric text inside their items parses the same way (errors named like
    ``comparables[2].sale_price``). Unknown flat keys are ignored. A section appears in the
    nested result only when at least one of its flat keys has a value, so a CRM that sends no
    psychology fields gets the "section absent" values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final

from leadscore import jsonsafe
from leadscore.errors import FieldError, InvalidInput
from leadscore.features.contract import ExtractedFeatures, number_error
from leadscore.features.nested import extract_features

# ---- flat CRM fields --------------------------------------------------------------------------

#: flat key -> path of the raw field in the nested request.
FLAT_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "list_price": ("property_data", "list_price"),
    "estimated_market_value": ("property_data", "estimated_market_value"),
    "price_drops": ("property_data", "price_drops"),
    "days_on_market": ("property_data", "days_on_market"),
    "beds": ("property_data", "beds"),
    "baths": ("property_data", "baths"),
    "sqft": ("property_data", "sqft"),
    "condition": ("property_data", "condition"),
    "school_rating": ("property_data", "location", "school_rating"),
    "walkability_score": ("property_data", "location", "walkability_score"),
    "estimated_value": ("market_data", "estimated_value"),
    "average_days_on_market": ("market_data", "average_days_on_market"),
    "inventory_level": ("market_data", "inventory_level"),
    "absorption_rate": ("market_data", "absorption_rate"),
    "price_trend_pct": ("market_data", "price_trend_pct"),
    "current_month": ("market_data", "current_month"),
    "comparables": ("market_data", "comparables"),
    "psychological_commitment_score": ("psychology_profile", "psychological_commitment_score"),
    "urgency_level": ("psychology_profile", "urgency_level"),
    "motivation_type": ("psychology_profile", "motivation_type"),
    "negotiation_flexibility": ("psychology_profile", "negotiation_flexibility"),
    "message_count": ("conversation_data", "message_count"),
    "avg_response_time_seconds": ("conversation_data", "avg_response_time_seconds"),
}
FLAT_CATEGORY_KEYS: Final[frozenset[str]] = frozenset(
    {"condition", "urgency_level", "motivation_type"}
)
FLAT_LIST_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "price_drops": ("percentage",),
    "comparables": ("sale_price", "days_on_market"),
}
_NESTED_TO_FLAT: Final[Mapping[str, str]] = {".".join(v): k for k, v in FLAT_FIELDS.items()}

_NUMBER_TEXT = re.compile(r"[+-]?\$?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][+-]?\d+)?")


def parse_number_text(text: str) -> int | float | None:
    """Numeric CRM text -> a number; None when the text is not a plain finite number.

    ``"800000"`` -> 800000, ``" 4.5 "`` -> 4.5, ``"$800,000"`` -> 800000, ``"1e3"`` -> 1000.0.
    """
    stripped = text.strip()
    if (
        not stripped
        or _NUMBER_TEXT.fullmatch(stripped) is None
        or not any(char.isdigit() for char in stripped)
    ):
        return None
    digits = stripped.replace("$", "").replace(",", "")
    try:
        if "." not in digits and "e" not in digits and "E" not in digits:
            return int(digits)
        number = float(digits)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _flat_number(value: Any, key: str, errors: list[FieldError]) -> Any:
    """A flat numeric value -> number, or None when absent; errors name `key`."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        parsed = parse_number_text(value)
        if parsed is None:
            errors.append(FieldError(key, "must be a number"))
        return parsed
    problem = number_error(value)
    if problem is not None:
        errors.append(FieldError(key, problem))
        return None
    return value


def _flat_list(value: Any, key: str, errors: list[FieldError]) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = jsonsafe.loads(value)  # a 4,400-digit number becomes inf: named below
        except jsonsafe.UntrustedJSONError:  # not JSON, or absurdly deep nesting
            errors.append(FieldError(key, "must be a list or JSON text of a list"))
            return None
    if not isinstance(value, list | tuple):
        errors.append(FieldError(key, "must be a list or JSON text of a list"))
        return None
    numeric_keys = FLAT_LIST_KEYS[key]
    out: list[Any] = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            out.append(item)  # the extractor reports it with its nested path
            continue
        converted = dict(item)
        for field in numeric_keys:
            if field in converted:
                converted[field] = _flat_number(converted[field], f"{key}[{i}].{field}", errors)
        out.append(converted)
    return out


def flat_to_nested(flat: Mapping[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    """CRM key/value pairs (docs/FEATURES.md "Flat names in HighLevel") -> the nested request shape.

    Returns the nested dict (only sections with at least one value) and the conversion errors,
    each named by its flat key. Range and category checks are left to `extract_features`
    (use `extract_flat_features` to get those named by flat key too).
    """
    nested: dict[str, Any] = {}
    errors: list[FieldError] = []
    for key, target in FLAT_FIELDS.items():
        if key not in flat:
            continue
        raw = flat[key]
        value: Any
        if key in FLAT_LIST_KEYS:
            value = _flat_list(raw, key, errors)
        elif key in FLAT_CATEGORY_KEYS:
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                value = None
            elif isinstance(raw, str):
                value = raw.strip()
            else:
                errors.append(FieldError(key, "must be text"))
                value = None
        else:
            value = _flat_number(raw, key, errors)
        if value is None:
            continue
        node = nested
        for part in target[:-1]:
            node = node.setdefault(part, {})
        node[target[-1]] = value
    return nested, errors


def flat_error_path(nested_path: str) -> str:
    """A nested field path -> its flat name (``market_data.comparables[2].sale_price`` ->
    ``comparables[2].sale_price``); paths with no flat name come back unchanged."""
    cut = nested_path.find("[")
    head, tail = (nested_path, "") if cut < 0 else (nested_path[:cut], nested_path[cut:])
    flat = _NESTED_TO_FLAT.get(head)
    return nested_path if flat is None else flat + tail


def extract_flat_features(flat: Mapping[str, Any]) -> ExtractedFeatures:
    """`flat_to_nested` then `extract_features`; every error is named by its flat key.

    `missing_fields` keeps the nested paths (the scoring response's contract).
    """
    nested, errors = flat_to_nested(flat)
    try:
        extracted = extract_features(nested)
    except InvalidInput as exc:
        errors.extend(FieldError(flat_error_path(e.path), e.message) for e in exc.errors)
        extracted = None
    if errors:
        raise InvalidInput(errors)
    assert extracted is not None
    return extracted
