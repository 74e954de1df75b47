"""Agencies: INSTALL / UNINSTALL events, the OAuth callback, field discovery and per-location
field maps, through the scoring API's routes (moto DynamoDB/KMS/SQS, the fake HighLevel)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from leadscore.adapters.ghl_api import GhlApiClient, GhlOAuthClient
from leadscore.adapters.installations import (
    DynamoInstallations,
    installations_from_settings,
    installations_table,
    location_key,
)
from leadscore.ghl.fields import (
    CLASS_FIELD_KEY,
    SCORE_FIELD_KEY,
    parse_field_list,
    plan_fields,
)
from leadscore.ghl.installations import Installation
from leadscore.ghl.lifecycle import Lifecycle, discover_fields
from leadscore.settings import InstallSettings

from functions.score import app as score_app
from functions.score import ghl_routes
from tests.fixtures.fake_highlevel import APP_ID, CLIENT_ID, CLIENT_SECRET, FakeHighLevel
from tests.fixtures.ghl_payloads import contact_event, install_event, uninstall_event
from tests.ghl.test_webhook_route import Harness, harness  # noqa: F401 - the fixture

pytestmark = pytest.mark.usefixtures("harness")


@dataclass
class Agency:
    h: Harness
    fake: FakeHighLevel
    table: DynamoInstallations
    lifecycle: Lifecycle

    def post(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self.h.post(*self.h.signed(payload))

    def callback(self, code: str) -> tuple[int, dict[str, Any]]:
        event = {
            "resource": "/oauth/callback", "path": "/oauth/callback", "httpMethod": "GET",
            "headers": {}, "multiValueHeaders": {}, "queryStringParameters": {"code": code},
            "multiValueQueryStringParameters": {"code": [code]}, "pathParameters": None,
            "requestContext": {"resourcePath": "/oauth/callback", "httpMethod": "GET",
                               "path": "/Prod/oauth/callback", "stage": "Prod",
                               "requestId": "r"},
            "body": None, "isBase64Encoded": False,
        }
        answer = score_app.app.resolve(event, None)  # type: ignore[arg-type]
        return int(answer["statusCode"]), json.loads(answer["body"])


@pytest.fixture
def agency(harness: Harness, fake_highlevel: FakeHighLevel) -> Iterator[Agency]:  # noqa: F811
    fake_highlevel.time_offset = harness.clock[0] - fake_highlevel.now() + \
        fake_highlevel.time_offset  # one clock for both
    install_settings = InstallSettings(
        installations_table=harness.aws.installations_table,
        token_key_id=harness.aws.token_key_id, api_base=fake_highlevel.base_url, app_id=APP_ID)
    oauth = GhlOAuthClient(fake_highlevel.base_url, lambda: (CLIENT_ID, CLIENT_SECRET))
    table = installations_table(install_settings, clock=lambda: harness.clock[0], oauth=oauth)
    lifecycle = Lifecycle(
        table, oauth,
        lambda loc: GhlApiClient(fake_highlevel.base_url, lambda: table.access_token(loc)),
        app_id=APP_ID, clock=lambda: harness.clock[0])
    chain = installations_from_settings(install_settings, table=table)
    harness.configure(installations=chain, lifecycle=lifecycle, ghl_field_map={})
    yield Agency(harness, fake_highlevel, table, lifecycle)


def test_discovery_resolves_names_and_keys_and_creates_our_fields(
    fake_highlevel: FakeHighLevel,
) -> None:
    loc = fake_highlevel.add_location()
    token = fake_highlevel.add_pit(loc.id)
    price = fake_highlevel.add_field(loc.id, "List Price", "NUMERICAL")  # default by name
    beds = fake_highlevel.add_field(loc.id, "Bedrooms", "NUMERICAL", field_key="contact.beds")
    urgency = fake_highlevel.add_field(loc.id, "How soon?", "TEXT",
                                       field_key="contact.how_soon")
    motive = fake_highlevel.add_field(loc.id, "Reason for moving", "TEXT")
    api = GhlApiClient(fake_highlevel.base_url, lambda: token)
    inst = Installation(location_id=loc.id, configured_map={
        "contact.how_soon": "urgency_level",      # by fieldKey
        "Reason for moving": "motivation_type",   # by name
        "contact.no_such_field": "sqft",          # reported, not guessed
    })
    updated, unresolved = discover_fields(inst, api)
    assert updated.field_map == {price.id: "list_price", beds.id: "beds",
                                 urgency.id: "urgency_level", motive.id: "motivation_type"}
    assert unresolved == ["contact.no_such_field"]
    created = {f.field_key: f for f in loc.fields.values()}
    assert created[SCORE_FIELD_KEY].data_type == "NUMERICAL"
    assert created[CLASS_FIELD_KEY].data_type == "TEXT"
    assert updated.score_field_id == created[SCORE_FIELD_KEY].id
    assert updated.class_field_id == created[CLASS_FIELD_KEY].id
    assert updated.score_field_numeric is True
    # run again: nothing more is created
    again, _ = discover_fields(updated, api)
    assert len(loc.fields) == 6 and again.score_field_id == updated.score_field_id


def test_existing_fields_are_found_by_name_and_never_read_as_inputs(
    fake_highlevel: FakeHighLevel,
) -> None:
    loc = fake_highlevel.add_location()
    score = fake_highlevel.add_field(loc.id, "Lead Score", "TEXT", field_key="contact.score_1")
    plan = plan_fields(parse_field_list(
        {"customFields": [f.to_json() for f in loc.fields.values()]}))
    assert plan.score_field is not None and plan.score_field.id == score.id
    assert plan.score_field.numeric is False  # a TEXT field gets text
    assert [name for name, _, _ in plan.to_create] == ["Lead Class"]
    assert score.id not in plan.field_map


def test_oauth_callback_installs_a_location_with_encrypted_tokens(agency: Agency) -> None:
    loc = agency.fake.add_location()
    agency.fake.add_field(loc.id, "List Price", "NUMERICAL")
    status, answer = agency.callback(agency.fake.authorize(location_id=loc.id))
    assert status == 200 and answer["locations"] == [loc.id] and answer["fields"] is True
    inst = agency.table.installation(loc.id, fresh=True)
    assert inst is not None and inst.enabled and inst.token_source == "oauth"
    assert inst.score_field_id and inst.class_field_id and inst.field_map
    item = agency.h.aws.ddb.get_item(TableName=agency.h.aws.installations_table,
                                     Key={"pk": {"S": location_key(loc.id)}})["Item"]
    assert b"at-" not in bytes(item["tokens"]["B"])  # ciphertext, not the token
    # the code is single-use: a second callback with it fails without harm
    status, answer = agency.callback("used-or-unknown-code")
    assert status == 400 and answer["error"] == "install failed"


def agency_app(agency: Agency) -> None:
    """An app whose target user is the agency: codes are exchanged for Company tokens."""
    settings = agency.h.settings
    agency.h.configure(installs=replace(settings.installs, oauth_user_type="Company"),
                       installations=ghl_routes.deps().installations,
                       lifecycle=agency.lifecycle)


def test_agency_callback_installs_every_location_with_its_own_token(agency: Agency) -> None:
    agency_app(agency)
    company, locs = agency.fake.add_agency(3)
    status, answer = agency.callback(
        agency.fake.authorize(company_id=company, user_type="Company"))
    assert status == 200 and sorted(answer["locations"]) == sorted(x.id for x in locs)
    tokens = {agency.table.access_token(x.id) for x in locs}
    assert len(tokens) == 3
    assert len(agency.fake.calls("POST", "/oauth/locationToken")) == 3


def test_install_event_after_a_company_install_gets_a_location_token(agency: Agency) -> None:
    agency_app(agency)
    company, _ = agency.fake.add_agency(1)
    agency.callback(agency.fake.authorize(company_id=company, user_type="Company"))
    new = agency.fake.add_location(company_id=company)
    status, answer = agency.post(install_event(location_id=new.id, company_id=company))
    assert status == 200 and answer["status"] == "installed"
    assert answer["tokens_from"] == "the company token"
    assert agency.table.access_token(new.id)


def test_unknown_location_is_acknowledged_and_nothing_is_scored(agency: Agency) -> None:
    stranger = agency.fake.add_location()
    status, answer = agency.post(contact_event(location_id=stranger.id))
    assert status == 200 and answer == {"status": "ignored",
                                        "reason": "location not installed"}
    assert agency.h.scorer.calls == [] and agency.h.aws.queued() == []


def test_uninstall_stops_everything_for_that_location(agency: Agency) -> None:
    loc = agency.fake.add_location()
    agency.callback(agency.fake.authorize(location_id=loc.id))
    status, answer = agency.post(contact_event(location_id=loc.id))
    assert answer["status"] == "scored"
    agency.h.aws.queued()
    status, answer = agency.post(uninstall_event(location_id=loc.id))
    assert status == 200 and answer == {"status": "uninstalled", "location_id": loc.id}
    status, answer = agency.post(contact_event(location_id=loc.id))
    assert status == 200 and answer["reason"] == "location disabled"
    assert agency.h.aws.queued() == []
    item = agency.h.aws.ddb.get_item(TableName=agency.h.aws.installations_table,
                                     Key={"pk": {"S": location_key(loc.id)}})["Item"]
    assert "tokens" not in item
    # a re-install enables it again
    agency.callback(agency.fake.authorize(location_id=loc.id))
    assert agency.post(contact_event(location_id=loc.id))[1]["status"] == "scored"


def test_two_locations_are_parsed_with_their_own_field_maps(agency: Agency) -> None:
    """Location A keeps the list price in "List Price", B in "Asking Price" (mapped by
    fieldKey); each delivery carries only field ids, each location's ids differ."""
    a, b = agency.fake.add_location(), agency.fake.add_location()
    a_price = agency.fake.add_field(a.id, "List Price", "NUMERICAL")
    b_price = agency.fake.add_field(b.id, "Asking Price", "NUMERICAL",
                                    field_key="contact.asking_price")
    b_decoy = agency.fake.add_field(b.id, "List Price", "TEXT")  # B's is not the price
    agency.callback(agency.fake.authorize(location_id=a.id))
    agency.table.save(Installation(location_id=b.id, company_id=b.company_id,
                                   configured_map={"contact.asking_price": "list_price"}))
    agency.callback(agency.fake.authorize(location_id=b.id))
    inst_b = agency.table.installation(b.id, fresh=True)
    assert inst_b is not None and inst_b.field_map[b_price.id] == "list_price"

    agency.post(contact_event(location_id=a.id, contact_id="ca", custom_fields={
        a_price.id: "500000"}))
    agency.post(contact_event(location_id=b.id, contact_id="cb", custom_fields={
        b_price.id: "900000", b_decoy.id: "n/a", a_price.id: "1"}))
    seen = {c["contact_id"]: c["features"] for c in agency.h.scorer.calls}
    assert seen["ca"]["property_data"]["list_price"] == 500000
    assert seen["cb"]["property_data"]["list_price"] == 900000
    queued = {m["contact_id"]: m["location_id"] for m in agency.h.aws.queued()}
    assert queued == {"ca": a.id, "cb": b.id}
    fields_a = agency.table.installation(a.id, fresh=True)
    assert fields_a is not None and inst_b.score_field_id != fields_a.score_field_id


def test_per_location_class_thresholds(agency: Agency) -> None:
    loc = agency.fake.add_location()
    agency.callback(agency.fake.authorize(location_id=loc.id))
    inst = agency.table.installation(loc.id, fresh=True)
    assert inst is not None
    agency.table.save(inst.with_changes(class_thresholds={"hot": 0.0, "warm": 0.0,
                                                          "lukewarm": 0.0}))
    _, answer = agency.post(contact_event(location_id=loc.id))
    assert answer["predicted_class"] == "hot" and answer["should_prioritize"] is True


def test_agency_uninstall_disables_every_location_of_the_company(agency: Agency) -> None:
    agency_app(agency)
    company, locs = agency.fake.add_agency(2)
    agency.callback(agency.fake.authorize(company_id=company, user_type="Company"))
    status, answer = agency.post(uninstall_event(company_id=company))
    assert status == 200 and sorted(answer["locations"]) == sorted(x.id for x in locs)
    for loc in locs:
        inst = agency.table.installation(loc.id, fresh=True)
        assert inst is not None and inst.enabled is False
        assert agency.post(contact_event(location_id=loc.id))[1]["reason"] == \
            "location disabled"
    assert agency.table.read_tokens(f"company#{company}").tokens is None
