"""The write-back never loses a score, never writes a stale one, and logs every
failure once. Each test drives the real SQS handler (functions/writeback/app.py) with moto
(DynamoDB, SQS, Secrets Manager) and THE fake HighLevel (tests/fixtures/fake_highlevel.py)
misbehaving the way HighLevel does. Each one failed on the write-back of 2026-11-30 08:30
(noted per test)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from leadscore.wiring.container import forget_all

from tests.fixtures.fake_highlevel import Chaos, FakeContact, FakeHighLevel
from tests.fixtures.ghl import GhlAws
from tests.reliability.logcapture import captured_logs
from tools.lambda_context import lambda_context

REGION = "us-east-1"
T0 = "2026-02-05T10:00:00.000Z"
T5 = "2026-02-05T10:00:05.000Z"
MAX_ATTEMPTS = 4


@dataclass
class World:
    fake: FakeHighLevel
    aws: GhlAws
    location_id: str
    token: str
    score_field: str
    class_field: str
    dlq_url: str
    app: Any

    def contact(self, contact_id: str) -> FakeContact:
        loc = self.fake.locations[self.location_id]
        if contact_id not in loc.contacts:
            self.fake.add_contact(self.location_id, contact_id=contact_id)
        return loc.contacts[contact_id]

    def requests_for(self, contact_id: str) -> list[Any]:
        return [r for r in self.fake.requests if f"/contacts/{contact_id}" in r.path]

    def message(self, contact_id: str, score: float, cls: str, received_at: str = T0,
                **extra: Any) -> str:
        self.contact(contact_id)
        return json.dumps({
            "kind": "score", "contact_id": contact_id, "location_id": self.location_id,
            "predicted_score": score, "predicted_class": cls,
            "model_version": "lsm-0123456789abcdef", "received_at": received_at, **extra,
        })

    def invoke(
        self, *bodies: str, remaining_ms: int = 30_000, context: Any = None
    ) -> list[str]:
        event = {"Records": [{
            "messageId": f"m-{i}", "receiptHandle": f"rh-{i}", "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1770285600000"},
            "messageAttributes": {}, "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:lead-scoring-writeback",
            "awsRegion": REGION,
        } for i, body in enumerate(bodies)]}
        answer = self.app.lambda_handler(
            event, context or lambda_context("writeback", timeout_ms=remaining_ms))
        return [f["itemIdentifier"] for f in answer["batchItemFailures"]]

    def dead_letters(self) -> list[dict[str, Any]]:
        got = self.aws.sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        return got.get("Messages", [])

    def queued(self) -> list[tuple[dict[str, Any], float]]:
        """Messages on the write-back queue, delayed ones included: (body, delay left in s).
        moto keeps delayed messages out of ReceiveMessage, so its backend is read."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.sqs.models import sqs_backends

        name = self.aws.queue_url.rsplit("/", 1)[-1]
        queue = sqs_backends[DEFAULT_ACCOUNT_ID][REGION].queues[name]
        now_ms = time.time() * 1000
        return [(json.loads(m.body), max(0.0, (m.delayed_until - now_ms) / 1000.0))
                for m in queue._messages]


def _reset(app: Any) -> None:
    """Every function's per-container objects forgotten (the next use builds them anew)."""
    forget_all()


@pytest.fixture
def world(ghl_aws: GhlAws, fake_highlevel: FakeHighLevel,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    from aws_lambda_powertools.utilities import parameters

    from functions.writeback import app

    loc = fake_highlevel.add_location()
    token = fake_highlevel.add_pit(loc.id)
    score_field = fake_highlevel.add_field(loc.id, "Lead Score", "NUMERICAL").id
    class_field = fake_highlevel.add_field(loc.id, "Lead Class").id
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId=ghl_aws.secret_arn, SecretString=token)
    dlq_url = ghl_aws.dlq_url
    env = {
        "GHL_API_BASE": fake_highlevel.base_url,
        "GHL_TOKEN_SECRET_ARN": ghl_aws.secret_arn,
        "GHL_SCORE_FIELD_ID": score_field,
        "GHL_CLASS_FIELD_ID": class_field,
        "CACHE_TABLE": ghl_aws.table,
        "WRITEBACK_QUEUE_URL": ghl_aws.queue_url,
        "WRITEBACK_DLQ_URL": dlq_url,
        "MAX_RATE_LIMIT_WAIT_SECONDS": "2",
        "HTTP_TIMEOUT_SECONDS": "5",
        "WRITEBACK_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "MODEL_URI": "",
        "POWERTOOLS_METRICS_NAMESPACE": "LeadScoring",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    _reset(app)
    yield World(fake_highlevel, ghl_aws, loc.id, token, score_field, class_field, dlq_url, app)
    _reset(app)
    parameters.clear_caches()  # type: ignore[no-untyped-call]


def _class_tags(contact: FakeContact) -> set[str]:
    return {t for t in contact.tags if t.endswith("-lead")}


# --------------------------------------------------------------------------- stale writes
# 08:30 code: the redelivered A was written (PUT 91/hot, +hot-lead, -cold-lead).


def test_a_redelivered_older_score_never_overwrites_a_newer_one(world: World) -> None:
    newer = world.message("c-1", 0.12, "cold", T5)
    older = world.message("c-1", 0.91, "hot", T0)
    assert world.invoke(newer) == []
    sent = len(world.fake.requests)
    assert world.invoke(older) == []  # acknowledged: nothing to retry
    assert len(world.fake.requests) == sent  # and nothing sent
    contact = world.contact("c-1")
    assert str(contact.custom_fields[world.score_field]) == "12"
    assert contact.custom_fields[world.class_field] == "cold"
    assert _class_tags(contact) == {"cold-lead"}
    item = world.aws.ddb.get_item(TableName=world.aws.table,
                                  Key={"pk": {"S": f"writeback#{world.location_id}#c-1"}})["Item"]
    assert item["received_at"]["S"] == T5 and item["model_version"]["S"]


def test_an_older_score_later_in_the_same_batch_is_dropped(world: World) -> None:
    assert world.invoke(world.message("c-2", 0.12, "cold", T5),
                        world.message("c-2", 0.91, "hot", T0)) == []
    contact = world.contact("c-2")
    assert contact.custom_fields[world.class_field] == "cold"
    assert _class_tags(contact) == {"cold-lead"}
    assert [r.method for r in world.requests_for("c-2")] == ["PUT", "POST", "DELETE"]


def test_the_state_write_is_conditional_on_the_score_time(ghl_aws: GhlAws) -> None:
    """Two writers race for one contact: the one holding an older score loses at the
    conditional write, whatever order they read the state in."""
    from leadscore.adapters.ghl_state import DynamoWritebackState
    from leadscore.ghl.messages import order_key

    states = DynamoWritebackState(ghl_aws.table, ghl_aws.ddb)
    newer, older = order_key(T5, T5), order_key(T0, T5)
    assert states.read("L", "c") is None  # both writers read "nothing written yet"
    far = int(time.time() * 1000) + 60_000
    claimed, held = states.claim("L", "c", newer, "writer-new", far)
    assert claimed and held.last is None and held.lease_until_ms == 0  # the lease is ours
    claimed, busy = states.claim("L", "c", older, "writer-old", far)
    assert not claimed and busy.lease_until_ms == far  # another writer's live lease
    assert states.commit("L", "c", "writer-new", newer, "cold", 12, "lsm-1", T5, T5)
    claimed, stale = states.claim("L", "c", older, "writer-old", far)
    assert not claimed and stale.order == newer and stale.lease_until_ms == 0
    # nor may the older score move the order key back, even when it rounds the same
    assert states.advance("L", "c", older, "cold", 12) is not None
    # and a skip planned against another last write than the one stored is refused too
    assert states.advance("L", "c", order_key(T5, "2026-02-05T10:00:09.000Z"), "hot", 91) \
        is not None
    state = states.read("L", "c")
    assert state is not None and state.last is not None
    assert (state.last.predicted_class, state.last.score, state.order) == ("cold", 12, newer)


# --------------------------------------------------------------------------- half writes
# A write is three calls (PUT fields, POST its class tag, DELETE the other class tags) and can
# fail after the POST. Before, the state kept the last *finished* write's class, so the next
# (newer) write of that class believed the tags were right and sent no tag calls (or, when the
# score rounded the same, nothing at all): the half write's tag stayed for good. The soak saw
# it once in CI as a contact at 7/cold still carrying `warm-lead`.

T2 = "2026-02-05T10:00:02.000Z"


@pytest.mark.parametrize(
    ("status", "newer_score", "want_score"),
    [(503, 0.09, "9"), (503, 0.07, "7"), (408, 0.09, "9")],
    ids=["5xx-new-score", "5xx-same-rounded-score", "408-released"],
)
def test_a_newer_write_undoes_what_a_half_finished_older_write_left(
    world: World, monkeypatch: pytest.MonkeyPatch, status: int, newer_score: float,
    want_score: str,
) -> None:
    # no in-flight grace: the failed writer's lease ends at once, as it does after 30 s
    monkeypatch.setenv("WRITEBACK_INFLIGHT_GRACE_SECONDS", "0")
    assert world.invoke(world.message("h-1", 0.07, "cold", T0)) == []
    # the older warm write: fields and warm-lead land, removing cold-lead fails
    world.fake.fail_next("DELETE /contacts/h-1/tags", status)
    assert world.invoke(world.message("h-1", 0.55, "warm", T2)) == []
    assert _class_tags(world.contact("h-1")) == {"cold-lead", "warm-lead"}
    [(retry, _)] = world.queued()
    time.sleep(0.002)  # past the released or zero-grace lease's millisecond
    assert world.invoke(world.message("h-1", newer_score, "cold", T5)) == []
    contact = world.contact("h-1")
    assert str(contact.custom_fields[world.score_field]) == want_score
    assert contact.custom_fields[world.class_field] == "cold"
    assert _class_tags(contact) == {"cold-lead"}
    # the older write's retry is stale now and changes nothing
    sent = len(world.fake.requests)
    assert world.invoke(json.dumps(retry)) == []
    assert len(world.fake.requests) == sent and _class_tags(contact) == {"cold-lead"}


# --------------------------------------------------------------------------- deadlines
# 08:30 code: 10 messages at 1.2 s per call ran ~36 s (30 calls) in a 12 s invocation (and
# 2.5 s answers ran 75 s in a 20 s one).


def test_the_batch_ends_before_the_deadline_and_leaves_no_half_writes(world: World) -> None:
    # a warm container first: a cold one's imports and clients would eat the budget timed here
    assert world.invoke(world.message("warm-1", 0.91, "hot")) == []
    world.fake.chaos = Chaos(p_slow=1.0, slow_seconds=1.2)
    bodies = [world.message(f"d-{i}", 0.91, "hot") for i in range(10)]
    # 14 s less the 8 s reserve: room for one message of three 1.2 s calls, with 2 s to spare
    invocation = lambda_context("writeback", timeout_ms=14_000)
    failures = world.invoke(*bodies, context=invocation)
    # measured on the invocation's own clock: Lambda would have cut it off at 0
    left_ms = invocation.get_remaining_time_in_millis()
    assert left_ms > 0, "ran past the 12 s invocation"
    written = [i for i in range(10) if len(world.requests_for(f"d-{i}")) == 3]
    untouched = [i for i in range(10) if not world.requests_for(f"d-{i}")]
    assert sorted(written + untouched) == list(range(10)), "a message was half written"
    assert 1 <= len(written) < 10
    assert failures == [f"m-{i}" for i in untouched]
    for i in written:
        assert _class_tags(world.contact(f"d-{i}")) == {"hot-lead"}


# --------------------------------------------------------------------------- waiting
# 08:30 code: each of these was a batch item failure (a receive counted toward the DLQ).


def _limited(**extra: str) -> dict[str, str]:
    return {"X-RateLimit-Max": "100", "X-RateLimit-Remaining": "0",
            "X-RateLimit-Interval-Milliseconds": "10000", "X-RateLimit-Limit-Daily": "200000",
            "X-RateLimit-Daily-Remaining": "150000", **extra}


@pytest.mark.parametrize(
    ("headers", "min_delay", "max_delay"),
    [
        (_limited(**{"X-RateLimit-Daily-Remaining": "0"}), 60, 900),  # the day is spent
        (_limited(**{"Retry-After": "120"}), 120, 140),  # burst, told when to come back
    ],
    ids=["daily", "burst"],
)
def test_a_rate_limit_delays_the_message_instead_of_failing_it(
    world: World, headers: dict[str, str], min_delay: int, max_delay: int
) -> None:
    world.fake.always = (429, headers, {"statusCode": 429, "message": "Too many requests"})
    body = world.message("r-1", 0.91, "hot")
    assert world.invoke(body) == []  # not a failure: it will not count toward the DLQ
    assert world.dead_letters() == []
    [(copy, delay)] = world.queued()
    assert min_delay - 2 <= delay <= max_delay
    assert copy["waits"] == 1 and copy.get("attempt", 0) == 0
    assert {k: v for k, v in copy.items() if k not in ("waits", "attempt")} == \
        {k: v for k, v in json.loads(body).items()}
    assert len(world.fake.requests) == 1  # one refused call, no hammering


def test_a_webhook_waiting_for_a_model_is_delayed_not_failed(world: World) -> None:
    world.contact("w-1")
    body = json.dumps({"kind": "webhook", "contact_id": "w-1", "location_id": world.location_id,
                       "predicted_score": None, "predicted_class": None, "model_version": None,
                       "received_at": T0, "webhook": {"contact_id": "w-1", "features": {}}})
    assert world.invoke(body) == []
    assert world.dead_letters() == []
    [(copy, delay)] = world.queued()
    assert copy["kind"] == "webhook" and copy["waits"] == 1 and delay >= 30
    assert world.fake.requests == []


# --------------------------------------------------------------------------- real errors
# 08:30 code: batch item failures; the DLQ got them only after 5 receives, with no reason.


def test_real_errors_are_dead_lettered_at_once_with_their_reason(world: World) -> None:
    gone = json.dumps({"kind": "score", "contact_id": "nobody", "location_id": world.location_id,
                       "predicted_score": 0.5, "predicted_class": "warm",
                       "model_version": "lsm-1", "received_at": T0})  # unknown to HighLevel
    assert world.invoke("{not json", gone) == []
    dead = {m["Body"]: m["MessageAttributes"] for m in world.dead_letters()}
    assert set(dead) >= {"{not json"}
    assert "not JSON" in dead["{not json"]["reason"]["StringValue"]
    [gone_attrs] = [a for b, a in dead.items() if b != "{not json"]
    assert gone_attrs["status"]["StringValue"] == "400"
    assert "Contact not found" in gone_attrs["reason"]["StringValue"]
    assert world.queued() == []


def test_a_server_error_is_retried_later_and_dead_lettered_after_the_last_attempt(
    world: World
) -> None:
    world.fake.always = (503, {}, {"message": "Service Unavailable"})
    assert world.invoke(world.message("e-1", 0.91, "hot")) == []
    [(copy, delay)] = world.queued()
    assert copy["attempt"] == 1 and delay >= 1
    assert world.dead_letters() == []
    last = world.message("e-2", 0.91, "hot", attempt=MAX_ATTEMPTS - 1)
    assert world.invoke(last) == []
    [dead] = world.dead_letters()
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert "503" in reason and f"{MAX_ATTEMPTS} attempts" in reason
    assert dead["MessageAttributes"]["attempts"]["StringValue"] == str(MAX_ATTEMPTS)


# --------------------------------------------------------------------------- logging
# 08:30 code: truncated answers, garbage status lines, a 100k-`[` body and secret-store errors
# each became a batch item failure with no log line at all.

EMAIL = "zebulon.canary-7f3e@example.com"


@pytest.mark.parametrize("fault", ["truncated", "garbage", "brackets", "secret", "echo"])
def test_every_failure_is_logged_once_with_its_reason_and_no_personal_data(
    world: World, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = world.message("l-1", 0.91, "hot")
    if fault == "truncated":
        world.fake.chaos = Chaos(p_truncated=1.0)
    elif fault == "garbage":
        world.fake.chaos = Chaos(p_garbage=1.0)
    elif fault == "brackets":
        body = "[" * 100_000
    elif fault == "secret":
        # a secret the role may read but that does not exist (another random suffix)
        monkeypatch.setenv("GHL_TOKEN_SECRET_ARN", world.aws.secret_arn[:-6] + "zzzzzz")
        _reset(world.app)
    else:  # HighLevel's error text quotes the contact's e-mail address
        world.fake.always = (422, {}, {"message": f"contact with email {EMAIL} exists"})
    with captured_logs(world.app.logger) as lines:
        failures = world.invoke(body)
    about = [json.loads(line) for line in lines if '"m-0"' in line]
    assert len(about) == 1, about
    assert about[0].get("reason"), about[0]
    assert (about[0].get("level") or about[0].get("levelname")) in {"INFO", "WARNING", "ERROR"}
    # What ships: every line at INFO and above (botocore's DEBUG wire dumps, which print the
    # secret's value, are off unless someone turns DEBUG on for the root logger).
    shipped = [line for line in lines
               if (json.loads(line).get("level") or json.loads(line).get("levelname")) != "DEBUG"]
    assert [line for line in shipped if EMAIL in line or world.token in line] == []
    if fault in ("brackets", "echo"):
        assert failures == [] and len(world.dead_letters()) == 1
    else:
        assert failures == [] and world.queued()  # transient: re-queued with a backoff
