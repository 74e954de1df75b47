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
    assert state.read("L", "c") is None
    until = int(now[0] * 1000) + 5_000
    assert state.claim("L", "c", "0001", "me", until)[0]
    assert state.commit("L", "c", "me", "0001", "warm", 64, "lsm-1", "r", "s")
    read = state.read("L", "c")
    assert read is not None and read.last == LastWrite("warm", 64) and read.order == "0001"
    assert read.lease_until_ms == 0
    assert state.read("L", "other") is None and state.read("M", "c") is None
    now[0] += 11
    expired = state.read("L", "c")
    assert expired is not None and expired.last is None and expired.order == ""
    # an expired record does not block a claim, whatever its order key
    assert state.claim("L", "c", "0000", "me", int(now[0] * 1000) + 5_000)[0]


def test_a_lease_marks_the_write_unfinished_until_it_is_committed(ghl_aws: GhlAws) -> None:
    now = [3_000_000.0]
    state = DynamoWritebackState(ghl_aws.table, ghl_aws.ddb, clock=lambda: now[0])
    soon = int(now[0] * 1000) + 5_000
    assert state.claim("L", "c", "0001", "a", soon)[0]
    assert state.commit("L", "c", "a", "0001", "cold", 7, "lsm-1", "r", "s")
    read = state.read("L", "c")
    assert read is not None and not read.unfinished
    # a writer takes the lease, sends calls and fails: its release keeps the mark
    claimed, held = state.claim("L", "c", "0002", "b", soon)
    assert claimed and not held.unfinished  # the state it plans against was finished
    state.release("L", "c", "b")
    read = state.read("L", "c")
    assert read is not None and read.unfinished and read.last == LastWrite("cold", 7)
    # so no writer may skip against the recorded write, and the next claim is told
    assert state.advance("L", "c", "0003", "cold", 7) is not None
    claimed, held = state.claim("L", "c", "0003", "c", soon)
    assert claimed and held.unfinished
    # a writer that found the mark keeps it, even when it sent nothing (not untouched) ...
    state.release("L", "c", "c")
    assert state.claim("L", "c", "0003", "d", soon)[1].unfinished
    assert state.commit("L", "c", "d", "0003", "cold", 9, "lsm-1", "r", "s")
    read = state.read("L", "c")
    assert read is not None and not read.unfinished and read.last == LastWrite("cold", 9)
    # ... and one that sent nothing under a finished state clears its own
    assert state.claim("L", "c", "0004", "e", soon)[0]
    state.release("L", "c", "e", untouched=True)
    read = state.read("L", "c")
    assert read is not None and not read.unfinished
    assert state.advance("L", "c", "0004", "cold", 9) is None
