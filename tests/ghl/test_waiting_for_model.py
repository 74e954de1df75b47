"""A contact on a team's own columns that comes before any model is served is kept as it came
and scored when a model arrives; it is never queued in the real-estate form (which the
team's model refuses, so the write-back dead-lettered it)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from leadscore.columns.schema import Schema
from leadscore.ghl import parking
from leadscore.ghl.parking import MemoryParkedStore
from leadscore.ghl.webhook import GhlDeps, handle_webhook, replay_waiting
from leadscore.loop.hooks import LoopHooks
from leadscore.loop.recorder import LoopRecorder
from leadscore.scoring.service import ScoringService
from leadscore.settings import ScoreSettings

from tests.fixtures.fakes import FakeClock, MemoryInputDigests, MemoryQueue, StaticProvider
from tests.fixtures.ghl_payloads import workflow_webhook

LOCATION = "ve9EPM428h8vShlRW1KT"
SECRET = "waiting-for-model-secret-1"
SCHEMA = Schema.from_dict({"columns": [
    {"name": "job", "kind": "categorical", "categories": ["admin.", "retired"]},
    {"name": "age", "kind": "numeric", "fill": 40.0},
]})
#: the location's fields as discovery maps them: display name -> column
FIELD_MAP = {"Job": "job", "Age": "age"}


class TeamModel:
    """Stands in for a served team-schema bundle: reads ``fields`` by its schema."""

    version = "team-1"

    def __init__(self) -> None:
        self.scored: list[dict[str, Any]] = []

    def custom_schema(self) -> Schema:
        return SCHEMA

    def score(self, request: dict[str, Any], *, explain: bool = True) -> dict[str, Any]:
        assert "fields" in request, f"a team model cannot read {sorted(request)}"
        self.scored.append(request)
        return {"contact_id": request["contact_id"], "predicted_score": 0.61,
                "predicted_class": "warm", "source": "ensemble",
                "model_version": self.version}


def _deliver(deps: GhlDeps, contact_id: str, fields: dict[str, str]) -> dict[str, Any]:
    body = json.dumps(workflow_webhook(location_id=LOCATION, contact_id=contact_id,
                                       custom_data=fields)).encode()
    outcome = handle_webhook({"x-leadscore-secret": SECRET}, body, deps)
    assert outcome.status_code == 200, outcome.body
    return dict(outcome.body)


def test_a_team_contact_waits_for_the_first_model_and_is_scored_when_it_arrives() -> None:
    served: dict[str, Any] = {"scorer": ScoringService(StaticProvider(None))}  # no model yet
    parked, queue = MemoryParkedStore(), MemoryQueue()
    deps = GhlDeps(settings=ScoreSettings(ghl_webhook_secret=SECRET, ghl_field_map=FIELD_MAP),
                   scorer=lambda: served["scorer"], parked=parked, queue=queue)

    first = _deliver(deps, "c1", {"Job": "retired", "Age": "61"})
    assert first["status"] == "parked" and first["reason"] == parking.NO_MODEL
    assert queue.sent == []  # nothing the team's model would refuse is queued
    assert [r.parked_id.startswith(parking.WAITING_FOLDER) for r in parked.list()] == [True]

    model = TeamModel()
    served["scorer"] = model  # promoted: the next webhook replays what waited first
    second = _deliver(deps, "c2", {"Job": "admin.", "Age": "33"})
    assert second["status"] == "scored"
    assert [r["contact_id"] for r in model.scored] == ["c1", "c2"]
    assert model.scored[0]["fields"] == {"job": "retired", "age": "61"}
    assert [m.contact_id for m in queue.sent] == ["c1", "c2"]
    assert all(m.model_version == "team-1" for m in queue.sent)
    assert list(parked.list()) == []
    assert replay_waiting(deps) == 0  # nothing left, and no listing again


def test_a_real_estate_contact_without_a_model_is_still_queued_for_the_write_back() -> None:
    parked, queue = MemoryParkedStore(), MemoryQueue()
    deps = GhlDeps(settings=ScoreSettings(ghl_webhook_secret=SECRET,
                                          ghl_field_map={"Urgency": "urgency_level"}),
                   scorer=lambda: ScoringService(StaticProvider(None)), parked=parked,
                   queue=queue)
    answer = _deliver(deps, "c3", {"Urgency": "high"})
    assert answer["status"] == "queued" and answer["reason"] == "model unavailable"
    assert list(parked.list()) == [] and len(queue.sent) == 1


def test_a_waiting_contact_stays_when_the_model_still_cannot_read_it() -> None:
    parked, queue = MemoryParkedStore(), MemoryQueue()
    served: dict[str, Any] = {"scorer": ScoringService(StaticProvider(None))}
    deps = GhlDeps(settings=ScoreSettings(ghl_webhook_secret=SECRET, ghl_field_map=FIELD_MAP),
                   scorer=lambda: served["scorer"], parked=parked, queue=queue)
    _deliver(deps, "c4", {"Job": "retired", "Age": "61"})
    # a replay with still no model (another container's view): it stays, nothing is lost
    assert replay_waiting(deps) == 0
    assert len(list(parked.list(parking.WAITING_FOLDER))) == 1 and queue.sent == []


def test_a_contact_that_changed_while_waiting_is_scored_and_written_once() -> None:
    """Each of a contact's waiting deliveries scored in turn meant one score and one
    write-back per delivery, all but the last overwritten at once (the bank file: ~50,000
    replays for ~29,000 contacts): its newest delivery is scored, the older ones are answered
    ``stale`` by the flow's time check, and every one of them is taken out of the store."""
    served: dict[str, Any] = {"scorer": ScoringService(StaticProvider(None))}
    parked, queue, clock = MemoryParkedStore(), MemoryQueue(), FakeClock(1_770_285_600.0)
    deps = GhlDeps(settings=ScoreSettings(ghl_webhook_secret=SECRET, ghl_field_map=FIELD_MAP),
                   scorer=lambda: served["scorer"], parked=parked, queue=queue,
                   digests=MemoryInputDigests(), clock=clock)
    for contact, age in (("c5", "30"), ("c6", "52"), ("c5", "31"), ("c5", "32")):
        clock.advance(60)
        assert _deliver(deps, contact, {"Job": "retired", "Age": age})["status"] == "parked"
    folders = {r.parked_id.rsplit("/", 2)[0] for r in parked.list()}
    assert folders == {parking.waiting_folder(LOCATION, c).rstrip("/") for c in ("c5", "c6")}

    model = TeamModel()
    served["scorer"] = model
    clock.advance(60)
    _deliver(deps, "c7", {"Job": "admin.", "Age": "33"})
    assert [(r["contact_id"], r["fields"]["age"]) for r in model.scored] == [
        ("c5", "32"), ("c6", "52"), ("c7", "33")]
    assert [m.contact_id for m in queue.sent] == ["c5", "c6", "c7"]
    assert list(parked.list()) == []


def test_a_contact_whose_outcome_came_while_it_waited_is_not_scored_later() -> None:
    """Won or lost before any model served: a score would predict what has happened (and
    cost the location's HighLevel calls); its inputs were recorded when it came. On the bank
    file ~22,000 of the ~25,000 contacts that waited had their outcome by then. A reopened
    deal settles nothing."""
    sent: list[dict[str, Any]] = []
    recorder = LoopRecorder(lambda records: sent.extend(records) or [], background=False)
    served: dict[str, Any] = {"scorer": ScoringService(StaticProvider(None))}
    parked, queue, clock = MemoryParkedStore(), MemoryQueue(), FakeClock(1_770_285_600.0)
    deps = GhlDeps(settings=ScoreSettings(ghl_webhook_secret=SECRET, ghl_field_map=FIELD_MAP),
                   scorer=lambda: served["scorer"], parked=parked, queue=queue,
                   loop=LoopHooks(recorder), clock=clock)
    for contact in ("c8", "c9", "c10"):
        clock.advance(60)
        assert _deliver(deps, contact, {"Job": "retired", "Age": "61"})["status"] == "parked"

    def deal(contact: str, status: str) -> dict[str, Any]:
        clock.advance(60)
        body = json.dumps({"type": "OpportunityStatusUpdate", "locationId": LOCATION,
                           "id": f"o-{contact}", "contactId": contact, "status": status,
                           "pipelineId": "p", "pipelineStageId": "",
                           "timestamp": "2026-02-05T10:00:00.000Z"}).encode()
        outcome = handle_webhook({"x-leadscore-secret": SECRET}, body, deps)
        assert outcome.status_code == 200, outcome.body
        return dict(outcome.body)

    assert deal("c8", "won")["waiting_dropped"] == 1
    assert deal("c9", "open").get("waiting_dropped") is None  # reopened: nothing known
    recorder.flush()
    assert [(r["contact_id"], r["converted"]) for r in sent
            if r.get("record_type") == "outcome"] == [("c8", 1), ("c9", None)]

    model = TeamModel()
    served["scorer"] = model
    clock.advance(60)
    _deliver(deps, "c11", {"Job": "admin.", "Age": "33"})
    assert [r["contact_id"] for r in model.scored] == ["c10", "c9", "c11"]
    assert "c8" not in {m.contact_id for m in queue.sent}
    assert list(parked.list()) == []

    # the folder is empty and this container parks nothing more: an outcome does not look
    looked: list[str] = []
    listing = parked.ids
    parked.ids = lambda folder="": looked.append(folder) or listing(folder)  # type: ignore[method-assign]
    assert deal("c11", "lost").get("waiting_dropped") == 0
    assert looked == []


_IDS = st.lists(st.tuples(st.sampled_from(["c1", "c10", "c2"]),
                          st.integers(0, 3), st.sampled_from(["0a", "ff"])), max_size=12)


@given(_IDS)
def test_every_waiting_id_is_replayed_once_each_contacts_newest_first(
        parts: list[tuple[str, int, str]]) -> None:
    ids = sorted({f"{parking.waiting_folder(LOCATION, c)}2026-02-0{day + 1}/100000-{digest}"
                  for c, day, digest in parts}
                 | {f"{parking.WAITING_FOLDER}2026-01-01/090000-{d}" for _, _, d in parts})
    groups = list(parking.by_contact(ids))
    assert sorted(i for g in groups for i in g) == ids
    contacts = []
    for group in groups:
        assert list(group) == sorted(group, reverse=True)
        folders = {i.rsplit("/", 2)[0] for i in group}
        if folders == {parking.WAITING_FOLDER.rstrip("/")}:
            assert len(group) == 1  # a record from before the per-contact folders: alone
        else:
            assert len(folders) == 1
            contacts.append(folders.pop())
    assert len(contacts) == len(set(contacts))  # each contact in one group


_STEPS = st.lists(st.tuples(st.booleans(), st.sampled_from(["c1", "c10", "c2", "d"]),
                            st.integers(0, 3)), max_size=30)


@given(_STEPS, st.sampled_from(["", "c1", "c10", "c2", "d", "x"]))
def test_the_memory_store_lists_a_folder_as_sorting_every_id_would(
        steps: list[tuple[bool, str, int]], prefix: str) -> None:
    # the local store keeps its ids sorted as they come and go (bisection, not a sort of
    # every record per listing): what it lists must not differ from the plain rule
    store, kept = MemoryParkedStore(), set()
    for parks, contact, n in steps:
        parked_id = f"{contact}/{n}"
        if parks:
            store.park(parking.ParkedDelivery(parked_id=parked_id, reason="r",
                                              received_at="2026-02-01T00:00:00Z",
                                              scheme="none", body=b"{}"))
            kept.add(parked_id)
        else:
            store.delete(parked_id)
            kept.discard(parked_id)
    expected = sorted(i for i in kept if i.startswith(prefix))
    assert list(store.ids(prefix)) == expected
    assert [r.parked_id for r in store.list(prefix)] == expected


def test_a_waiting_team_contact_leaves_one_snapshot_in_its_own_columns() -> None:
    """Before any model, the rules' answer on the real-estate form was recorded too, at the
    same time as the kept one: the export's latest-snapshot pick broke that tie by id, so
    about half of a team's rows before its first model were left out as "another form"."""
    from leadscore.loop.snapshots import team_fields

    sent: list[dict[str, Any]] = []
    recorder = LoopRecorder(lambda records: sent.extend(records) or [], background=False)
    deps = GhlDeps(settings=ScoreSettings(ghl_webhook_secret=SECRET, ghl_field_map=FIELD_MAP),
                   scorer=lambda: ScoringService(StaticProvider(None)),
                   parked=MemoryParkedStore(), queue=MemoryQueue(),
                   loop=LoopHooks(recorder), clock=FakeClock(1_770_285_600.0))
    for contact in ("c12", "c13", "c14"):
        assert _deliver(deps, contact, {"Job": "retired", "Age": "61"})["status"] == "parked"
    recorder.flush()
    snapshots = [r for r in sent if r.get("record_type") == "snapshot"]
    assert [r["contact_id"] for r in snapshots] == ["c12", "c13", "c14"]
    assert all(team_fields(r) == {"job": "retired", "age": "61"} for r in snapshots)
    assert all(r["predicted_score"] is None and r["features"] is None for r in snapshots)
