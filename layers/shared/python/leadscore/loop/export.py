"""The labelled export: point-in-time rows of a rolling window -> ``training-data/auto/``.

Run by a schedule (EventBridge Scheduler, daily by default) or by hand. One run:

1. counts the terminal outcomes received since the last export's cutoff
   (``NEW_OUTCOMES_SQL``); fewer than ``min_new_outcomes`` -> nothing is written;
2. runs ``LABELLED_ROWS_SQL`` (the point-in-time join) for the window
   [cutoff - window_days, cutoff];
3. keeps the most recently resolved rows back (``holdout_fraction`` of them, at most
   ``holdout_max_rows``) as the platform-held evaluation set (``registry/holdout.py``): a
   temporal hold-out no candidate trains on, on which the promote gate measures every
   candidate and the champion;
4. writes the older rows as JSON Lines to
   ``training-data/auto/<cutoff date>/labelled-<h>.jsonl`` where ``h`` is the sha256 of the
   rows: the same rows give the same key, and a key that exists is not written again. That
   upload starts the ordinary retraining path;
5. records the cutoff in ``loop/exports/state.json`` (a conditional write: two runs at once
   cannot both move it).

A re-run right after an export therefore writes nothing (no new outcomes; and if forced, the
same rows -> the same existing key). Everything AWS is behind ``QueryRunner`` (Athena or
DuckDB) and ``ObjectStore`` (S3 or a directory).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from leadscore.loop.deletion import without_deleted
from leadscore.loop.labelling import LABELLED_COLUMNS, LabelWindow, new_outcomes_sql
from leadscore.loop.records import day, iso_ms
from leadscore.registry.holdout import write_holdout
from leadscore.registry.store import ConcurrentUpdate, ObjectStore

EXPORT_PREFIX = "training-data/auto/"
STATE_KEY = "loop/exports/state.json"
DAY_MS = 24 * 3600 * 1000
MIN_TRAINING_ROWS = 100  # training/train_data.py refuses fewer; do not start a job that must fail


class QueryRunner(Protocol):
    def query(self, sql: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class ExportConfig:
    window_days: int = 365
    snapshot_lookback_days: int = 365
    min_new_outcomes: int = 200
    include_backfilled: bool = False
    # the newest resolved leads kept back from training for the promote gate
    holdout_fraction: float = 0.2
    holdout_max_rows: int = 5000


@dataclass(frozen=True)
class ExportState:
    cutoff_ms: int = 0
    key: str = ""
    rows: int = 0
    exported_at: str = ""

    @classmethod
    def parse(cls, data: bytes) -> ExportState:
        value = json.loads(data)
        if not isinstance(value, Mapping):
            raise ValueError("export state must be a JSON object")
        return cls(
            cutoff_ms=int(value.get("cutoff_ms", 0)),
            key=str(value.get("key", "")),
            rows=int(value.get("rows", 0)),
            exported_at=str(value.get("exported_at", "")),
        )


@dataclass(frozen=True)
class ExportResult:
    status: str  # exported | not_enough_outcomes | too_few_rows | unchanged | lost_race
    new_outcomes: int
    rows: int = 0  # written for training (the platform-held rows not included)
    key: str = ""
    cutoff_ms: int = 0
    holdout_rows: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_line(row: Mapping[str, Any]) -> dict[str, Any]:
    """One labelled row -> one training line (training/train_data.load_jsonl reads
    ``features`` and ``converted``; the rest says where the row came from)."""
    return {
        "contact_id": row["contact_id"],
        "location_id": row["location_id"],
        "features": json.loads(row["inputs"]),
        "converted": int(row["converted"]),
        "snapshot_id": row["snapshot_id"],
        "model_version": row["model_version"],
        "scored_at": iso_ms(int(row["scored_at_ms"])),
        "outcome_at": iso_ms(int(row["outcome_at_ms"])),
        "point_in_time": bool(row["snapshot_point_in_time"]),
    }


def render_rows(rows: Sequence[Mapping[str, Any]]) -> bytes:
    lines = [json.dumps(export_line(r), sort_keys=True, separators=(",", ":")) for r in rows]
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def export_key(cutoff_ms: int, body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()[:16]
    return f"{EXPORT_PREFIX}{day(cutoff_ms)}/labelled-{digest}.jsonl"


def split_holdout(rows: Sequence[Mapping[str, Any]], config: ExportConfig
                  ) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(training rows, platform-held rows): the most recently resolved leads are held back, so
    the hold-out is later in time than anything a candidate from this export trains on."""
    ordered = sorted(rows, key=lambda r: (int(r["outcome_at_ms"]), str(r["snapshot_id"])))
    held = min(int(len(ordered) * config.holdout_fraction), config.holdout_max_rows)
    if held <= 0:
        return list(ordered), []
    return list(ordered[:-held]), list(ordered[-held:])


def _read_state(store: ObjectStore) -> tuple[ExportState, str | None]:
    try:
        data, tag = store.get_tagged(STATE_KEY)
    except (FileNotFoundError, KeyError):
        return ExportState(), None
    return ExportState.parse(data), tag


def window_for(now_ms: int, config: ExportConfig) -> LabelWindow:
    lookback_days = config.window_days + config.snapshot_lookback_days
    return LabelWindow(
        window_start_ms=now_ms - config.window_days * DAY_MS,
        cutoff_ms=now_ms,
        cutoff_dt=day(now_ms),
        snapshot_since_dt=day(now_ms - lookback_days * DAY_MS),
        include_backfilled=config.include_backfilled,
    )


def labelled_rows(runner: QueryRunner, window: LabelWindow) -> list[dict[str, Any]]:
    rows = runner.query(window.labelled_rows_sql())
    for row in rows:
        missing = [c for c in LABELLED_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"labelling query answered without columns {missing}")
    return rows


def run_export(
    runner: QueryRunner,
    store: ObjectStore,
    config: ExportConfig,
    *,
    now_ms: int,
    force: bool = False,
) -> ExportResult:
    """One export run (see the module docstring). ``force`` skips the new-outcomes minimum
    (``leadscore-loop export --force``), never the idempotence."""
    state, tag = _read_state(store)
    since_ms = state.cutoff_ms
    count_rows = runner.query(
        new_outcomes_sql(since_ms, day(max(since_ms, 0)), now_ms, day(now_ms))
    )
    new_outcomes = int(count_rows[0]["new_outcomes"]) if count_rows else 0
    if new_outcomes < config.min_new_outcomes and not force:
        return ExportResult("not_enough_outcomes", new_outcomes, cutoff_ms=since_ms)
    window = window_for(now_ms, config)
    # Deleted contacts and purged locations never train again (their records may still be
    # in files a compaction has not rewritten yet).
    rows, held = split_holdout(without_deleted(labelled_rows(runner, window), store), config)
    if len(rows) < MIN_TRAINING_ROWS:
        return ExportResult("too_few_rows", new_outcomes, rows=len(rows), cutoff_ms=since_ms)
    body = render_rows(rows)
    key = export_key(now_ms, body)
    status = "unchanged" if store.exists(key) else "exported"
    if status == "exported":
        if held:  # first: the upload starts a job whose gate must already see the new set
            write_holdout(store, render_rows(held), {
                "rows": len(held), "converted": sum(int(r["converted"]) for r in held),
                "from_ms": int(held[0]["outcome_at_ms"]),
                "to_ms": int(held[-1]["outcome_at_ms"]), "written_at": iso_ms(now_ms)})
        store.put_bytes(key, body, "application/x-ndjson")
    new_state = ExportState(cutoff_ms=now_ms, key=key, rows=len(rows), exported_at=iso_ms(now_ms))
    try:
        store.replace_if(
            STATE_KEY, json.dumps(asdict(new_state)).encode(), "application/json", tag
        )
    except ConcurrentUpdate:
        return ExportResult("lost_race", new_outcomes, rows=len(rows), key=key, cutoff_ms=now_ms,
                            holdout_rows=len(held))
    return ExportResult(status, new_outcomes, rows=len(rows), key=key, cutoff_ms=now_ms,
                        holdout_rows=len(held))
