"""Short, salesperson-readable reasons for the top factors of a lead score.

``reason_for(name, value, contribution, features)`` returns one sentence about one feature.
When the request's raw ``features`` object is available the sentence uses the raw fields
("Listed 12 % above market value", "Replies within 30 minutes on average"); otherwise (a
``feature_vector`` request, or a raw field that is absent) it describes the normalised value,
inverting the docs/FEATURES.md formula where that is possible. The sign of ``contribution`` only
picks the wording of the few sentences that need it: whether the factor is listed under the
positive or the negative factors already tells the reader which way it pushed.

Never raises: an unexpected raw value falls back to the normalised description.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

Raw = Mapping[str, Any] | None

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def _is_mapping(node: Any) -> TypeGuard[Mapping[str, Any]]:
    """A JSON object: a dict in practice, so that is tested first (the ABC check of
    `Mapping` costs several times more, and every reason of an explained answer reads a few)."""
    return isinstance(node, dict | Mapping)


def _num(raw: Raw, section: str, *fields: str) -> float | None:
    """A finite number at ``raw[section][fields...]``, else None."""
    node: Any = raw.get(section) if raw is not None else None
    for name in fields:
        if not _is_mapping(node):
            return None
        node = node.get(name)
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    value = float(node)
    return value if math.isfinite(value) else None


def _text(raw: Raw, section: str, name: str) -> str | None:
    node = raw.get(section) if raw is not None else None
    if not _is_mapping(node):
        return None
    value = node.get(name)
    return value if isinstance(value, str) and value else None


def _list(raw: Raw, section: str, name: str) -> list[Any] | None:
    node = raw.get(section) if raw is not None else None
    if not _is_mapping(node):
        return None
    value = node.get(name)
    return value if isinstance(value, list) else None


def _level(value: float) -> str:
    if value >= 0.8:
        return "very high"
    if value >= 0.6:
        return "high"
    if value >= 0.4:
        return "moderate"
    if value >= 0.2:
        return "low"
    return "very low"


def _pct(x: float) -> str:
    return f"{abs(x) * 100:.0f} %"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} seconds"
    if seconds < 5400:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} hours".replace(".0 hours", " hours")
    return f"{seconds / 86400:.0f} days"


def _market_value(raw: Raw) -> float | None:
    for section, name in (
        ("property_data", "estimated_market_value"),
        ("market_data", "estimated_value"),
    ):
        value = _num(raw, section, name)
        if value is not None and value > 0:
            return value
    return None


def _versus_market(ratio: float) -> str:
    if abs(ratio - 1) < 0.005:
        return "Listed at market value"
    side = "above" if ratio > 1 else "below"
    return f"Listed {_pct(ratio - 1)} {side} market value"


def _comparable_prices(raw: Raw) -> list[float]:
    prices: list[float] = []
    for comp in _list(raw, "market_data", "comparables") or []:
        if _is_mapping(comp):
            price = comp.get("sale_price")
            if isinstance(price, int | float) and not isinstance(price, bool) and price > 0:
                prices.append(float(price))
    return prices


# -- one function per feature: (value, contribution, raw) -> sentence ----------------------------


def _commitment(v: float, c: float, raw: Raw) -> str:
    score = _num(raw, "psychology_profile", "psychological_commitment_score")
    shown = score if score is not None else v * 100
    return f"Commitment to selling is {_level(v)} ({shown:.0f}/100)"


_URGENCY = {0.2: "low", 0.5: "medium", 0.8: "high", 1.0: "critical"}


def _urgency(v: float, c: float, raw: Raw) -> str:
    level = _text(raw, "psychology_profile", "urgency_level")
    if level is None or level.lower() not in _URGENCY.values():
        level = min(_URGENCY.items(), key=lambda kv: abs(kv[0] - v))[1]
    return f"Seller's urgency is {level.lower()}"


_MOTIVATIONS = {
    "upsizing": "upsizing",
    "downsizing": "downsizing",
    "relocation": "a relocation",
    "financial": "financial pressure",
    "divorce": "a divorce",
    "estate": "an estate sale",
    "investment": "investment goals",
}


def _motivation(v: float, c: float, raw: Raw) -> str:
    kind = _text(raw, "psychology_profile", "motivation_type")
    if kind is not None and kind.lower() in _MOTIVATIONS:
        return f"Selling because of {_MOTIVATIONS[kind.lower()]}"
    return f"Motivation to sell is {_level(v)}"


def _negotiation(v: float, c: float, raw: Raw) -> str:
    if v >= 0.6:
        return f"Open to negotiating on price ({v * 100:.0f} % flexible)"
    if v <= 0.4:
        return f"Little room to negotiate on price ({v * 100:.0f} % flexible)"
    return f"Somewhat open to negotiating ({v * 100:.0f} % flexible)"


def _engagement(v: float, c: float, raw: Raw) -> str:
    reply = _num(raw, "conversation_data", "avg_response_time_seconds")
    count = _num(raw, "conversation_data", "message_count")
    if reply is not None:
        text = f"Replies within {_duration(reply)} on average"
        if count is not None:
            text += f" over {count:.0f} messages"
        return text
    if count is not None:
        return f"{count:.0f} messages exchanged so far"
    return f"Engagement in the conversation is {_level(v)}"


def _list_price_ratio(v: float, c: float, raw: Raw) -> str:
    price = _num(raw, "property_data", "list_price")
    market = _market_value(raw)
    if price is not None and market is not None:
        return _versus_market(price / market)
    if raw is not None and market is None:
        return "No market value estimate given"
    if raw is not None and price is None:
        return "No list price given"
    return _versus_market(0.8 + 0.4 * v) if 0 < v < 1 else (
        "Listed 20 % or more above market value" if v >= 1 else
        "Listed 20 % or more below market value"
    )


def _price_drops(v: float, c: float, raw: Raw) -> str:
    drops = _list(raw, "property_data", "price_drops")
    if drops is not None:
        pct = [
            float(d["percentage"]) for d in drops
            if _is_mapping(d) and isinstance(d.get("percentage"), int | float)
        ]
        if not pct:
            return "No price reductions so far"
        times = "once" if len(pct) == 1 else f"{len(pct)} times"
        return f"Price cut {times}, {sum(pct):.0f} % in total"
    if v <= 0:
        return "No price reductions so far"
    total = "30 % or more" if v >= 1 else f"{v * 30:.0f} %"
    return f"Price reduced by {total} in total"


def _days_on_market(v: float, c: float, raw: Raw) -> str:
    days = _num(raw, "property_data", "days_on_market")
    typical = _num(raw, "market_data", "average_days_on_market")
    if days is not None:
        text = f"On the market for {days:.0f} days"
        return text + (f" (typical: {typical:.0f})" if typical else "")
    ratio = 3 * v
    if v >= 1:
        return "On the market at least 3× longer than typical"
    return f"On the market {ratio:.1f}× as long as typical homes"


def _competitiveness(v: float, c: float, raw: Raw) -> str:
    price = _num(raw, "property_data", "list_price")
    prices = sorted(_comparable_prices(raw))
    if price and prices:
        mid = len(prices) // 2
        median = prices[mid] if len(prices) % 2 else (prices[mid - 1] + prices[mid]) / 2
        diff = price / median - 1
        if abs(diff) < 0.005:
            return "Priced in line with comparable sales"
        side = "above" if diff > 0 else "below"
        return f"Priced {_pct(diff)} {side} comparable sales"
    if raw is not None and not prices:
        return "No priced comparable sales to compare with"
    if v >= 1:
        return "Priced in line with comparable sales"
    if v <= 0:
        return "Priced 20 % or more away from comparable sales"
    return f"Priced about {(1 - v) * 20:.0f} % away from comparable sales"


def _overpricing(v: float, c: float, raw: Raw) -> str:
    price = _num(raw, "property_data", "list_price")
    market = _market_value(raw)
    if price is not None and market is not None:
        ratio = price / market
        return f"Overpriced by {_pct(ratio - 1)} against market value" if ratio > 1 else (
            "Not priced above market value"
        )
    if v <= 0:
        return "Not priced above market value"
    return "Overpriced by 20 % or more" if v >= 1 else f"Overpriced by {v * 20:.0f} %"


def _inventory(v: float, c: float, raw: Raw) -> str:
    months = _num(raw, "market_data", "inventory_level")
    if months is None:
        months = 2 + 10 * (1 - v)
    kind = "a seller's market" if months < 4 else ("a buyer's market" if months > 7 else
                                                  "a balanced market")
    return f"{months:.1f} months of inventory: {kind}"


def _absorption(v: float, c: float, raw: Raw) -> str:
    rate = _num(raw, "market_data", "absorption_rate")
    if rate is None:
        rate = 0.05 + 0.25 * v
    return f"Homes are selling at {rate * 100:.0f} % of inventory per month"


def _trend(v: float, c: float, raw: Raw) -> str:
    pct = _num(raw, "market_data", "price_trend_pct")
    if pct is None:
        pct = 25 * v - 10
    if abs(pct) < 0.5:
        return "Local prices are flat year over year"
    side = "up" if pct > 0 else "down"
    return f"Local prices are {side} {abs(pct):.0f} % year over year"


def _season(v: float, c: float, raw: Raw) -> str:
    month = _num(raw, "market_data", "current_month")
    strength = "peak" if v >= 0.95 else ("a strong" if v >= 0.8 else (
        "an average" if v >= 0.6 else "a slow"))
    if month is not None and month.is_integer() and 0 <= month <= 11:
        return f"{MONTHS[int(month)]} is {strength} selling season"
    return f"It is {strength} selling season"


def _appeal(v: float, c: float, raw: Raw) -> str:
    beds = _num(raw, "property_data", "beds")
    baths = _num(raw, "property_data", "baths")
    sqft = _num(raw, "property_data", "sqft")
    appeal = "broad" if v >= 0.75 else ("average" if v >= 0.5 else "narrow")
    if beds is not None or baths is not None or sqft is not None:
        parts = []
        if beds is not None:
            parts.append(f"{beds:g} bd")
        if baths is not None:
            parts.append(f"{baths:g} ba")
        if sqft is not None:
            parts.append(f"{sqft:,.0f} sq ft")
        return f"{' / '.join(parts)}: {appeal} buyer appeal"
    return f"The home's size and layout have {appeal} buyer appeal"


_CONDITIONS = {
    1.0: "excellent", 0.9: "move-in ready", 0.8: "good", 0.6: "fair",
    0.4: "needs work", 0.3: "a fixer-upper", 0.2: "poor",
}  # fmt: skip


def _condition(v: float, c: float, raw: Raw) -> str:
    cond = _text(raw, "property_data", "condition")
    if cond is not None:
        label = cond.lower().replace("_", " ").replace("move in", "move-in")
        label = "a fixer-upper" if label == "fixer upper" else label
        return f"Property condition: {label}"
    nearest = min(_CONDITIONS.items(), key=lambda kv: abs(kv[0] - v))[1]
    return f"Property condition: {nearest}"


def _location(v: float, c: float, raw: Raw) -> str:
    school = _num(raw, "property_data", "location", "school_rating")
    walk = _num(raw, "property_data", "location", "walkability_score")
    if school is not None and walk is not None:
        return f"Schools rated {school:g}/10, walkability {walk:.0f}/100"
    if school is not None:
        return f"Schools rated {school:g}/10"
    if walk is not None:
        return f"Walkability {walk:.0f}/100"
    return f"Location desirability is {_level(v)}"


def _comp_count(v: float, c: float, raw: Raw) -> str:
    comps = _list(raw, "market_data", "comparables")
    if comps is not None or raw is not None:
        n = len(comps or [])
        if n == 0:
            return "No comparable sales to price against"
        return f"{n} comparable sale{'s' if n != 1 else ''} on record"
    if v >= 1:
        return "20 or more comparable sales on record"
    return f"About {v * 20:.0f} comparable sales on record"


def _comp_variance(v: float, c: float, raw: Raw) -> str:
    prices = _comparable_prices(raw)
    if len(prices) >= 2:
        mean = sum(prices) / len(prices)
        cv = math.sqrt(sum((p - mean) ** 2 for p in prices) / len(prices)) / mean
    elif raw is not None:
        return "Too few comparable sales to judge price spread"
    else:
        cv = 0.3 * (1 - v)
    spread = "consistent" if cv < 0.05 else ("somewhat varied" if cv < 0.15 else "widely varied")
    return f"Comparable sale prices are {spread} (±{cv * 100:.0f} %)"


def _comp_time(v: float, c: float, raw: Raw) -> str:
    comps = _list(raw, "market_data", "comparables")
    if comps:
        days = []
        for comp in comps:
            dom = comp.get("days_on_market") if _is_mapping(comp) else None
            ok = isinstance(dom, int | float) and not isinstance(dom, bool)
            days.append(float(dom) if ok else 30.0)  # type: ignore[arg-type]
        return f"Comparable homes sold in {sum(days) / len(days):.0f} days on average"
    if raw is not None:
        return "No comparable sales to time the market"
    return f"Comparable homes sold in about {120 * (1 - v):.0f} days on average"


_REASONS: dict[str, Callable[[float, float, Raw], str]] = {
    "psychological_commitment_score": _commitment,
    "urgency_score": _urgency,
    "motivation_intensity": _motivation,
    "negotiation_flexibility": _negotiation,
    "communication_engagement": _engagement,
    "list_price_ratio": _list_price_ratio,
    "price_reduction_history": _price_drops,
    "days_on_market_ratio": _days_on_market,
    "price_competitiveness": _competitiveness,
    "overpricing_penalty": _overpricing,
    "inventory_pressure": _inventory,
    "absorption_rate": _absorption,
    "price_trend_momentum": _trend,
    "seasonal_factor": _season,
    "property_appeal_score": _appeal,
    "condition_score": _condition,
    "location_desirability": _location,
    "comp_count_confidence": _comp_count,
    "comp_price_variance": _comp_variance,
    "comp_market_time": _comp_time,
}


def reason_for(
    feature_name: str,
    raw_value: float,
    contribution: float,
    features_request: Mapping[str, Any] | None = None,
) -> str:
    """One sentence about one feature. ``raw_value`` is the extracted (normalised) value."""
    fn = _REASONS.get(feature_name)
    if fn is None:
        return f"{feature_name.replace('_', ' ').capitalize()} is {raw_value:.2f}"
    try:
        return fn(float(raw_value), float(contribution), features_request)
    except Exception:
        try:
            return fn(float(raw_value), float(contribution), None)
        except Exception:
            return f"{feature_name.replace('_', ' ').capitalize()} is {raw_value:.2f}"
