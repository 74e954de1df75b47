"""The pure rules of an agency's install: which locations a Company token approves, paging
installed locations to the end whatever page size the server keeps to, and which
``/oauth/token`` answers refuse the grant itself (both error shapes HighLevel answers)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from leadscore.adapters.ghl_api import grant_refused
from leadscore.ghl.agency import InstallJob, approved, installed_location_ids


@pytest.mark.parametrize("answer, expected", [
    ({"approveAllLocations": True, "approvedLocations": ["a"]}, None),
    ({"approvedLocations": ["a", "b"]}, ["a", "b"]),
    ({"approvedLocations": []}, []),
    ({}, None),
])
def test_approved_locations(answer: dict[str, Any], expected: list[str] | None) -> None:
    assert approved(answer) == expected


class CappedServer:
    """Answers at most ``cap`` rows whatever ``limit`` asks (a server that caps quietly)."""

    def __init__(self, ids: list[str], cap: int, count: int | None = None) -> None:
        self.ids, self.cap, self.count = ids, cap, count
        self.skips: list[int] = []

    def installed_locations(self, token: str, company: str, app: str, *, skip: int = 0,
                            limit: int = 20, location_id: str = "") -> Any:
        self.skips.append(skip)
        rows = [{"_id": i, "name": i, "address": "", "isInstalled": True}
                for i in self.ids[skip: skip + min(limit, self.cap)]]
        out: dict[str, Any] = {"locations": rows}
        if self.count is not None:
            out["count"] = self.count
        return out

    def location_token(self, company_token: str, company_id: str, location_id: str) -> Any:
        raise AssertionError("not used")


@pytest.mark.parametrize("cap, count", [(20, 45), (7, 45), (7, None), (100, 45)])
def test_installed_locations_are_paged_to_the_end(cap: int, count: int | None) -> None:
    ids = [f"loc{i:02d}" for i in range(45)]
    server = CappedServer(ids, cap, count)
    assert list(installed_location_ids(server, "t", "c", "app")) == ids
    step = min(cap, 20)  # the server's page: its cap or the limit asked (the default 20)
    assert server.skips == list(range(0, 45, step)) + ([45] if count is None else [])


@pytest.mark.parametrize("status, body, refused", [
    (400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}, True),
    (401, {"error": "invalid_grant"}, True),
    (400, {"statusCode": 400, "message": "Invalid grant: refresh token is invalid",
           "error": "Bad Request"}, True),
    (401, {"statusCode": 401, "message": "Invalid token", "error": "Unauthorized"}, True),
    (401, {"error": "invalid_client", "error_description": "bad secret"}, False),
    (401, {"statusCode": 401, "message": "Invalid client credentials",
           "error": "Unauthorized"}, False),
    (422, {"statusCode": 422, "message": ["grant_type must be valid"],
           "error": "Unprocessable Entity"}, False),
    (500, {"statusCode": 500, "message": "Internal Server Error"}, False),
    (400, "not json", False),
])
def test_a_refused_grant_is_recognised_in_both_shapes(status: int, body: Any,
                                                      refused: bool) -> None:
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    assert grant_refused(status, raw) is refused


def test_install_job_event_round_trip() -> None:
    job = InstallJob("company-1", ("loc-a", "loc-b"))
    assert InstallJob.from_event(json.loads(json.dumps(job.to_event()))) == job
    assert InstallJob.from_event({"location_id": "x"}) is None
