"""The feature contract of FEATURES.md: one lead -> 20 numbers in [0, 1], one copy for all.

Training and serving both call `extract_features`; nothing else computes a feature.

Public API
----------
- `FEATURE_NAMES` (20 names, FEATURES.md order), `N_FEATURES`.
- `extract_features(raw) -> ExtractedFeatures(values: float64[20], missing_fields: list[str])`.
- `extract_many(raws) -> (float64[n, 20], list of missing_fields)`; error paths get ``[i].``.
- `parse_feature_vector(value, path="feature_vector") -> float64[20]`.
- `flat_to_nested(flat) -> (nested request dict, list[FieldError])` for CRM key/value pairs,
  `FLAT_FIELDS` (flat key -> nested path), `flat_error_path(nested_path)`,
  `extract_flat_features(flat) -> ExtractedFeatures` (errors named by flat key).

Decisions where FEATURES.md is silent (all deliberate, all tested)
-----------------------------------------------------------------
Absent values
    A JSON ``null`` counts as absent, for sections, fields and list items' fields alike.
    Absent sections are listed in `missing_fields` by their own path (``"psychology_profile"``),
    not field by field; absent fields of a present section are listed one by one
    (``"property_data.condition"``, ``"property_data.location.school_rating"``). Absent fields
    of list items are listed too (``"market_data.comparables[1].days_on_market"``).
    An explicitly empty list (``"comparables": []``) is given, not missing.
Market value
    ``estimated_market_value`` and ``market_data.estimated_value`` must be > 0 when used:
    a value of 0 means "not known" and falls through to the next source (not an error); a
    negative value is an error. ``"property_data.estimated_market_value"`` is listed as missing
    only when neither source is given (the value fell back to ``list_price``) and
    ``property_data`` itself is present (an absent section is listed as a whole).
    ``average_days_on_market`` likewise: 0 takes the default 30 and is listed as missing.
Types
    Numbers are JSON numbers (int or float, also numpy scalars); a boolean is not a number, text
    is not a number (even numeric text: CRM text goes through `flat_to_nested`), NaN and
    ±Infinity are errors. "Integer" fields (``message_count``, ``current_month``) accept an
    integral float such as ``25.0``; ``25.5`` is an error.
Ranges
    A range in FEATURES.md's type column is a validation rule: ``school_rating`` outside 0–10,
    ``walkability_score`` outside 0–100, ``psychological_commitment_score`` outside 0–100,
    ``negotiation_flexibility`` outside 0–1, and a negative value where "≥ 0" is written, are
    errors. The one exception FEATURES.md states itself: an integer ``current_month`` outside
    0–11 is not an error; it gives a seasonal factor of 0.7 and is listed in `missing_fields`
    (like an unknown category).
Categories
    Category values must be text. They are compared after trimming, lower-casing and turning
    spaces and hyphens into underscores (``"Move-In Ready"`` -> ``move_in_ready``). An unknown
    value takes the default and is listed in `missing_fields`.
Lists
    ``price_drops`` items are objects with ``percentage`` (≥ 0; absent counts 0). ``comparables``
    items are objects with ``sale_price`` (≥ 0; absent or 0 means "unpriced": it counts for
    the number of comparables and the market time, not for the price statistics) and
    ``days_on_market`` (≥ 0; absent counts 30). "Priced comparables" in features 8 and 18 are
    those with ``sale_price > 0``.
Unknown keys
    Keys this contract does not name, at any level, are ignored (not errors, not listed).
Root
    A `raw` that is not an object is an error at path ``"features"``.
Arithmetic
    Every value is computed in float64 and clipped; huge finite inputs cannot produce NaN
    (the comparables' coefficient of variation is computed on prices scaled by their maximum).

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

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from leadscore.errors import FieldError, InvalidInput, join_path

FEATURE_NAMES: Final[tuple[str, ...]] = (
    "psychological_commitment_score",
    "urgency_score",
    "motivation_intensity",
    "negotiation_flexibility",
    "communication_engagement",
    "list_price_ratio",
    "price_reduction_history",
    "days_on_market_ratio",
    "price_competitiveness",
    "overpricing_penalty",
    "inventory_pressure",
    "absorption_rate",
    "price_trend_momentum",
    "seasonal_factor",
    "property_appeal_score",
    "condition_score",
    "location_desirability",
    "comp_count_confidence",
    "comp_price_variance",
    "comp_market_time",
)
N_FEATURES: Final[int] = 20
FEATURE_INDEX: Final[Mapping[str, int]] = {name: i for i, name in enumerate(FEATURE_NAMES)}
assert len(FEATURE_NAMES) == N_FEATURES

SECTIONS: Final[tuple[str, ...]] = (
    "property_data",
    "market_data",
    "psychology_profile",
    "conversation_data",
)

URGENCY_SCORES: Final[Mapping[str, float]] = {
    "low": 0.2,
    "medium": 0.5,
    "high": 0.8,
    "critical": 1.0,
}
MOTIVATION_SCORES: Final[Mapping[str, float]] = {
    "upsizing": 0.7,
    "downsizing": 0.6,
    "relocation": 0.8,
    "financial": 0.9,
    "divorce": 0.95,
    "estate": 0.85,
    "investment": 0.5,
}
CONDITION_SCORES: Final[Mapping[str, float]] = {
    "excellent": 1.0,
    "move_in_ready": 0.9,
    "good": 0.8,
    "fair": 0.6,
    "needs_work": 0.4,
    "fixer_upper": 0.3,
    "poor": 0.2,
}
SEASONAL_FACTORS: Final[tuple[float, ...]] = (
    0.4, 0.5, 0.7, 0.85, 0.95, 1.0, 1.0, 0.95, 0.85, 0.7, 0.5, 0.4,
)  # fmt: skip
SEASONAL_OUT_OF_RANGE: Final[float] = 0.7

DEFAULT_URGENCY: Final[float] = 0.5  # "medium"; also any unknown level
DEFAULT_MOTIVATION: Final[float] = 0.5  # "unknown"
DEFAULT_CONDITION: Final[float] = 0.6  # "fair"
DEFAULT_BEDS: Final[float] = 3.0
DEFAULT_BATHS: Final[float] = 2.0
DEFAULT_SQFT: Final[float] = 1500.0
DEFAULT_SCHOOL_RATING: Final[float] = 5.0
DEFAULT_WALKABILITY: Final[float] = 50.0
DEFAULT_AVG_DOM: Final[float] = 30.0
DEFAULT_INVENTORY: Final[float] = 6.0
DEFAULT_ABSORPTION: Final[float] = 0.15
DEFAULT_PRICE_TREND: Final[float] = 0.0
DEFAULT_MONTH: Final[int] = 5
DEFAULT_PCS: Final[float] = 50.0
DEFAULT_NEGOTIATION: Final[float] = 0.5
DEFAULT_MESSAGE_COUNT: Final[float] = 0.0
DEFAULT_RESPONSE_SECONDS: Final[float] = 3600.0
DEFAULT_COMP_DOM: Final[float] = 30.0

_NOT_FINITE = "must be a finite number"


@dataclass(frozen=True, slots=True)
class ExtractedFeatures:
    """The 20 values (float64, FEATURE_NAMES order, each in [0, 1]) and what was defaulted."""

    values: np.ndarray
    missing_fields: list[str]

    def as_dict(self) -> dict[str, float]:
        return {name: float(v) for name, v in zip(FEATURE_NAMES, self.values, strict=True)}


def _clip(v: float) -> float:
    if v < 0.0:
        return 0.0
    if v > 1.0:
        return 1.0
    return v


def _number_error(value: Any) -> str | None:
    """Why `value` is not a finite number, or None when it is one."""
    if isinstance(value, bool | np.bool_):
        return "must be a number, not a boolean"
    if isinstance(value, str):
        return "must be a number, not text"
    if not isinstance(value, int | float | np.integer | np.floating):
        return "must be a number"
    try:
        x = float(value)
    except OverflowError:
        return _NOT_FINITE
    if not math.isfinite(x):
        return _NOT_FINITE
    return None


class _Reader:
    """Walks one raw lead, collecting every error and every defaulted path."""

    __slots__ = ("errors", "missing")

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.missing: list[str] = []

    def section(self, parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
        value = parent.get(key)
        if value is None:
            self.missing.append(path)
            return None
        if not isinstance(value, Mapping):
            self.errors.append(FieldError(path, "must be an object"))
            return None
        return value

    def number(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: str,
        *,
        lo: float | None = 0.0,
        hi: float | None = None,
        integer: bool = False,
        track_missing: bool = True,
    ) -> float | None:
        """A validated number, or None when absent (listed) or invalid (error recorded)."""
        value = obj.get(key)
        if value is None:
            if track_missing:
                self.missing.append(path)
            return None
        if type(value) is float or type(value) is int:  # fast path for JSON numbers
            try:
                x = float(value)
            except OverflowError:
                self.errors.append(FieldError(path, _NOT_FINITE))
                return None
            if not math.isfinite(x):
                self.errors.append(FieldError(path, _NOT_FINITE))
                return None
        else:
            problem = _number_error(value)
            if problem is not None:
                self.errors.append(FieldError(path, problem))
                return None
            x = float(value)
        if integer and not x.is_integer():
            self.errors.append(FieldError(path, "must be an integer"))
            return None
        if lo is not None and hi is not None and not lo <= x <= hi:
            self.errors.append(FieldError(path, f"must be between {lo:g} and {hi:g}"))
            return None
        if lo is not None and x < lo:
            self.errors.append(FieldError(path, f"must be ≥ {lo:g}"))
            return None
        return x

    def category(
        self, obj: Mapping[str, Any], key: str, path: str, table: Mapping[str, float]
    ) -> float | None:
        """The table's value for the category, or None when absent/unknown (listed) or invalid."""
        value = obj.get(key)
        if value is None:
            self.missing.append(path)
            return None
        if not isinstance(value, str):
            self.errors.append(FieldError(path, "must be text"))
            return None
        score = table.get(value)
        if score is None:
            score = table.get(value.strip().lower().replace(" ", "_").replace("-", "_"))
        if score is None:
            self.missing.append(path)
        return score

    def items(
        self, obj: Mapping[str, Any], key: str, path: str
    ) -> list[tuple[str, Mapping[str, Any]]] | None:
        """The list's object items with their paths; None when absent (listed) or not a list."""
        value = obj.get(key)
        if value is None:
            self.missing.append(path)
            return None
        if not isinstance(value, list | tuple):
            self.errors.append(FieldError(path, "must be a list"))
            return None
        out: list[tuple[str, Mapping[str, Any]]] = []
        for i, item in enumerate(value):
            item_path = f"{path}[{i}]"
            if isinstance(item, Mapping):
                out.append((item_path, item))
            else:
                self.errors.append(FieldError(item_path, "must be an object"))
        return out


_EMPTY: Mapping[str, Any] = {}


def _median(sorted_values: Sequence[float]) -> float:
    n = len(sorted_values)
    mid = n // 2
    if n % 2:
        return sorted_values[mid]
    return (sorted_values[mid - 1] + sorted_values[mid]) / 2.0


def _coefficient_of_variation(prices: Sequence[float]) -> float:
    """Population std / mean, computed on prices scaled by their maximum (no overflow)."""
    top = max(prices)
    scaled = [p / top for p in prices]
    n = len(scaled)
    mean = sum(scaled) / n
    var = sum((p - mean) * (p - mean) for p in scaled) / n
    return math.sqrt(var) / mean


def _extract_list(raw: Mapping[str, Any], reader: _Reader) -> list[float]:
    """The 20 values as a Python list; errors and missing paths go to `reader`."""
    r = reader

    # ---- sections ---------------------------------------------------------------------------
    prop = r.section(raw, "property_data", "property_data")
    market = r.section(raw, "market_data", "market_data")
    psych = r.section(raw, "psychology_profile", "psychology_profile")
    conv = r.section(raw, "conversation_data", "conversation_data")

    # ---- property_data ----------------------------------------------------------------------
    p = prop if prop is not None else _EMPTY
    track = prop is not None
    list_price = r.number(p, "list_price", "property_data.list_price", track_missing=track)
    emv = r.number(
        p, "estimated_market_value", "property_data.estimated_market_value", track_missing=False
    )
    drop_items = (
        r.items(p, "price_drops", "property_data.price_drops") if prop is not None else None
    )
    dom = r.number(p, "days_on_market", "property_data.days_on_market", track_missing=track)
    beds = r.number(p, "beds", "property_data.beds", track_missing=track)
    baths = r.number(p, "baths", "property_data.baths", track_missing=track)
    sqft = r.number(p, "sqft", "property_data.sqft", track_missing=track)
    condition = (
        r.category(p, "condition", "property_data.condition", CONDITION_SCORES)
        if prop is not None
        else None
    )
    loc = r.section(p, "location", "property_data.location") if prop is not None else None
    lc = loc if loc is not None else _EMPTY
    ltrack = loc is not None
    school = r.number(
        lc, "school_rating", "property_data.location.school_rating", hi=10.0, track_missing=ltrack
    )
    walk = r.number(
        lc,
        "walkability_score",
        "property_data.location.walkability_score",
        hi=100.0,
        track_missing=ltrack,
    )

    drops_total = 0.0
    for item_path, item in drop_items or ():
        pct = r.number(item, "percentage", item_path + ".percentage")
        if pct is not None:
            drops_total += pct

    # ---- market_data ------------------------------------------------------------------------
    m = market if market is not None else _EMPTY
    mtrack = market is not None
    est_value = r.number(m, "estimated_value", "market_data.estimated_value", track_missing=False)
    avg_dom = r.number(
        m, "average_days_on_market", "market_data.average_days_on_market", track_missing=mtrack
    )
    if avg_dom is not None and avg_dom <= 0.0:
        r.missing.append("market_data.average_days_on_market")
        avg_dom = None
    inventory = r.number(m, "inventory_level", "market_data.inventory_level", track_missing=mtrack)
    absorption = r.number(m, "absorption_rate", "market_data.absorption_rate", track_missing=mtrack)
    trend = r.number(
        m, "price_trend_pct", "market_data.price_trend_pct", lo=None, track_missing=mtrack
    )
    month = r.number(
        m, "current_month", "market_data.current_month", lo=None, integer=True, track_missing=mtrack
    )
    comp_items = (
        r.items(m, "comparables", "market_data.comparables") if market is not None else None
    )

    comp_prices: list[float] = []
    comp_dom_total = 0.0
    n_comps = 0
    for item_path, item in comp_items or ():
        n_comps += 1
        price = r.number(item, "sale_price", item_path + ".sale_price")
        if price is not None and price > 0.0:
            comp_prices.append(price)
        cdom = r.number(item, "days_on_market", item_path + ".days_on_market")
        comp_dom_total += DEFAULT_COMP_DOM if cdom is None else cdom

    # ---- psychology_profile -----------------------------------------------------------------
    if psych is not None:
        pcs = r.number(
            psych,
            "psychological_commitment_score",
            "psychology_profile.psychological_commitment_score",
            hi=100.0,
        )
        urgency = r.category(
            psych, "urgency_level", "psychology_profile.urgency_level", URGENCY_SCORES
        )
        motivation = r.category(
            psych, "motivation_type", "psychology_profile.motivation_type", MOTIVATION_SCORES
        )
        flex = r.number(
            psych, "negotiation_flexibility", "psychology_profile.negotiation_flexibility", hi=1.0
        )
        f_pcs = _clip((DEFAULT_PCS if pcs is None else pcs) / 100.0)
        f_urgency = DEFAULT_URGENCY if urgency is None else urgency
        f_motivation = DEFAULT_MOTIVATION if motivation is None else motivation
        f_flex = _clip(DEFAULT_NEGOTIATION if flex is None else flex)
    else:
        f_pcs, f_urgency, f_motivation, f_flex = 0.5, DEFAULT_URGENCY, DEFAULT_MOTIVATION, 0.5

    # ---- conversation_data ------------------------------------------------------------------
    if conv is not None:
        messages = r.number(conv, "message_count", "conversation_data.message_count", integer=True)
        response = r.number(
            conv, "avg_response_time_seconds", "conversation_data.avg_response_time_seconds"
        )
        mc = DEFAULT_MESSAGE_COUNT if messages is None else messages
        rt = DEFAULT_RESPONSE_SECONDS if response is None else response
        f_comm = (min(mc / 50.0, 1.0) + 1.0 - min(rt / 3600.0, 1.0)) / 2.0
    else:
        f_comm = 0.5

    if r.errors:  # values would be meaningless; the caller raises
        return []

    # ---- pricing ----------------------------------------------------------------------------
    lp = 0.0 if list_price is None else list_price
    if emv is not None and emv > 0.0:
        market_value = emv
    elif est_value is not None and est_value > 0.0:
        market_value = est_value
    else:
        market_value = lp
        if prop is not None:
            r.missing.append("property_data.estimated_market_value")
    if market_value > 0.0:
        ratio = lp / market_value
        f_lpr = _clip((ratio - 0.8) / 0.4)
        f_over = min((ratio - 1.0) * 5.0, 1.0) if ratio > 1.0 else 0.0
    else:
        f_lpr = 0.5
        f_over = 0.0

    f_drops = _clip(drops_total / 30.0)
    f_dom = _clip(
        ((0.0 if dom is None else dom) / (DEFAULT_AVG_DOM if avg_dom is None else avg_dom)) / 3.0
    )

    if comp_prices and lp > 0.0:
        median = _median(sorted(comp_prices))
        f_comp = 1.0 - _clip(abs(lp / median - 1.0) / 0.2)
    else:
        f_comp = 0.5

    # ---- market context ---------------------------------------------------------------------
    inv = DEFAULT_INVENTORY if inventory is None else inventory
    f_inventory = 1.0 - _clip((inv - 2.0) / 10.0)
    absr = DEFAULT_ABSORPTION if absorption is None else absorption
    f_absorption = _clip((absr - 0.05) / 0.25)
    f_trend = _clip(((DEFAULT_PRICE_TREND if trend is None else trend) + 10.0) / 25.0)
    if month is None:
        f_season = SEASONAL_FACTORS[DEFAULT_MONTH]
    elif 0.0 <= month <= 11.0:
        f_season = SEASONAL_FACTORS[int(month)]
    else:
        f_season = SEASONAL_OUT_OF_RANGE
        r.missing.append("market_data.current_month")

    # ---- property ---------------------------------------------------------------------------
    b = DEFAULT_BEDS if beds is None else beds
    ba = DEFAULT_BATHS if baths is None else baths
    sq = DEFAULT_SQFT if sqft is None else sqft
    f_appeal = _clip(
        (
            (1.0 - abs(b - 3.5) / 3.5)
            + (1.0 - abs(ba - 2.5) / 2.5)
            + (1.0 - abs(sq - 2000.0) / 2000.0)
        )
        / 3.0
    )
    f_condition = DEFAULT_CONDITION if condition is None else condition
    sr = DEFAULT_SCHOOL_RATING if school is None else school
    ws = DEFAULT_WALKABILITY if walk is None else walk
    f_location = _clip((sr / 10.0 + ws / 100.0) / 2.0)

    # ---- comparables ------------------------------------------------------------------------
    if n_comps:
        f_comp_count = min(n_comps / 20.0, 1.0)
        f_comp_time = 1.0 - _clip((comp_dom_total / n_comps) / 120.0)
    else:
        f_comp_count = 0.5
        f_comp_time = 0.5
    if len(comp_prices) >= 2:
        f_comp_var = 1.0 - _clip(_coefficient_of_variation(comp_prices) / 0.3)
    else:
        f_comp_var = 0.5

    return [
        f_pcs,
        f_urgency,
        f_motivation,
        f_flex,
        f_comm,
        f_lpr,
        f_drops,
        f_dom,
        f_comp,
        f_over,
        f_inventory,
        f_absorption,
        f_trend,
        f_season,
        f_appeal,
        f_condition,
        f_location,
        f_comp_count,
        f_comp_var,
        f_comp_time,
    ]


def _extract_row(raw: Any) -> tuple[list[float], list[str]]:
    if not isinstance(raw, Mapping):
        raise InvalidInput([FieldError("features", "must be an object")])
    reader = _Reader()
    row = _extract_list(raw, reader)
    if reader.errors:
        raise InvalidInput(reader.errors)
    return row, reader.missing


def extract_features(raw: Mapping[str, Any]) -> ExtractedFeatures:
    """FEATURES.md for one lead (the `features` object of a scoring request).

    Raises `InvalidInput` naming every offending field path.
    """
    row, missing = _extract_row(raw)
    return ExtractedFeatures(np.array(row, dtype=np.float64), missing)


def extract_many(raws: Iterable[Mapping[str, Any]]) -> tuple[np.ndarray, list[list[str]]]:
    """Extract many leads: a float64 [n, 20] matrix and each lead's missing fields.

    Every bad lead is reported, with paths prefixed by its index (``[17].property_data.sqft``),
    in one `InvalidInput`.
    """
    rows: list[list[float]] = []
    missing: list[list[str]] = []
    errors: list[FieldError] = []
    for i, raw in enumerate(raws):
        try:
            row, miss = _extract_row(raw)
        except InvalidInput as exc:
            errors.extend(exc.with_prefix(f"[{i}]").errors)
            continue
        rows.append(row)
        missing.append(miss)
    if errors:
        raise InvalidInput(errors)
    matrix = np.array(rows, dtype=np.float64).reshape(len(rows), N_FEATURES)
    return matrix, missing


# ---- feature vectors given directly ---------------------------------------------------------


def _vector_value_error(value: Any) -> str | None:
    if type(value) is float and 0.0 <= value <= 1.0:  # fast path (NaN fails the comparison)
        return None
    problem = _number_error(value)
    if problem is not None:
        return problem
    x = float(value)
    if not 0.0 <= x <= 1.0:
        return "must be between 0 and 1 (every feature is in [0, 1])"
    return None


def parse_feature_vector(value: Any, path: str = "feature_vector") -> np.ndarray:
    """A caller's ready-made vector -> float64 [20].

    Accepts a list of exactly 20 numbers in FEATURES.md order, or an object with exactly the 20
    feature names. Every value must be a finite number in [0, 1]. Raises `InvalidInput` naming
    every problem (``feature_vector[3]``, ``feature_vector.urgency_score``, ...).
    """
    errors: list[FieldError] = []
    out = [0.0] * N_FEATURES
    if isinstance(value, Mapping):
        for name in value:
            if name not in FEATURE_INDEX:
                errors.append(FieldError(join_path(path, str(name)), "unknown feature name"))
        for i, name in enumerate(FEATURE_NAMES):
            item_path = join_path(path, name)
            if name not in value:
                errors.append(FieldError(item_path, "is required"))
                continue
            problem = _vector_value_error(value[name])
            if problem is not None:
                errors.append(FieldError(item_path, problem))
            else:
                out[i] = float(value[name])
    elif isinstance(value, list | tuple | np.ndarray):
        items = list(value.tolist() if isinstance(value, np.ndarray) else value)
        if len(items) != N_FEATURES:
            errors.append(
                FieldError(path, f"must have exactly {N_FEATURES} values, got {len(items)}")
            )
        for i, item in enumerate(items):
            problem = _vector_value_error(item)
            if problem is not None:
                errors.append(FieldError(f"{path}[{i}]", problem))
            elif i < N_FEATURES:
                out[i] = float(item)
    else:
        errors.append(
            FieldError(
                path, f"must be a list of {N_FEATURES} numbers or an object of feature names"
            )
        )
    if errors:
        raise InvalidInput(errors)
    return np.array(out, dtype=np.float64)


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
    s = text.strip()
    if not s or _NUMBER_TEXT.fullmatch(s) is None or not any(c.isdigit() for c in s):
        return None
    s = s.replace("$", "").replace(",", "")
    try:
        if "." not in s and "e" not in s and "E" not in s:
            return int(s)
        x = float(s)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


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
    problem = _number_error(value)
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
            value = json.loads(value)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
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
    """CRM key/value pairs (FEATURES.md "Flat names") -> the nested request shape.

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
