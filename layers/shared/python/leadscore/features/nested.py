"""Nested extraction: one scoring request's ``features`` object -> 20 numbers in [0, 1].

Training and serving both call `extract_features`; nothing else computes a feature.

Public API
----------
- `FEATURE_NAMES` (20 names, docs/FEATURES.md order), `N_FEATURES`.
- `extract_features(raw) -> ExtractedFeatures(values: float64[20], missing_fields: list[str])`.
- `extract_many(raws) -> (float64[n, 20], list of missing_fields)`; error paths get ``[i].``.
- `parse_feature_vector(value, path="feature_vector") -> float64[20]`.
- `flat_to_nested(flat) -> (nested request dict, list[FieldError])` for CRM key/value pairs,
  `FLAT_FIELDS` (flat key -> nested path), `flat_error_path(nested_path)`,
  `extract_flat_features(flat) -> ExtractedFeatures` (errors named by flat key).

Decisions where docs/FEATURES.md is silent (all deliberate, all tested)
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
    A range in docs/FEATURES.md's type column is a validation rule: ``school_rating`` outside 0–10,
    ``walkability_score`` outside 0–100, ``psychological_commitment_score`` outside 0–100,
    ``negotiation_flexibility`` outside 0–1, and a negative value where "≥ 0" is written, are
    errors. The one exception docs/FEATURES.md states itself: an integer ``current_month`` outside
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
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from leadscore.errors import FieldError, InvalidInput
from leadscore.features.contract import (
    CONDITION_SCORES,
    DEFAULT_ABSORPTION,
    DEFAULT_AVG_DOM,
    DEFAULT_BATHS,
    DEFAULT_BEDS,
    DEFAULT_COMP_DOM,
    DEFAULT_CONDITION,
    DEFAULT_INVENTORY,
    DEFAULT_MESSAGE_COUNT,
    DEFAULT_MONTH,
    DEFAULT_MOTIVATION,
    DEFAULT_NEGOTIATION,
    DEFAULT_PCS,
    DEFAULT_PRICE_TREND,
    DEFAULT_RESPONSE_SECONDS,
    DEFAULT_SCHOOL_RATING,
    DEFAULT_SQFT,
    DEFAULT_URGENCY,
    DEFAULT_WALKABILITY,
    MOTIVATION_SCORES,
    N_FEATURES,
    NOT_FINITE,
    SEASONAL_FACTORS,
    SEASONAL_OUT_OF_RANGE,
    URGENCY_SCORES,
    ExtractedFeatures,
    number_error,
)


def _clip(v: float) -> float:
    if v < 0.0:
        return 0.0
    if v > 1.0:
        return 1.0
    return v


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
                self.errors.append(FieldError(path, NOT_FINITE))
                return None
            if not math.isfinite(x):
                self.errors.append(FieldError(path, NOT_FINITE))
                return None
        else:
            problem = number_error(value)
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
    """docs/FEATURES.md for one lead (the `features` object of a scoring request).

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


