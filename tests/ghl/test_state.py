"""The DynamoDB items of the integration (moto): replay guard and last-write record."""

from __future__ import annotations

from leadscore.adapters.ghl_state import DynamoReplayGuard, DynamoWritebackState
from leadscore.ghl.write_plan import LastWrite

from tests.fixtures.ghl import GhlAws


def test_replay_guard_claims_once_until_the_record_expires(ghl_aws: GhlAws) -> None:
    now = [1_000_000.0]
    guard = DynamoReplayGuard(ghl_aws.table, ghl_aws.ddb, clock=lambda: now[0], ttl_seconds=60)
    assert guard.claim("wh-1") is True
    assert guard.claim("wh-1") is False
    assert guard.claim("wh-2") is True
    item = ghl_aws.ddb.get_item(TableName=ghl_aws.table, Key={"pk": {"S": "webhook#wh-1"}})
    assert item["Item"]["expires_at"]["N"] == str(int(now[0] + 60))
    # DynamoDB deletes expired items lazily; an expired record must not block a claim.
    now[0] += 61
    assert guard.claim("wh-1") is True


def test_released_claim_can_be_taken_again(ghl_aws: GhlAws) -> None:
    guard = DynamoReplayGuard(ghl_aws.table, ghl_aws.ddb)
    assert guard.claim("wh-x") is True
    guard.release("wh-x")
    assert guard.claim("wh-x") is True


def test_writeback_state_round_trip_and_expiry(ghl_aws: GhlAws) -> None:
    now = [2_000_000.0]
    state = DynamoWritebackState(ghl_aws.table, ghl_aws.ddb, clock=lambda: now[0], ttl_seconds=10)
    assert state.get("L", "c") is None
    state.put("L", "c", LastWrite("warm", 64), "lsm-1")
    assert state.get("L", "c") == LastWrite("warm", 64)
    assert state.get("L", "other") is None and state.get("M", "c") is None
    now[0] += 11
    assert state.get("L", "c") is None
