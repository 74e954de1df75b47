"""POST /webhooks/ghl through the scoring API's resolver, with moto DynamoDB/SQS, our own key
pairs and the session's tiny trained bundle."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from leadscore.adapters.ghl_state import DynamoReplayGuard
from leadscore.adapters.writeback_queue import SqsWritebackQueue
from leadscore.ghl import parking
from leadscore.ghl.parking import MemoryParkedStore
from leadscore.ghl.webhook import replay_parked
from leadscore.scoring.model_store import ModelStore
from leadscore.settings import ScoreSettings

from functions.score import app as score_app
from functions.score import ghl_routes
from tests.features.leads import seed
from tests.fixtures.ghl import WEBHOOK_SECRET, GhlAws, KeyPair, api_event

EVENTS = Path(__file__).resolve().parents[2] / "events"

#: The flat lead a CRM would hold, every value a string, some empty.
FLAT_STRINGS: dict[str, str] = {
    "list_price": "800000",
    "estimated_value": "800000",
    "beds": "4",
    "baths": "2.5",
    "sqft": "2200",
    "condition": "good",
    "days_on_market": "15",
    "school_rating": "8",
    "walkability_score": "",
    "average_days_on_market": "30",
    "inventory_level": "4.5",
    "absorption_rate": "0.18",
    "price_trend_pct": "5.0",
    "current_month": "5",
    "comparables": '[{"sale_price": 795000, "days_on_market": 28}, '
    '{"sale_price": 810000, "days_on_market": 32}]',
    "price_drops": "",
    "psychological_commitment_score": "75",
    "urgency_level": "high",
    "motivation_type": "",
    "negotiation_flexibility": "0.6",
    "message_count": "25",
    "avg_response_time_seconds": "",
}

def _typed_features() -> dict[str, Any]:
    """The same lead as a typed POST /score request: the seed request of tests/features/leads.py
    without what FLAT_STRINGS leaves empty or does not carry (a workflow sends "" for those)."""
    lead = seed()
    del lead["property_data"]["location"]["walkability_score"]
    del lead["market_data"]["comparables"][2:]
    del lead["psychology_profile"]["motivation_type"]
    del lead["conversation_data"]["avg_response_time_seconds"]
    return lead


TYPED_FEATURES: dict[str, Any] = _typed_features()


@dataclass
class CountingScorer:
    """The real ScoringService, counted; optionally failing."""

    inner: Any
    calls: list[Mapping[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    fail: Exception | None = None

    def score(self, request: Mapping[str, Any], *, explain: bool = True) -> dict[str, Any]:
        self.calls.append(request)
        if self.fail is not None:
            raise self.fail
        result = self.inner.score(request, explain=explain)
        self.results.append(result)
        return dict(result)


@dataclass
class Harness:
    aws: GhlAws
    settings: ScoreSettings
    scorer: CountingScorer
    ed: KeyPair
    clock: list[float]
    parked: MemoryParkedStore = field(default_factory=MemoryParkedStore)
    counts: list[str] = field(default_factory=list)

    def configure(self, **changes: Any) -> None:
        """Re-wire the route (new settings and/or adapters)."""
        settings = replace(self.settings, **{k: v for k, v in changes.items() if k in _FIELDS})
        self.settings = settings
        ghl_routes.configure(
            settings,
            lambda: self.scorer,
            replay_guard=changes.get("replay_guard")
            or DynamoReplayGuard(settings.webhook_dedup_table, clock=lambda: self.clock[0]),
            queue=changes.get("queue") or SqsWritebackQueue(settings.writeback_queue_url),
            installations=changes.get("installations"),
            lifecycle=changes.get("lifecycle"),
            parked=changes.get("parked", self.parked),
            count=self.counts.append,
            clock=lambda: self.clock[0],
        )

    def post(self, body: bytes, headers: dict[str, str], **kw: Any) -> tuple[int, dict[str, Any]]:
        answer = score_app.app.resolve(api_event(body, headers, **kw), None)  # type: ignore[arg-type]
        return int(answer["statusCode"]), json.loads(answer["body"])

    def signed(
        self, payload: dict[str, Any], key: KeyPair | None = None
    ) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(payload).encode()
        return body, {"x-ghl-signature": (key or self.ed).sign(body)}


_FIELDS = set(ScoreSettings.__dataclass_fields__)


def iso(ts: float) -> str:
    return (
        datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


@pytest.fixture
def harness(ghl_aws: GhlAws, ghl_ed25519: KeyPair, trained_bundle: Path) -> Iterator[Harness]:
    settings = ScoreSettings(
        model_uri=f"file://{trained_bundle}",
        ghl_public_key_ed25519=ghl_ed25519.public_pem,
        ghl_webhook_secret=WEBHOOK_SECRET,
        ghl_field_map={"fld_list_price": "list_price", "fld_urgency": "urgency_level"},
        webhook_dedup_table=ghl_aws.table,
        writeback_queue_url=ghl_aws.queue_url,
    )
    container = score_app.build_container(settings, store=ModelStore(settings.model_uri))
    score_app.set_container(container)
    h = Harness(ghl_aws, settings, CountingScorer(container.service), ghl_ed25519, [time.time()])
    h.configure()
    yield h
    score_app.set_container(None)


def marketplace(h: Harness, webhook_id: str = "wh-1", **extra: Any) -> dict[str, Any]:
    return {
        "type": "ContactUpdate",
        "locationId": "loc-1",
        "id": "contact-1",
        "firstName": "Jordan",
        "email": "jordan@example.com",
        "customFields": [
            {"id": "fld_list_price", "value": "800000"},
            {"id": "fld_urgency", "value": "critical"},
        ],
        "timestamp": iso(h.clock[0]),
        "webhookId": webhook_id,
        **extra,
    }


def workflow(flat: Mapping[str, str], contact_id: str = "contact-w") -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "first_name": "Jordan",
        "email": "jordan@example.com",
        "tags": "seller,relocation",
        "location": {"id": "loc-1", "name": "Example Realty"},
        "workflow": {"id": "wf-1", "name": "Score"},
        "customData": dict(flat),
    }


# --------------------------------------------------------------------------- marketplace


def test_valid_signature_scores_and_queues_the_write_back(harness: Harness) -> None:
    status, body = harness.post(*harness.signed(marketplace(harness)))
    assert status == 200, body
    assert body["status"] == "scored" and body["contact_id"] == "contact-1"
    assert 0.0 <= body["predicted_score"] <= 1.0
    assert body["predicted_class"] in ("hot", "warm", "lukewarm", "cold")
    assert body["source"] == "ensemble" and body["writeback"] == "queued"
    # The model saw the mapped custom fields.
    request = harness.scorer.calls[0]
    assert request["features"]["property_data"]["list_price"] == 800000
    assert request["features"]["psychology_profile"]["urgency_level"] == "critical"
    [message] = harness.aws.queued()
    assert message["kind"] == "score" and message["contact_id"] == "contact-1"
    assert message["location_id"] == "loc-1"
    assert message["predicted_score"] == body["predicted_score"]
    assert message["predicted_class"] == body["predicted_class"]
    assert message["model_version"].startswith("lsm-")


def test_a_contact_events_tags_go_with_its_score_so_a_first_write_removes_only_those(
        harness: Harness) -> None:
    # Without them the first write of every new contact also DELETEd the three other class
    # tags it does not have: one HighLevel call of three, against the location's budget.
    from leadscore.ghl.messages import parse_message
    from leadscore.ghl.write_plan import plan_write

    status, body = harness.post(*harness.signed(marketplace(harness, tags=["vip"])))
    assert status == 200 and body["status"] == "scored", body
    [queued] = harness.aws.queued()
    assert queued["contact_tags"] == ["vip"]
    plan = plan_write(parse_message(json.dumps(queued)), None, score_field_id="f1",
                      class_field_id="f2")
    assert [c.method for c in plan.calls()] == ["PUT", "POST"]


def test_base64_encoded_body_is_verified_on_its_decoded_bytes(harness: Harness) -> None:
    body, headers = harness.signed(marketplace(harness))
    status, answer = harness.post(body, headers, base64_body=True)
    assert status == 200 and answer["status"] == "scored"


@pytest.mark.parametrize("position", [0, 10, -2])
def test_body_changed_by_one_byte_is_401(harness: Harness, position: int) -> None:
    body, headers = harness.signed(marketplace(harness))
    i = position % len(body)
    tampered = body[:i] + (b"x" if body[i : i + 1] != b"x" else b"y") + body[i + 1 :]
    status, answer = harness.post(tampered, headers)
    assert status == 401 and answer["reason"] == "invalid signature"
    assert harness.scorer.calls == [] and harness.aws.queued() == []


def test_wrong_key_is_401(harness: Harness, ghl_ed25519_other: KeyPair) -> None:
    status, _ = harness.post(*harness.signed(marketplace(harness), ghl_ed25519_other))
    assert status == 401 and harness.scorer.calls == []


def test_first_delivery_two_hours_after_its_timestamp_is_scored(harness: Harness) -> None:
    """HighLevel's retries keep the original timestamp and span hours."""
    payload = marketplace(harness, webhook_id="wh-late",
                          timestamp=iso(harness.clock[0] - 2 * 3600))
    request = harness.signed(payload)
    status, body = harness.post(*request)
    assert status == 200 and body["status"] == "scored"
    status, body = harness.post(*request)
    assert status == 200 and body["status"] == "duplicate" and body["webhook_id"] == "wh-late"
    assert len(harness.scorer.calls) == 1 and len(harness.aws.queued()) == 1
    assert harness.counts.count("WebhookDuplicate") == 1


def test_received_at_is_highlevels_timestamp(harness: Harness) -> None:
    sent = harness.clock[0] - 3 * 3600
    harness.post(*harness.signed(marketplace(harness, timestamp=iso(sent))))
    [message] = harness.aws.queued()
    assert message["received_at"] == iso(sent)


@pytest.mark.parametrize(("offset", "reason"), [(-4 * 86400, parking.TOO_OLD),
                                                (3600, parking.FUTURE)])
def test_delivery_outside_the_window_is_parked_not_rejected(
    harness: Harness, offset: int, reason: str
) -> None:
    payload = marketplace(harness, timestamp=iso(harness.clock[0] + offset))
    status, answer = harness.post(*harness.signed(payload))
    assert status == 200 and answer["status"] == "parked" and answer["reason"] == reason
    assert harness.scorer.calls == [] and harness.aws.queued() == []
    [record] = harness.parked.list()
    assert record.reason == reason and record.scheme == "ed25519"
    assert record.location_id == "loc-1" and json.loads(record.body)["id"] == "contact-1"
    assert harness.counts == ["WebhookParked"]
    # the operator replays it (tools/ghlctl.py replay): scored this time
    replayed = replay_parked(record, ghl_routes.deps())
    assert replayed.status_code == 200 and replayed.body["status"] == "scored"


def test_epoch_millisecond_timestamp_within_window_is_accepted(harness: Harness) -> None:
    payload = marketplace(harness, timestamp=int((harness.clock[0] - 60) * 1000))
    status, _ = harness.post(*harness.signed(payload))
    assert status == 200


def test_signed_body_without_timestamp_is_parked(harness: Harness) -> None:
    payload = marketplace(harness)
    del payload["timestamp"]
    status, answer = harness.post(*harness.signed(payload))
    assert status == 200 and answer["reason"] == parking.NO_TIMESTAMP
    assert harness.scorer.calls == []


def test_signed_delivery_without_webhook_id_is_deduplicated_on_its_body(
    harness: Harness,
) -> None:
    payload = marketplace(harness)
    del payload["webhookId"]
    request = harness.signed(payload)
    assert harness.post(*request)[1]["status"] == "scored"
    status, answer = harness.post(*request)
    assert status == 200 and answer["status"] == "duplicate"
    assert answer["webhook_id"].startswith("sha256:")
    assert len(harness.scorer.calls) == 1 and len(harness.aws.queued()) == 1
    # another body (another change of the contact) is a new delivery, not a duplicate; a
    # first name is not a scoring input, so it is not scored again
    changed = harness.signed({**payload, "firstName": "Jo"})
    assert harness.post(*changed)[1]["status"] == "unchanged"


@pytest.mark.parametrize("absent", ["N/A", "", "n/a", "  "])
def test_na_or_empty_signature_headers_count_as_absent(harness: Harness, absent: str) -> None:
    body = json.dumps(workflow(FLAT_STRINGS)).encode()
    headers = {"x-ghl-signature": absent, "x-wh-signature": absent,
               "x-leadscore-secret": WEBHOOK_SECRET}
    status, answer = harness.post(body, headers)
    assert status == 200 and answer["status"] == "scored"
    status, answer = harness.post(body, {"x-ghl-signature": absent, "x-wh-signature": absent})
    assert status == 401 and answer["reason"] == "missing signature"


def test_another_apps_delivery_is_acknowledged_and_ignored(harness: Harness) -> None:
    harness.configure(ghl_app_id="665c6bb13d4e5364bdec0e2f")
    for app in ({"appId": "000000000000000000000000"}, {}):
        status, answer = harness.post(*harness.signed(marketplace(harness, **app)))
        assert status == 200 and answer["status"] == "ignored"
        assert answer["reason"] == "another app's delivery"
    assert harness.scorer.calls == [] and harness.aws.queued() == []
    assert harness.counts == ["WebhookIgnored", "WebhookIgnored"]
    ours = marketplace(harness, webhook_id="wh-ours", appId="665c6bb13d4e5364bdec0e2f")
    assert harness.post(*harness.signed(ours))[1]["status"] == "scored"


def test_verified_body_that_is_not_json_is_parked(harness: Harness) -> None:
    body = b'{"type": "ContactUpdate", "id": '
    status, answer = harness.post(body, {"x-ghl-signature": harness.ed.sign(body)})
    assert status == 200 and answer == {"status": "parked", "reason": parking.NOT_JSON,
                                        "parked_id": answer["parked_id"]}
    assert [r.body for r in harness.parked.list()] == [body]


def test_default_ed25519_key_is_highlevels_published_key() -> None:
    from leadscore.ghl.auth import _load_public_key
    from leadscore.settings import HIGHLEVEL_ED25519_PUBLIC_KEY_PEM

    assert ScoreSettings().ghl_public_key_ed25519 == HIGHLEVEL_ED25519_PUBLIC_KEY_PEM
    assert ScoreSettings.from_env({}).ghl_public_key_ed25519 == \
        HIGHLEVEL_ED25519_PUBLIC_KEY_PEM.strip()
    assert "MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=" in \
        HIGHLEVEL_ED25519_PUBLIC_KEY_PEM
    _load_public_key(HIGHLEVEL_ED25519_PUBLIC_KEY_PEM)  # a valid Ed25519 key
    from tests.fixtures.aws import load_template

    default = load_template()["Parameters"]["GhlPublicKeyEd25519"]["Default"]
    assert _load_public_key(default).public_bytes_raw() == \
        _load_public_key(HIGHLEVEL_ED25519_PUBLIC_KEY_PEM).public_bytes_raw()


def test_missing_signature_header_is_401(harness: Harness) -> None:
    body, _ = harness.signed(marketplace(harness))
    status, answer = harness.post(body, {})
    assert status == 401 and answer["reason"] == "missing signature"


def test_legacy_rsa_accepted_only_when_configured(harness: Harness, ghl_rsa: KeyPair) -> None:
    body = json.dumps(marketplace(harness)).encode()
    headers = {"x-wh-signature": ghl_rsa.sign(body)}
    assert harness.post(body, headers)[0] == 401
    harness.configure(ghl_public_key_rsa=ghl_rsa.public_pem)
    status, answer = harness.post(body, headers)
    assert status == 200 and answer["status"] == "scored"


def test_bad_ed25519_is_401_even_with_a_valid_legacy_signature(
    harness: Harness, ghl_rsa: KeyPair, ghl_ed25519_other: KeyPair
) -> None:
    harness.configure(ghl_public_key_rsa=ghl_rsa.public_pem)
    body = json.dumps(marketplace(harness)).encode()
    headers = {
        "x-ghl-signature": ghl_ed25519_other.sign(body),
        "x-wh-signature": ghl_rsa.sign(body),
    }
    assert harness.post(body, headers)[0] == 401
    assert harness.scorer.calls == []


def test_replayed_webhook_id_is_acknowledged_and_scored_once(harness: Harness) -> None:
    request = harness.signed(marketplace(harness, webhook_id="wh-replay"))
    first = harness.post(*request)
    second = harness.post(*request)
    assert first[0] == 200 and first[1]["status"] == "scored"
    assert second[0] == 200 and second[1]["status"] == "duplicate"
    assert len(harness.scorer.calls) == 1
    assert len(harness.aws.queued()) == 1
    # A different webhook id for the same contact is a new event (here with a new input).
    changed = [{"id": "fld_list_price", "value": "810000"},
               {"id": "fld_urgency", "value": "critical"}]
    second = marketplace(harness, webhook_id="wh-2", customFields=changed)
    assert harness.post(*harness.signed(second))[1]["status"] == "scored"
    assert len(harness.scorer.calls) == 2


def test_replay_guard_down_still_scores(harness: Harness) -> None:
    class Broken:
        def claim(self, webhook_id: str) -> bool:
            raise ConnectionError("dynamodb unreachable")

        def release(self, webhook_id: str) -> None:
            raise ConnectionError("dynamodb unreachable")

    harness.configure(replay_guard=Broken())
    status, body = harness.post(*harness.signed(marketplace(harness)))
    assert status == 200 and body["status"] == "scored"


def test_non_contact_event_is_acknowledged_and_ignored(harness: Harness) -> None:
    payload = {
        "type": "NoteCreate",  # (ContactDelete is consumed now: the contact's data goes)
        "locationId": "loc-1",
        "id": "c",
        "webhookId": "w",
        "timestamp": iso(harness.clock[0]),
    }
    status, body = harness.post(*harness.signed(payload))
    assert status == 200 and body["status"] == "ignored"
    assert harness.scorer.calls == [] and harness.aws.queued() == []


def test_sample_event_file_signed_at_test_time(harness: Harness) -> None:
    event = json.loads((EVENTS / "ghl_webhook_contact_update.json").read_text())
    payload = json.loads(event["body"])
    harness.clock[0] = datetime.fromisoformat(
        payload["timestamp"].replace("Z", "+00:00")
    ).timestamp()
    harness.configure(ghl_field_map={"fld_list_price_01": "list_price", "fld_beds_02": "beds"})
    body = event["body"].encode()
    event["headers"]["x-ghl-signature"] = harness.ed.sign(body)
    answer = score_app.app.resolve(event, None)  # type: ignore[arg-type]
    assert answer["statusCode"] == 200, answer["body"]
    assert json.loads(answer["body"])["contact_id"] == payload["id"]
    assert harness.scorer.calls[0]["features"]["property_data"] == {"list_price": 800000, "beds": 4}


# --------------------------------------------------------------------------- workflow


def test_workflow_webhook_with_secret(harness: Harness) -> None:
    body = json.dumps(workflow(FLAT_STRINGS)).encode()
    status, answer = harness.post(body, {"X-LeadScore-Secret": WEBHOOK_SECRET})
    assert status == 200 and answer["status"] == "scored"
    assert answer["contact_id"] == "contact-w" and answer["location_id"] == "loc-1"


@pytest.mark.parametrize(
    "headers", [{}, {"x-leadscore-secret": "nope"}, {"x-leadscore-secret": ""}]
)
def test_workflow_webhook_without_the_secret_is_401(
    harness: Harness, headers: dict[str, str]
) -> None:
    status, _ = harness.post(json.dumps(workflow(FLAT_STRINGS)).encode(), headers)
    assert status == 401 and harness.scorer.calls == []


def test_workflow_strings_score_exactly_like_the_typed_request(harness: Harness) -> None:
    body = json.dumps(workflow(FLAT_STRINGS, contact_id="same-lead-a")).encode()
    status, answer = harness.post(body, {"x-leadscore-secret": WEBHOOK_SECRET})
    assert status == 200
    [from_webhook] = harness.scorer.results

    typed = json.dumps({"contact_id": "same-lead-b", "features": TYPED_FEATURES}).encode()
    event = api_event(typed, {})
    event["path"] = event["resource"] = "/score"
    event["queryStringParameters"] = {"explain": "false"}
    direct = score_app.app.resolve(event, None)  # type: ignore[arg-type]
    assert direct["statusCode"] == 200, direct["body"]
    from_api = json.loads(direct["body"])

    assert answer["predicted_score"] == from_api["predicted_score"]
    assert answer["predicted_class"] == from_api["predicted_class"]
    assert from_webhook["feature_values"] == from_api["feature_values"]
    assert from_webhook["missing_fields"] == from_api["missing_fields"]
    assert from_webhook["confidence_interval"] == from_api["confidence_interval"]
    assert from_webhook["cached"] is False and from_api["cached"] is False


def test_workflow_with_bad_lead_values_is_parked_with_its_reason(harness: Harness) -> None:
    flat = {**FLAT_STRINGS, "list_price": "a lot", "beds": "-3"}
    body = json.dumps(workflow(flat)).encode()
    status, answer = harness.post(body, {"x-leadscore-secret": WEBHOOK_SECRET})
    assert status == 200 and answer["status"] == "parked"
    paths = {e["path"] for e in answer["errors"]}
    assert "list_price" in paths
    assert answer["reason"].startswith(parking.INVALID_LEAD) and "list_price" in answer["reason"]
    assert "jordan" not in json.dumps(answer).lower()
    assert harness.aws.queued() == []
    [record] = harness.parked.list()
    assert record.scheme == "secret" and WEBHOOK_SECRET.encode() not in record.body


def test_free_webhook_action_with_the_secret_in_custom_data(harness: Harness) -> None:
    """The standard Webhook action cannot send headers: the secret rides in Custom Data."""
    payload = workflow(FLAT_STRINGS)
    payload["customData"]["leadscore_secret"] = WEBHOOK_SECRET
    status, answer = harness.post(json.dumps(payload).encode(), {})
    assert status == 200 and answer["status"] == "scored"
    assert "leadscore_secret" not in json.dumps(harness.scorer.calls)
    payload["customData"]["leadscore_secret"] = WEBHOOK_SECRET[:-1] + "x"
    status, answer = harness.post(json.dumps(payload).encode(), {})
    assert status == 401 and answer["reason"] == "invalid secret"


# --------------------------------------------------------------------------- when scoring fails


def test_scoring_error_is_acknowledged_and_the_webhook_queued(harness: Harness) -> None:
    harness.scorer.fail = RuntimeError("onnxruntime exploded")
    status, body = harness.post(*harness.signed(marketplace(harness)))
    assert status == 200 and body["status"] == "queued"
    [message] = harness.aws.queued()
    assert message["kind"] == "webhook" and message["contact_id"] == "contact-1"
    assert message["webhook"]["features"]["property_data"]["list_price"] == 800000
    assert "email" not in json.dumps(message)


def test_no_model_means_queued_not_a_rules_write(harness: Harness) -> None:
    no_model = score_app.build_container(harness.settings, store=ModelStore(""))
    harness.scorer.inner = no_model.service
    status, body = harness.post(*harness.signed(marketplace(harness)))
    assert status == 200 and body["status"] == "queued" and body["reason"] == "model unavailable"
    assert [m["kind"] for m in harness.aws.queued()] == ["webhook"]


class Refusing:
    def send(self, message: object) -> str:
        raise ConnectionError("sqs unreachable")

    def park(self, record: object) -> None:
        raise ConnectionError("s3 unreachable")


def test_queue_refusing_parks_the_delivery_and_replay_queues_it(harness: Harness) -> None:
    harness.configure(queue=Refusing())
    request = harness.signed(marketplace(harness, webhook_id="wh-park"))
    status, body = harness.post(*request)
    assert status == 200 and body["status"] == "parked"
    assert body["reason"] == parking.QUEUE_DOWN
    harness.configure()  # the queue is back
    [record] = harness.parked.list()
    assert replay_parked(record, ghl_routes.deps()).body["status"] == "scored"
    assert len(harness.aws.queued()) == 1


def test_parking_failing_too_answers_429_and_forgets_the_webhook_id(harness: Harness) -> None:
    harness.configure(queue=Refusing(), parked=Refusing())
    request = harness.signed(marketplace(harness, webhook_id="wh-429"))
    status, _ = harness.post(*request)
    assert status == 429
    assert harness.post(*request)[0] == 429  # not "duplicate": HighLevel's retry is honoured
    harness.configure()
    status, body = harness.post(*request)
    assert status == 200 and body["status"] == "scored"


def test_an_unexpected_failure_is_never_a_5xx(harness: Harness) -> None:
    class Odd:
        def score(self, request: Mapping[str, Any], *, explain: bool = True) -> dict[str, Any]:
            return {"source": "ensemble"}  # no predicted_score: a broken contract

    real = harness.scorer.inner
    harness.scorer.inner = Odd()
    request = harness.signed(marketplace(harness, webhook_id="wh-odd"))
    status, body = harness.post(*request)
    assert status == 200 and body["status"] == "parked"  # kept, acknowledged
    harness.configure(parked=Refusing())
    request = harness.signed(marketplace(harness, webhook_id="wh-odd-2"))
    status, body = harness.post(*request)
    assert status == 429 and body["error"] == "try again later"
    harness.scorer.inner = real
    status, body = harness.post(*request)  # HighLevel's retry is scored, not a "duplicate"
    assert status == 200 and body["status"] == "scored"


# --------------------------------------------------------------------------- own writes
# 08:30 code: the ContactUpdate our own write caused was scored and queued again (each round
# re-scored and, with a Custom Webhook, billed).


def test_our_own_write_coming_back_is_not_scored_again(harness: Harness) -> None:
    assert harness.post(*harness.signed(marketplace(harness, webhook_id="wh-a")))[1][
        "status"] == "scored"
    # What HighLevel sends after the write-back: the same inputs, plus our score and class
    # fields and the class tag (neither is a scoring input).
    echo = marketplace(harness, webhook_id="wh-b", tags=["hot-lead"], customFields=[
        {"id": "fld_list_price", "value": "800000"}, {"id": "fld_urgency", "value": "critical"},
        {"id": "fld_lead_score", "value": "87"}, {"id": "fld_lead_class", "value": "hot"}])
    status, body = harness.post(*harness.signed(echo))
    assert (status, body["status"]) == (200, "unchanged")
    assert len(harness.scorer.calls) == 1 and len(harness.aws.queued()) == 1
    assert "WebhookUnchanged" in harness.counts
    # A real change of an input is scored again.
    changed = marketplace(harness, webhook_id="wh-c", customFields=[
        {"id": "fld_list_price", "value": "650000"}, {"id": "fld_urgency", "value": "critical"}])
    assert harness.post(*harness.signed(changed))[1]["status"] == "scored"
    assert len(harness.scorer.calls) == 2
