"""An agency end to end: two installed locations with their own tokens, field ids and field
maps are each scored (webhook) and written (write-back function) with their own; an expired
token is refreshed on HighLevel's 401; after UNINSTALL nothing is written for that location.
Real adapters on moto (DynamoDB, KMS, SQS, Secrets Manager) and the fake HighLevel."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.fixtures.aws import STACK_NAME
from tests.fixtures.fake_highlevel import CLIENT_ID, CLIENT_SECRET, FakeHighLevel
from tests.fixtures.ghl import writeback_function
from tests.fixtures.ghl_payloads import contact_event, uninstall_event
from tests.ghl.test_installs import Agency, agency  # noqa: F401 - the fixture
from tests.ghl.test_webhook_route import Harness, harness  # noqa: F401 - the fixture
from tools.lambda_context import lambda_context

REGION = "us-east-1"


@pytest.fixture
def writeback(agency: Agency, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
              trained_bundle: Any) -> Iterator[Any]:
    aws = agency.h.aws
    secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="lead-scoring/ghl-oauth",
        SecretString=json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}))
    env = {
        "INSTALLATIONS_TABLE": aws.installations_table, "GHL_TOKEN_KEY_ID": aws.token_key_id,
        "GHL_OAUTH_SECRET_ARN": secret["ARN"], "GHL_API_BASE": agency.fake.base_url,
        "CACHE_TABLE": aws.table, "WRITEBACK_QUEUE_URL": aws.queue_url,
        "WRITEBACK_DLQ_URL": aws.sqs.get_queue_url(
            QueueName=f"{STACK_NAME}-writeback-dlq")["QueueUrl"],
        "MODEL_URI": f"file://{trained_bundle}", "MAX_RATE_LIMIT_WAIT_SECONDS": "0",
        "HTTP_TIMEOUT_SECONDS": "2",
    }
    with writeback_function(env, monkeypatch) as app:
        yield app


def drain(agency: Agency, app: Any) -> list[dict[str, Any]]:  # noqa: F811
    """Run the write-back function over everything queued; returns the queued bodies."""
    sqs = agency.h.aws.sqs
    answer = sqs.receive_message(QueueUrl=agency.h.aws.queue_url, MaxNumberOfMessages=10)
    messages = answer.get("Messages", [])
    if not messages:
        return []
    event = {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:lead-scoring-writeback",
        "awsRegion": REGION,
    } for m in messages]}
    result = app.lambda_handler(event, lambda_context("WritebackFunction", timeout_ms=30_000))
    assert result.get("batchItemFailures") == [], result
    for m in messages:
        sqs.delete_message(QueueUrl=agency.h.aws.queue_url, ReceiptHandle=m["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in messages]


def test_two_locations_are_scored_and_written_with_their_own(
    agency: Agency, writeback: Any,  # noqa: F811
) -> None:
    fake: FakeHighLevel = agency.fake
    a, b = fake.add_location(), fake.add_location()
    a_price = fake.add_field(a.id, "List Price", "NUMERICAL")
    b_price = fake.add_field(b.id, "Asking Price", "NUMERICAL", field_key="contact.asking_price")
    agency.callback(fake.authorize(location_id=a.id))
    from leadscore.ghl.installations import Installation

    agency.table.save(Installation(location_id=b.id, company_id=b.company_id,
                                   configured_map={"contact.asking_price": "list_price"}))
    agency.callback(fake.authorize(location_id=b.id))
    ca, cb = fake.add_contact(a.id), fake.add_contact(b.id)
    inst = {x.id: agency.table.installation(x.id, fresh=True) for x in (a, b)}
    assert inst[a.id] is not None and inst[b.id] is not None
    assert inst[a.id].score_field_id != inst[b.id].score_field_id

    for loc, contact, field_id, price in ((a, ca, a_price.id, "500000"),
                                          (b, cb, b_price.id, "900000")):
        status, answer = agency.post(contact_event(location_id=loc.id, contact_id=contact.id,
                                                   custom_fields={field_id: price}))
        assert status == 200 and answer["status"] == "scored", answer
    queued = drain(agency, writeback)
    assert {m["location_id"] for m in queued} == {a.id, b.id}

    for loc, contact in ((a, ca), (b, cb)):
        own = inst[loc.id]
        assert own is not None
        puts = [r for r in fake.calls("PUT", f"/contacts/{contact.id}")]
        assert puts and all(r.location_id == loc.id for r in puts)  # the location's own token
        assert set(contact.custom_fields) == {own.score_field_id, own.class_field_id}
        score = contact.custom_fields[own.score_field_id]
        assert isinstance(score, int) and 0 <= score <= 100  # a Number field gets a number
        assert contact.custom_fields[own.class_field_id] in ("hot", "warm", "lukewarm", "cold")
        assert any(t.endswith("-lead") for t in contact.tags)

    # A day later every access token has expired at HighLevel: the 401 makes the write-back
    # refresh (HighLevel rotates the refresh token) and the write goes through.
    fake.advance(86400)
    grants = fake.refresh_grants
    newcomer = fake.add_contact(a.id)
    status, answer = agency.post(contact_event(location_id=a.id, contact_id=newcomer.id,
                                               custom_fields={a_price.id: "650000"}))
    assert answer["status"] == "scored"
    drain(agency, writeback)
    assert fake.refresh_grants == grants + 1
    assert [r.status for r in fake.calls("PUT", f"/contacts/{newcomer.id}")][-1] == 200
    assert set(newcomer.custom_fields) == {inst[a.id].score_field_id, inst[a.id].class_field_id}


def test_after_uninstall_nothing_is_written_for_that_location(
    agency: Agency, writeback: Any,  # noqa: F811
) -> None:
    fake: FakeHighLevel = agency.fake
    loc = fake.add_location()
    agency.callback(fake.authorize(location_id=loc.id))
    contact = fake.add_contact(loc.id)
    # scored and queued, then the location uninstalls before the write-back runs
    assert agency.post(contact_event(location_id=loc.id, contact_id=contact.id))[1][
        "status"] == "scored"
    _, answer = agency.post(uninstall_event(location_id=loc.id))
    assert answer["status"] == "uninstalled"
    # (HighLevel also revokes the tokens; the fake keeps them valid here, so only our own
    # UNINSTALL handling can stop the write)
    drain(agency, writeback)
    # and a later delivery is ignored
    assert agency.post(contact_event(location_id=loc.id, contact_id=contact.id))[1][
        "reason"] == "location disabled"
    assert drain(agency, writeback) == []
    assert fake.calls("PUT", f"/contacts/{contact.id}") == []
    assert fake.calls("POST", f"/contacts/{contact.id}/tags") == []
    assert contact.custom_fields == {} and contact.tags == []
