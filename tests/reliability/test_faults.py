"""Faults, each a test: what the system does when AWS (or HighLevel) fails under it.

Where each injected fault is tested (this file adds what was not covered elsewhere):

- S3 unreachable at cold start: here, `test_s3_unreachable_at_cold_start_*` (the real S3
  adapter built from the environment, endpoint on a closed loopback port).
- DynamoDB throttling: tests/scoring/test_cache.py
  ::test_throttled_dynamodb_still_answers_correctly (botocore Stubber).
- DynamoDB outage: here, `test_dynamodb_outage_*` (unreachable endpoint; table gone).
- The queue refusing while a webhook cannot be scored -> 429: tests/ghl/test_webhook_route.py
  ::test_queue_refusing_too_answers_429_and_forgets_the_webhook_id (a stand-in queue); here
  with the real SQS adapter on moto and no model.
- A champion pointer naming a missing bundle: tests/scoring/test_model_store.py
  ::test_broken_new_champion_keeps_serving_the_current_one (file store); here on S3 (moto).
- A write-back that keeps failing -> DLQ with the reason: here, moto SQS with the template's
  redrive policy driving the real write-back function until the message is dead-lettered.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.fixtures import aws as template_aws
from tests.fixtures.aws import resource_properties, writeback_queues
from tests.fixtures.fakes import FakeClock
from tests.fixtures.ghl import WEBHOOK_SECRET, FakeHighLevel, api_event
from tests.fixtures.scoring import (
    bundle_version,
    load_event,
    upload_bundle,
    write_pointer,
)
from tests.reliability.logcapture import captured_logs
from tools.lambda_context import lambda_context

REGION = "us-east-1"
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused


@pytest.fixture
def fresh_env(score_app: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The score function, configured from the environment only (as in Lambda)."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    for key in ("CACHE_TABLE", "WRITEBACK_QUEUE_URL", "WEBHOOK_DEDUP_TABLE", "MODEL_URI"):
        monkeypatch.delenv(key, raising=False)
    from leadscore.adapters import reset_clients

    reset_clients()
    yield score_app
    reset_clients()


def _reference(invoke: Any, install: Any, bundle: Path) -> dict[str, Any]:
    install(f"file://{bundle}")
    body: dict[str, Any] = invoke(load_event("score_request")).body
    return body


def _reference_then_cold_start(
    fresh_env: Any, invoke: Any, install: Any, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The healthy answer, then a new container serving the same bundle (for the fault)."""
    reference = _reference(invoke, install, bundle)
    fresh_env.set_container(None)
    monkeypatch.setenv("MODEL_URI", f"file://{bundle}")
    return reference


# -- S3 unreachable at cold start -------------------------------------------------------------


BUCKET = template_aws.template_name("ArtifactBucket")


@pytest.mark.parametrize("uri", [f"s3://{BUCKET}/models/champion.json",
                                 f"s3://{BUCKET}/models/lsm-0123456789abcdef/"])
def test_s3_unreachable_at_cold_start_health_503_and_rules_answers(
    fresh_env: Any, invoke: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, uri: str
) -> None:
    monkeypatch.setenv("MODEL_URI", uri)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", CLOSED)
    with captured_logs(fresh_env.logger) as logs:
        health = invoke(load_event("health_get"))
        score = invoke(load_event("score_request"))
    assert health.status == 503
    assert health.body["loaded"] is False and health.body["fallback"] == "rules"
    # The answer names no infrastructure (the bucket name carries the account id) ...
    assert BUCKET not in json.dumps(health.body) and "s3://" not in json.dumps(health.body)
    assert template_aws.ACCOUNT_ID not in json.dumps(health.body)
    assert score.status == 200
    assert score.body["source"] == "rules" and score.body["model_version"] == "rules"
    assert score.body["predicted_score"] == pytest.approx(score.body["composite_score"] / 100)
    assert score.body["confidence_interval"] is None  # nothing model-based is invented
    assert any("model unavailable" in line for line in logs)
    assert any(f"s3://{BUCKET}/" in line for line in logs)  # ... the logs say what failed


# -- DynamoDB outage --------------------------------------------------------------------------


def test_dynamodb_outage_unreachable_answers_stay_correct_and_cache_is_bypassed(
    fresh_env: Any, invoke: Any, install: Any, trained_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference = _reference_then_cold_start(fresh_env, invoke, install, trained_bundle, monkeypatch)
    monkeypatch.setenv("CACHE_TABLE", template_aws.template_name("CacheTable"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", CLOSED)
    first = invoke(load_event("score_request"))
    event = load_event("score_request")
    body = json.loads(event["body"])
    body["contact_id"] = "another-contact"
    other = invoke({**event, "body": json.dumps(body)})
    assert first.status == 200 and other.status == 200
    for answer in (first, other):
        assert answer.body["source"] == "ensemble"
        assert answer.body["cached"] is False
        assert answer.body["predicted_score"] == reference["predicted_score"]
        assert answer.body["feature_contributions"] == reference["feature_contributions"]
    cache = fresh_env.container().cache
    # The first read failed and was bypassed; the breaker then skipped the table (no wait).
    assert cache.remote_errors >= 1 and cache.breaker.skipped >= 3


def test_dynamodb_outage_table_gone_answers_stay_correct(
    fresh_env: Any, invoke: Any, install: Any, trained_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto import mock_aws

    reference = _reference_then_cold_start(fresh_env, invoke, install, trained_bundle, monkeypatch)
    # The CacheTable, deleted (so it is the function's own table for the IAM check).
    monkeypatch.setenv("CACHE_TABLE", template_aws.declare("CacheTable", "table-that-was-deleted"))
    with mock_aws():
        answer = invoke(load_event("score_request"))
    assert answer.status == 200 and answer.body["cached"] is False
    assert answer.body["predicted_score"] == reference["predicted_score"]
    assert fresh_env.container().cache.remote_errors >= 1


# -- champion pointer naming a missing bundle (S3) --------------------------------------------


def test_s3_pointer_to_a_missing_bundle_keeps_serving_the_current_version(
    install: Any, invoke: Any, trained_bundle: Path, s3_bucket: tuple[Any, str]
) -> None:
    from leadscore.adapters.s3 import S3Store

    s3, bucket = s3_bucket
    v1 = bundle_version(trained_bundle)
    upload_bundle(s3, bucket, trained_bundle, f"models/{v1}/")
    write_pointer(s3, bucket, trained_bundle)
    clock = FakeClock()
    install(f"s3://{bucket}/models/champion.json", clock=clock, s3=S3Store(s3),
            model_refresh_seconds=60)
    assert invoke(load_event("health_get")).body["model_version"] == v1
    missing = "lsm-ffffffffffffffff"
    s3.put_object(Bucket=bucket, Key="models/champion.json", Body=json.dumps(
        {"version": missing, "prefix": f"models/{missing}/", "sha256": "0" * 64}).encode())
    clock.advance(61)
    score = invoke(load_event("score_request"))
    health = invoke(load_event("health_get"))
    assert score.status == 200 and score.body["model_version"] == v1
    assert score.body["source"] == "ensemble"
    assert health.status == 200 and health.body["model_version"] == v1


# -- the queue refuses while a webhook cannot be scored -> 429 --------------------------------


def test_queue_refusing_a_webhook_that_cannot_be_scored_parks_it_or_answers_429(
    score_app: Any, aws_env: None
) -> None:
    """The queue is gone: the delivery is parked in S3 (200); with the parking bucket gone
    too, 429 + Retry-After so HighLevel sends it again."""
    from leadscore.adapters.ghl_parked import S3ParkedStore
    from leadscore.adapters.writeback_queue import SqsWritebackQueue
    from leadscore.scoring.model_store import ModelStore
    from leadscore.settings import ScoreSettings

    from functions.score import ghl_routes

    sqs = boto3.client("sqs", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="parked-bucket")
    template_aws.declare("ArtifactBucket", "parked-bucket")  # PARKED_BUCKET is the artifact bucket
    url = sqs.create_queue(QueueName=template_aws.template_name("WritebackQueue"))["QueueUrl"]
    sqs.delete_queue(QueueUrl=url)  # the queue is gone: SendMessage fails
    settings = ScoreSettings(model_uri="", ghl_webhook_secret=WEBHOOK_SECRET,
                             writeback_queue_url=url)
    container = score_app.build_container(settings, store=ModelStore(""))  # no model
    score_app.set_container(container)
    parked = S3ParkedStore("parked-bucket", s3_client=s3)
    ghl_routes.configure(settings, lambda: container.service,
                         queue=SqsWritebackQueue(url, sqs_client=sqs), parked=parked)
    body = json.dumps({"contact_id": "c-429", "location": {"id": "loc-1"},
                       "customData": {"list_price": "800000"}}).encode()
    event = api_event(body, {"x-leadscore-secret": WEBHOOK_SECRET})
    answer = score_app.app.resolve(event, None)
    assert answer["statusCode"] == 200, answer["body"]
    assert json.loads(answer["body"])["status"] == "parked"
    [record] = list(parked.list())
    assert record.body == body and record.reason.startswith("write-back queue refused")

    s3.delete_object(Bucket="parked-bucket",
                     Key=f"ghl/parked/{record.parked_id}.json")
    s3.delete_bucket(Bucket="parked-bucket")  # parking fails too
    answer = score_app.app.resolve(event, None)
    assert answer["statusCode"] == 429
    headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
    multi = {k.lower(): v for k, v in (answer.get("multiValueHeaders") or {}).items()}
    assert "retry-after" in headers or "retry-after" in multi
    assert json.loads(answer["body"])["error"]


# -- a write-back that cannot succeed ends in the DLQ at once, with its reason ---------------


def test_failing_write_back_lands_in_the_dead_letter_queue_with_the_reason(
    aws_env: None, fake_highlevel: FakeHighLevel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities import parameters

    from functions.writeback import app as writeback

    sqs = boto3.client("sqs", region_name=REGION)
    queues = writeback_queues(sqs)  # WritebackQueue + WritebackDLQ with the template's redrive
    max_receives = int(resource_properties("WritebackQueue")["RedrivePolicy"]["maxReceiveCount"])
    secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=f"{template_aws.STACK_NAME}/ghl-token", SecretString="pit-token")["ARN"]
    ddb = boto3.client("dynamodb", region_name=REGION)
    from tests.fixtures.aws import cache_table

    table = cache_table(ddb)
    for key, value in {"GHL_API_BASE": fake_highlevel.base_url, "GHL_TOKEN_SECRET_ARN": secret,
                       "GHL_SCORE_FIELD_ID": "f1", "GHL_CLASS_FIELD_ID": "f2",
                       "CACHE_TABLE": table, "MAX_RATE_LIMIT_WAIT_SECONDS": "0",
                       "WRITEBACK_QUEUE_URL": queues.url, "WRITEBACK_DLQ_URL": queues.dlq_url,
                       "HTTP_TIMEOUT_SECONDS": "2", "MODEL_URI": ""}.items():
        monkeypatch.setenv(key, value)
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    writeback.reset()
    fake_highlevel.always = (422, {}, {"message": "custom field does not exist"})

    sent = sqs.send_message(QueueUrl=queues.url, MessageBody=json.dumps({
        "kind": "score", "contact_id": "c-dlq", "location_id": "loc-1",
        "predicted_score": 0.91, "predicted_class": "hot",
        "model_version": "lsm-0123456789abcdef", "received_at": "2026-02-05T10:00:00.000Z",
    }))["MessageId"]

    invocations = 0
    with captured_logs(writeback.logger) as logs:
        for _ in range(max_receives + 2):
            got = sqs.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=10,
                                      VisibilityTimeout=0, AttributeNames=["All"])
            messages = got.get("Messages", [])
            if not messages:
                break
            invocations += 1
            event = {"Records": [{
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"], "attributes": m.get("Attributes", {}),
                "messageAttributes": {}, "eventSource": "aws:sqs",
                "eventSourceARN": queues.arn, "awsRegion": REGION,
            } for m in messages]}
            answer = writeback.lambda_handler(event, lambda_context("writeback"))
            failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
            for m in messages:  # what the Lambda poller does with a partial batch response
                if m["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=queues.url, ReceiptHandle=m["ReceiptHandle"])
    writeback.reset()
    parameters.clear_caches()  # type: ignore[no-untyped-call]

    # A 422 will not get better: dead-lettered by the function on the first receive (not
    # after maxReceiveCount receives), the reason on the dead letter and in ONE log line.
    assert invocations == 1 < max_receives
    dead = sqs.receive_message(QueueUrl=queues.dlq_url, MaxNumberOfMessages=10,
                               MessageAttributeNames=["All"])["Messages"]
    assert len(dead) == 1 and json.loads(dead[0]["Body"])["contact_id"] == "c-dlq"
    assert "custom field does not exist" in dead[0]["MessageAttributes"]["reason"]["StringValue"]
    assert dead[0]["MessageAttributes"]["status"]["StringValue"] == "422"
    failures = [json.loads(line) for line in logs
                if sent in line and json.loads(line).get("message", "").startswith("write-back")]
    assert len(failures) == 1
    assert failures[0]["status"] == 422 and failures[0]["outcome"] == "dead_lettered"
    assert "custom field does not exist" in failures[0]["reason"]
    assert os.environ["GHL_API_BASE"].startswith("http://127.0.0.1:")  # never the real API
