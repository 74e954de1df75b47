"""The fake HighLevel behaves like the documented one (so tests against it mean something)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from tests.fixtures.fake_highlevel import (
    APP_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    DEFAULT_LOCATION_ID,
    GHL_TOKEN,
    FakeHighLevel,
    ghl_id,
)
from tests.fixtures.ghl_payloads import contact_event, install_event

Answer = tuple[int, dict[str, str], Any]


def call(fake: FakeHighLevel, method: str, path: str, *, token: str = "",
         json_body: Any = None, form: dict[str, str] | None = None) -> Answer:
    headers = {"Version": "2021-07-28", "Accept": "application/json"}
    data = None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(fake.base_url + path, data=data, method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers.items()), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), json.loads(exc.read())


def grant(fake: FakeHighLevel, **form: str) -> Answer:
    return call(fake, "POST", "/oauth/token",
                form={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **form})


def test_ids_look_like_highlevel_ids() -> None:
    assert re.fullmatch(r"[A-Za-z0-9]{20}", ghl_id())
    event = contact_event(location_id=ghl_id())
    assert re.fullmatch(r"[A-Za-z0-9]{20}", event["id"])
    assert re.fullmatch(r"[0-9a-f]{24}", event["appId"]) and event["versionId"]
    assert {"type", "timestamp", "webhookId", "appId", "versionId", "locationId"} <= set(event)
    assert install_event(install_type="Company", company_id=ghl_id()).get("locationId") is None


def test_authorization_code_then_refresh_rotates(fake_highlevel: FakeHighLevel) -> None:
    loc = fake_highlevel.add_location()
    code = fake_highlevel.authorize(location_id=loc.id)
    status, _, tokens = grant(fake_highlevel, grant_type="authorization_code", code=code,
                              user_type="Location")
    assert status == 200
    assert tokens["expires_in"] == 86399 and tokens["locationId"] == loc.id
    # a code is single-use
    assert grant(fake_highlevel, grant_type="authorization_code", code=code)[0] == 400

    status, _, rotated = grant(fake_highlevel, grant_type="refresh_token",
                               refresh_token=tokens["refresh_token"], user_type="Location")
    assert status == 200 and rotated["refresh_token"] != tokens["refresh_token"]
    # the old refresh token stopped working
    status, _, err = grant(fake_highlevel, grant_type="refresh_token",
                           refresh_token=tokens["refresh_token"])
    assert status == 400 and err["statusCode"] == 400 and "refresh token" in err["message"]
    # wrong client secret
    bad = call(fake_highlevel, "POST", "/oauth/token", form={
        "client_id": CLIENT_ID, "client_secret": "nope", "grant_type": "refresh_token",
        "refresh_token": rotated["refresh_token"]})
    assert bad[0] == 401


def test_access_tokens_expire(fake_highlevel: FakeHighLevel) -> None:
    loc = fake_highlevel.add_location()
    tokens = fake_highlevel.issue_tokens(user_type="Location", location_id=loc.id,
                                         company_id=loc.company_id)
    path = f"/locations/{loc.id}/customFields?model=contact"
    assert call(fake_highlevel, "GET", path, token=tokens["access_token"])[0] == 200
    fake_highlevel.advance(86400)
    status, _, body = call(fake_highlevel, "GET", path, token=tokens["access_token"])
    assert status == 401 and body["message"] == "Invalid JWT"


def test_company_token_gets_location_tokens(fake_highlevel: FakeHighLevel) -> None:
    company, locs = fake_highlevel.add_agency(3)
    code = fake_highlevel.authorize(company_id=company, user_type="Company")
    _, _, agency = grant(fake_highlevel, grant_type="authorization_code", code=code,
                         user_type="Company")
    # a company token cannot read contacts
    assert call(fake_highlevel, "POST", "/contacts/search", token=agency["access_token"],
                json_body={"locationId": locs[0].id})[0] == 401
    status, _, listed = call(fake_highlevel, "GET",
                             f"/oauth/installedLocations?companyId={company}&appId={APP_ID}"
                             "&isInstalled=true", token=agency["access_token"])
    assert status == 200 and {r["_id"] for r in listed["locations"]} == {x.id for x in locs}
    status, _, loc_token = call(fake_highlevel, "POST", "/oauth/locationToken",
                                token=agency["access_token"],
                                form={"companyId": company, "locationId": locs[1].id})
    assert status == 200 and loc_token["locationId"] == locs[1].id
    assert call(fake_highlevel, "GET", f"/locations/{locs[1].id}/customFields",
                token=loc_token["access_token"])[0] == 200
    # ... but not another location's data
    assert call(fake_highlevel, "GET", f"/locations/{locs[0].id}/customFields",
                token=loc_token["access_token"])[0] == 403


def test_custom_fields_list_and_create(fake_highlevel: FakeHighLevel) -> None:
    loc = fake_highlevel.add_location()
    token = fake_highlevel.add_pit(loc.id)
    fake_highlevel.add_field(loc.id, "List Price", "NUMERICAL")
    status, _, created = call(fake_highlevel, "POST", f"/locations/{loc.id}/customFields",
                              token=token, json_body={"name": "Lead Score",
                                                      "dataType": "NUMERICAL"})
    assert status == 201 and created["customField"]["fieldKey"] == "contact.lead_score"
    _, _, listed = call(fake_highlevel, "GET", f"/locations/{loc.id}/customFields?model=contact",
                        token=token)
    names = {f["name"]: f for f in listed["customFields"]}
    assert set(names) == {"List Price", "Lead Score"}
    assert all(re.fullmatch(r"[A-Za-z0-9]{20}", f["id"]) for f in names.values())
    # the same key twice is refused
    assert call(fake_highlevel, "POST", f"/locations/{loc.id}/customFields", token=token,
                json_body={"name": "Lead Score", "dataType": "NUMERICAL"})[0] == 400


def test_contact_writes_are_per_location_and_typed(fake_highlevel: FakeHighLevel) -> None:
    loc = fake_highlevel.add_location()
    token = fake_highlevel.add_pit(loc.id)
    score = fake_highlevel.add_field(loc.id, "Lead Score", "NUMERICAL")
    contact = fake_highlevel.add_contact(loc.id, tags=["buyer"])
    body = {"customFields": [{"id": score.id, "field_value": 87}]}
    assert call(fake_highlevel, "PUT", f"/contacts/{contact.id}", token=token,
                json_body=body)[0] == 200
    assert contact.custom_fields == {score.id: 87}  # the JSON type is kept
    # unknown field id on a strict location
    assert call(fake_highlevel, "PUT", f"/contacts/{contact.id}", token=token,
                json_body={"customFields": [{"id": "nope", "field_value": 1}]})[0] == 422
    # tags add/remove; the PUT never touched them
    call(fake_highlevel, "POST", f"/contacts/{contact.id}/tags", token=token,
         json_body={"tags": ["hot-lead"]})
    call(fake_highlevel, "DELETE", f"/contacts/{contact.id}/tags", token=token,
         json_body={"tags": ["buyer"]})
    assert contact.tags == ["hot-lead"]
    # another location's token cannot see the contact; an unknown contact is a 400
    other = fake_highlevel.add_pit(fake_highlevel.add_location().id)
    assert call(fake_highlevel, "PUT", f"/contacts/{contact.id}", token=other,
                json_body=body)[0] == 403
    assert call(fake_highlevel, "PUT", "/contacts/unknown", token=token, json_body=body)[0] == 400
    # no token / unknown token
    assert call(fake_highlevel, "GET", f"/contacts/{contact.id}")[0] == 401


def test_legacy_token_and_default_location_stay_lenient(fake_highlevel: FakeHighLevel) -> None:
    status, _, _ = call(fake_highlevel, "PUT", "/contacts/any-contact", token=GHL_TOKEN,
                        json_body={"customFields": [{"id": "f1", "field_value": "87"}]})
    assert status == 200
    assert fake_highlevel.contact("any-contact").location_id == DEFAULT_LOCATION_ID


def test_contacts_search_pages_both_ways(fake_highlevel: FakeHighLevel) -> None:
    loc = fake_highlevel.add_location()
    token = fake_highlevel.add_pit(loc.id)
    made = [fake_highlevel.add_contact(loc.id, created_at=1_760_000_000 + i) for i in range(23)]
    seen: list[str] = []
    page = 1
    while True:
        _, _, ans = call(fake_highlevel, "POST", "/contacts/search", token=token,
                         json_body={"locationId": loc.id, "page": page, "pageLimit": 10})
        assert ans["total"] == 23
        if not ans["contacts"]:
            break
        seen += [c["id"] for c in ans["contacts"]]
        page += 1
    assert seen == [c.id for c in made]
    seen2: list[str] = []
    after: list[Any] | None = None
    while True:
        req: dict[str, Any] = {"locationId": loc.id, "pageLimit": 7}
        if after:
            req["searchAfter"] = after
        _, _, ans = call(fake_highlevel, "POST", "/contacts/search", token=token, json_body=req)
        if not ans["contacts"]:
            break
        seen2 += [c["id"] for c in ans["contacts"]]
        after = ans["contacts"][-1]["searchAfter"]
    assert seen2 == seen
    _, _, recent = call(fake_highlevel, "POST", "/contacts/search", token=token, json_body={
        "locationId": loc.id, "pageLimit": 100,
        "filters": [{"field": "dateAdded", "operator": "range",
                     "value": {"gte": (1_760_000_000 + 20) * 1000}}]})
    assert recent["total"] == 3


def test_opportunities_search_pages_with_start_after(fake_highlevel: FakeHighLevel) -> None:
    loc = fake_highlevel.add_location()
    token = fake_highlevel.add_pit(loc.id)
    contact = fake_highlevel.add_contact(loc.id)
    for i in range(25):
        fake_highlevel.add_opportunity(loc.id, contact.id, created_at=1_760_000_000 + i,
                                       status="won" if i % 5 == 0 else "open")
    seen: list[str] = []
    path = f"/opportunities/search?location_id={loc.id}&limit=10"
    while True:
        status, _, ans = call(fake_highlevel, "GET", path, token=token)
        assert status == 200
        seen += [o["id"] for o in ans["opportunities"]]
        if not ans["meta"].get("nextPageUrl"):  # absent on the last page
            break
        path = ans["meta"]["nextPageUrl"][len(fake_highlevel.base_url):]
    assert len(seen) == len(set(seen)) == 25
    _, _, won = call(fake_highlevel, "GET",
                     f"/opportunities/search?location_id={loc.id}&status=won&limit=100",
                     token=token)
    assert won["meta"]["total"] == 5 and {o["status"] for o in won["opportunities"]} == {"won"}


def test_rate_limit_headers_and_429(fake_highlevel: FakeHighLevel) -> None:
    loc = fake_highlevel.add_location()
    loc.rate.burst_max = 3
    token = fake_highlevel.add_pit(loc.id)
    path = f"/locations/{loc.id}/customFields"
    answers = [call(fake_highlevel, "GET", path, token=token) for _ in range(4)]
    assert [a[0] for a in answers] == [200, 200, 200, 429]
    assert answers[0][1]["X-RateLimit-Remaining"] == "2"
    assert answers[3][1]["X-RateLimit-Remaining"] == "0"
    assert answers[3][1]["X-RateLimit-Interval-Milliseconds"] == "10000"
    assert "X-RateLimit-Daily-Remaining" in answers[3][1]
    fake_highlevel.advance(10)
    assert call(fake_highlevel, "GET", path, token=token)[0] == 200
    # other locations have their own budget
    other = fake_highlevel.add_location()
    assert call(fake_highlevel, "GET", f"/locations/{other.id}/customFields",
                token=fake_highlevel.add_pit(other.id))[0] == 200


def test_fault_injection(fake_highlevel: FakeHighLevel) -> None:
    fake_highlevel.fail_next("/contacts/", 503, {"message": "down"}, times=2)
    assert call(fake_highlevel, "GET", "/contacts/x", token=GHL_TOKEN)[0] == 503
    # a sub-account token cannot list an agency's installs (Agency-Access-Only)
    assert call(fake_highlevel, "GET", f"/oauth/installedLocations?companyId=x&appId={APP_ID}",
                token=GHL_TOKEN)[0] == 401
    assert call(fake_highlevel, "GET", "/contacts/x", token=GHL_TOKEN)[0] == 503
    fake_highlevel.script = [(429, {"Retry-After": "1"}, {})]
    assert call(fake_highlevel, "GET", "/anything")[0] == 429


@pytest.mark.parametrize("user_type", ["Location", "Company"])
def test_uninstall_revokes_oauth_tokens(fake_highlevel: FakeHighLevel, user_type: str) -> None:
    loc = fake_highlevel.add_location()
    tokens = fake_highlevel.issue_tokens(user_type="Location", location_id=loc.id,
                                         company_id=loc.company_id)
    fake_highlevel.uninstall(loc.id)
    assert call(fake_highlevel, "GET", f"/locations/{loc.id}/customFields",
                token=tokens["access_token"])[0] == 401
    assert grant(fake_highlevel, grant_type="refresh_token",
                 refresh_token=tokens["refresh_token"], user_type=user_type)[0] == 400
