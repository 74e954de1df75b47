"""tools/ghlctl.py: list installs, add a PIT location by hand, disable one, re-discover its
fields, list and replay parked deliveries (moto + the fake HighLevel)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from leadscore.adapters.installations import installations_table, location_key
from leadscore.ghl.parking import new_parked
from leadscore.settings import InstallSettings

from tests.fixtures import aws as template_aws
from tests.fixtures.fake_highlevel import FakeHighLevel
from tests.fixtures.ghl import GhlAws
from tests.fixtures.ghl_payloads import body, contact_event
from tools import ghlctl

REGION = "us-east-1"


@pytest.fixture
def env(ghl_aws: GhlAws, fake_highlevel: FakeHighLevel, trained_bundle: Path,
        monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    bucket = template_aws.artifact_bucket(boto3.client("s3", region_name=REGION))
    values = {
        "INSTALLATIONS_TABLE": ghl_aws.installations_table,
        "GHL_TOKEN_KEY_ID": ghl_aws.token_key_id,
        "GHL_API_BASE": fake_highlevel.base_url,
        "PARKED_BUCKET": bucket,
        "MODEL_URI": f"file://{trained_bundle}",
        "CACHE_TABLE": ghl_aws.table,
        "WRITEBACK_QUEUE_URL": ghl_aws.queue_url,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = ghlctl.main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def test_add_pit_discovers_fields_then_list_disable_enable(
    env: dict[str, str], fake_highlevel: FakeHighLevel, capsys: pytest.CaptureFixture[str]
) -> None:
    loc = fake_highlevel.add_location()
    price = fake_highlevel.add_field(loc.id, "Asking Price", "NUMERICAL",
                                     field_key="contact.asking_price")
    pit = fake_highlevel.add_pit(loc.id)
    code, added = run(capsys, "add-pit", loc.id, "--token", pit, "--field-map",
                      '{"contact.asking_price": "list_price"}',
                      "--thresholds", '{"hot": 0.7, "warm": 0.5, "lukewarm": 0.3}')
    assert code == 0 and added["enabled"] is True and added["token_source"] == "pit"
    assert added["score_field_id"] and added["class_field_id"] and added["mapped_fields"] == 1
    assert {f.name for f in loc.fields.values()} == {"Asking Price", "Lead Score", "Lead Class"}
    table = installations_table(InstallSettings.from_env())
    inst = table.installation(loc.id, fresh=True)
    assert inst is not None and inst.field_map == {price.id: "list_price"}
    assert inst.class_thresholds == {"hot": 0.7, "warm": 0.5, "lukewarm": 0.3}
    assert table.access_token(loc.id) == pit  # read back from <stack>/ghl-pit/<location>
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=env["INSTALLATIONS_TABLE"], Key={"pk": {"S": location_key(loc.id)}})["Item"]
    assert pit not in json.dumps(item, default=str)  # the token itself is not in the table

    code, listed = run(capsys, "list")
    assert code == 0 and [r["location_id"] for r in listed] == [loc.id]

    # the user renames a field in HighLevel: discovery follows it
    price.field_key, price.name = "contact.price_asked", "Price asked"
    code, again = run(capsys, "discover", loc.id)
    assert code == 0 and again["unresolved_field_map_keys"] == ["contact.asking_price"]

    code, _ = run(capsys, "disable", loc.id, "--reason", "customer left")
    inst = table.installation(loc.id, fresh=True)
    assert code == 0 and inst is not None and inst.enabled is False
    assert inst.disabled_reason == "customer left"
    code, enabled = run(capsys, "enable", loc.id)
    assert code == 0 and enabled["enabled"] is True
    assert run(capsys, "discover", "not-installed")[0] == 1


def test_parked_deliveries_are_listed_and_replayed(
    env: dict[str, str], fake_highlevel: FakeHighLevel, capsys: pytest.CaptureFixture[str]
) -> None:
    from leadscore.adapters.ghl_parked import S3ParkedStore

    from functions.score import app as score_app

    loc = fake_highlevel.add_location()
    run(capsys, "add-pit", loc.id, "--token", fake_highlevel.add_pit(loc.id), "--no-discover")
    store = S3ParkedStore(env["PARKED_BUCKET"])
    good = new_parked(body(contact_event(location_id=loc.id, contact_id="c1")),
                      "write-back queue refused", "ed25519", 1_760_000_000.0)
    bad = new_parked(b"{not json", "body is not JSON", "ed25519", 1_760_000_001.0)
    store.park(good)
    store.park(bad)
    code, listed = run(capsys, "parked")
    assert code == 0 and [r["reason"] for r in listed] == ["write-back queue refused",
                                                            "body is not JSON"]
    assert all("body_b64" not in r for r in listed)
    score_app.set_container(None)
    try:
        code, results = run(capsys, "replay", "--all")
    finally:
        score_app.set_container(None)
    assert code == 1  # one of them still fails
    by_id = {r["parked_id"]: r for r in results}
    assert by_id[good.parked_id]["answer"]["status"] == "scored"
    assert by_id[good.parked_id]["removed"] is True
    assert by_id[bad.parked_id]["removed"] is False
    assert [r.parked_id for r in store.list()] == [bad.parked_id]


def test_discover_turns_the_single_location_stack_into_a_table_record(
    env: dict[str, str], ghl_aws: GhlAws, fake_highlevel: FakeHighLevel,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The five-minute path: stack parameters name the location and the PIT secret; one
    `discover` creates the score/class fields, no field id is copied by hand."""
    from leadscore.adapters.installations import installations_from_settings

    loc = fake_highlevel.add_location()
    secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="lead-scoring/ghl-token-2", SecretString=fake_highlevel.add_pit(loc.id))["ARN"]
    monkeypatch.setenv("GHL_LOCATION_ID", loc.id)
    monkeypatch.setenv("GHL_TOKEN_SECRET_ARN", secret)
    chain = installations_from_settings(InstallSettings.from_env())
    assert chain is not None
    before = chain.installation(loc.id)
    assert before is not None and before.token_source == "settings" and not before.score_field_id
    code, found = run(capsys, "discover", loc.id)
    assert code == 0 and found["score_field_id"] and found["class_field_id"]
    after = installations_from_settings(InstallSettings.from_env())
    assert after is not None
    inst = after.installation(loc.id)
    assert inst is not None and inst.score_field_id == found["score_field_id"]
    assert after.access_token(loc.id) == fake_highlevel.tokens[
        next(t for t, v in fake_highlevel.tokens.items() if v.location_id == loc.id)].value


def test_pin_thresholds_keeps_a_location_on_its_own_classes(
    env: dict[str, str], fake_highlevel: FakeHighLevel, capsys: pytest.CaptureFixture[str]
) -> None:
    loc = fake_highlevel.add_location()
    run(capsys, "add-pit", loc.id, "--token", fake_highlevel.add_pit(loc.id), "--no-discover")
    table = installations_table(InstallSettings.from_env())
    code, pinned = run(capsys, "pin-thresholds", loc.id, "--thresholds",
                       '{"hot": 0.8, "warm": 0.6, "lukewarm": 0.4}')
    assert code == 0 and pinned["class_thresholds"] == {"hot": 0.8, "warm": 0.6,
                                                        "lukewarm": 0.4}
    inst = table.installation(loc.id, fresh=True)
    assert inst is not None and inst.class_thresholds == {"hot": 0.8, "warm": 0.6,
                                                          "lukewarm": 0.4}
    assert run(capsys, "pin-thresholds", loc.id, "--thresholds", '{"hot": 0.2}')[0] == 1
    code, cleared = run(capsys, "pin-thresholds", loc.id, "--clear")
    assert cleared["class_thresholds"] is None
    inst = table.installation(loc.id, fresh=True)
    assert code == 0 and inst is not None and inst.class_thresholds is None
    assert run(capsys, "pin-thresholds", "not-installed", "--clear")[0] == 1
