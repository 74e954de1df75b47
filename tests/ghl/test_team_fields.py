"""A location's HighLevel fields map themselves to a team's schema: custom fields by fieldKey
or name, the standard contact attributes and the message counters as columns (the
spec-strict fake HighLevel answers the custom-fields calls; payloads are HighLevel's shape)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from leadscore.adapters.ghl_api import GhlApiClient
from leadscore.columns.schema import Schema
from leadscore.ghl.fields import column_sources
from leadscore.ghl.installations import Installation
from leadscore.ghl.lifecycle import discover_fields
from leadscore.ghl.payloads import parse_webhook
from leadscore.loop.engagement import Engagement, with_engagement

from tests.fixtures.fake_highlevel import FakeHighLevel
from tests.fixtures.ghl_payloads import contact_event

SCHEMA = Schema.from_dict({
    "target": "output", "positive": ["yes"],
    "columns": [
        {"name": "age", "kind": "numeric"},
        {"name": "job", "kind": "categorical", "categories": ["admin.", "technician"]},
        {"name": "marital_status", "kind": "categorical", "categories": ["married", "single"]},
        {"name": "balance", "kind": "numeric", "field_key": "contact.acct_balance"},
        {"name": "source", "kind": "categorical", "categories": ["web form"]},
        {"name": "tags", "kind": "categorical", "categories": ["buyer, hot"]},
        {"name": "date_added", "kind": "date", "as_of": "2026-11-30"},
        {"name": "dnd", "kind": "boolean"},
        {"name": "message_count", "kind": "numeric"},
        {"name": "pdays", "kind": "numeric"},
    ],
})


def test_discovery_maps_custom_fields_to_the_schema_by_key_or_name(
    fake_highlevel: FakeHighLevel,
) -> None:
    loc = fake_highlevel.add_location()
    token = fake_highlevel.add_pit(loc.id)
    age = fake_highlevel.add_field(loc.id, "Age", "NUMERICAL")  # contact.age: by both
    job = fake_highlevel.add_field(loc.id, "Occupation", "TEXT", field_key="contact.job")
    marital = fake_highlevel.add_field(loc.id, "Marital Status", "TEXT",
                                       field_key="contact.ms_2")  # renamed: by name
    balance = fake_highlevel.add_field(loc.id, "Account balance", "NUMERICAL",
                                       field_key="contact.acct_balance")  # the column's key
    spouse = fake_highlevel.add_field(loc.id, "Spouse Name", "TEXT")
    api = GhlApiClient(fake_highlevel.base_url, lambda: token)

    updated, unresolved = discover_fields(Installation(location_id=loc.id), api, schema=SCHEMA)
    assert unresolved == []
    mapped = {fid: updated.field_map[fid] for fid in (age.id, job.id, marital.id, balance.id)}
    assert mapped == {age.id: "age", job.id: "job", marital.id: "marital_status",
                      balance.id: "balance"}
    # a field no column names keeps its own name: a later schema with it finds it
    assert updated.field_map[spouse.id] == "spouse_name"
    assert updated.score_field_id not in updated.field_map
    assert column_sources(SCHEMA, updated.field_map) == {
        "age": age.id, "job": job.id, "marital_status": marital.id, "balance": balance.id,
        "source": "standard:source", "tags": "standard:tags",
        "date_added": "standard:dateAdded", "dnd": "standard:dnd",
        "message_count": "engagement", "pdays": ""}

    # Discovery without a schema (ghlctl discover before any team model) maps each field to
    # its own name; the webhook matches those names to the served columns the same way.
    plain, _ = discover_fields(Installation(location_id=loc.id), api)
    assert plain.field_map[job.id] == "job" and plain.field_map[marital.id] == "ms_2"
    assert plain.field_map[balance.id] == "acct_balance"
    for field_map in (updated.field_map, plain.field_map):
        payload = contact_event(
            "ContactCreate", location_id=loc.id, contact_id="c1",
            custom_fields={age.id: "41", job.id: "technician", balance.id: "1200",
                           spouse.id: "Alex Doe"},
            tags=["buyer", "hot"], source="web form", dnd=True,
            dateAdded="2026-11-02T10:00:00.000Z")
        fields = parse_webhook(payload, field_map, SCHEMA).request["fields"]
        assert fields == {"age": "41", "job": "technician", "balance": "1200",
                          "source": "web form", "tags": "buyer, hot",
                          "date_added": "2026-11-02T10:00:00.000Z", "dnd": True}
        assert "spouse_name" not in fields and "Alex Doe" not in fields.values()
    encoded = SCHEMA.encode_rows([fields])
    assert encoded.shape[0] == 1  # every value is one the schema reads


def test_message_counters_fill_a_team_schemas_columns_where_the_payload_has_none() -> None:
    counters = Engagement(inbound=2, outbound=3, responses=2, response_seconds_total=1800.0)
    request = {"contact_id": "c1", "fields": {"age": "41", "message_count": 9}}
    filled = with_engagement(request, counters)["fields"]
    assert filled == {"age": "41", "message_count": 9, "inbound_messages": 2,
                      "outbound_messages": 3, "avg_response_time_seconds": 900.0}
    assert request["fields"] == {"age": "41", "message_count": 9}  # not modified


def test_ghlctl_discover_with_a_schema_says_where_each_column_is_read_from(
    ghl_aws: Any, fake_highlevel: FakeHighLevel, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    from tools import ghlctl

    monkeypatch.setenv("INSTALLATIONS_TABLE", ghl_aws.installations_table)
    monkeypatch.setenv("GHL_TOKEN_KEY_ID", ghl_aws.token_key_id)
    monkeypatch.setenv("GHL_API_BASE", fake_highlevel.base_url)
    loc = fake_highlevel.add_location()
    job = fake_highlevel.add_field(loc.id, "Occupation", "TEXT", field_key="contact.job")
    pit = fake_highlevel.add_pit(loc.id)
    assert ghlctl.main(["add-pit", loc.id, "--token", pit, "--no-discover"]) == 0
    capsys.readouterr()
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA.to_dict()))
    assert ghlctl.main(["discover", loc.id, "--schema", str(tmp_path)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["columns"]["job"] == job.id and answer["columns"]["pdays"] == ""
    assert answer["columns"]["source"] == "standard:source"
