"""The write-back: planning (pure), the HighLevel client's rate-limit handling, and the SQS
function against a fake HighLevel server with moto DynamoDB / Secrets Manager."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from leadscore.adapters.ghl_api import GhlApiClient, GhlApiError, RateLimited
from leadscore.classes import CLASSES
from leadscore.ghl import messages, write_plan

from tests.fixtures.fake_highlevel import DEFAULT_LOCATION_ID
from tests.fixtures.ghl import GHL_TOKEN, FakeHighLevel, GhlAws, sqs_event, writeback_function
from tools.lambda_context import lambda_context

EVENTS = Path(__file__).resolve().parents[2] / "events"
SCORE_FIELD = "fld_lead_score"
CLASS_FIELD = "fld_lead_class"


def message(score: float = 0.874, cls: str = "hot", contact: str = "c-1", **kw: Any) -> str:
    body = {
        "kind": "score",
        "contact_id": contact,
        "location_id": "loc-1",
        "predicted_score": score,
        "predicted_class": cls,
        "model_version": "lsm-0123456789abcdef",
        "received_at": "2026-02-05T10:00:00.000Z",
        **kw,
    }
    return json.dumps(body)


# --------------------------------------------------------------------------- pure planning


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0.874, 87), (0.875, 88), (0.0, 0), (1.0, 100), (0.005, 1), (0.9949, 99)],
)
def test_rounded_score(score: float, expected: int) -> None:
    assert messages.rounded_score(score) == expected


def test_first_write_plans_fields_and_all_tags() -> None:
    plan = write_plan.plan_write(
        messages.parse_message(message()),
        None,
        score_field_id=SCORE_FIELD,
        class_field_id=CLASS_FIELD,
    )
    assert not plan.skip
    assert plan.put_body() == {
        "customFields": [
            {"id": SCORE_FIELD, "field_value": "87"},
            {"id": CLASS_FIELD, "field_value": "hot"},
        ]
    }
    assert "tags" not in plan.put_body()
    assert plan.add_tags == ("hot-lead",)
    assert set(plan.remove_tags) == {"warm-lead", "lukewarm-lead", "cold-lead"}


def test_first_write_removes_only_the_class_tags_the_contact_carried() -> None:
    # A backfill page read the contact's tags: a contact without class tags gets no DELETE.
    untagged = write_plan.plan_write(
        messages.parse_message(message(contact_tags=["vip", "buyer"])),
        None,
        score_field_id="s",
        class_field_id="c",
    )
    assert untagged.add_tags == ("hot-lead",) and untagged.remove_tags == ()
    assert [c.method for c in untagged.calls()] == ["PUT", "POST"]
    tagged = write_plan.plan_write(
        messages.parse_message(message(contact_tags=["vip", "Warm-Lead", "hot-lead"])),
        None,
        score_field_id="s",
        class_field_id="c",
    )
    assert tagged.remove_tags == ("warm-lead",)


def test_contact_tags_do_not_override_a_recorded_write() -> None:
    # With a last write recorded, its class decides (tags read earlier may be older than it).
    plan = write_plan.plan_write(
        messages.parse_message(message(0.65, "warm", contact_tags=[])),
        write_plan.LastWrite("hot", 87),
        score_field_id="s",
        class_field_id="c",
    )
    assert set(plan.remove_tags) == {"hot-lead", "lukewarm-lead", "cold-lead"}


@pytest.mark.parametrize("last", [write_plan.LastWrite("hot", 87), None], ids=["recorded", "first"])
def test_after_an_unfinished_write_nothing_about_the_contact_is_assumed(
    last: write_plan.LastWrite | None,
) -> None:
    # A writer may have added its own class tag and failed before removing the others: the
    # same class and score as the last recorded write is no reason to skip or to send no tag
    # calls, and tags read before that write do not narrow the removal.
    plan = write_plan.plan_write(
        messages.parse_message(message(0.87, "hot", contact_tags=["vip"])),
        last,
        score_field_id="s",
        class_field_id="c",
        unfinished=True,
    )
    assert not plan.skip and plan.add_tags == ("hot-lead",)
    assert set(plan.remove_tags) == {"warm-lead", "lukewarm-lead", "cold-lead"}
    assert [c.method for c in plan.calls()] == ["PUT", "POST", "DELETE"]


@pytest.mark.parametrize(
    "tags", ["vip", [1, 2], ["x"] * (messages.MAX_CONTACT_TAGS + 1), ["a" * 300], None]
)
def test_unusable_contact_tags_mean_unknown_and_the_message_still_parses(tags: Any) -> None:
    parsed = messages.parse_message(message(contact_tags=tags))
    assert parsed.contact_tags is None
    plan = write_plan.plan_write(parsed, None, score_field_id="s", class_field_id="c")
    assert set(plan.remove_tags) == {"warm-lead", "lukewarm-lead", "cold-lead"}


def test_contact_tags_travel_with_the_message() -> None:
    score = {"contact_id": "c-1", "predicted_score": 0.5, "predicted_class": "warm"}
    queued = messages.score_message(
        score, location_id="loc-1", received_at="2026-02-05T10:00:00.000Z", tags=["vip"]
    )
    assert queued.contact_tags == ("vip",)
    again = messages.parse_message(queued.delayed().retried().to_json())
    assert again.contact_tags == ("vip",) and again.waits == 1 and again.attempt == 1
    rescored = again.with_score(score, scored_at_ms=1_770_000_000_000)
    assert rescored.contact_tags == ("vip",)
    plain = messages.score_message(score, location_id="loc-1", received_at="x")
    assert "contact_tags" not in json.loads(plain.to_json())


def test_unchanged_class_and_rounded_score_is_skipped() -> None:
    last = write_plan.LastWrite("hot", 87)
    plan = write_plan.plan_write(
        messages.parse_message(message(0.8712)), last, score_field_id="s", class_field_id="c"
    )
    assert plan.skip


def test_score_change_within_class_writes_fields_only() -> None:
    plan = write_plan.plan_write(
        messages.parse_message(message(0.91)),
        write_plan.LastWrite("hot", 87),
        score_field_id="s",
        class_field_id="c",
    )
    assert not plan.skip and plan.add_tags == () and plan.remove_tags == ()
    assert plan.put_body()["customFields"][0]["field_value"] == "91"


def test_class_change_moves_the_tag() -> None:
    plan = write_plan.plan_write(
        messages.parse_message(message(0.65, "warm")),
        write_plan.LastWrite("hot", 87),
        score_field_id="s",
        class_field_id="c",
    )
    assert plan.add_tags == ("warm-lead",)
    assert set(plan.remove_tags) == {"hot-lead", "lukewarm-lead", "cold-lead"}


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        json.dumps({"kind": "other", "contact_id": "c"}),
        message(cls="boiling"),
        message(score=float("nan")),
        json.dumps(
            {"kind": "score", "contact_id": "", "predicted_score": 0.5, "predicted_class": "warm"}
        ),
        json.dumps({"kind": "webhook", "contact_id": "c"}),
    ],
)
def test_malformed_messages_are_refused(body: str) -> None:
    with pytest.raises(messages.MessageError):
        messages.parse_message(body)


def test_message_round_trip() -> None:
    original = messages.webhook_message(
        {"contact_id": "c", "features": {"property_data": {"beds": 3}}},
        location_id="L",
        received_at="2026-02-05T10:00:00.000Z",
    )
    assert messages.parse_message(original.to_json()) == original


def test_sample_sqs_event_messages_parse() -> None:
    event = json.loads((EVENTS / "sqs_writeback_batch.json").read_text())
    kinds = [messages.parse_message(r["body"]).kind for r in event["Records"]]
    assert kinds == ["score", "score", "webhook"]


# --------------------------------------------------------------------------- rate limits


def test_one_wait_rule_for_the_budget_the_write_back_and_the_client() -> None:
    """`rate_limit_wait` answers all three; the announced reset wins, then the day's probe,
    then one window (announced, learned or HighLevel's 10 s)."""
    from leadscore.ghl.budget import rate_limit_wait

    def wait(status: int, headers: dict[str, str], **kw: Any) -> tuple[float, bool] | None:
        found = rate_limit_wait(status, headers, 0.0, **kw)
        return None if found is None else (found.seconds, found.daily)

    assert wait(429, {"Retry-After": "3"}) == (3.0, False)
    assert wait(429, {"Retry-After": "0"}) == (0.5, False)  # never a tight loop
    window = {"X-RateLimit-Remaining": "0", "X-RateLimit-Interval-Milliseconds": "10000"}
    assert wait(200, window) == (10.0, False)  # the last token of the window: block it
    assert wait(429, {}) == (10.0, False)
    assert wait(429, {}, window_ms=2000) == (2.0, False)
    assert wait(200, {"X-RateLimit-Remaining": "5"}) is None
    daily = {"x-ratelimit-daily-remaining": "0"}
    assert wait(429, {**daily, "Retry-After": "1"}) == (1.0, True)
    assert wait(429, daily) == (900.0, True)
    assert wait(200, daily, daily_probe_seconds=60) == (60.0, True)


def test_a_daily_probe_setting_moves_the_budget_s_block_and_the_wait_alike(
    writeback_fn: Any, fake_highlevel: FakeHighLevel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WRITEBACK_DAILY_PROBE_SECONDS changed the message's wait but the location's budget
    kept blocking every writer for a fixed 900 s: now both follow the setting."""
    monkeypatch.setenv("WRITEBACK_DAILY_PROBE_SECONDS", "60")
    fake_highlevel.always = (429, {"X-RateLimit-Daily-Remaining": "0"}, {"message": "Daily"})
    deps = writeback_fn.deps()
    delays: list[int] = []
    real_delay = deps.requeue.delay

    def delay(body: str, delay_seconds: int) -> None:
        delays.append(delay_seconds)
        real_delay(body, delay_seconds)

    deps.requeue.delay = delay
    deps.jitter = lambda: 0.0
    assert invoke(writeback_fn, message()) == []
    assert len(delays) == 1 and 55 <= delays[0] <= 60
    blocked_for = deps.budget.take("loc-1")
    assert 55 <= blocked_for <= 60


@dataclass
class Scripted:
    """A transport answering from a list; records the requests."""

    answers: list[tuple[int, dict[str, str]]]
    seen: int = 0

    def __call__(self, request: Any, timeout: float) -> Any:
        from leadscore.adapters.ghl_api import ApiResponse

        self.seen += 1
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        return ApiResponse(status, headers, b"{}")


def test_client_gives_up_when_the_wait_would_exceed_the_budget() -> None:
    sleeps: list[float] = []
    transport = Scripted([(429, {"Retry-After": "30"})])
    client = GhlApiClient(
        "https://x", lambda: "t", max_wait_seconds=20, transport=transport, sleep=sleeps.append
    )
    with pytest.raises(RateLimited):
        client.add_tags("c", ["hot-lead"])
    assert sleeps == [] and transport.seen == 1


def test_client_waits_then_succeeds() -> None:
    sleeps: list[float] = []
    window = {"X-RateLimit-Remaining": "0", "X-RateLimit-Interval-Milliseconds": "2000"}
    transport = Scripted([(429, window), (429, window)])
    client = GhlApiClient(
        "https://x", lambda: "t", max_wait_seconds=20, transport=transport, sleep=sleeps.append
    )
    client.add_tags("c", ["hot-lead"])
    assert sleeps == [2.0, 2.0] and transport.seen == 3


def test_client_401_drops_the_cached_token() -> None:
    dropped: list[bool] = []
    client = GhlApiClient(
        "https://x",
        lambda: "t",
        transport=Scripted([(401, {})]),
        on_unauthorized=lambda: dropped.append(True),
    )
    with pytest.raises(GhlApiError) as info:
        client.add_tags("c", ["hot-lead"])
    assert info.value.status == 401 and dropped == [True]


def test_client_without_an_answer_raises() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens
    client = GhlApiClient(f"http://127.0.0.1:{port}", lambda: "t", timeout_seconds=2)
    with pytest.raises(GhlApiError) as info:
        client.add_tags("c", ["hot-lead"])
    assert info.value.status == 0


def test_client_refuses_tags_in_the_put() -> None:
    client = GhlApiClient("https://x", lambda: "t", transport=Scripted([]))
    with pytest.raises(ValueError, match="tags"):
        client.update_custom_fields("c", {"customFields": [], "tags": ["x"]})


# --------------------------------------------------------------------------- the function


@pytest.fixture
def writeback_fn(
    ghl_aws: GhlAws, fake_highlevel: FakeHighLevel, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    env = {
        "GHL_API_BASE": fake_highlevel.base_url,
        "GHL_TOKEN_SECRET_ARN": ghl_aws.secret_arn,
        "GHL_SCORE_FIELD_ID": SCORE_FIELD,
        "GHL_CLASS_FIELD_ID": CLASS_FIELD,
        "CACHE_TABLE": ghl_aws.table,
        "WRITEBACK_QUEUE_URL": ghl_aws.queue_url,
        "WRITEBACK_DLQ_URL": ghl_aws.dlq_url,
        "MAX_RATE_LIMIT_WAIT_SECONDS": "2",
        "HTTP_TIMEOUT_SECONDS": "5",
        "MODEL_URI": "",
        "POWERTOOLS_METRICS_NAMESPACE": "LeadScoring",
    }
    with writeback_function(env, monkeypatch) as app:
        yield app


def invoke(fn: Any, *bodies: str, context: LambdaContext | None = None) -> list[str]:
    answer = fn.lambda_handler(sqs_event(*bodies), context or lambda_context("writeback"))
    return [f["itemIdentifier"] for f in answer["batchItemFailures"]]


def test_write_back_sends_the_exact_requests(
    writeback_fn: Any, fake_highlevel: FakeHighLevel
) -> None:
    assert invoke(writeback_fn, message(0.874, "hot", contact="abc 1")) == []
    calls = [(r.method, r.path) for r in fake_highlevel.requests]
    assert calls == [
        ("PUT", "/contacts/abc%201"),
        ("POST", "/contacts/abc%201/tags"),
        ("DELETE", "/contacts/abc%201/tags"),
    ]
    put, add, remove = fake_highlevel.requests
    assert put.body == {
        "customFields": [
            {"id": SCORE_FIELD, "field_value": "87"},
            {"id": CLASS_FIELD, "field_value": "hot"},
        ]
    }
    assert "tags" not in put.body
    assert add.body == {"tags": ["hot-lead"]}
    assert sorted(remove.body["tags"]) == ["cold-lead", "lukewarm-lead", "warm-lead"]
    for r in fake_highlevel.requests:
        assert r.headers["Authorization"] == f"Bearer {GHL_TOKEN}"
        assert r.headers["Version"] == "2021-07-28"
        assert r.headers["Content-Type"] == "application/json"
        assert r.headers["Accept"] == "application/json"


def test_a_backfilled_contact_without_class_tags_costs_two_requests(
    writeback_fn: Any, fake_highlevel: FakeHighLevel
) -> None:
    assert invoke(writeback_fn, message(0.874, "hot", contact_tags=["vip"])) == []
    calls = [(r.method, r.path) for r in fake_highlevel.requests]
    assert calls == [("PUT", "/contacts/c-1"), ("POST", "/contacts/c-1/tags")]


def test_unchanged_score_makes_no_request(writeback_fn: Any, fake_highlevel: FakeHighLevel) -> None:
    assert invoke(writeback_fn, message(0.874)) == []
    first = len(fake_highlevel.requests)
    later = "2026-02-05T10:01:00.000Z"
    assert invoke(writeback_fn, message(0.8712, received_at=later)) == []  # 87, still hot
    assert len(fake_highlevel.requests) == first
    latest = "2026-02-05T10:02:00.000Z"
    assert invoke(writeback_fn, message(0.90, received_at=latest)) == []  # 90: fields only
    assert [r.method for r in fake_highlevel.requests[first:]] == ["PUT"]


def test_429_then_success_ends_with_the_write_done(
    writeback_fn: Any, fake_highlevel: FakeHighLevel, ghl_aws: GhlAws
) -> None:
    limited = {
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Max": "100",
        "X-RateLimit-Interval-Milliseconds": "50",
        "X-RateLimit-Daily-Remaining": "199000",
    }
    fake_highlevel.script = [(429, limited, {"message": "Too many requests"})]
    assert invoke(writeback_fn, message()) == []
    methods = [r.method for r in fake_highlevel.requests]
    assert methods == ["PUT", "PUT", "POST", "DELETE"]
    assert fake_highlevel.requests[1].body == fake_highlevel.requests[0].body
    item = ghl_aws.ddb.get_item(TableName=ghl_aws.table, Key={"pk": {"S": "writeback#loc-1#c-1"}})
    assert item["Item"]["score"]["N"] == "87" and item["Item"]["predicted_class"]["S"] == "hot"


def test_still_rate_limited_is_delayed_not_failed(
    writeback_fn: Any, fake_highlevel: FakeHighLevel, ghl_aws: GhlAws
) -> None:
    fake_highlevel.always = (429, {"Retry-After": "60"}, {"message": "Too many requests"})
    assert invoke(writeback_fn, message(contact="c-ok"), message(contact="c-2")) == []
    # the first 429 blocks the location's budget: the second message does not even try
    assert len(fake_highlevel.requests) == 1


def test_no_waiting_past_the_lambda_deadline(
    writeback_fn: Any, fake_highlevel: FakeHighLevel
) -> None:
    # 1.5 s left is less than the reserve plus one call: not started, returned untouched.
    fake_highlevel.script = [(429, {"Retry-After": "1"}, {})]
    short = lambda_context("writeback", timeout_ms=1500)
    assert invoke(writeback_fn, message(), context=short) == ["m-0"]
    assert len(fake_highlevel.requests) == 0
    # With time to spare the same answer is waited out.
    fake_highlevel.script = [(429, {"Retry-After": "1"}, {})]
    assert invoke(writeback_fn, message()) == []


def test_a_write_that_keeps_failing_is_dead_lettered_and_not_recorded(
    writeback_fn: Any, fake_highlevel: FakeHighLevel, ghl_aws: GhlAws
) -> None:
    fake_highlevel.script = [(200, {}, {}), (200, {}, {}), (200, {}, {})]  # first message ok
    fake_highlevel.always = (404, {}, {"message": "Contact not found"})
    failures = invoke(writeback_fn, message(contact="c-ok"), message(contact="c-gone"))
    assert failures == []  # dead-lettered by the function, with its reason
    item = ghl_aws.ddb.get_item(
        TableName=ghl_aws.table, Key={"pk": {"S": "writeback#loc-1#c-gone"}}
    ).get("Item", {})
    assert "predicted_class" not in item and "lease_owner" not in item  # nothing recorded
    # The failure does not poison the skip rule: the same message is tried again in full.
    fake_highlevel.always = None
    before = len(fake_highlevel.requests)
    assert invoke(writeback_fn, message(contact="c-gone")) == []
    assert len(fake_highlevel.requests) - before == 3


def test_malformed_message_is_dead_lettered(
    writeback_fn: Any, fake_highlevel: FakeHighLevel
) -> None:
    assert invoke(writeback_fn, "{not json", message()) == []
    assert len(fake_highlevel.requests) == 3


def test_queued_webhook_is_scored_then_written(
    writeback_fn: Any,
    fake_highlevel: FakeHighLevel,
    trained_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODEL_URI", f"file://{trained_bundle}")
    body = messages.webhook_message(
        {"contact_id": "c-late", "features": {"property_data": {"list_price": 450000}}},
        location_id="loc-1",
        received_at="2026-02-05T10:00:00.000Z",
    ).to_json()
    assert invoke(writeback_fn, body) == []
    put = fake_highlevel.requests[0]
    assert put.method == "PUT" and put.path == "/contacts/c-late"
    score, cls = (f["field_value"] for f in put.body["customFields"])
    assert 0 <= int(score) <= 100 and cls in CLASSES
    assert fake_highlevel.requests[1].body == {"tags": [f"{cls}-lead"]}


def test_queued_webhook_without_a_model_stays_on_the_queue(
    writeback_fn: Any, fake_highlevel: FakeHighLevel, ghl_aws: GhlAws
) -> None:
    body = messages.webhook_message(
        {"contact_id": "c-late", "features": {}}, location_id="L", received_at=""
    ).to_json()
    assert invoke(writeback_fn, body) == []  # delayed: a new copy waits on the queue
    assert fake_highlevel.requests == []
    attrs = ghl_aws.sqs.get_queue_attributes(
        QueueUrl=ghl_aws.queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert attrs["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"


def test_token_in_json_secret(
    writeback_fn: Any, fake_highlevel: FakeHighLevel, ghl_aws: GhlAws
) -> None:
    import boto3

    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    secrets.put_secret_value(SecretId=ghl_aws.secret_arn, SecretString='{"token": "json-token"}')
    fake_highlevel.add_pit(DEFAULT_LOCATION_ID, "json-token")  # the fake checks tokens
    assert invoke(writeback_fn, message()) == []
    assert fake_highlevel.requests[0].headers["Authorization"] == "Bearer json-token"


def test_https_calls_share_one_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a TLS context loads the CA bundle (~50 ms of CPU): once per container, not
    once per HighLevel call."""
    import ssl

    from leadscore.adapters import ghl_api

    built: list[int] = []
    real = ssl.create_default_context

    def counted(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counted)
    ghl_api._tls_context.cache_clear()
    for _ in range(3):  # nothing listens on the discard port: refused at once
        with pytest.raises(ghl_api.NoAnswer):
            ghl_api.http_transport("GET", "https://127.0.0.1:9/contacts/c", {}, None, 0.5)
    assert len(built) == 1
