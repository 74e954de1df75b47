"""The export function's event has one owner: what a sender builds is what the reader reads."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from leadscore.loop.export_request import ExportRequest

requests = st.builds(
    ExportRequest,
    location_id=st.none() | st.text(min_size=1, max_size=24),
    drift=st.booleans(), force=st.booleans(),
    now_ms=st.none() | st.integers(min_value=0, max_value=2**53))


@given(requests)
def test_a_request_reads_back_as_what_it_asks(request: ExportRequest) -> None:
    read = ExportRequest.of(request.event())
    assert read.location_id == request.location_id
    assert read.now_ms == request.now_ms
    # drift only means something for one location, force only for the agency's export
    assert read.drift == (request.drift and request.location_id is not None)
    assert read.force == (request.force and request.location_id is None)


@pytest.mark.parametrize(("event", "expected"), [
    (None, ExportRequest()),
    ("", ExportRequest()),
    ({}, ExportRequest()),
    ({"force": "true"}, ExportRequest()),  # only a literal true
    ({"location_id": "loc-1", "drift": 1}, ExportRequest(location_id="loc-1")),
    ({"location_id": "loc-1", "force": True}, ExportRequest(location_id="loc-1")),
    ({"now_ms": True}, ExportRequest()),
    ({"now_ms": "5"}, ExportRequest()),
    ({"location_id": 7, "drift": True}, ExportRequest(location_id="7", drift=True)),
])
def test_an_event_s_request(event: Any, expected: ExportRequest) -> None:
    assert ExportRequest.of(event) == expected
