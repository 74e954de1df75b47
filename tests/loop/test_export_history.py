"""A stack's retraining export carries the team's uploaded history its champion learned from."""

from __future__ import annotations

import json
from pathlib import Path

from leadscore.bundle import CHAMPION_POINTER_KEY
from leadscore.loop.deletion import deletion_record
from leadscore.loop.export import (
    HISTORY_MAX_ROWS,
    ExportConfig,
    history_key_beside,
    run_export,
)
from leadscore.loop.local_query import DuckDbQueryRunner
from leadscore.registry import LocalObjectStore
from leadscore.registry.holdout import HOLDOUT_KEY
from leadscore.registry.retraining import split_record_key, train_part_key
from leadscore.registry.split import split_lines

from tests.loop.helpers import DAY, T0, outcome, snapshot, write_records

CONFIG = ExportConfig(window_days=90, snapshot_lookback_days=90, min_new_outcomes=50)
UPLOAD = "training-data/team/past-leads.jsonl"
JOB = "leadscore-past-leads-jsonl-0123456789ab"


def past_lead(i: int, **extra: object) -> bytes:
    row = {"property_data": {"list_price": 300000 + i}, "converted": i % 3 == 0, **extra}
    return json.dumps(row, sort_keys=True).encode()


def promoted_from(store: LocalObjectStore, job: str, upload: str, train_rows: int = 0) -> None:
    """The champion pointer and split record the promote and retrain functions leave."""
    store.put_bytes(CHAMPION_POINTER_KEY, json.dumps(
        {"version": f"v-{job}", "source": {"job_name": job}}).encode(), "application/json")
    store.put_bytes(split_record_key(job), json.dumps(
        {"source_key": upload, "train": {"rows": train_rows}}).encode(), "application/json")


def team_upload(store: LocalObjectStore, lines: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """The team's upload split as the retrain function splits it; (training, gate) lines."""
    train: list[bytes] = []
    gate: list[bytes] = []
    split_lines(lines, csv_format=False, write_train=train.append, write_gate=gate.append)
    store.put_bytes(train_part_key(JOB, UPLOAD), b"".join(train), "application/x-ndjson")
    promoted_from(store, JOB, UPLOAD, len(train))
    return [t.rstrip(b"\n") for t in train], [g.rstrip(b"\n") for g in gate]


def loop_world(root: Path, n: int) -> None:
    records = []
    for i in range(n):
        contact = f"c{i:04d}"
        records.append(snapshot(contact, T0 + i * 60_000, commitment=i % 90))
        records.append(outcome(contact, "won" if i % 4 == 0 else "lost", T0 + DAY + i * 60_000))
    write_records(root, records)


def test_the_export_carries_the_champions_uploaded_history_on_the_training_side(
        tmp_path: Path) -> None:
    loop_world(tmp_path, 150)
    store = LocalObjectStore(tmp_path)
    # c0002 is in the team's history (converted then) and resolved by the loop later; gone
    # is a contact of the history alone, deleted since
    history = [past_lead(i) for i in range(200)] + [past_lead(999, contact_id="c0002")] + [
        past_lead(1000 + i, contact_id=f"gone{i}") for i in range(5)]
    train, gate = team_upload(store, history)
    assert any(b"c0002" in t for t in train) and any(b"gone" in t for t in train) and gate
    write_records(tmp_path, [deletion_record("loc1", f"gone{i}", T0 + DAY) for i in range(5)])

    result = run_export(DuckDbQueryRunner(tmp_path), store, CONFIG, now_ms=T0 + 5 * DAY)

    assert result.status == "exported" and result.rows == 120
    lines = store.get_bytes(result.key).splitlines()
    loop_lines, carried = lines[:120], lines[120:]
    # verbatim, exactly the rows the champion trained on, but the contact the loop labelled
    expected = [t for t in train if b"c0002" not in t and b"gone" not in t]
    assert carried == expected and result.history_rows == len(expected)
    assert result.history_left_out == len(train) - len(expected)
    assert not set(carried) & set(gate)
    assert result.history_key == train_part_key(JOB, UPLOAD)
    # the lead is there once, with the loop's point-in-time label, not the history's
    ones = [json.loads(line) for line in lines if b"c0002" in line]
    assert len(ones) == 1 and ones[0]["snapshot_id"] and ones[0]["converted"] == 0
    assert all(json.loads(line)["contact_id"] for line in loop_lines)
    # the platform-held rows are the loop's alone
    assert not set(store.get_bytes(HOLDOUT_KEY).splitlines()) & set(carried)
    # split again by the retrain function: every history row lands on the training side
    again_train: list[bytes] = []
    again_gate: list[bytes] = []
    split_lines(lines, csv_format=False, write_train=again_train.append,
                write_gate=again_gate.append)
    assert not {g.rstrip(b"\n") for g in again_gate} & set(carried)
    assert set(carried) <= {t.rstrip(b"\n") for t in again_train}


def test_a_champion_trained_on_an_export_passes_the_same_history_on(tmp_path: Path) -> None:
    loop_world(tmp_path, 150)
    store = LocalObjectStore(tmp_path)
    train, _ = team_upload(store, [past_lead(i) for i in range(200)])
    runner = DuckDbQueryRunner(tmp_path)
    first = run_export(runner, store, CONFIG, now_ms=T0 + 5 * DAY)
    beside = json.loads(store.get_bytes(history_key_beside(first.key)))
    assert beside["history_key"] == train_part_key(JOB, UPLOAD)
    # the candidate trained on that export is promoted; the next export carries the same
    # history, and none of the first export's loop rows a second time
    promoted_from(store, "leadscore-labelled-0123456789ab", first.key)
    second = run_export(runner, store, CONFIG, now_ms=T0 + 6 * DAY, force=True)
    assert second.history_key == train_part_key(JOB, UPLOAD)
    lines = store.get_bytes(second.key).splitlines()
    assert lines[second.rows:] == train
    assert len({json.loads(line)["contact_id"] for line in lines[:second.rows]}) == second.rows


def test_no_history_without_a_champion_trained_on_an_upload(tmp_path: Path) -> None:
    loop_world(tmp_path, 150)
    store = LocalObjectStore(tmp_path)
    # promoted by hand (no job), then a location's upload: neither is the stack's history
    store.put_bytes(CHAMPION_POINTER_KEY, b'{"version": "v1"}', "application/json")
    runner = DuckDbQueryRunner(tmp_path)
    by_hand = run_export(runner, store, CONFIG, now_ms=T0 + 5 * DAY)
    assert by_hand.status == "exported" and by_hand.history_rows == 0
    assert len(store.get_bytes(by_hand.key).splitlines()) == by_hand.rows
    # a training part too big to hold in the export's memory is not carried
    team_upload(store, [past_lead(i) for i in range(200)])
    promoted_from(store, JOB, UPLOAD, HISTORY_MAX_ROWS + 1)
    too_big = run_export(runner, store, CONFIG, now_ms=T0 + 6 * DAY, force=True)
    assert too_big.history_rows == 0 and not too_big.history_key
