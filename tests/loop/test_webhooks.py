"""The loop through POST /webhooks/ghl (the scoring API's resolver, moto DynamoDB/SQS, the
session's trained bundle): outcomes recorded, messages counted, counters used, snapshots kept
without personal data, and an export labelled from what the webhooks left behind."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from leadscore.adapters.ghl_state import DynamoReplayGuard
from leadscore.adapters.loop_tables import DynamoEngagementStore
from leadscore.adapters.writeback_queue import SqsWritebackQueue
from leadscore.loop.export import ExportConfig, run_export, window_for
from leadscore.loop.hooks import LoopHooks
from leadscore.loop.local_query import DuckDbQueryRunner
from leadscore.loop.recorder import LoopRecorder
from leadscore.loop.store_writer import DirectoryRecordWriter
from leadscore.registry.store import LocalObjectStore
from leadscore.scoring.model_store import ModelStore
from leadscore.settings import ScoreSettings

from functions.score import app as score_app
from functions.score import ghl_routes
from tests.fixtures.ghl import GhlAws, KeyPair, api_event
from tests.loop.test_engagement import MIN


def iso(ts: float) -> str:
    from leadscore.loop.records import iso_ms

    return iso_ms(round(ts * 1000))


class FlakySender:
    def __init__(self, root: Path) -> None:
        self.inner = DirectoryRecordWriter(root)
        self.down = False

    def __call__(self, records: Sequence[dict[str, Any]]) -> Sequence[int]:
        if self.down:
            raise ConnectionError("firehose unreachable")
        return self.inner(records)


@dataclass
class Loop:
    root: Path
    clock: list[float]
    ed: KeyPair
    sender: FlakySender
    recorder: LoopRecorder

    def post(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        body = json.dumps(payload).encode()
        answer = score_app.app.resolve(  # type: ignore[arg-type]
            api_event(body, {"x-ghl-signature": self.ed.sign(body)}), None
        )
        return int(answer["statusCode"]), json.loads(answer["body"])

    def records(self, kind: str) -> list[dict[str, Any]]:
        self.recorder.flush()
        return [
            json.loads(line)
            for path in sorted((self.root / "loop" / f"{kind}s").rglob("*.jsonl"))
            for line in path.read_text().splitlines()
            if line.strip()
        ]


@pytest.fixture
def loop(
    ghl_aws: GhlAws, ghl_ed25519: KeyPair, trained_bundle: Path, tmp_path: Path
) -> Iterator[Loop]:
    clock = [time.time()]
    settings = ScoreSettings(
        model_uri=f"file://{trained_bundle}",
        ghl_public_key_ed25519=ghl_ed25519.public_pem,
        ghl_field_map={"fld_list_price": "list_price", "fld_pcs": "psychological_commitment_score"},
        webhook_dedup_table=ghl_aws.table,
        writeback_queue_url=ghl_aws.queue_url,
        ghl_max_delivery_age_seconds=7 * 24 * 3600,
    )
    sender = FlakySender(tmp_path)
    recorder = LoopRecorder(
        sender,
        engagement=DynamoEngagementStore(ghl_aws.table, clock=lambda: clock[0]),
        background=False,
        clock=lambda: clock[0],
    )
    hooks = LoopHooks(recorder)
    container = score_app.build_container(
        settings, store=ModelStore(settings.model_uri), loop=hooks, clock=lambda: clock[0]
    )
    score_app.set_container(container)
    ghl_routes.configure(
        settings,
        lambda: container.scorer,
        replay_guard=DynamoReplayGuard(ghl_aws.table, clock=lambda: clock[0]),
        queue=SqsWritebackQueue(ghl_aws.queue_url),
        clock=lambda: clock[0],
        loop=hooks,
    )
    yield Loop(tmp_path, clock, ghl_ed25519, sender, recorder)
    score_app.set_container(None)


def contact(lp: Loop, webhook_id: str, commitment: str = "60") -> dict[str, Any]:
    return {
        "type": "ContactUpdate",
        "locationId": "loc-1",
        "id": "c-1",
        "webhookId": webhook_id,
        "timestamp": iso(lp.clock[0]),
        "firstName": "Jordan",
        "lastName": "Lee",
        "email": "jordan.lee@example.com",
        "phone": "+15550100777",
        "customFields": [
            {"id": "fld_list_price", "value": "800000"},
            {"id": "fld_pcs", "value": commitment},
        ],
    }


def status(lp: Loop, webhook_id: str, value: str, at: float) -> dict[str, Any]:
    return {
        "type": "OpportunityStatusUpdate",
        "locationId": "loc-1",
        "id": "opp-1",
        "contactId": "c-1",
        "status": value,
        "pipelineId": "p",
        "pipelineStageId": "s",
        "timestamp": iso(at),
        "webhookId": webhook_id,
        "monetaryValue": 420000,
    }


def message(lp: Loop, webhook_id: str, direction: str, at: float) -> dict[str, Any]:
    return {
        "type": "InboundMessage" if direction == "inbound" else "OutboundMessage",
        "locationId": "loc-1",
        "contactId": "c-1",
        "conversationId": "conv-1",
        "messageType": "SMS",
        "direction": direction,
        "webhookId": webhook_id,
        "body": "call me at 555 0100 777, Jordan",
        "dateAdded": iso(at),
        "timestamp": iso(at),
    }


def test_outcome_webhooks_are_recorded_once_with_when_they_happened(loop: Loop) -> None:
    happened = loop.clock[0] - 3600  # delivered an hour late
    code, body = loop.post(status(loop, "wh-o1", "won", happened))
    assert code == 200 and body["status"] == "outcome", body
    again = loop.post(status(loop, "wh-o1", "won", happened))  # HighLevel's retry
    assert again[0] == 200 and again[1]["status"] == "duplicate"
    [record] = loop.records("outcome")
    assert record["converted"] == 1 and record["contact_id"] == "c-1"
    assert record["occurred_at_ms"] == round(happened * 1000)
    assert record["received_at_ms"] == round(loop.clock[0] * 1000)


def test_an_outcome_that_cannot_be_stored_is_kept_not_lost(loop: Loop) -> None:
    loop.sender.down = True
    code, body = loop.post(status(loop, "wh-o2", "lost", loop.clock[0]))
    # Acknowledged (HighLevel must not pause the app) and parked with its reason for replay.
    assert code == 200 and body["status"] == "parked", body
    assert "not recorded" in body["reason"]
    loop.sender.down = False
    assert loop.records("outcome") == []


def test_messages_feed_the_next_score_and_snapshots_keep_no_personal_data(loop: Loop) -> None:
    t = loop.clock[0]
    for i in range(3):
        loop.clock[0] = t + i * 60 * MIN / 1000
        assert loop.post(message(loop, f"wh-m{i}o", "outbound", loop.clock[0]))[0] == 200
        loop.clock[0] = t + (i * 60 + 2) * MIN / 1000
        code, body = loop.post(message(loop, f"wh-m{i}i", "inbound", loop.clock[0]))
        assert code == 200 and body["status"] == "counted", body
    assert loop.post(message(loop, "wh-m0i", "inbound", t))[1]["status"] == "duplicate"
    code, body = loop.post(contact(loop, "wh-c1"))
    assert code == 200 and body["status"] == "scored", body
    [snap] = loop.records("snapshot")
    inputs = json.loads(snap["inputs"])
    assert inputs["conversation_data"] == {"message_count": 6, "avg_response_time_seconds": 120.0}
    text = json.dumps(snap)
    for personal in ("Jordan", "Lee", "jordan.lee@example.com", "+15550100777", "555 0100"):
        assert personal not in text
    assert snap["source"] == "webhook" and snap["location_id"] == "loc-1"


def test_new_messages_make_an_unchanged_contact_score_again(loop: Loop) -> None:
    """The input digest is taken of what is scored, counters included. It was taken of the
    payload alone: a contact whose fields had not changed was answered "unchanged" after new
    messages, so HighLevel kept a score without them and no snapshot ever held a message
    count (in `make simulate` no labelled row had one while 11 % of the leads scored did)."""
    assert loop.post(contact(loop, "wh-d1"))[1]["status"] == "scored"
    t = loop.clock[0]
    loop.clock[0] = t + 60
    assert loop.post(message(loop, "wh-d1o", "outbound", loop.clock[0]))[1]["status"] == "counted"
    loop.clock[0] = t + 180
    assert loop.post(message(loop, "wh-d1i", "inbound", loop.clock[0]))[1]["status"] == "counted"
    code, body = loop.post(contact(loop, "wh-d2"))  # the same fields as before
    assert code == 200 and body["status"] == "scored", body
    first, second = loop.records("snapshot")
    assert "conversation_data" not in json.loads(first["inputs"])
    assert json.loads(second["inputs"])["conversation_data"]["message_count"] == 2
    assert loop.post(contact(loop, "wh-d3"))[1]["status"] == "unchanged"  # nothing new now


def test_the_export_labels_the_score_before_the_outcome(loop: Loop, tmp_path: Path) -> None:
    start = loop.clock[0]
    assert loop.post(contact(loop, "wh-c1", commitment="20"))[1]["status"] == "scored"
    loop.clock[0] = start + 3600
    assert loop.post(contact(loop, "wh-c2", commitment="70"))[1]["status"] == "scored"
    loop.clock[0] = start + 2 * 3600
    assert loop.post(status(loop, "wh-o3", "won", start + 2 * 3600))[1]["status"] == "outcome"
    loop.clock[0] = start + 3 * 3600  # re-scored after winning: must not become the row
    assert loop.post(contact(loop, "wh-c3", commitment="99"))[1]["status"] == "scored"
    loop.recorder.flush()
    rows = DuckDbQueryRunner(loop.root).query(
        window_for(round(loop.clock[0] * 1000), ExportConfig()).labelled_rows_sql()
    )
    assert len(rows) == 1
    inputs = json.loads(rows[0]["inputs"])
    assert inputs["psychology_profile"]["psychological_commitment_score"] == 70
    assert rows[0]["converted"] == 1
    out = run_export(
        DuckDbQueryRunner(loop.root),
        LocalObjectStore(tmp_path / "bucket"),
        ExportConfig(min_new_outcomes=1),
        now_ms=round(loop.clock[0] * 1000),
    )
    assert out.status == "too_few_rows" and out.rows == 1  # one row: training would refuse it
