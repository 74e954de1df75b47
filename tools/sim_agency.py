"""The simulated agency of `make simulate`: who the contacts are, what HighLevel would send
about them and when, and the truth the served models are judged against.

Every contact is a lead of training/generate_leads.py. What the service can see of it is
its custom fields (HighLevel has no message history before the app is installed: existing
contacts have no conversation data) and, for contacts created after the install, the message
webhooks that build its engagement counters. Its true conversion probability is recomputed
by the generator's own latent model on the lead *as the service sees it*, so
``true_probability`` stays the Bayes-optimal score of what is observable, and the outcome is
drawn from it once.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from generate_leads import generate_leads, true_probability
from leadscore.features import FLAT_FIELDS

#: HighLevel has no field for these: they come from message webhooks (or not at all).
ENGAGEMENT_FLAT = ("message_count", "avg_response_time_seconds")
CUSTOM_FLAT = tuple(k for k in FLAT_FIELDS if k not in ENGAGEMENT_FLAT)


@dataclass
class SimContact:
    location_id: str
    contact_id: str
    lead: dict[str, Any]  # the nested raw lead as the service will see it
    custom_values: dict[str, Any]  # flat name -> value as HighLevel stores it
    true_p: float
    converted: int
    created_week: int  # -1 = existed before the install
    resolve_at: float = 0.0  # sim seconds since the start; 0 = never within the simulation
    message_times: list[tuple[str, float]] = field(default_factory=list)  # (direction, t)


def _get(lead: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = lead
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def crm_value(value: Any) -> Any:
    """How HighLevel holds a value: numbers as text far more often than not, lists as is."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return str(value)
    return value


def custom_values(lead: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for flat in CUSTOM_FLAT:
        value = _get(lead, FLAT_FIELDS[flat])
        if value is not None:
            out[flat] = crm_value(value)
    return out


def observable(lead: Mapping[str, Any], conversation: Mapping[str, Any] | None) -> dict[str, Any]:
    """The lead reduced to what the service sees: custom fields + counters (if any)."""
    seen = {
        k: json.loads(json.dumps(v))
        for k, v in lead.items()
        if k in ("property_data", "market_data", "psychology_profile")
    }
    if conversation:
        seen["conversation_data"] = dict(conversation)
    return seen


@dataclass
class AgencyPlan:
    contacts: list[SimContact]
    bootstrap_leads: list[dict[str, Any]]


def _messages(
    rng: random.Random, lead: Mapping[str, Any], start: float, cap: int
) -> tuple[list[tuple[str, float]], dict[str, Any] | None]:
    """Outbound/inbound pairs reproducing (a capped) message count and the lead's response
    time; answers what the counters will then say."""
    conv = lead.get("conversation_data")
    if not isinstance(conv, Mapping):
        return [], None
    count = int(conv.get("message_count") or 0)
    count = min(count, cap)
    response = float(conv.get("avg_response_time_seconds") or 3600.0)
    times: list[tuple[str, float]] = []
    t = start
    for i in range(count):
        if i % 2 == 0:
            t += rng.uniform(3600, 6 * 3600)
            times.append(("outbound", t))
        else:
            t += response
            times.append(("inbound", t))
    responses = count // 2
    if count == 0:
        return [], None
    seen: dict[str, Any] = {"message_count": count}
    if responses:
        seen["avg_response_time_seconds"] = round(response, 3)
    return times, seen


def plan_agency(
    *,
    seed: int,
    location_ids: list[str],
    contacts_per_location: int,
    new_per_week: int,
    weeks: int,
    week_seconds: float,
    resolve_share: float,
    message_cap: int,
    bootstrap_rows: int,
    contact_id: Any,
) -> AgencyPlan:
    rng = random.Random(seed)  # noqa: S311 (a simulation, not a secret)
    n_new = new_per_week * weeks
    total = len(location_ids) * (contacts_per_location + n_new)
    leads = generate_leads(total, seed)
    contacts: list[SimContact] = []
    index = 0
    for location in location_ids:
        for k in range(contacts_per_location + n_new):
            raw = dict(leads[index])
            index += 1
            created_week = (
                -1 if k < contacts_per_location else (k - contacts_per_location) // new_per_week
            )
            start = (
                0.0
                if created_week < 0
                else created_week * week_seconds + rng.uniform(0, week_seconds * 0.5)
            )
            if created_week < 0:
                msgs, conversation = [], None
            else:
                msgs, conversation = _messages(rng, raw, start, message_cap)
            seen = observable(raw, conversation)
            p = true_probability(seen)
            converted = 1 if rng.random() < p else 0
            # resolution: 90 % of the contacts resolve at a uniform time between when they are
            # known and the end of the simulation (a steady flow of outcomes every week)
            ready = max(start, msgs[-1][1] if msgs else start) + 3600
            horizon = weeks * week_seconds
            resolve_at = rng.uniform(ready, horizon) if rng.random() < resolve_share else 0.0
            contacts.append(
                SimContact(
                    location_id=location,
                    contact_id=contact_id(),
                    lead=seen,
                    custom_values=custom_values(seen),
                    true_p=p,
                    converted=converted,
                    created_week=created_week,
                    resolve_at=resolve_at if resolve_at < horizon else 0.0,
                    message_times=msgs,
                )
            )
    # The team's first model: a small export of its own past leads (what the original system
    # asked every team to hand-build), seen as the service sees the CRM: no message history.
    bootstrap = []
    for raw in generate_leads(bootstrap_rows, seed + 1000):
        seen = observable(raw, None)
        bootstrap.append({**seen, "converted": 1 if rng.random() < true_probability(seen) else 0})
    return AgencyPlan(contacts, bootstrap)
