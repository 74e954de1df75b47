"""Synthetic real-estate seller leads with a hidden, documented conversion probability.

Each lead is a scoring request in the nested shape of docs/FEATURES.md ("Raw fields"), plus
`contact_id`, `converted` (0/1) and `true_probability`. The data feeds the demo, the tests
and the benchmarks; `true_probability` lets training report how close a model gets to the
Bayes limit (the best any model could do on these rows).

How a lead is drawn (all amounts realistic for US residential listings):

- property: list price log-normal around $450k, clipped to $150k–$2M; market value =
  list price / (1 + o) with overpricing o ~ N(0.03, 0.07); beds 1–6, baths 1–4.5, sqft from
  beds; condition, school rating, walkability; days on market ~ Gamma, longer when
  overpriced; 0–3 price drops (more likely after long exposure), each 1–8 %.
- market: average days on market 18–70, months of inventory 1–12, absorption 0.05–0.35,
  year-over-year price trend −8…+12 %, month 0–11; 0–20 comparables priced around the market
  value with a lead-specific spread (3–15 %), each with its own days on market.
- psychology: commitment score (Beta, 0–100), urgency, motivation, flexibility (Beta).
- conversation: message count (negative binomial, higher for committed sellers) and average
  response time (log-normal, faster for committed sellers).

Missing data and noise (what real CRM exports look like): a whole `psychology_profile` is
absent in 4 % of leads, `conversation_data` in 6 %; `market_data.estimated_value` is absent in
15 % (then `property_data.estimated_market_value` carries it in half of those, otherwise the
extractor falls back to the list price); no comparables in 5 %; `condition`, `location`,
`beds/baths/sqft`, `motivation_type` and `urgency_level` are each absent in 2–5 %; 1 % of
urgency values are an unknown category ("unsure"). Everything observable is itself noisy
(comparable spread, response times, ...).

The latent model (`latent_logit`) is computed from the lead *as delivered*, with the
docs/FEATURES.md defaults for absent fields, so `true_probability` is exactly
P(converted = 1 | the lead's raw fields): the Bayes-optimal score. With

    pcs  = commitment/100 (0.5 absent)      u = urgency (low .2, medium .5, high .8, critical 1)
    mot  = motivation intensity (docs/FEATURES.md #2 map, 0.5 otherwise)
    flex = negotiation flexibility (0.5 absent)
    eng  = (min(messages/50, 1) + 1 − min(response_seconds/3600, 1)) / 2   (0.5 absent)
    lr   = ln(list_price / market_value)    (0 when no market value)
    drop = min(sum of price-drop percentages, 30) / 30
    domr = min(days_on_market / average_days_on_market, 3)
    inv  = months of inventory, capped to [2, 12]
    sea  = seasonal factor of the month (docs/FEATURES.md #13)
    cond = condition score (docs/FEATURES.md #15)
    loc  = location desirability (docs/FEATURES.md #16)
    cdom = mean comparable days on market / 120, capped to 1 (0.3 without comparables)

the logit is

    z = −1.9
        + 4.5·(pcs − 0.5) + 2.7·(u − 0.5) + 2.1·(mot − 0.65) + 1.5·(flex − 0.5)
        + 3.3·(eng − 0.5)
        − 10.5·max(lr, 0) + 3.0·min(max(−lr, 0), 0.15)
        + 1.8·drop − 0.7·(domr − 1)
        − 0.18·(inv − 6) + 1.8·(sea − 0.75) + 1.35·(cond − 0.6) + 1.2·(loc − 0.5)
        − 1.2·(cdom − 0.3)
        + 6.0·(pcs − 0.5)·(u − 0.5)                (committed *and* urgent sellers convert)
        + 9.0·max(lr, 0)·(flex − 0.3)              (flexible sellers forgive their overpricing)
        + 3.75·(eng − 0.5)·(pcs − 0.5)

    true_probability = sigmoid(z),   converted ~ Bernoulli(true_probability)

which gives a conversion rate near 18 % and a Bayes AUC near 0.885: smooth, with moderate
interactions, learnable from the 20 features but not by a linear model alone.

CLI:
    python training/generate_leads.py --rows N --seed S --format csv|jsonl --output PATH
CSV = the 20 feature columns (via leadscore.features) + converted + true_probability;
JSONL = the raw leads with contact_id, converted and true_probability.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from leadscore.features import FEATURE_NAMES, extract_features
from leadscore.features.contract import (
    CONDITION_SCORES,
    MOTIVATION_SCORES,
    SEASONAL_FACTORS,
    URGENCY_SCORES,
)

# The category scores are the extractor's own tables (one copy of every rule).
URGENCY = URGENCY_SCORES
MOTIVATION = MOTIVATION_SCORES
CONDITION = CONDITION_SCORES
SEASONAL = SEASONAL_FACTORS

INTERCEPT = -1.9


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _section(lead: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    value = lead.get(name)
    return value if isinstance(value, Mapping) else None


def _num(section: Mapping[str, Any] | None, key: str, default: float) -> float:
    if section is None:
        return default
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def latent_logit(lead: Mapping[str, Any]) -> float:
    """The documented latent logit (module docstring) of one raw lead as delivered."""
    prop = _section(lead, "property_data")
    market = _section(lead, "market_data")
    psych = _section(lead, "psychology_profile")
    conv = _section(lead, "conversation_data")

    pcs = _num(psych, "psychological_commitment_score", 50.0) / 100.0
    u = URGENCY.get(str(psych.get("urgency_level")) if psych else "", 0.5)
    mot = MOTIVATION.get(str(psych.get("motivation_type")) if psych else "", 0.5)
    flex = _num(psych, "negotiation_flexibility", 0.5)
    if conv is None:
        eng = 0.5
    else:
        msgs = _num(conv, "message_count", 0.0)
        resp = _num(conv, "avg_response_time_seconds", 3600.0)
        eng = (min(msgs / 50.0, 1.0) + 1.0 - min(resp / 3600.0, 1.0)) / 2.0

    list_price = _num(prop, "list_price", 0.0)
    market_value = _num(prop, "estimated_market_value", 0.0)
    if market_value <= 0:
        market_value = _num(market, "estimated_value", 0.0)
    lr = math.log(list_price / market_value) if list_price > 0 and market_value > 0 else 0.0
    drops = prop.get("price_drops", []) if prop else []
    drop_total = sum(float(d.get("percentage", 0.0)) for d in drops) if drops else 0.0
    drop = min(drop_total, 30.0) / 30.0
    avg_dom = _num(market, "average_days_on_market", 30.0)
    domr = min(_num(prop, "days_on_market", 0.0) / avg_dom, 3.0)
    inv = min(max(_num(market, "inventory_level", 6.0), 2.0), 12.0)
    month = int(_num(market, "current_month", 5.0))
    sea = SEASONAL[month] if 0 <= month <= 11 else 0.7
    cond = CONDITION.get(str(prop.get("condition")) if prop else "", 0.6)
    location = prop.get("location") if prop else None
    location = location if isinstance(location, Mapping) else None
    loc = (
        _num(location, "school_rating", 5.0) / 10.0
        + _num(location, "walkability_score", 50.0) / 100.0
    ) / 2.0
    comps = market.get("comparables", []) if market else []
    if comps:
        cdom = min(
            sum(float(c.get("days_on_market", 30.0)) for c in comps) / len(comps) / 120.0, 1.0
        )
    else:
        cdom = 0.3

    over = max(lr, 0.0)
    under = min(max(-lr, 0.0), 0.15)
    return (
        INTERCEPT
        + 4.5 * (pcs - 0.5)
        + 2.7 * (u - 0.5)
        + 2.1 * (mot - 0.65)
        + 1.5 * (flex - 0.5)
        + 3.3 * (eng - 0.5)
        - 10.5 * over
        + 3.0 * under
        + 1.8 * drop
        - 0.7 * (domr - 1.0)
        - 0.18 * (inv - 6.0)
        + 1.8 * (sea - 0.75)
        + 1.35 * (cond - 0.6)
        + 1.2 * (loc - 0.5)
        - 1.2 * (cdom - 0.3)
        + 6.0 * (pcs - 0.5) * (u - 0.5)
        + 9.0 * over * (flex - 0.3)
        + 3.75 * (eng - 0.5) * (pcs - 0.5)
    )


def true_probability(lead: Mapping[str, Any]) -> float:
    """P(converted = 1 | lead) under the latent model."""
    return _sigmoid(latent_logit(lead))


def _one_lead(rng: np.random.Generator, index: int) -> dict[str, Any]:
    # --- property
    list_price = float(np.clip(rng.lognormal(math.log(450_000), 0.55), 150_000, 2_000_000))
    list_price = round(list_price / 1000) * 1000
    overpricing = rng.normal(0.03, 0.07)
    market_value = round(list_price / (1.0 + overpricing) / 1000) * 1000
    beds = int(rng.choice([1, 2, 3, 4, 5, 6], p=[0.05, 0.17, 0.38, 0.27, 0.10, 0.03]))
    baths = float(np.clip(round((beds * 0.6 + rng.normal(0.4, 0.5)) * 2) / 2, 1.0, 4.5))
    sqft = int(np.clip(rng.normal(550 * beds + 300, 250), 450, 6500))
    condition = str(
        rng.choice(
            list(CONDITION), p=[0.10, 0.15, 0.30, 0.22, 0.12, 0.07, 0.04]
        )
    )
    location = {
        "school_rating": round(float(np.clip(rng.normal(6.2, 1.8), 1, 10)), 1),
        "walkability_score": int(np.clip(rng.normal(55, 20), 0, 100)),
    }
    avg_dom = float(round(rng.uniform(18, 70)))
    dom = int(rng.gamma(2.0, avg_dom / 2.0 * (1.0 + 4.0 * max(overpricing, 0.0))))
    n_drops = int(rng.poisson(0.2 + 0.6 * min(dom / avg_dom, 3.0)))
    n_drops = min(n_drops, 3)
    price_drops = [{"percentage": round(float(rng.uniform(1, 8)), 1)} for _ in range(n_drops)]

    prop: dict[str, Any] = {
        "list_price": list_price,
        "beds": beds,
        "baths": baths,
        "sqft": sqft,
        "condition": condition,
        "days_on_market": dom,
        "price_drops": price_drops,
        "location": location,
    }

    # --- market
    spread = rng.uniform(0.03, 0.15)
    n_comps = 0 if rng.random() < 0.05 else int(rng.integers(1, 21))
    comps = [
        {
            "sale_price": round(market_value * (1.0 + rng.normal(0.0, spread)) / 1000) * 1000,
            "days_on_market": int(rng.gamma(2.0, avg_dom / 2.0)) + 1,
        }
        for _ in range(n_comps)
    ]
    market: dict[str, Any] = {
        "estimated_value": market_value,
        "average_days_on_market": avg_dom,
        "inventory_level": round(float(rng.uniform(1.0, 12.0)), 1),
        "absorption_rate": round(float(rng.uniform(0.05, 0.35)), 3),
        "price_trend_pct": round(float(rng.normal(3.0, 4.5)), 1),
        "current_month": int(rng.integers(0, 12)),
        "comparables": comps,
    }

    # --- psychology
    pcs = float(rng.beta(2.2, 2.2) * 100)
    urgency = str(rng.choice(list(URGENCY), p=[0.30, 0.38, 0.22, 0.10]))
    motivation = str(rng.choice(list(MOTIVATION)))
    psych: dict[str, Any] = {
        "psychological_commitment_score": round(pcs, 1),
        "urgency_level": urgency,
        "motivation_type": motivation,
        "negotiation_flexibility": round(float(rng.beta(2.0, 2.0)), 3),
    }

    # --- conversation (committed sellers talk more and answer faster)
    mean_msgs = 4.0 + 30.0 * (pcs / 100.0) ** 1.5
    messages = int(rng.negative_binomial(3, 3 / (3 + mean_msgs)))
    response = float(rng.lognormal(math.log(600 + 4000 * (1 - pcs / 100.0)), 0.7))
    conv: dict[str, Any] = {
        "message_count": messages,
        "avg_response_time_seconds": round(response),
    }

    # --- missing data
    if rng.random() < 0.15:
        del market["estimated_value"]
        if rng.random() < 0.5:
            prop["estimated_market_value"] = market_value
    for key, rate in (("condition", 0.04), ("location", 0.05)):
        if rng.random() < rate:
            del prop[key]
    if rng.random() < 0.03:
        for key in ("beds", "baths", "sqft"):
            del prop[key]
    if rng.random() < 0.05:
        del psych["motivation_type"]
    u_draw = rng.random()
    if u_draw < 0.02:
        del psych["urgency_level"]
    elif u_draw < 0.03:
        psych["urgency_level"] = "unsure"

    lead: dict[str, Any] = {
        "contact_id": f"lead_{index:07d}",
        "property_data": prop,
        "market_data": market,
    }
    if rng.random() >= 0.04:
        lead["psychology_profile"] = psych
    if rng.random() >= 0.06:
        lead["conversation_data"] = conv
    return lead


def generate_leads(n: int, seed: int) -> list[dict[str, Any]]:
    """`n` raw leads, deterministic for a given seed, each with converted/true_probability."""
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = np.random.default_rng(seed)
    leads = []
    for i in range(n):
        lead = _one_lead(rng, i)
        p = true_probability(lead)
        lead["true_probability"] = round(p, 6)
        lead["converted"] = int(rng.random() < p)
        leads.append(lead)
    return leads


def request_part(lead: Mapping[str, Any]) -> dict[str, Any]:
    """The `features` object of a scoring request (the lead without its labels and id)."""
    return {
        k: v
        for k, v in lead.items()
        if k not in ("contact_id", "converted", "true_probability")
    }


def to_feature_frame(leads: Iterable[Mapping[str, Any]]) -> list[dict[str, float]]:
    """One row per lead: the 20 features (via leadscore.features) + converted + true_probability."""
    rows: list[dict[str, float]] = []
    for lead in leads:
        values = extract_features(request_part(lead)).values
        row = {name: float(v) for name, v in zip(FEATURE_NAMES, values, strict=True)}
        row["converted"] = float(lead["converted"])
        row["true_probability"] = float(lead["true_probability"])
        rows.append(row)
    return rows


CSV_COLUMNS: tuple[str, ...] = (*FEATURE_NAMES, "converted", "true_probability")


def write_csv(rows: Sequence[Mapping[str, float]], path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow(
                [
                    int(row[c]) if c == "converted" else repr(float(row[c]))
                    for c in CSV_COLUMNS
                ]
            )


def write_jsonl(leads: Sequence[Mapping[str, Any]], path: Path) -> None:
    with path.open("w") as fh:
        for lead in leads:
            fh.write(json.dumps(lead, separators=(",", ":")) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    leads = generate_leads(args.rows, args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "csv":
        write_csv(to_feature_frame(leads), args.output)
    else:
        write_jsonl(leads, args.output)
    rate = sum(int(lead["converted"]) for lead in leads) / max(len(leads), 1)
    print(f"wrote {len(leads)} leads to {args.output} (conversion rate {rate:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
