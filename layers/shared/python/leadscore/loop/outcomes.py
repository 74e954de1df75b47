"""HighLevel opportunity events (and an optional outcome tag) -> per-contact outcome records.

Which statuses, stages and tags count as converted or lost is configurable per location
(``OutcomeRules``; setting ``OUTCOME_RULES``). An outcome record carries two times:
``occurred_at`` (when it happened: the event's ``timestamp``) and ``received_at`` (when we
learned it). Labelling orders outcomes by ``occurred_at``, so deliveries that arrive late or
out of order change nothing; ``received_at`` decides which export first sees an outcome.

``converted`` is 1 (won), 0 (lost / abandoned) or None: a status back to ``open`` re-opens the
deal and cancels an earlier terminal outcome of that opportunity; ``OpportunityDelete``
withdraws it the same way (a deleted deal labels nothing).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from leadscore.columns.labels import LabelRule
from leadscore.loop.records import (
    OUTCOME,
    SCHEMA_VERSION,
    day,
    iso_ms,
    record_id,
)

OPPORTUNITY_EVENTS = frozenset(
    {"OpportunityCreate", "OpportunityStatusUpdate", "OpportunityStageUpdate"}
)
OPPORTUNITY_DELETE = "OpportunityDelete"
TAG_EVENTS = frozenset({"ContactTagUpdate", "ContactUpdate", "ContactCreate"})
OPEN = "open"
BACKFILL_EVENT = "backfill"


class OutcomeRulesError(ValueError):
    """OUTCOME_RULES is present but unusable."""


@dataclass(frozen=True)
class OutcomeRules:
    """What counts as converted / lost in one location."""

    converted_statuses: frozenset[str] = frozenset({"won"})
    lost_statuses: frozenset[str] = frozenset({"lost", "abandoned"})
    converted_stages: frozenset[str] = frozenset()
    lost_stages: frozenset[str] = frozenset()
    converted_tags: frozenset[str] = frozenset()
    lost_tags: frozenset[str] = frozenset()

    def status_outcome(self, status: str) -> int | None:
        if self.converted_statuses and self.lost_statuses:
            # the one label parser, as --positive/--negative: any other status is unresolved
            return LabelRule.of(self.converted_statuses, self.lost_statuses).label(status)
        if status in self.converted_statuses:
            return 1
        if status in self.lost_statuses:
            return 0
        return None

    def stage_outcome(self, stage_id: str) -> int | None:
        if stage_id in self.converted_stages:
            return 1
        if stage_id in self.lost_stages:
            return 0
        return None


_RULE_KEYS = (
    "converted_statuses",
    "lost_statuses",
    "converted_stages",
    "lost_stages",
    "converted_tags",
    "lost_tags",
)


def _rules(value: Any, where: str) -> OutcomeRules:
    if not isinstance(value, Mapping):
        raise OutcomeRulesError(f"OUTCOME_RULES[{where!r}] must be an object")
    unknown = sorted(set(value) - set(_RULE_KEYS))
    if unknown:
        raise OutcomeRulesError(f"OUTCOME_RULES[{where!r}]: unknown keys {unknown}")
    kwargs: dict[str, frozenset[str]] = {}
    for key in _RULE_KEYS:
        if key not in value:
            continue
        items = value[key]
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise OutcomeRulesError(f"OUTCOME_RULES[{where!r}].{key} must be a list of strings")
        kwargs[key] = frozenset(i.lower() if key.endswith("statuses") else i for i in items)
    rules = OutcomeRules(**kwargs)
    if rules.converted_statuses & rules.lost_statuses or rules.converted_stages & rules.lost_stages:
        raise OutcomeRulesError(f"OUTCOME_RULES[{where!r}]: a value is both converted and lost")
    return rules


@dataclass(frozen=True)
class OutcomeRuleBook:
    """Rules per location; ``"*"`` (or the defaults) for every other location."""

    by_location: Mapping[str, OutcomeRules] = field(default_factory=dict)
    default: OutcomeRules = field(default_factory=OutcomeRules)

    def for_location(self, location_id: str) -> OutcomeRules:
        return self.by_location.get(location_id, self.default)

    @classmethod
    def parse(cls, raw: str) -> OutcomeRuleBook:
        """``{"<locationId>" | "*": {"converted_statuses": [...], ...}}``; empty -> defaults."""
        if not raw.strip():
            return cls()
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise OutcomeRulesError("OUTCOME_RULES must be a JSON object") from exc
        if not isinstance(value, Mapping):
            raise OutcomeRulesError("OUTCOME_RULES must be a JSON object")
        default = _rules(value["*"], "*") if "*" in value else OutcomeRules()
        per = {str(k): _rules(v, str(k)) for k, v in value.items() if k != "*"}
        return cls(per, default)


def _fields(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """Event fields flat beside ``type`` (reference pages) or under ``data`` (the guide)."""
    data = payload.get("data")
    if isinstance(data, Mapping):
        return {**payload, **data}
    return payload


def _text(value: Any) -> str:
    if value is None or isinstance(value, dict | list | bool):
        return ""
    return str(value).strip()


def _outcome(
    *,
    location_id: str,
    contact_id: str,
    opportunity_id: str,
    event_type: str,
    status: str,
    pipeline_id: str,
    stage_id: str,
    converted: int | None,
    occurred_at_ms: int,
    received_at_ms: int,
    point_in_time: bool = True,
) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "record_type": OUTCOME,
        "outcome_id": record_id(
            OUTCOME, location_id, contact_id, opportunity_id, event_type, status, stage_id,
            converted, occurred_at_ms,
        ),
        "location_id": location_id,
        "contact_id": contact_id,
        "opportunity_id": opportunity_id,
        "event_type": event_type,
        "status": status,
        "pipeline_id": pipeline_id,
        "stage_id": stage_id,
        "converted": converted,
        "occurred_at": iso_ms(occurred_at_ms),
        "occurred_at_ms": occurred_at_ms,
        "received_at": iso_ms(received_at_ms),
        "received_at_ms": received_at_ms,
        "dt": day(received_at_ms),
        "point_in_time": point_in_time,
    }


def outcomes_from_event(
    payload: Mapping[str, Any],
    rules: OutcomeRuleBook,
    *,
    occurred_at_ms: int,
    received_at_ms: int,
) -> list[dict[str, Any]]:
    """The outcome records one verified HighLevel event yields (often none).

    ``occurred_at_ms`` is the event's own time (its ``timestamp``; the caller parses it and
    falls back to ``received_at_ms``).
    """
    fields = _fields(payload)
    event_type = _text(fields.get("type"))
    location_id = _text(fields.get("locationId"))
    if not location_id:
        return []
    book = rules.for_location(location_id)
    if event_type == OPPORTUNITY_DELETE:
        contact_id = _text(fields.get("contactId"))
        if not contact_id:
            return []
        return [_outcome(location_id=location_id, contact_id=contact_id,
                         opportunity_id=_text(fields.get("id")), event_type=event_type,
                         status="deleted", pipeline_id=_text(fields.get("pipelineId")),
                         stage_id=_text(fields.get("pipelineStageId")), converted=None,
                         occurred_at_ms=occurred_at_ms, received_at_ms=received_at_ms)]
    if event_type in OPPORTUNITY_EVENTS:
        contact_id = _text(fields.get("contactId"))
        if not contact_id:
            return []
        status = _text(fields.get("status")).lower()
        stage_id = _text(fields.get("pipelineStageId"))
        converted = book.stage_outcome(stage_id) if stage_id else None
        if converted is None:
            converted = book.status_outcome(status)
        reopened = event_type == "OpportunityStatusUpdate" and status == OPEN
        if converted is None and not reopened:
            return []  # an open deal moving between ordinary stages: no outcome yet
        return [
            _outcome(
                location_id=location_id,
                contact_id=contact_id,
                opportunity_id=_text(fields.get("id")),
                event_type=event_type,
                status=status,
                pipeline_id=_text(fields.get("pipelineId")),
                stage_id=stage_id,
                converted=converted,
                occurred_at_ms=occurred_at_ms,
                received_at_ms=received_at_ms,
            )
        ]
    if event_type in TAG_EVENTS and (book.converted_tags or book.lost_tags):
        contact_id = _text(fields.get("id") or fields.get("contactId"))
        tags = fields.get("tags")
        if not contact_id or not isinstance(tags, list):
            return []
        present = {t for t in tags if isinstance(t, str)}
        out = []
        for tag in sorted(present & (book.converted_tags | book.lost_tags)):
            out.append(
                _outcome(
                    location_id=location_id,
                    contact_id=contact_id,
                    opportunity_id=f"tag:{tag}",
                    event_type=event_type,
                    status="tag",
                    pipeline_id="",
                    stage_id="",
                    converted=1 if tag in book.converted_tags else 0,
                    occurred_at_ms=occurred_at_ms,
                    received_at_ms=received_at_ms,
                )
            )
        return out
    return []


def outcomes_from_opportunities(
    location_id: str,
    opportunities: Iterable[Mapping[str, Any]],
    rules: OutcomeRuleBook,
    *,
    received_at_ms: int,
    occurred_at_ms_of: Any,
) -> list[dict[str, Any]]:
    """Historical opportunities (``GET /opportunities/search``) -> outcome records for the
    backfill's ``--outcomes`` import. ``occurred_at_ms_of(opportunity)`` says when it closed."""
    book = rules.for_location(location_id)
    out = []
    for opp in opportunities:
        contact_id = _text(opp.get("contactId") or (opp.get("contact") or {}).get("id"))
        status = _text(opp.get("status")).lower()
        stage_id = _text(opp.get("pipelineStageId"))
        converted = book.stage_outcome(stage_id) if stage_id else None
        if converted is None:
            converted = book.status_outcome(status)
        if not contact_id or converted is None:
            continue
        out.append(
            _outcome(
                location_id=location_id,
                contact_id=contact_id,
                opportunity_id=_text(opp.get("id")),
                event_type=BACKFILL_EVENT,
                status=status,
                pipeline_id=_text(opp.get("pipelineId")),
                stage_id=stage_id,
                converted=converted,
                occurred_at_ms=int(occurred_at_ms_of(opp)),
                received_at_ms=received_at_ms,
                point_in_time=False,
            )
        )
    return out
