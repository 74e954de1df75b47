"""Opportunity events -> outcome records; rules per location."""

from __future__ import annotations

import json

import pytest
from leadscore.loop.outcomes import OutcomeRuleBook, OutcomeRulesError, outcomes_from_event

from tests.loop.helpers import T0, status_event

RULES = OutcomeRuleBook.parse(
    json.dumps(
        {
            "*": {"converted_statuses": ["won"], "lost_statuses": ["lost", "abandoned"]},
            "locB": {
                "converted_stages": ["stage-closed"],
                "lost_stages": ["stage-dead"],
                "converted_tags": ["listing-signed"],
            },
        }
    )
)


def one(payload: dict, rules: OutcomeRuleBook = RULES) -> list[dict]:
    return outcomes_from_event(payload, rules, occurred_at_ms=T0, received_at_ms=T0 + 5)


@pytest.mark.parametrize(
    ("status", "converted"), [("won", 1), ("lost", 0), ("abandoned", 0), ("open", None)]
)
def test_status_updates(status: str, converted: int | None) -> None:
    [record] = one(status_event("c1", status))
    assert record["converted"] == converted
    assert record["occurred_at_ms"] == T0 and record["received_at_ms"] == T0 + 5
    assert record["contact_id"] == "c1" and record["opportunity_id"] == "opp1"


def test_stage_rules_are_per_location() -> None:
    stage = {
        "type": "OpportunityStageUpdate",
        "locationId": "locB",
        "id": "o1",
        "contactId": "c1",
        "status": "open",
        "pipelineStageId": "stage-closed",
    }
    assert one(stage)[0]["converted"] == 1
    assert one({**stage, "pipelineStageId": "stage-dead"})[0]["converted"] == 0
    assert one({**stage, "pipelineStageId": "stage-talking"}) == []  # an ordinary move
    assert one({**stage, "locationId": "locA"}) == []  # locA has no stage rules


def test_nested_data_envelope_and_missing_ids() -> None:
    nested = {"type": "OpportunityStatusUpdate", "data": {**status_event("c1", "won"), "type": "x"}}
    nested["data"].pop("type")
    assert one({**nested, "locationId": "loc1"})[0]["converted"] == 1
    assert one({**status_event("c1", "won"), "contactId": ""}) == []
    assert one({**status_event("c1", "won"), "locationId": ""}) == []


def test_outcome_tag() -> None:
    tagged = {
        "type": "ContactTagUpdate",
        "locationId": "locB",
        "id": "c7",
        "tags": ["vip", "listing-signed"],
    }
    [record] = one(tagged)
    assert record["converted"] == 1 and record["opportunity_id"] == "tag:listing-signed"
    assert one({**tagged, "tags": ["vip"]}) == []
    assert one({**tagged, "locationId": "locA"}) == []


def test_ids_are_deterministic() -> None:
    assert one(status_event("c1", "won")) == one(status_event("c1", "won"))


@pytest.mark.parametrize(
    "raw",
    [
        "[]",
        '{"*": []}',
        '{"x": {"won": ["a"]}}',
        '{"x": {"converted_statuses": "won"}}',
        '{"x": {"converted_statuses": ["won"], "lost_statuses": ["won"]}}',
        "not json",
    ],
)
def test_bad_rules_are_refused(raw: str) -> None:
    with pytest.raises(OutcomeRulesError):
        OutcomeRuleBook.parse(raw)
