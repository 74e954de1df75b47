"""Security: the logs of a whole webhook -> score -> write-back run never contain the lead's
email, phone, first or last name.

The run: a signed marketplace webhook and a workflow webhook (both carrying personal data as
HighLevel sends it), a workflow webhook that cannot be scored (no model) and is queued with
its lead data, POST /score with personal data attached as extra keys, a malformed request
(error paths are logged), and the write-back function draining the queue (scoring the queued
webhook, writing to a fake HighLevel, one write that fails). Every log line (Powertools and
stdlib loggers) and everything written to stdout/stderr (EMF metrics included) is searched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.ghl import WEBHOOK_SECRET, FakeHighLevel, GhlAws, KeyPair, api_event
from tests.fixtures.scoring import load_event
from tests.reliability.logcapture import captured_logs
from tools.lambda_context import lambda_context

EMAIL = "zebulon.canary-7f3e@example.com"
PHONE = "+1 555-019-9731"
FIRST = "Zebulon"
LAST = "Quixotefield"
PII = (EMAIL, PHONE, "5550199731", "555-019-9731", FIRST, LAST, "zebulon", "quixotefield")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _person() -> dict[str, Any]:
    return {"email": EMAIL, "phone": PHONE, "firstName": FIRST, "lastName": LAST,
            "first_name": FIRST, "last_name": LAST, "full_name": f"{FIRST} {LAST}",
            "name": f"{FIRST} {LAST}", "contactName": f"{FIRST} {LAST}"}


@pytest.fixture
def wired(ghl_aws: GhlAws, ghl_ed25519: KeyPair, trained_bundle: Path, score_app: Any,
          fake_highlevel: FakeHighLevel, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from aws_lambda_powertools.utilities import parameters
    from leadscore.scoring.model_store import ModelStore
    from leadscore.settings import ScoreSettings

    from functions.score import ghl_routes
    from functions.writeback import app as writeback

    settings = ScoreSettings(
        model_uri=f"file://{trained_bundle}",
        ghl_public_key_ed25519=ghl_ed25519.public_pem,
        ghl_webhook_secret=WEBHOOK_SECRET,
        webhook_dedup_table=ghl_aws.table,
        writeback_queue_url=ghl_aws.queue_url,
    )
    container = score_app.build_container(settings, store=ModelStore(settings.model_uri))
    score_app.set_container(container)
    ghl_routes.configure(settings, lambda: container.service)
    for key, value in {
        "GHL_API_BASE": fake_highlevel.base_url, "GHL_TOKEN_SECRET_ARN": ghl_aws.secret_arn,
        "GHL_SCORE_FIELD_ID": "fld_score", "GHL_CLASS_FIELD_ID": "fld_class",
        "CACHE_TABLE": ghl_aws.table, "MAX_RATE_LIMIT_WAIT_SECONDS": "0",
        "WRITEBACK_QUEUE_URL": ghl_aws.queue_url, "WRITEBACK_DLQ_URL": ghl_aws.dlq_url,
        "HTTP_TIMEOUT_SECONDS": "2", "MODEL_URI": f"file://{trained_bundle}",
    }.items():
        monkeypatch.setenv(key, value)
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    writeback.reset()
    yield score_app, writeback, settings, container
    writeback.reset()
    parameters.clear_caches()  # type: ignore[no-untyped-call]


def test_logs_of_a_full_run_hold_no_personal_data(
    wired: Any, ghl_aws: GhlAws, ghl_ed25519: KeyPair, fake_highlevel: FakeHighLevel,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from leadscore.scoring.model_store import ModelStore

    from functions.score import ghl_routes

    score_app, writeback, settings, container = wired
    now = time.time()
    marketplace = {
        "type": "ContactUpdate", "locationId": "loc-1", "id": "contact-pii-1",
        "webhookId": "wh-pii-1", "timestamp": _iso(now), **_person(),
        "customFields": [{"id": "list_price", "value": "800000"},
                         {"id": "urgency_level", "value": "high"}],
    }
    workflow = {"contact_id": "contact-pii-2", "location": {"id": "loc-1"}, **_person(),
                "customData": {"list_price": "650000", "condition": "good",
                               "message_count": "12"}}
    unscorable = {"contact_id": "contact-pii-3", "location": {"id": "loc-1"}, **_person(),
                  "customData": {"list_price": "500000"}}
    bad_values = {"contact_id": "contact-pii-4", "location": {"id": "loc-1"}, **_person(),
                  "customData": {"list_price": EMAIL}}
    statuses: list[int] = []

    with captured_logs(score_app.logger, writeback.logger) as logs:
        body = json.dumps(marketplace).encode()
        answer = score_app.lambda_handler(
            api_event(body, {"x-ghl-signature": ghl_ed25519.sign(body)}), lambda_context())
        statuses.append(answer["statusCode"])
        for payload in (workflow, bad_values):
            answer = score_app.lambda_handler(
                api_event(json.dumps(payload).encode(), {"x-leadscore-secret": WEBHOOK_SECRET}),
                lambda_context())
            statuses.append(answer["statusCode"])
        # a webhook that cannot be scored now: queued with its lead data
        no_model = score_app.build_container(settings, store=ModelStore(""))
        ghl_routes.configure(settings, lambda: no_model.service)
        answer = score_app.lambda_handler(
            api_event(json.dumps(unscorable).encode(), {"x-leadscore-secret": WEBHOOK_SECRET}),
            lambda_context())
        statuses.append(answer["statusCode"])
        ghl_routes.configure(settings, lambda: container.service)
        # the scoring API with personal data attached as extra keys, and a malformed one
        request = json.loads(load_event("score_request")["body"])
        for extra in ({**_person()}, {**_person(), "features": {"property_data": EMAIL}}):
            event = load_event("score_request")
            event["body"] = json.dumps({**request, **extra, "contact_id": "contact-pii-5"})
            statuses.append(score_app.lambda_handler(event, lambda_context())["statusCode"])
        # the write-back function drains the queue; one contact's write fails
        messages = ghl_aws.sqs.receive_message(QueueUrl=ghl_aws.queue_url,
                                               MaxNumberOfMessages=10)["Messages"]
        fake_highlevel.script = [(200, {}, {})] * 3 + [(500, {}, {"message": EMAIL})]
        event = {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
            "awsRegion": "us-east-1",
        } for m in messages]}
        writeback.lambda_handler(event, lambda_context("writeback"))
    out, err = capfd.readouterr()

    # The run did what it should (so the silence below means something).
    assert statuses == [200, 200, 200, 200, 200, 400], statuses  # bad values: parked
    kinds = sorted(json.loads(m["Body"])["kind"] for m in messages)
    assert kinds == ["score", "score", "webhook"]
    assert len(fake_highlevel.requests) >= 4
    text = "\n".join(logs) + "\n" + out + "\n" + err
    for expected in ("webhook scored", "contact-pii-1", "contact-pii-3", "invalid",
                     "retry_later"):
        assert expected in text, f"the captured logs miss {expected!r}: capture is broken"
    assert len(logs) >= 8

    leaks = [(p, line[:200]) for line in text.splitlines() for p in PII
             if p.lower() in line.lower()]
    assert not leaks, f"personal data in the logs: {leaks[:5]}"
