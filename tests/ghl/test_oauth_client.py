"""The HighLevel OAuth client and the reading calls, against the fake HighLevel."""

from __future__ import annotations

import pytest
from leadscore.adapters.ghl_api import (
    GhlApiClient,
    GhlApiError,
    GhlOAuthClient,
    InvalidGrantError,
)

from tests.fixtures.fake_highlevel import APP_ID, CLIENT_ID, CLIENT_SECRET, FakeHighLevel


def oauth(fake: FakeHighLevel, secret: str = CLIENT_SECRET) -> GhlOAuthClient:
    return GhlOAuthClient(fake.base_url, lambda: (CLIENT_ID, secret))


def test_code_exchange_and_refresh_rotation(fake_highlevel: FakeHighLevel) -> None:
    loc = fake_highlevel.add_location()
    client = oauth(fake_highlevel)
    tokens = client.exchange_code(fake_highlevel.authorize(location_id=loc.id))
    assert tokens["locationId"] == loc.id and tokens["expires_in"] == 86399
    rotated = client.refresh(tokens["refresh_token"])
    assert rotated["refresh_token"] != tokens["refresh_token"]
    with pytest.raises(InvalidGrantError):
        client.refresh(tokens["refresh_token"])  # rotated away
    with pytest.raises(GhlApiError) as bad_client:
        oauth(fake_highlevel, secret="wrong").refresh(rotated["refresh_token"])
    assert bad_client.value.status == 401
    form = fake_highlevel.calls("POST", "/oauth/token")[0]
    assert form.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form.body["grant_type"] == "authorization_code"


def test_agency_tokens_and_location_tokens(fake_highlevel: FakeHighLevel) -> None:
    company, locs = fake_highlevel.add_agency(3)
    client = oauth(fake_highlevel)
    agency = client.exchange_code(
        fake_highlevel.authorize(company_id=company, user_type="Company"), user_type="Company")
    listed = client.installed_locations(agency["access_token"], company, APP_ID)
    assert sorted(r["_id"] for r in listed["locations"]) == sorted(x.id for x in locs)
    token = client.location_token(agency["access_token"], company, locs[2].id)
    api = GhlApiClient(fake_highlevel.base_url, lambda: token["access_token"])
    fake_highlevel.add_field(locs[2].id, "List Price", "NUMERICAL")
    fields = api.list_custom_fields(locs[2].id)
    assert [f["name"] for f in fields["customFields"]] == ["List Price"]
    created = api.create_custom_field(locs[2].id, {"name": "Lead Score", "dataType": "NUMERICAL"})
    assert created["customField"]["fieldKey"] == "contact.lead_score"


def test_search_calls_page(fake_highlevel: FakeHighLevel) -> None:
    loc = fake_highlevel.add_location()
    api = GhlApiClient(fake_highlevel.base_url, lambda: fake_highlevel.add_pit(loc.id))
    contact = fake_highlevel.add_contact(loc.id)
    fake_highlevel.add_opportunity(loc.id, contact.id, status="won")
    found = api.search_contacts({"locationId": loc.id, "pageLimit": 10, "page": 1})
    assert [c["id"] for c in found["contacts"]] == [contact.id]
    opps = api.search_opportunities({"location_id": loc.id, "status": "won", "limit": "10"})
    assert opps["meta"]["total"] == 1
