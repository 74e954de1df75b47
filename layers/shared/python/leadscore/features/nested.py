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
from dataclasses import dataclass
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

    __slots__ = ("errors", "max_items", "missing")

    def __init__(self, max_items: int | None = None) -> None:
        self.errors: list[FieldError] = []
        self.missing: list[str] = []
        self.max_items = max_items

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
        if self.max_items is not None and len(value) > self.max_items:
            # One error, items not walked: a list is where a small body multiplies an answer.
            self.errors.append(FieldError(
                path, f"must have at most {self.max_items} items (MAX_LIST_ITEMS), "
                      f"got {len(value)}"))
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


@dataclass(frozen=True, slots=True)
class _PropertyFacts:
    """What ``property_data`` says (None = absent), read and checked."""

    present: bool
    list_price: float | None
    estimated_market_value: float | None
    price_drops_total: float
    days_on_market: float | None
    beds: float | None
    baths: float | None
    sqft: float | None
    condition: float | None
    school_rating: float | None
    walkability: float | None


@dataclass(frozen=True, slots=True)
class _MarketFacts:
    """What ``market_data`` says (None = absent), read and checked."""

    estimated_value: float | None
    average_days_on_market: float | None
    inventory: float | None
    absorption: float | None
    price_trend: float | None
    month: float | None
    comparable_prices: list[float]  # priced comparables only (sale_price > 0)
    comparable_days_total: float
    comparable_count: int


def _read_property(reader: _Reader, section: Mapping[str, Any] | None) -> _PropertyFacts:
    prop = section if section is not None else _EMPTY
    track = section is not None
    list_price = reader.number(prop, "list_price", "property_data.list_price", track_missing=track)
    market_value = reader.number(
        prop, "estimated_market_value", "property_data.estimated_market_value", track_missing=False
    )
    drop_items = (
        reader.items(prop, "price_drops", "property_data.price_drops") if track else None
    )
    days = reader.number(
        prop, "days_on_market", "property_data.days_on_market", track_missing=track
    )
    beds = reader.number(prop, "beds", "property_data.beds", track_missing=track)
    baths = reader.number(prop, "baths", "property_data.baths", track_missing=track)
    sqft = reader.number(prop, "sqft", "property_data.sqft", track_missing=track)
    condition = (
        reader.category(prop, "condition", "property_data.condition", CONDITION_SCORES)
        if track
        else None
    )
    location_section = (
        reader.section(prop, "location", "property_data.location") if track else None
    )
    location = location_section if location_section is not None else _EMPTY
    location_track = location_section is not None
    school = reader.number(
        location,
        "school_rating",
        "property_data.location.school_rating",
        hi=10.0,
        track_missing=location_track,
    )
    walk = reader.number(
        location,
        "walkability_score",
        "property_data.location.walkability_score",
        hi=100.0,
        track_missing=location_track,
    )
    drops_total = 0.0
    for item_path, item in drop_items or ():
        percentage = reader.number(item, "percentage", item_path + ".percentage")
        if percentage is not None:
            drops_total += percentage
    return _PropertyFacts(track, list_price, market_value, drops_total, days, beds, baths, sqft,
                          condition, school, walk)


def _read_market(reader: _Reader, section: Mapping[str, Any] | None) -> _MarketFacts:
    market = section if section is not None else _EMPTY
    track = section is not None
    est_value = reader.number(
        market, "estimated_value", "market_data.estimated_value", track_missing=False
    )
    avg_dom = reader.number(
        market, "average_days_on_market", "market_data.average_days_on_market",
        track_missing=track,
    )
    if avg_dom is not None and avg_dom <= 0.0:
        reader.missing.append("market_data.average_days_on_market")
        avg_dom = None
    inventory = reader.number(
        market, "inventory_level", "market_data.inventory_level", track_missing=track
    )
    absorption = reader.number(
        market, "absorption_rate", "market_data.absorption_rate", track_missing=track
    )
    trend = reader.number(
        market, "price_trend_pct", "market_data.price_trend_pct", lo=None, track_missing=track
    )
    month = reader.number(
        market, "current_month", "market_data.current_month", lo=None, integer=True,
        track_missing=track,
    )
    comp_items = reader.items(market, "comparables", "market_data.comparables") if track else None

    prices: list[float] = []
    days_total = 0.0
    count = 0
    for item_path, item in comp_items or ():
        count += 1
        price = reader.number(item, "sale_price", item_path + ".sale_price")
        if price is not None and price > 0.0:
            prices.append(price)
        days = reader.number(item, "days_on_market", item_path + ".days_on_market")
        days_total += DEFAULT_COMP_DOM if days is None else days
    return _MarketFacts(est_value, avg_dom, inventory, absorption, trend, month, prices,
                        days_total, count)


def _psychology_features(
    reader: _Reader, psych: Mapping[str, Any] | None
) -> tuple[float, float, float, float]:
    """Features 0-3: commitment, urgency, motivation, flexibility."""
    if psych is None:
        return 0.5, DEFAULT_URGENCY, DEFAULT_MOTIVATION, 0.5
    commitment = reader.number(
        psych,
        "psychological_commitment_score",
        "psychology_profile.psychological_commitment_score",
        hi=100.0,
    )
    urgency = reader.category(
        psych, "urgency_level", "psychology_profile.urgency_level", URGENCY_SCORES
    )
    motivation = reader.category(
        psych, "motivation_type", "psychology_profile.motivation_type", MOTIVATION_SCORES
    )
    flexibility = reader.number(
        psych, "negotiation_flexibility", "psychology_profile.negotiation_flexibility", hi=1.0
    )
    return (
        _clip((DEFAULT_PCS if commitment is None else commitment) / 100.0),
        DEFAULT_URGENCY if urgency is None else urgency,
        DEFAULT_MOTIVATION if motivation is None else motivation,
        _clip(DEFAULT_NEGOTIATION if flexibility is None else flexibility),
    )


def _engagement_feature(reader: _Reader, conversation: Mapping[str, Any] | None) -> float:
    """Feature 4: communication engagement."""
    if conversation is None:
        return 0.5
    messages = reader.number(
        conversation, "message_count", "conversation_data.message_count", integer=True
    )
    response = reader.number(
        conversation, "avg_response_time_seconds", "conversation_data.avg_response_time_seconds"
    )
    message_count = DEFAULT_MESSAGE_COUNT if messages is None else messages
    response_seconds = DEFAULT_RESPONSE_SECONDS if response is None else response
    return (min(message_count / 50.0, 1.0) + 1.0 - min(response_seconds / 3600.0, 1.0)) / 2.0


def _pricing_features(
    reader: _Reader, prop: _PropertyFacts, market: _MarketFacts
) -> tuple[float, float, float, float, float]:
    """Features 5-9: list price ratio, price drops, days on market, competitiveness,
    overpricing."""
    list_price = 0.0 if prop.list_price is None else prop.list_price
    if prop.estimated_market_value is not None and prop.estimated_market_value > 0.0:
        market_value = prop.estimated_market_value
    elif market.estimated_value is not None and market.estimated_value > 0.0:
        market_value = market.estimated_value
    else:
        market_value = list_price
        if prop.present:
            reader.missing.append("property_data.estimated_market_value")
    if market_value > 0.0:
        ratio = list_price / market_value
        list_price_ratio = _clip((ratio - 0.8) / 0.4)
        overpricing = min((ratio - 1.0) * 5.0, 1.0) if ratio > 1.0 else 0.0
    else:
        list_price_ratio = 0.5
        overpricing = 0.0

    drops = _clip(prop.price_drops_total / 30.0)
    days = 0.0 if prop.days_on_market is None else prop.days_on_market
    average = DEFAULT_AVG_DOM if market.average_days_on_market is None else (
        market.average_days_on_market
    )
    days_ratio = _clip((days / average) / 3.0)

    if market.comparable_prices and list_price > 0.0:
        median = _median(sorted(market.comparable_prices))
        competitiveness = 1.0 - _clip(abs(list_price / median - 1.0) / 0.2)
    else:
        competitiveness = 0.5
    return list_price_ratio, drops, days_ratio, competitiveness, overpricing


def _market_features(
    reader: _Reader, market: _MarketFacts
) -> tuple[float, float, float, float]:
    """Features 10-13: inventory pressure, absorption, price trend, season."""
    inventory = DEFAULT_INVENTORY if market.inventory is None else market.inventory
    absorption = DEFAULT_ABSORPTION if market.absorption is None else market.absorption
    trend = DEFAULT_PRICE_TREND if market.price_trend is None else market.price_trend
    if market.month is None:
        season = SEASONAL_FACTORS[DEFAULT_MONTH]
    elif 0.0 <= market.month <= 11.0:
        season = SEASONAL_FACTORS[int(market.month)]
    else:
        season = SEASONAL_OUT_OF_RANGE
        reader.missing.append("market_data.current_month")
    return (
        1.0 - _clip((inventory - 2.0) / 10.0),
        _clip((absorption - 0.05) / 0.25),
        _clip((trend + 10.0) / 25.0),
        season,
    )


def _property_features(prop: _PropertyFacts) -> tuple[float, float, float]:
    """Features 14-16: appeal, condition, location."""
    beds = DEFAULT_BEDS if prop.beds is None else prop.beds
    baths = DEFAULT_BATHS if prop.baths is None else prop.baths
    sqft = DEFAULT_SQFT if prop.sqft is None else prop.sqft
    appeal = _clip(
        (
            (1.0 - abs(beds - 3.5) / 3.5)
            + (1.0 - abs(baths - 2.5) / 2.5)
            + (1.0 - abs(sqft - 2000.0) / 2000.0)
        )
        / 3.0
    )
    condition = DEFAULT_CONDITION if prop.condition is None else prop.condition
    school = DEFAULT_SCHOOL_RATING if prop.school_rating is None else prop.school_rating
    walk = DEFAULT_WALKABILITY if prop.walkability is None else prop.walkability
    return appeal, condition, _clip((school / 10.0 + walk / 100.0) / 2.0)


def _comparable_features(market: _MarketFacts) -> tuple[float, float, float]:
    """Features 17-19: comparable count, price variance, market time."""
    if market.comparable_count:
        count = min(market.comparable_count / 20.0, 1.0)
        market_time = 1.0 - _clip(
            (market.comparable_days_total / market.comparable_count) / 120.0
        )
    else:
        count = 0.5
        market_time = 0.5
    if len(market.comparable_prices) >= 2:
        variance = 1.0 - _clip(_coefficient_of_variation(market.comparable_prices) / 0.3)
    else:
        variance = 0.5
    return count, variance, market_time


def _extract_list(raw: Mapping[str, Any], reader: _Reader) -> list[float]:
    """The 20 values as a Python list; errors and missing paths go to `reader`.

    Two phases: read and check every section (every error is collected), then, only when
    nothing was wrong, compute the features group by group in FEATURE_NAMES order.
    """
    prop_section = reader.section(raw, "property_data", "property_data")
    market_section = reader.section(raw, "market_data", "market_data")
    psych_section = reader.section(raw, "psychology_profile", "psychology_profile")
    conversation_section = reader.section(raw, "conversation_data", "conversation_data")

    prop = _read_property(reader, prop_section)
    market = _read_market(reader, market_section)
    psychology = _psychology_features(reader, psych_section)
    engagement = _engagement_feature(reader, conversation_section)
    if reader.errors:  # values would be meaningless; the caller raises
        return []
    return [
        *psychology,
        engagement,
        *_pricing_features(reader, prop, market),
        *_market_features(reader, market),
        *_property_features(prop),
        *_comparable_features(market),
    ]


def _extract_row(raw: Any, max_list_items: int | None = None) -> tuple[list[float], list[str]]:
    if not isinstance(raw, Mapping):
        raise InvalidInput([FieldError("features", "must be an object")])
    reader = _Reader(max_list_items)
    row = _extract_list(raw, reader)
    if reader.errors:
        raise InvalidInput(reader.errors)
    return row, reader.missing


def extract_features(
    raw: Mapping[str, Any], *, max_list_items: int | None = None
) -> ExtractedFeatures:
    """docs/FEATURES.md for one lead (the `features` object of a scoring request).

    Raises `InvalidInput` naming every offending field path. `max_list_items` bounds
    ``comparables`` and ``price_drops`` (the API passes its MAX_LIST_ITEMS setting; training
    passes None: no bound).
    """
    row, missing = _extract_row(raw, max_list_items)
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


