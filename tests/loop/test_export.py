"""The labelled export: the threshold, the file, idempotence."""

from __future__ import annotations

import json
from pathlib import Path

from leadscore.loop.export import STATE_KEY, ExportConfig, run_export
from leadscore.loop.local_query import DuckDbQueryRunner
from leadscore.registry import LocalObjectStore
from leadscore.registry.holdout import HOLDOUT_KEY, read_holdout

from tests.loop.helpers import DAY, HOUR, T0, outcome, snapshot, write_records

CONFIG = ExportConfig(window_days=90, snapshot_lookback_days=90, min_new_outcomes=50)


def world(root: Path, n: int, start: int = 0) -> None:
    records = []
    for i in range(start, start + n):
        contact = f"c{i:04d}"
        records.append(snapshot(contact, T0 + i * 60_000, commitment=i % 90))
        status = "won" if i % 4 == 0 else "lost"
        records.append(outcome(contact, status, T0 + DAY + i * 60_000))
        records.append(
            snapshot(contact, T0 + 2 * DAY + i * 60_000, commitment=99)
        )  # after: never used
    write_records(root, records)


def exported_files(store: LocalObjectStore) -> list[str]:
    return store.list("training-data/auto/")


def test_export_writes_training_lines_then_a_rerun_writes_nothing(tmp_path: Path) -> None:
    world(tmp_path, 150)
    store = LocalObjectStore(tmp_path)
    runner = DuckDbQueryRunner(tmp_path)
    now = T0 + 5 * DAY

    first = run_export(runner, store, CONFIG, now_ms=now)
    # a fifth, the most recently resolved, is kept back as the platform-held evaluation set
    assert first.status == "exported" and first.new_outcomes == 150
    assert (first.rows, first.holdout_rows) == (120, 30)
    [key] = exported_files(store)
    assert key == first.key and key.startswith("training-data/auto/") and key.endswith(".jsonl")
    lines = [json.loads(line) for line in store.get_bytes(key).decode().splitlines()]
    assert len(lines) == 120
    held = [json.loads(line) for line in store.get_bytes(HOLDOUT_KEY).decode().splitlines()]
    assert len(held) == 30 and not {h["contact_id"] for h in held} & {
        line["contact_id"] for line in lines}
    assert min(h["outcome_at"] for h in held) > max(line["outcome_at"] for line in lines)
    rows = read_holdout(store)
    assert rows is not None and rows.n == 30 and "features" in rows.columns
    assert {line["converted"] for line in lines} == {0, 1}
    assert all(line["scored_at"] < line["outcome_at"] for line in lines)
    assert all(
        line["features"]["psychology_profile"]["psychological_commitment_score"] != 99
        for line in lines
    )
    state = json.loads(store.get_bytes(STATE_KEY))
    assert state["cutoff_ms"] == now and state["key"] == key

    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    again = run_export(runner, store, CONFIG, now_ms=now + HOUR)
    assert again.status == "not_enough_outcomes" and again.new_outcomes == 0
    forced = run_export(runner, store, CONFIG, now_ms=now, force=True)
    assert forced.status == "unchanged" and forced.key == key
    assert exported_files(store) == [key]
    after = {
        p: p.stat().st_mtime_ns
        for p in tmp_path.rglob("*")
        if p.is_file() and "exports" not in str(p)
    }
    assert all(before[p] == t for p, t in after.items())


def test_new_outcomes_below_the_threshold_wait_then_export(tmp_path: Path) -> None:
    world(tmp_path, 150)
    store = LocalObjectStore(tmp_path)
    runner = DuckDbQueryRunner(tmp_path)
    first = run_export(runner, store, CONFIG, now_ms=T0 + 5 * DAY)
    assert first.status == "exported"
    # 30 more outcomes: below 50, nothing written
    records = []
    for i in range(30):
        records.append(snapshot(f"n{i}", T0 + 5 * DAY + HOUR))
        records.append(outcome(f"n{i}", "won" if i % 3 == 0 else "lost", T0 + 6 * DAY))
    write_records(tmp_path, records)
    mid = run_export(runner, store, CONFIG, now_ms=T0 + 7 * DAY)
    assert mid.status == "not_enough_outcomes" and mid.new_outcomes == 30
    assert len(exported_files(store)) == 1
    records = []
    for i in range(30, 60):
        records.append(snapshot(f"n{i}", T0 + 7 * DAY + HOUR))
        records.append(outcome(f"n{i}", "lost", T0 + 8 * DAY))
    write_records(tmp_path, records)
    last = run_export(runner, store, CONFIG, now_ms=T0 + 9 * DAY)
    assert last.status == "exported" and last.new_outcomes == 60
    assert (last.rows, last.holdout_rows) == (168, 42)  # 210 resolved leads, a fifth held
    assert len(exported_files(store)) == 2


def test_too_few_rows_start_no_training(tmp_path: Path) -> None:
    world(tmp_path, 60)
    store = LocalObjectStore(tmp_path)
    result = run_export(DuckDbQueryRunner(tmp_path), store, CONFIG, now_ms=T0 + 5 * DAY)
    assert result.status == "too_few_rows" and result.rows == 48  # 60 less the held fifth
    assert exported_files(store) == []
