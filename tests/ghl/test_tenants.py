"""Every sub-account is its own tenant: its credentials, its data, its order of events.

Two installed locations (A and B) in the installations table (moto), the scoring API's
resolver, the loop's records in an S3 bucket (moto) and the session's tiny trained bundle.
Each test plays what one sub-account could try against the other.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from leadscore.adapters.ghl_state import DynamoReplayGuard
from leadscore.adapters.installations import (
    DynamoInstallations,
    installations_from_settings,
    installations_table,
)
from leadscore.adapters.purge import DynamoItems, S3Objects
from leadscore.adapters.s3_store import S3ObjectStore
from leadscore.adapters.writeback_queue import SqsWritebackQueue
from leadscore.ghl import credentials, parking
from leadscore.ghl.installations import Installation
from leadscore.ghl.lifecycle import Lifecycle, app_id_from_client_id
from leadscore.ghl.parking import MemoryParkedStore
from leadscore.ghl.webhook import replay_parked
from leadscore.loop.deletion import Eraser, compact, without_deleted
from leadscore.loop.hooks import LoopHooks
from leadscore.loop.recorder import LoopRecorder
from leadscore.loop.records import iso_ms
from leadscore.loop.store_writer import StoreRecordWriter
from leadscore.scoring.model_store import ModelStore
from leadscore.settings import InstallSettings, ScoreSettings

from functions.score import app as score_app
from functions.score import ghl_routes
from tests.fixtures.fake_highlevel import APP_ID
from tests.fixtures.ghl import WEBHOOK_SECRET, GhlAws, KeyPair
from tests.fixtures.ghl_payloads import install_event, uninstall_event
from tools.api_event import api_event

A, B = "locA", "locB"
FIELD_MAP = {"fld_list_price": "list_price", "fld_urgency": "urgency_level"}
BUCKET = "lead-scoring-artifacts"


def iso(ts: float) -> str:
    return iso_ms(round(ts * 1000))


class Buffered:
    """The record stream as Firehose is: records accepted now, in the bucket later."""

    def __init__(self, writer: StoreRecordWriter) -> None:
        self.writer = writer
        self.pending: list[dict[str, Any]] = []

    def __call__(self, records: Sequence[dict[str, Any]]) -> Sequence[int]:
        self.pending.extend(records)
        return []

    def deliver(self) -> None:
        if self.pending:
            self.writer(self.pending)
        self.pending = []


@dataclass
class Stack:
    aws: GhlAws
    ed: KeyPair
    clock: list[float]
    table: DynamoInstallations
    settings: ScoreSettings
    recorder: LoopRecorder
    container: Any
    s3: Any
    parked: MemoryParkedStore = field(default_factory=MemoryParkedStore)
    secrets: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    def configure(self, settings: ScoreSettings | None = None,
                  lifecycle: Lifecycle | None = None) -> None:
        self.settings = settings or self.settings
        clock = lambda: self.clock[0]  # noqa: E731
        ghl_routes.configure(
            self.settings, lambda: self.container.scorer,
            replay_guard=DynamoReplayGuard(self.aws.table, clock=clock),
            queue=SqsWritebackQueue(self.aws.queue_url),
            installations=installations_from_settings(self.settings.installs, table=self.table),
            lifecycle=lifecycle or Lifecycle(self.table, None, app_id=APP_ID, clock=clock),
            parked=self.parked, clock=clock, loop=self.container.loop,
            memory_forget=self.container.cache.memory.forget_prefix,
        )

    def post(self, payload: dict[str, Any], headers: dict[str, str] | None = None,
             *, path: str = "/webhooks/ghl") -> tuple[int, dict[str, Any]]:
        body = json.dumps(payload).encode()
        answer = score_app.app.resolve(api_event(path, body, headers or {}), None)  # type: ignore[arg-type]
        return int(answer["statusCode"]), json.loads(answer["body"])

    def signed(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        body = json.dumps(payload).encode()
        event = api_event("/webhooks/ghl", body, {"x-ghl-signature": self.ed.sign(body)})
        answer = score_app.app.resolve(event, None)  # type: ignore[arg-type]
        return int(answer["statusCode"]), json.loads(answer["body"])

    def records(self, kind: str) -> list[dict[str, Any]]:
        self.recorder.flush()
        assert isinstance(self.recorder.sender, Buffered)
        self.recorder.sender.deliver()
        objects = S3Objects(BUCKET, self.s3)
        return [json.loads(line) for key in objects.list(f"loop/{kind}s/")
                for line in objects.get_bytes(key).splitlines() if line.strip()]

    def cache_keys(self) -> list[str]:
        return DynamoItems(self.aws.table, self.aws.ddb).keys_with_prefixes([""])


@pytest.fixture
def stack(ghl_aws: GhlAws, ghl_ed25519: KeyPair, trained_bundle: Path) -> Iterator[Stack]:
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    clock = [time.time()]
    installs = InstallSettings(installations_table=ghl_aws.installations_table,
                               token_key_id=ghl_aws.token_key_id)
    settings = ScoreSettings(
        model_uri=f"file://{trained_bundle}", ghl_public_key_ed25519=ghl_ed25519.public_pem,
        ghl_webhook_secret=WEBHOOK_SECRET, ghl_field_map=dict(FIELD_MAP),
        webhook_dedup_table=ghl_aws.table, writeback_queue_url=ghl_aws.queue_url,
        installs=installs)
    table = installations_table(installs, clock=lambda: clock[0])
    for loc in (A, B):
        table.save(Installation(location_id=loc, token_source="pit",
                                configured_map=dict(FIELD_MAP),
                                installed_at=iso(clock[0] - 86400)))
    recorder = LoopRecorder(Buffered(StoreRecordWriter(S3ObjectStore(BUCKET, s3_client=s3))),
                            background=False, clock=lambda: clock[0])
    container = score_app.build_container(settings, store=ModelStore(settings.model_uri),
                                          loop=LoopHooks(recorder), clock=lambda: clock[0])
    score_app.set_container(container)
    st = Stack(ghl_aws, ghl_ed25519, clock, table, settings, recorder, container, s3)
    st.configure()
    for loc in (A, B):
        st.secrets[loc] = credentials.issue(table, loc, credentials.WORKFLOW)
        st.keys[loc] = credentials.issue(table, loc, credentials.API_KEY)
    yield st
    score_app.set_container(None)


def workflow(location: str | None, contact: str = "c-1", price: str = "800000",
             **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"contact_id": contact,
                               "customData": {"list_price": price, "urgency_level": "high"},
                               **extra}
    if location is not None:
        payload["location"] = {"id": location, "name": "Example Realty"}
    return payload


def contact_update(location: str, at: float, webhook_id: str, price: str = "800000",
                   contact: str = "c-1") -> dict[str, Any]:
    return {"type": "ContactUpdate", "locationId": location, "id": contact,
            "customFields": [{"id": "fld_list_price", "value": price},
                             {"id": "fld_urgency", "value": "high"}],
            "timestamp": iso(at), "webhookId": webhook_id}


# --------------------------------------------------------------------------- credentials


def test_a_workflow_secret_naming_another_location_is_refused_and_nothing_happens(
    stack: Stack,
) -> None:
    for headers, payload in (
        ({"x-leadscore-secret": stack.secrets[A]}, workflow(B)),
        ({}, workflow(B, customData={"leadscore_secret": stack.secrets[A],
                                     "list_price": "800000"})),
        ({"x-leadscore-secret": stack.secrets[A]}, workflow(A, location_id=B)),
        ({"x-leadscore-secret": stack.secrets[A]},
         {"type": "OpportunityStatusUpdate", "locationId": B, "id": "o-1", "contactId": "c-1",
          "status": "won"}),
        ({"x-leadscore-secret": stack.secrets[A]},
         {"type": "UNINSTALL", "locationId": B, "appId": APP_ID}),
    ):
        status, answer = stack.post(payload, headers)
        assert status == 403 and answer["reason"] == "the credential is for another location"
    assert stack.container.cache.memory.size_bytes == 0  # nothing scored
    assert stack.aws.queued() == []  # nothing written
    assert stack.records("snapshot") == [] and stack.records("outcome") == []
    assert not [k for k in stack.cache_keys() if B in k]  # no digest, no state
    inst = stack.table.installation(B, fresh=True)
    assert inst is not None and inst.enabled


def test_a_location_secret_acts_for_its_own_location_only_the_one_it_names(
    stack: Stack,
) -> None:
    # No location in the body: the credential's location is used (and written with).
    status, answer = stack.post(workflow(None), {"x-leadscore-secret": stack.secrets[A]})
    assert status == 200 and answer["status"] == "scored" and answer["location_id"] == A
    [message] = stack.aws.queued()
    assert message["location_id"] == A
    assert {r["location_id"] for r in stack.records("snapshot")} == {A}
    # Another location's credential is simply not valid for anything but its own.
    status, answer = stack.post(workflow(B, contact="c-2"),
                                {"x-leadscore-secret": stack.secrets[B]})
    assert status == 200 and answer["location_id"] == B


def test_rotating_a_secret_retires_the_old_one_at_once(stack: Stack) -> None:
    old = stack.secrets[A]
    assert stack.post(workflow(A), {"x-leadscore-secret": old})[0] == 200
    new = credentials.issue(stack.table, A, credentials.WORKFLOW)
    assert stack.post(workflow(A, contact="c-2"), {"x-leadscore-secret": old})[0] == 401
    assert stack.post(workflow(A, contact="c-3"), {"x-leadscore-secret": new})[0] == 200
    stored = stack.table.installation(A, fresh=True)
    assert stored is not None and new not in json.dumps(stored.__dict__)  # only its hash


def test_the_shared_secret_works_only_for_the_configured_location(stack: Stack) -> None:
    # A stack with installed locations and no GHL_LOCATION_ID: the shared secret is retired.
    status, answer = stack.post(workflow(A), {"x-leadscore-secret": WEBHOOK_SECRET})
    assert status == 401 and "retired" in answer["reason"]
    # The single sub-account stack (GHL_LOCATION_ID = A): it keeps working for A only.
    stack.configure(replace(stack.settings,
                            installs=replace(stack.settings.installs, location_id=A)))
    assert stack.post(workflow(A), {"x-leadscore-secret": WEBHOOK_SECRET})[1]["status"] \
        == "scored"
    status, _ = stack.post(workflow(B, contact="c-2"), {"x-leadscore-secret": WEBHOOK_SECRET})
    assert status == 403
    assert [m["location_id"] for m in stack.aws.queued()] == [A]


def test_a_score_api_key_cannot_attribute_a_snapshot_to_another_location(
    stack: Stack,
) -> None:
    lead = {"contact_id": "api-1", "features": {"property_data": {"list_price": 500000}}}
    status, answer = stack.post({**lead, "location_id": B}, {"x-leadscore-key": stack.keys[A]},
                                path="/score")
    assert status == 403 and answer["errors"][0]["path"] == "location_id"
    status, _ = stack.post({"leads": [lead, {**lead, "location_id": B}]},
                           {"x-leadscore-key": stack.keys[A]}, path="/score/batch")
    assert status == 403
    assert stack.records("snapshot") == []
    # Its own key: attributed to its own location, named or not.
    assert stack.post(lead, {"x-leadscore-key": stack.keys[A]}, path="/score")[0] == 200
    assert stack.post({**lead, "location_id": A}, {"x-leadscore-key": stack.keys[A]},
                      path="/score")[0] == 200
    # A workflow secret is no API key, and an unknown key is refused.
    assert stack.post(lead, {"x-leadscore-key": stack.secrets[A]}, path="/score")[0] == 401
    # The operator (the stack's gateway key alone) may attribute any location.
    assert stack.post({**lead, "location_id": B}, path="/score")[0] == 200
    assert [r["location_id"] for r in stack.records("snapshot")] == [A, A, B]


# --------------------------------------------------------------------------- installs


def test_install_events_need_highlevels_signature_for_this_app(stack: Stack) -> None:
    uninstall = uninstall_event(location_id=A, timestamp=stack.clock[0])
    # carried by a workflow secret (A's own, naming A): changes nothing
    status, answer = stack.post(uninstall, {"x-leadscore-secret": stack.secrets[A]})
    assert status == 200 and answer["status"] == "ignored"
    # signed by HighLevel but for another app
    status, answer = stack.signed({**uninstall, "appId": "someone-else", "webhookId": "w2"})
    assert answer == {"status": "ignored", "reason": "another app's delivery"}
    # a company-wide uninstall carried by a secret
    status, answer = stack.post(uninstall_event(company_id="co-1"),
                                {"x-leadscore-secret": stack.secrets[A]})
    assert answer["status"] == "ignored"
    inst = stack.table.installation(A, fresh=True)
    assert inst is not None and inst.enabled
    # no app id configured at all: signed install events are not honoured either
    stack.configure(lifecycle=Lifecycle(stack.table, None, clock=lambda: stack.clock[0]))
    status, answer = stack.signed({**uninstall, "webhookId": "w3"})
    assert answer["status"] == "ignored" and "GHL_APP_ID" in answer["reason"]
    assert stack.table.installation(A, fresh=True).enabled  # type: ignore[union-attr]
    # ... unless it comes from the OAuth client id, as HighLevel's SDKs derive it
    assert app_id_from_client_id(f"{APP_ID}-mbx8q0r1") == APP_ID
    stack.configure(lifecycle=Lifecycle(stack.table, None, clock=lambda: stack.clock[0],
                                        client_id=lambda: f"{APP_ID}-mbx8q0r1"))
    status, answer = stack.signed({**uninstall, "webhookId": "w4"})
    assert answer == {"status": "uninstalled", "location_id": A}
    inst = stack.table.installation(A, fresh=True)
    assert inst is not None and not inst.enabled and inst.purge_after > inst.uninstalled_at


def test_a_retried_uninstall_older_than_the_install_changes_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = stack.clock[0]
    _, answer = stack.signed(install_event(location_id=A, company_id="co-1",
                                                timestamp=now - 60))
    assert answer["status"] == "installed"
    old_uninstall = uninstall_event(location_id=A, timestamp=now - 3600)
    answer = stack.signed(old_uninstall)[1]
    assert answer["status"] == "ignored" and "older than the current install" in answer["reason"]
    assert stack.table.installation(A, fresh=True).enabled  # type: ignore[union-attr]
    # the same uninstall parked ten days ago and replayed now (ghlctl replay)
    body = json.dumps({**old_uninstall, "webhookId": "parked-1"}).encode()
    stack.parked.park(parking.new_parked(body, parking.TOO_OLD, "ed25519", now - 10 * 86400,
                                         location_id=A, event_type="UNINSTALL"))
    from tools import ghlctl

    # the tool builds the webhook flow's dependencies from the stack's settings; here the
    # stack's parked deliveries live in this process's memory, so it is handed the stack's
    monkeypatch.setattr(ghlctl, "webhook_deps", ghl_routes.deps)
    assert ghlctl.main(["replay", "--all"]) == 0
    assert stack.table.installation(A, fresh=True).enabled  # type: ignore[union-attr]
    # a parked uninstall WITHOUT a timestamp is ordered by when it came (ten days ago)
    undated = {k: v for k, v in old_uninstall.items() if k != "timestamp"}
    record = parking.new_parked(json.dumps(undated).encode(), parking.NO_TIMESTAMP, "ed25519",
                                now - 10 * 86400, location_id=A, event_type="UNINSTALL")
    assert replay_parked(record, ghl_routes.deps()).body["status"] == "ignored"
    # a newer one is honoured; then an older INSTALL retried late re-enables nothing
    assert stack.signed(uninstall_event(location_id=A, timestamp=now))[1]["status"] == \
        "uninstalled"
    late_install = install_event(location_id=A, company_id="co-1", timestamp=now - 30)
    assert stack.signed(late_install)[1]["status"] == "ignored"
    assert not stack.table.installation(A, fresh=True).enabled  # type: ignore[union-attr]


# --------------------------------------------------------------------------- time


def test_a_future_timestamp_does_not_freeze_a_contact(stack: Stack) -> None:
    stack.clock[0] = float(int(stack.clock[0]))  # whole milliseconds: compared as text below
    secret = {"x-leadscore-secret": stack.secrets[A]}
    far = workflow(A, timestamp="9999-12-31T23:59:59Z")
    assert stack.post(far, secret)[1]["status"] == "scored"
    assert stack.post(workflow(A, price="910000"), secret)[1]["status"] == "scored"
    messages = stack.aws.queued()
    assert len(messages) == 2
    # ordered by when they came: the second (the genuine update) is the newer
    assert all(m["received_at"] < "2100" for m in messages)
    assert messages[0]["received_at"] <= messages[1]["received_at"]
    # a signed timestamp a little ahead (within the allowed skew) is clamped to the receipt
    ahead = contact_update(A, stack.clock[0] + 200, "wh-ahead", contact="c-9")
    assert stack.signed(ahead)[1]["status"] == "scored"
    [signed] = stack.aws.queued()
    assert signed["received_at"] == iso(stack.clock[0])


def test_revert_then_late_retry_ends_with_the_newest_inputs(stack: Stack) -> None:
    t0 = stack.clock[0] - 120
    t1 = stack.signed(contact_update(A, t0, "wh-t1", price="800000"))[1]
    assert t1["status"] == "scored"
    # T3 (T1's inputs again: an edit reverted) arrives before T2's late retry
    assert stack.signed(contact_update(A, t0 + 20, "wh-t3", price="800000"))[1]["status"] \
        == "unchanged"
    late = stack.signed(contact_update(A, t0 + 10, "wh-t2", price="1900000"))[1]
    assert late["status"] == "stale"
    # the only score ever queued is the one of the newest inputs (T1 = T3)
    [message] = stack.aws.queued()
    assert message["predicted_score"] == t1["predicted_score"]


def test_no_parked_record_contains_a_secret(stack: Stack) -> None:
    secret = stack.secrets[A]
    bad_lead = workflow(A, customData={"leadscore_secret": secret, "list_price": "many"},
                        note=f"copied {secret} here")
    status, answer = stack.post(bad_lead)
    assert status == 200 and answer["status"] == "parked"
    status, answer = stack.post(workflow(A, contact="c-2", customData={"list_price": "lots"}),
                                {"x-leadscore-secret": secret})
    assert answer["status"] == "parked"
    records = list(stack.parked.list())
    assert len(records) == 2
    for record in records:
        assert secret.encode() not in record.body and secret not in json.dumps(record.to_json())
        assert record.location_id == A
    # still replayable, for the location it was verified for
    assert json.loads(records[0].body)["customData"]["leadscore_secret"] == "[redacted]"


# --------------------------------------------------------------------------- identifiers


def test_identifiers_highlevel_cannot_produce_are_refused_before_logging(
    stack: Stack,
) -> None:
    secret = {"x-leadscore-secret": stack.secrets[A]}
    body = '{"contact_id": "c-\\ud800", "location": {"id": "locA"}, ' \
           '"customData": {"list_price": "800000"}}'
    answer = score_app.app.resolve(api_event("/webhooks/ghl", body.encode(), secret), None)  # type: ignore[arg-type]
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["errors"][0]["path"] == "contact_id"
    for bad in ("c#1", "x" * 129, "a/../b"):
        assert stack.post(workflow(A, contact=bad), secret)[0] == 400
    signed = contact_update(A, stack.clock[0], "wh-id", contact="c#evil")
    status, answer = stack.signed(signed)
    assert status == 200 and answer["status"] == "parked"  # verified: kept, never dropped
    lead = '{"contact_id": "\\udc00x", "features": {}}'
    answer = score_app.app.resolve(api_event("/score", lead.encode(), {}), None)  # type: ignore[arg-type]
    assert answer["statusCode"] == 400
    assert stack.aws.queued() == [] and stack.records("snapshot") == []


# --------------------------------------------------------------------------- deletion


def test_after_contact_delete_nothing_of_the_contact_is_served_or_exported(
    stack: Stack,
) -> None:
    now = stack.clock[0]
    first = stack.signed(contact_update(A, now - 60, "wh-c1"))[1]
    assert first["status"] == "scored"
    other = stack.signed(contact_update(A, now - 60, "wh-c2", contact="c-2"))[1]
    assert other["status"] == "scored"
    stack.aws.ddb.put_item(TableName=stack.aws.table,
                           Item={"pk": {"S": f"writeback#{A}#c-1"}, "score": {"N": "40"}})
    assert any(k.startswith("score#c-1#") for k in stack.container.cache.memory._data)
    status, answer = stack.signed({"type": "ContactDelete", "locationId": A, "id": "c-1",
                                   "timestamp": iso(now), "webhookId": "wh-del"})
    assert status == 200 and answer["status"] == "deleted" and answer["items_removed"] == 2
    assert not [k for k in stack.cache_keys() if "c-1" in k]
    assert not any(k.startswith("score#c-1#") for k in stack.container.cache.memory._data)
    # the same update again is scored afresh (no cached answer, no digest)
    again = stack.signed(contact_update(A, now, "wh-c1b"))[1]
    assert again["status"] == "scored" and again["cached"] is False
    # the export leaves the contact out, and the compaction removes its lines
    objects = S3Objects(BUCKET, stack.s3)
    rows = [{"location_id": A, "contact_id": "c-1"}, {"location_id": A, "contact_id": "c-2"}]
    stack.records("snapshot")  # flush
    assert without_deleted(rows, objects) == [rows[1]]
    assert compact(objects, A, {"c-1"}) >= 1
    assert {r["contact_id"] for r in stack.records("snapshot")} == {"c-2"}


def test_contact_delete_removes_the_deliveries_it_left_waiting_for_a_model(
    stack: Stack,
) -> None:
    """A team's contact parked until a first model holds its personal data, and replayed
    later it would be scored and written onto a deleted contact."""
    now = stack.clock[0]
    for contact in ("c-1", "c-2"):
        body = json.dumps(contact_update(A, now - 120, f"wh-w-{contact}",
                                         contact=contact)).encode()
        stack.parked.park(parking.new_parked(body, parking.NO_MODEL, "ed25519", now - 120,
                                             location_id=A,
                                             folder=parking.waiting_folder(A, contact)))
    status, answer = stack.signed({"type": "ContactDelete", "locationId": A, "id": "c-1",
                                   "timestamp": iso(now), "webhookId": "wh-del-w"})
    assert status == 200 and answer["waiting_removed"] == 1
    assert [r.parked_id.split("/")[2] for r in stack.parked.list(parking.WAITING_FOLDER)] == [
        "c-2"]


def test_opportunity_delete_withdraws_the_outcome(stack: Stack) -> None:
    now = stack.clock[0]
    won = {"type": "OpportunityStatusUpdate", "locationId": A, "id": "o-1", "contactId": "c-1",
           "status": "won", "timestamp": iso(now - 60), "webhookId": "wh-o1"}
    assert stack.signed(won)[1]["outcomes"] == 1
    deleted = {"type": "OpportunityDelete", "locationId": A, "id": "o-1", "contactId": "c-1",
               "timestamp": iso(now), "webhookId": "wh-o2"}
    assert stack.signed(deleted)[1]["outcomes"] == 1
    latest = max(stack.records("outcome"), key=lambda r: r["occurred_at_ms"])
    assert latest["converted"] is None and latest["event_type"] == "OpportunityDelete"


def test_after_uninstall_and_purge_nothing_of_the_location_remains(stack: Stack) -> None:
    now = stack.clock[0]
    # (the replay guard's items hold HighLevel's random webhook ids, nothing of a location)
    for n, loc in enumerate((A, B)):
        assert stack.signed(contact_update(loc, now - 60, f"wh-c{n}",
                                           contact=f"{loc}-c"))[1]["status"] == "scored"
        won = {"type": "OpportunityStatusUpdate", "locationId": loc, "id": f"o-{loc}",
               "contactId": f"{loc}-c", "status": "won", "timestamp": iso(now - 30),
               "webhookId": f"wh-o{n}"}
        assert stack.signed(won)[1]["outcomes"] == 1
        stack.aws.ddb.put_item(TableName=stack.aws.table,
                               Item={"pk": {"S": f"score#{loc}-c#abc#lsm-1"}, "body": {"S": "{}"},
                                     "expires_at": {"N": str(int(now + 3600))}})
    stack.post(workflow(A, customData={"list_price": "nope"}),
               {"x-leadscore-secret": stack.secrets[A]})  # a parked delivery of A
    assert stack.signed(uninstall_event(location_id=A, timestamp=now))[1]["status"] == \
        "uninstalled"
    inst = stack.table.installation(A, fresh=True)
    assert inst is not None and inst.purge_after  # scheduled
    eraser = Eraser(DynamoItems(stack.aws.table, stack.aws.ddb),
                    installations=DynamoItems(stack.aws.installations_table, stack.aws.ddb),
                    objects=S3Objects(BUCKET, stack.s3), parked=stack.parked)
    stack.records("snapshot")  # flush the snapshots first
    done = eraser.purge_location(A)
    assert done["installation"] == 1 and done["record_files"] >= 2 and done["parked"] == 1
    # nothing of A in any store; B untouched
    assert not [k for k in stack.cache_keys() if A in k]
    assert [k for k in stack.cache_keys() if B in k]
    assert stack.table.installation(A, fresh=True) is None
    assert not [k for k in S3Objects(BUCKET, stack.s3).list("") if A in k]
    assert {r["location_id"] for r in stack.records("snapshot")} == {B}
    assert {r["location_id"] for r in stack.records("outcome")} == {B}
    assert not [r for r in stack.parked.list() if r.location_id == A]


def test_ghlctl_prints_each_locations_new_secret_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from tools import ghlctl

    monkeypatch.setenv("INSTALLATIONS_TABLE", stack.aws.installations_table)
    monkeypatch.setenv("GHL_TOKEN_KEY_ID", stack.aws.token_key_id)
    monkeypatch.setenv("GHL_LOCATION_ID", "locSingle")
    assert ghlctl.main(["secret", "--all"]) == 0
    printed = {row["location_id"]: row["workflow_secret"]
               for row in json.loads(capsys.readouterr().out)}
    assert set(printed) == {A, B, "locSingle"}
    for loc, text in printed.items():
        inst = stack.table.installation(loc, fresh=True)
        assert inst is not None and text not in json.dumps(inst.__dict__)
        assert credentials.matches(credentials.parse(text), inst.workflow_secret_hash)  # type: ignore[arg-type]
    status, _ = stack.post(workflow(B), {"x-leadscore-secret": printed[B]})
    assert status == 200


def test_one_locations_burst_is_throttled_alone(stack: Stack) -> None:
    lead = {"contact_id": "api-1", "features": {"property_data": {"list_price": 500000}}}
    stack.container.settings = replace(stack.settings, location_rate_per_second=0.001,
                                       location_burst=2)
    score_app._buckets = None
    answers = [stack.post(lead, {"x-leadscore-key": stack.keys[A]}, path="/score")[0]
               for _ in range(3)]
    assert answers == [200, 200, 429]
    assert stack.post(lead, {"x-leadscore-key": stack.keys[B]}, path="/score")[0] == 200
    assert stack.post({**lead, "location_id": B}, path="/score")[0] == 200  # the operator too
    score_app._buckets = None
    # the same for workflow calls; HighLevel's signed deliveries are never throttled
    stack.configure(replace(stack.settings, location_rate_per_second=0.001, location_burst=2))
    answers = [stack.post(workflow(A, contact=f"c-{n}"), {"x-leadscore-secret": stack.secrets[A]})
               for n in range(3)]
    assert [a[0] for a in answers] == [200, 200, 429]
    assert stack.post(workflow(B), {"x-leadscore-secret": stack.secrets[B]})[0] == 200
    assert stack.signed(contact_update(A, stack.clock[0], "wh-t", contact="c-9"))[1]["status"] \
        == "scored"


def test_a_stack_can_require_a_location_key_for_every_score_call(stack: Stack) -> None:
    lead = {"contact_id": "api-1", "features": {"property_data": {"list_price": 500000}}}
    stack.container.settings = replace(stack.settings, require_location_key=True)
    status, answer = stack.post({**lead, "location_id": B}, path="/score")
    assert status == 401 and "x-leadscore-key" in answer["reason"]
    assert stack.post(lead, {"x-leadscore-key": stack.keys[B]}, path="/score")[0] == 200
    assert [r["location_id"] for r in stack.records("snapshot")] == [B]


def test_ghlctl_purge_due_deletes_what_is_past_its_grace_period(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from tools import ghlctl

    now = stack.clock[0]
    for n, loc in enumerate((A, B)):
        stack.signed(contact_update(loc, now - 60, f"wh-d{n}", contact=f"{loc}-c"))
    stack.signed({"type": "ContactDelete", "locationId": B, "id": f"{B}-c",
                  "timestamp": iso(now), "webhookId": "wh-del"})
    assert stack.signed(uninstall_event(location_id=A, timestamp=now))[1] == \
        {"status": "uninstalled", "location_id": A}
    inst = stack.table.installation(A, fresh=True)
    assert inst is not None
    stack.table.save(inst.with_changes(purge_after=iso(now - 60)))  # its 30 days are over
    stack.records("snapshot")  # delivered to the bucket
    for name, value in {"INSTALLATIONS_TABLE": stack.aws.installations_table,
                        "GHL_TOKEN_KEY_ID": stack.aws.token_key_id,
                        "CACHE_TABLE": stack.aws.table, "ARTIFACT_BUCKET": BUCKET}.items():
        monkeypatch.setenv(name, value)
    assert ghlctl.main(["purge", "--due"]) == 0  # without --yes: only says what would go
    assert json.loads(capsys.readouterr().out) == {"would_purge": [A],
                                                   "confirm_with": "--yes"}
    assert stack.table.installation(A, fresh=True) is not None
    assert ghlctl.main(["purge", "--due", "--yes"]) == 0
    assert stack.table.installation(A, fresh=True) is None
    assert not [k for k in stack.cache_keys() if A in k]
    # B stays installed; its deleted contact's snapshot lines are compacted away
    assert stack.table.installation(B, fresh=True) is not None
    assert stack.records("snapshot") == []


def test_a_workflow_body_with_a_contact_type_field_is_still_scored(stack: Stack) -> None:
    status, answer = stack.post(workflow(None, type="lead"),
                                {"x-leadscore-secret": stack.secrets[A]})
    assert status == 200 and answer["status"] == "scored" and answer["location_id"] == A
    # an outcome event carried by A's secret with no location is A's
    won = {"type": "OpportunityStatusUpdate", "id": "o-1", "contactId": "c-1", "status": "won"}
    assert stack.post(won, {"x-leadscore-secret": stack.secrets[A]})[1]["outcomes"] == 1
    assert [r["location_id"] for r in stack.records("outcome")] == [A]
