"""Backfill: resumable from its checkpoint, with progress (done / total, rate, ETA)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest
from leadscore.loop.backfill import (
    Checkpoint,
    ContactOutcome,
    ContactsPage,
    MemoryCheckpoints,
    Progress,
    run_backfill,
)

from tests.fixtures.fakes import FakeClock


class ListSource:
    """Pages by an opaque cursor (the index of the next contact), like searchAfter."""

    def __init__(self, n: int) -> None:
        self.contacts = [{"id": f"c{i:04d}", "locationId": "loc1"} for i in range(n)]
        self.calls: list[Any] = []

    def page(self, location_id: str, cursor: Any, limit: int) -> ContactsPage:
        self.calls.append(cursor)
        start = int(cursor or 0)
        chunk = self.contacts[start : start + limit]
        nxt = start + len(chunk)
        return ContactsPage(chunk, len(self.contacts), nxt if nxt < len(self.contacts) else None)


class Crash(Exception):
    pass


def test_resume_after_an_interruption_scores_everyone_once_more_at_most() -> None:
    source = ListSource(250)
    checkpoints = MemoryCheckpoints()
    scored: Counter[str] = Counter()
    crash_after = 120

    def score(location_id: str, contact: Mapping[str, Any]) -> str:
        if sum(scored.values()) == crash_after:
            raise Crash("the container died")
        scored[contact["id"]] += 1
        return ContactOutcome.SCORED

    with pytest.raises(Crash):
        run_backfill("loc1", source, score, checkpoints, page_size=50,
                     clock=FakeClock(1000.0, step=0.01))
    saved = checkpoints.load("loc1", "default")
    assert saved is not None and saved.done == 100 and not saved.finished

    crash_after = -1
    progress: list[Progress] = []
    final = run_backfill(
        "loc1",
        source,
        score,
        checkpoints,
        page_size=50,
        clock=FakeClock(1000.0, step=0.01),
        progress=progress.append,
    )
    assert final.finished and final.done == 250 and final.total == 250
    assert set(scored) == {c["id"] for c in source.contacts}
    assert (
        max(scored.values()) == 2 and sum(v == 2 for v in scored.values()) == 20
    )  # the interrupted page
    assert source.calls[-3:] == [100, 150, 200]  # resumed at the saved cursor, not at 0
    assert [p.done for p in progress] == [150, 200, 250]
    assert all(p.total == 250 and p.rate_per_second > 0 for p in progress)
    assert progress[0].eta_seconds is not None and progress[0].eta_seconds > 0
    assert progress[-1].finished and progress[-1].eta_seconds == 0.0
    assert "150/250" in progress[0].line() and "ETA" in progress[0].line()

    again = run_backfill("loc1", source, score, checkpoints, page_size=50)
    assert again == final  # a finished backfill does nothing


def test_a_deadline_stops_between_pages_and_the_next_run_continues() -> None:
    source = ListSource(300)
    checkpoints = MemoryCheckpoints()
    clock = FakeClock(1000.0, step=0.01)
    seen: list[str] = []

    def score(location_id: str, contact: Mapping[str, Any]) -> str:
        seen.append(contact["id"])
        clock.now += 0.01  # 1 s per page of 100
        return ContactOutcome.SCORED if int(contact["id"][1:]) % 10 else ContactOutcome.FAILED

    first = run_backfill(
        "loc1", source, score, checkpoints, page_size=100, clock=clock, deadline=clock.now + 1.5
    )
    assert not first.finished and first.done == 200
    second = run_backfill("loc1", source, score, checkpoints, page_size=100, clock=clock)
    assert second.finished and second.done == 300 and len(seen) == 300
    assert second.failed == 30 and second.scored == 270


def test_checkpoint_json_round_trip() -> None:
    cp = Checkpoint("loc1", "job", cursor=[1700000000000, "abc"], done=5, total=9)
    assert Checkpoint.from_json(cp.to_json()) == cp


def test_a_backfilled_contact_s_tags_travel_with_its_write_back() -> None:
    """The page's contact record carries its tags: the write-back message keeps them, so a
    first write removes only the class tags the contact had (no DELETE on a fresh install)."""
    from leadscore.ghl.installations import InstalledLocation
    from leadscore.loop.backfill_job import ContactStep
    from leadscore.loop.recorder import LoopRecorder

    queued: list[Any] = []

    class Queue:
        def send(self, message: Any) -> None:
            queued.append(message)

    class Scorer:
        def score(self, request: Mapping[str, Any], *, explain: bool = False) -> dict[str, Any]:
            return {
                "contact_id": request["contact_id"],
                "predicted_score": 0.9,
                "predicted_class": "hot",
                "model_version": "lsm-test",
                "source": "ensemble",
            }

    step = ContactStep(
        scorer=lambda: Scorer(),  # type: ignore[arg-type,return-value]
        recorder=LoopRecorder(None),
        queue=Queue(),
        location_for=lambda location_id: InstalledLocation(
            stack_field_map={"fld1": "property_appeal_score"}),
    )
    contact = {"id": "c1", "tags": ["vip"], "customFields": [{"id": "fld1", "value": 70}]}
    assert step("loc1", contact) == ContactOutcome.SCORED
    assert step("loc1", {**contact, "id": "c2", "tags": "not a list"}) == ContactOutcome.SCORED
    step.end_page("loc1")
    assert [m.contact_tags for m in queued] == [("vip",), None]
