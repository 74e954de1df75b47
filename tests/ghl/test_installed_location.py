"""One installation model (`InstalledLocation`) reads a location's fields and classes its
scores on every path that writes to HighLevel: the webhook scored at once, the queued webhook
the write-back scores later, and the backfill. Each path is driven from the ready events in
events/ with the existing fakes (fake HighLevel, moto), and each must give the same answer: the
location's field map (what the operator configured merged with what discovery resolved) reads
the contact, and the location's own thresholds class the score."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from leadscore.ghl.installations import Installation, InstalledLocation
from leadscore.ghl.messages import parse_message
from leadscore.ghl.webhook import GhlDeps, handle_webhook
from leadscore.settings import ScoreSettings

from tests.fixtures.fakes import MemoryQueue
from tests.fixtures.ghl import (
    GHL_TOKEN,
    FakeHighLevel,
    GhlAws,
    KeyPair,
    sqs_event,
    writeback_function,
)
from tools.lambda_context import lambda_context

EVENTS = Path(__file__).resolve().parents[2] / "events"
#: the ContactUpdate of events/ghl_webhook_contact_update.json (custom fields by id only)
CONTACT_EVENT = json.loads(json.loads(
    (EVENTS / "ghl_webhook_contact_update.json").read_text())["body"])
BACKFILL_EVENT = json.loads((EVENTS / "backfill_start.json").read_text())
EVENT_TIME = 1770285600.0  # the delivery's own timestamp

#: lukewarm by the defaults (0.40 <= 0.5 < 0.60); hot by this location's own thresholds
LOCATION_THRESHOLDS = {"hot": 0.45, "warm": 0.3, "lukewarm": 0.1}


def installation(location_id: str) -> Installation:
    """A location whose operator mapped ``fld_beds_02`` by hand and whose discovery resolved
    ``fld_list_price_01``; no field is named like a flat name, so only the map reads them."""
    return Installation(
        location_id=location_id, token_source="pit", score_field_id="fldScore",
        class_field_id="fldClass", score_field_numeric=True,
        configured_map={"fld_beds_02": "beds", "fld_list_price_01": "sqft"},
        field_map={"fld_list_price_01": "list_price"},
        class_thresholds=LOCATION_THRESHOLDS)


class Installs:
    """Every location installed as `installation`, the token the fake HighLevel accepts."""

    def installation(self, location_id: str, *, fresh: bool = False) -> Installation | None:
        return installation(location_id)

    def access_token(self, location_id: str, *, refresh: bool = False) -> str:
        return GHL_TOKEN


class Scorer:
    """Records what it was asked; 0.5 (lukewarm by the defaults), or a failure."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.requests: list[Mapping[str, Any]] = []

    def score(self, request: Mapping[str, Any], *, explain: bool = False) -> dict[str, Any]:
        self.requests.append(request)
        if self.fail:
            raise RuntimeError("model store down")
        return {"contact_id": request.get("contact_id"), "predicted_score": 0.5,
                "predicted_class": "lukewarm", "should_prioritize": False,
                "model_version": "lsm-test", "source": "ensemble"}


def read_property(request: Mapping[str, Any]) -> dict[str, Any]:
    return dict(request["features"].get("property_data") or {})


def deliver(scorer: Scorer, key: KeyPair, queue: MemoryQueue) -> dict[str, Any]:
    body = json.dumps(CONTACT_EVENT).encode()
    deps = GhlDeps(settings=ScoreSettings(ghl_public_key_ed25519=key.public_pem),
                   scorer=lambda: scorer, installations=Installs(), queue=queue,
                   clock=lambda: EVENT_TIME)
    outcome = handle_webhook({"x-ghl-signature": key.sign(body)}, body, deps)
    assert outcome.status_code == 200, outcome.body
    return dict(outcome.body)


def test_the_model_merges_configured_and_resolved_keys_one_way() -> None:
    inst = installation("L")
    assert InstalledLocation(inst, {"x": "urgency_level"}).field_map() == {
        "fld_beds_02": "beds", "fld_list_price_01": "list_price"}  # the resolved id wins
    assert InstalledLocation(None, {"x": "urgency_level"}).field_map() == {"x": "urgency_level"}
    score = Scorer().score({"contact_id": "c"})
    assert InstalledLocation(inst).classify(score)["predicted_class"] == "hot"
    assert InstalledLocation(None).classify(score)["predicted_class"] == "lukewarm"


def test_the_immediate_webhook(ghl_ed25519: KeyPair) -> None:
    scorer, queue = Scorer(), MemoryQueue()
    answer = deliver(scorer, ghl_ed25519, queue)
    assert answer["status"] == "scored" and answer["predicted_class"] == "hot"
    assert read_property(scorer.requests[0]) == {"list_price": 800000, "beds": 4}
    assert [m.predicted_class for m in queue.sent] == ["hot"]


@pytest.fixture
def writeback(ghl_aws: GhlAws, fake_highlevel: FakeHighLevel,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    env = {"GHL_API_BASE": fake_highlevel.base_url, "CACHE_TABLE": ghl_aws.table,
           "WRITEBACK_QUEUE_URL": ghl_aws.queue_url, "WRITEBACK_DLQ_URL": ghl_aws.dlq_url,
           "GHL_TOKEN_SECRET_ARN": ghl_aws.secret_arn, "MODEL_URI": "",
           "POWERTOOLS_METRICS_NAMESPACE": "LeadScoring"}
    with writeback_function(env, monkeypatch) as app:
        yield app


def test_the_queued_write_back(ghl_ed25519: KeyPair, writeback: Any,
                               fake_highlevel: FakeHighLevel) -> None:
    # The webhook cannot score now: it queues the contact as read with the location's map.
    queue = MemoryQueue()
    assert deliver(Scorer(fail=True), ghl_ed25519, queue)["status"] == "queued"
    (queued,) = queue.sent
    assert queued.kind == "webhook"
    # The write-back scores it later and writes the class the location's thresholds give.
    later = Scorer()
    deps = writeback.deps()
    deps.installations, deps.scorer = Installs(), lambda: later
    answer = writeback.lambda_handler(sqs_event(queued.to_json()), lambda_context("writeback"))
    assert answer["batchItemFailures"] == []
    assert read_property(later.requests[0]) == {"list_price": 800000, "beds": 4}
    put = fake_highlevel.requests[0]
    assert put.body["customFields"] == [{"id": "fldScore", "field_value": 50},
                                        {"id": "fldClass", "field_value": "hot"}]


class SearchApi:
    """One page of HighLevel's contact search: the webhook event's contact."""

    def search_contacts(self, body: Mapping[str, Any]) -> Any:
        contact = {k: v for k, v in CONTACT_EVENT.items()
                   if k not in ("type", "locationId", "webhookId", "appId", "versionId")}
        return {"contacts": [contact], "total": 1}

    def search_opportunities(self, query: Mapping[str, str]) -> Any:
        return {"opportunities": []}


def test_the_backfill(monkeypatch: pytest.MonkeyPatch) -> None:
    from leadscore.loop.backfill import MemoryCheckpoints

    from functions.backfill import app

    for name in ("RECORD_STREAM", "RECORD_DIR", "LOOP_TABLE", "GHL_FIELD_MAP"):
        monkeypatch.delenv(name, raising=False)
    scorer, queue = Scorer(), MemoryQueue()
    monkeypatch.setattr(app, "installations", Installs)
    monkeypatch.setattr(app, "scorer", lambda: scorer)
    app._recorder.set(None)  # built again from this environment: no record sink
    final = app.run(BACKFILL_EVENT, checkpoints=MemoryCheckpoints(), deadline=None,
                    api=lambda location_id: SearchApi(), queue=queue)
    assert final.done == 1
    assert read_property(scorer.requests[0]) == {"list_price": 800000, "beds": 4}
    assert [(m.location_id, m.predicted_class) for m in queue.sent] == [
        (BACKFILL_EVENT["location_id"], "hot")]
    assert parse_message(queue.sent[0].to_json()).predicted_class == "hot"
