"""Contract tests: every request our HighLevel clients can send, from every call site, is one
HighLevel's own OpenAPI description accepts, and every answer the fake HighLevel gives is one it
describes. The description is the CC0 copy in tests/contracts/highlevel (README there).

How "every call site" is made sure of: the clients' public methods are listed by
introspection, and the test fails when one was not exercised here (a new method needs a case).
Requests are judged twice: by the spec-strict fake as it answers (it refuses what the spec
refuses) and by this file, independently, over everything recorded."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from typing import Any

import pytest
from leadscore.adapters.ghl_api import (
    ApiSender,
    GhlApiClient,
    GhlOAuthClient,
    InvalidGrantError,
    http_transport,
)
from leadscore.ghl.agency import installed_location_ids
from leadscore.ghl.fields import CLASS_FIELD_KEY, SCORE_FIELD_KEY, create_body
from leadscore.ghl.installations import Installation
from leadscore.ghl.lifecycle import discover_fields
from leadscore.ghl.messages import score_message
from leadscore.ghl.write_plan import plan_write
from leadscore.loop.backfill_job import GhlContactSource, historical_opportunities

from tests.contracts.spec import spec
from tests.fixtures.fake_highlevel import (
    APP_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    FakeHighLevel,
    serve,
)


class Recording:
    """Passes calls through to a client and remembers which public methods were used."""

    def __init__(self, inner: Any, used: set[str]) -> None:
        self.inner, self.used = inner, used

    def __getattr__(self, name: str) -> Any:
        self.used.add(name)
        return getattr(self.inner, name)


def public_methods(cls: type) -> set[str]:
    return {name for name, member in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")}


@pytest.fixture
def fake() -> Iterator[FakeHighLevel]:
    with serve(FakeHighLevel()) as running:
        yield running
    assert running.answer_problems == []


def exercise_every_call_site(fake: FakeHighLevel) -> tuple[set[str], set[str]]:
    """Drive each client method through the code that calls it in the product."""
    api_used: set[str] = set()
    oauth_used: set[str] = set()
    oauth = Recording(GhlOAuthClient(fake.base_url, lambda: (CLIENT_ID, CLIENT_SECRET)),
                      oauth_used)

    # OAuth: a Location install (with redirect_uri), its refresh, an agency install, its
    # installed locations (every page, one location), a location token
    loc = fake.add_location()
    granted = oauth.exchange_code(fake.authorize(location_id=loc.id),
                                  redirect_uri="https://example.test/Prod/oauth/callback")
    oauth.refresh(granted["refresh_token"], user_type="Location")
    company, locs = fake.add_agency(23)
    agency = oauth.exchange_code(fake.authorize(company_id=company, user_type="Company"),
                                 user_type="Company")
    listed = list(installed_location_ids(oauth, agency["access_token"], company, APP_ID))
    assert sorted(listed) == sorted(x.id for x in locs)
    assert list(installed_location_ids(oauth, agency["access_token"], company, APP_ID,
                                       location_id=locs[4].id)) == [locs[4].id]
    location = oauth.location_token(agency["access_token"], company, locs[0].id)
    assert "refresh_token" not in location  # the spec: minted again from the company token
    with pytest.raises(InvalidGrantError):  # the rotated refresh token is refused
        oauth.refresh(granted["refresh_token"], user_type="Location")

    # API v2 with the location's token: field discovery (list + create), the backfill's
    # searches, the write-back's calls (through GhlApiClient and through send_once)
    api = Recording(GhlApiClient(fake.base_url, lambda: location["access_token"]), api_used)
    target = locs[0].id
    fake.add_field(target, "List Price", "MONETORY")
    inst, unresolved = discover_fields(Installation(location_id=target), api)
    assert unresolved == [] and inst.score_field_id and inst.class_field_id
    contact = fake.add_contact(target, first_name="Ada")
    fake.add_opportunity(target, contact.id, status="won", monetary_value=450000.0)
    source = GhlContactSource(lambda _loc: api)
    page = source.page(target, None, 1)
    assert [c["id"] for c in page.contacts] == [contact.id]
    source.page(target, page.next_cursor or [0, ""], 1)
    assert len(list(historical_opportunities(api, target, limit=1))) == 1
    message = score_message({"contact_id": contact.id, "predicted_score": 0.81,
                             "predicted_class": "hot", "model_version": "lsm-0123456789abcdef"},
                            location_id=target, received_at="2026-12-07T06:00:00Z",
                            tags=["cold-lead"])
    plan = plan_write(message, None, score_field_id=inst.score_field_id,
                      class_field_id=inst.class_field_id, score_as_number=True)
    sender = ApiSender(fake.base_url)
    for call in plan.calls():
        answer = sender.send(call, location["access_token"], 5.0)
        assert 200 <= answer.status < 300, (call, answer.status, answer.body)
    api.update_custom_fields(contact.id, plan.put_body())
    api.add_tags(contact.id, ["hot-lead"])
    api.remove_tags(contact.id, ["cold-lead"])
    api.get_json(f"/contacts/{contact.id}")
    return api_used, oauth_used


def test_every_request_and_answer_matches_highlevel_s_description(fake: FakeHighLevel) -> None:
    api_used, oauth_used = exercise_every_call_site(fake)
    assert public_methods(GhlApiClient) <= api_used, "a client method has no contract case"
    assert public_methods(GhlOAuthClient) <= oauth_used, "an OAuth method has no contract case"
    checked = 0
    for r in fake.requests:
        problems = spec().check_request(r.method, r.path, r.headers, r.body)
        assert problems == [], (r.method, r.path, problems)
        answer = spec().check_response(r.method, r.path.split("?")[0], r.status, r.answer)
        assert answer == [], (r.method, r.path, r.status, answer)
        checked += 1
    operations = {spec().operation(r.method, r.path).name  # type: ignore[union-attr]
                  for r in fake.requests}
    assert operations == {
        "POST /oauth/token", "POST /oauth/locationToken", "GET /oauth/installedLocations",
        "GET /locations/{locationId}/customFields", "POST /locations/{locationId}/customFields",
        "POST /contacts/search", "GET /opportunities/search", "PUT /contacts/{contactId}",
        "POST /contacts/{contactId}/tags", "DELETE /contacts/{contactId}/tags",
        "GET /contacts/{contactId}"}
    assert checked == len(fake.requests) >= 20
    # the statuses the spec names, not the fake's habits
    assert {r.status for r in fake.requests if r.method == "POST" and r.path.endswith("/tags")} \
        == {201}
    assert {r.status for r in fake.requests
            if r.method == "POST" and r.path.endswith("/customFields")} == {201}


def test_the_field_create_body_has_only_the_dto_s_properties() -> None:
    for name, data_type in (("Lead Score", "NUMERICAL"), ("Lead Class", "TEXT")):
        body = create_body(name, data_type)
        assert spec().check_request("POST", "/locations/x/customFields",
                                    {"Version": "2021-07-28",
                                     "Content-Type": "application/json"}, body) == []
    # what the old body sent is refused by the description (and so by the fake)
    old = {**create_body("Lead Score", "NUMERICAL"), "fieldKey": SCORE_FIELD_KEY}
    assert spec().check_request("POST", "/locations/x/customFields",
                                {"Version": "2021-07-28", "Content-Type": "application/json"},
                                old) == ["body: property fieldKey should not exist"]
    assert CLASS_FIELD_KEY == "contact.lead_class"  # what HighLevel derives from "Lead Class"


@pytest.mark.parametrize("breach, status, fragment", [
    ("no Version", 400, "Version header"),
    ("unknown property", 422, "property fieldKey should not exist"),
    ("missing scope", 401, "not authorized for this scope"),
])
def test_the_fake_refuses_what_the_description_refuses(
    fake: FakeHighLevel, breach: str, status: int, fragment: str,
) -> None:
    loc = fake.add_location()
    scopes = "contacts.readonly locations/customFields.readonly" if breach == "missing scope" \
        else None
    code = fake.authorize(location_id=loc.id, **({"scopes": scopes} if scopes else {}))
    token = GhlOAuthClient(fake.base_url, lambda: (CLIENT_ID, CLIENT_SECRET)).exchange_code(
        code)["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "Version": "2021-07-28"}
    body: dict[str, Any] = {"name": "Lead Score", "dataType": "NUMERICAL"}
    if breach == "no Version":
        del headers["Version"]
    if breach == "unknown property":
        body["fieldKey"] = SCORE_FIELD_KEY
    answer = http_transport("POST", f"{fake.base_url}/locations/{loc.id}/customFields", headers,
                            json.dumps(body).encode(), 5.0)
    parsed = json.loads(answer.body)
    assert answer.status == status and fragment in json.dumps(parsed)
    assert set(parsed) == {"statusCode", "message", "error"} and parsed["statusCode"] == status
    assert loc.fields == {}


def test_installed_locations_page_20_at_a_time_by_default(fake: FakeHighLevel) -> None:
    company, locs = fake.add_agency(45)
    fake.locations[locs[0].id].installed = False
    agency = GhlOAuthClient(fake.base_url, lambda: (CLIENT_ID, CLIENT_SECRET)).exchange_code(
        fake.authorize(company_id=company, user_type="Company"), user_type="Company")
    answer = http_transport(
        "GET", f"{fake.base_url}/oauth/installedLocations?companyId={company}&appId={APP_ID}",
        {"Authorization": f"Bearer {agency['access_token']}", "Version": "2021-07-28"},
        None, 5.0)
    page = json.loads(answer.body)
    assert answer.status == 200 and len(page["locations"]) == 20 and page["count"] == 45
