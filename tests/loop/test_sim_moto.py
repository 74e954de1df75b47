"""The simulation's fast DynamoDB path (tools/sim_moto.py) answers as moto does: the product's
own adapters run the same script against moto through boto3 and through `DirectDynamo`, and
every answer and the table left behind are the same."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from leadscore.adapters import error_code
from leadscore.adapters.ghl_budget import DynamoLocationBudget
from leadscore.adapters.ghl_state import (
    DynamoInputDigests,
    DynamoReplayGuard,
    DynamoWritebackState,
)
from moto import mock_aws

from tests.fixtures import aws as template_aws
from tools import sim_moto


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _script(ddb: Any, table: str) -> tuple[list[Any], list[dict[str, Any]]]:
    """Every conditional expression the write-back, webhook and budget adapters send, with
    the item absent, present, expired, leased and not."""
    clock = Clock()
    state = DynamoWritebackState(table, ddb, clock=clock)
    guard = DynamoReplayGuard(table, ddb, clock=clock)
    digests = DynamoInputDigests(table, ddb, clock=clock)
    budget = DynamoLocationBudget(table, ddb, clock=clock, sleep=lambda _s: None)
    out: list[Any] = []
    lease = int(clock.now * 1000) + 5_000
    out.append(state.claim("L", "c1", "0001", "w1", lease))  # new item
    out.append(state.claim("L", "c1", "0002", "w2", lease))  # leased by w1: refused
    out.append(state.commit("L", "c1", "w1", "0001", "hot", 91, "v1", "r", "s"))
    out.append(state.commit("L", "c1", "w1", "0001", "hot", 91, "v1", "r", "s"))  # no lease
    out.append(state.claim("L", "c1", "0001", "w3", lease))  # not newer: refused
    out.append(state.advance("L", "c1", "0003", "hot", 91))
    out.append(state.advance("L", "c1", "0004", "warm", 91))  # another class: refused
    out.append(state.advance("L", "c9", "0001", "hot", 91))  # no item: refused
    out.append(state.claim("L", "c1", "0005", "w4", lease))
    state.hold("L", "c1", "w4", lease + 1_000)
    state.release("L", "c1", "w4")
    state.release("L", "c1", "w4")  # not held any more: quietly refused
    clock.now += 40 * 86_400  # expired: any order is newer again
    out.append(state.claim("L", "c1", "0000", "w5", int(clock.now * 1000) + 5_000))
    out.append(state.read("L", "c1"))
    out.append([guard.claim("d1"), guard.claim("d1"), guard.claim("d2")])
    digests.remember("L", "c1", "abc", 1_000)
    digests.remember("L", "c1", "old", 500)  # older: refused
    digests.remember("L", "c1", "new", 2_000)
    out.append(digests.seen("L", "c1"))
    out.append([budget.take("L") for _ in range(3)])
    budget.observe("L", 200, {"X-RateLimit-Limit-Daily": "200000",
                              "X-RateLimit-Remaining": "97", "X-RateLimit-Max": "100",
                              "X-RateLimit-Interval-Milliseconds": "10000"})
    out.append(budget.take("L", 2))
    items = ddb.scan(TableName=table)["Items"] if hasattr(ddb, "scan") else []
    return out, sorted(items, key=lambda i: i["pk"]["S"])


def _run(direct: bool) -> tuple[list[Any], list[dict[str, Any]]]:
    with mock_aws():
        real = boto3.client("dynamodb", region_name="us-east-1")
        table = template_aws.cache_table(real)
        ddb = sim_moto.DirectDynamo(real, "us-east-1") if direct else real
        result = _script(ddb, table)
        if direct:  # nothing fell back to moto's handler: the fast path is what ran
            assert ddb.calls.get("moto", 0) == 0, ddb.calls
        return result


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def test_the_adapters_get_the_same_answers_and_leave_the_same_items() -> None:
    assert _run(direct=True) == _run(direct=False)


def test_what_the_fast_path_does_not_read_goes_to_moto() -> None:
    with mock_aws():
        real = boto3.client("dynamodb", region_name="us-east-1")
        table = template_aws.cache_table(real)
        ddb = sim_moto.DirectDynamo(real, "us-east-1")
        ddb.put_item(TableName=table, Item={"pk": {"S": "a"}, "n": {"N": "1"}})
        ddb.update_item(TableName=table, Key={"pk": {"S": "a"}}, UpdateExpression="ADD n :one",
                        ExpressionAttributeValues={":one": {"N": "2"}})
        assert ddb.calls["moto"] == 1
        assert real.get_item(TableName=table, Key={"pk": {"S": "a"}})["Item"]["n"] == {"N": "3"}
        with pytest.raises(Exception) as refused:
            ddb.put_item(TableName=table, Item={"pk": {"S": "a"}},
                         ConditionExpression="attribute_not_exists(pk)")
        assert error_code(refused.value) == "ConditionalCheckFailedException"


def test_a_direct_send_queues_what_the_wire_would() -> None:
    from leadscore.adapters.writeback_queue import SqsWritebackQueue
    from leadscore.ghl.messages import parse_message, score_message

    with mock_aws():
        real = boto3.client("sqs", region_name="us-east-1")
        url = real.create_queue(QueueName="writeback")["QueueUrl"]
        sqs = sim_moto.DirectSqs(real, "us-east-1")
        message = score_message({"contact_id": "c1", "predicted_score": 0.8,
                                 "predicted_class": "hot"}, location_id="L",
                                received_at="2026-02-05T10:00:00.000Z", tags=["vip"])
        direct = SqsWritebackQueue(url, sqs).send(message)
        wired = SqsWritebackQueue(url, real).send(message)
        assert sqs.calls == 1 and direct != wired
        got = real.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert sorted(m["MessageId"] for m in got) == sorted([direct, wired])
        assert {m["Body"] for m in got} == {message.to_json()}
        assert len({m["MD5OfBody"] for m in got}) == 1
        assert parse_message(got[0]["Body"]).contact_tags == ("vip",)
        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
        assert real.receive_message(QueueUrl=url).get("Messages", []) == []  # delayed
        # what it does not take (message attributes) goes to the real client
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes={
            "reason": {"DataType": "String", "StringValue": "r"}})
        assert sqs.calls == 2
        errors = []
        for client in (sqs, real):
            with pytest.raises(Exception) as refused:
                client.send_message(QueueUrl=url.rsplit("/", 1)[0] + "/missing",
                                    MessageBody="x")
            errors.append(error_code(refused.value))
        assert errors[0] == errors[1] and errors[0]
