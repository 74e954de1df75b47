"""A team whose first model was refused still learns: the leads that came meanwhile were kept
unscored (their inputs only), and the export writes them in the team's layout, by the target
the stack's training jobs are given, so the next job infers the columns as it did the first
time (the export's own ``scored_at`` is never a column)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from leadscore.columns.schema import PROVENANCE_REASON
from leadscore.loop.export import ExportConfig, run_export, stack_schema
from leadscore.loop.local_query import DuckDbQueryRunner
from leadscore.loop.snapshots import build_snapshot
from leadscore.registry import LocalObjectStore

from tests.loop.helpers import DAY, T0, outcome, write_records

CONFIG = ExportConfig(window_days=90, snapshot_lookback_days=90, min_new_outcomes=50)
#: what SageMaker hyperparameters look like when a caller JSON-encodes each value
HYPER = {"target": '"output"', "positive": '"yes"', "folds": "3"}


def _unscored(contact: str, at_ms: int, job: str, age: int) -> dict[str, Any]:
    return build_snapshot({"contact_id": contact, "fields": {"job": job, "age": age,
                                                              "email": f"{contact}@x.io"}},
                          {"contact_id": contact, "predicted_score": None},
                          location_id="loc1", source="webhook", scored_at_ms=at_ms)


def _kept_before_a_model(root: Path) -> list[dict[str, Any]]:
    """150 leads recorded unscored (no model served), each with its outcome a day later."""
    records = []
    for i in range(150):
        contact = f"c{i:04d}"
        records.append(_unscored(contact, T0 + i * 60_000, "retired" if i % 3 else "admin.",
                                 20 + i % 50))
        records.append(outcome(contact, "won" if i % 4 == 0 else "lost",
                               T0 + DAY + i * 60_000))
    write_records(root, records)
    return records


def test_leads_kept_before_any_model_are_exported_by_the_trained_target(tmp_path: Path) -> None:
    records = _kept_before_a_model(tmp_path)
    assert records[0]["predicted_score"] is None and records[0]["model_version"] == ""
    store = LocalObjectStore(tmp_path)

    assert stack_schema(store) is None  # nothing says the team's layout: real-estate
    schema = stack_schema(store, "", HYPER)
    assert schema is not None and schema.target == "output" and schema.positive == ("yes",)

    result = run_export(DuckDbQueryRunner(tmp_path), store, CONFIG, now_ms=T0 + 5 * DAY,
                        schema=schema)
    assert result.status == "exported" and result.key.endswith(".csv")
    assert result.rows == 120 and result.left_out == 0
    assert result.schema_key == ""  # no columns to write down: the job infers them
    table = list(csv.DictReader(io.StringIO(store.get_bytes(result.key).decode())))
    assert list(table[0]) == ["contact_id", "scored_at", "age", "email_domain", "job", "output"]
    rule = schema.label_rule()  # the target reads back as the outcomes were
    assert sum(rule.label(r["output"]) or 0 for r in table) == sum(
        1 for r in table if int(r["contact_id"][1:]) % 4 == 0)
    assert all("@" not in value for r in table for value in r.values())


def test_training_infers_no_column_from_the_exports_scored_at() -> None:
    from schema_infer import Table, infer_schema

    header = ["contact_id", "scored_at", "age", "output"]
    rows = [[f"c{i}", f"2026-11-{1 + i % 28:02d}T10:00:00.000Z", str(20 + i % 40),
             "yes" if i % 3 else "no"] for i in range(60)]
    table = Table(header=header, columns={h: [r[j] for r in rows] for j, h in enumerate(header)},
                  source="labelled-export.csv")
    inferred = infer_schema(table, "output", ["yes"])
    assert inferred.dropped["scored_at"] == PROVENANCE_REASON
    assert [c.name for c in inferred.schema.columns] == ["age"]


def test_a_retraining_ages_each_exported_leads_dates_from_the_day_it_was_scored() -> None:
    from datetime import date, timedelta

    from leadscore.columns.schema import ColumnSpec, Schema
    from schema_infer import Table, encode, fit_schema

    scored = [date(2026, 10, 1) + timedelta(days=3 * i) for i in range(30)]
    header = ["contact_id", "scored_at", "date_added", "output"]
    rows = [[f"c{i}", f"{d.isoformat()}T09:00:00.000Z", (d - timedelta(days=2)).isoformat(),
             "yes" if i % 2 else "no"] for i, d in enumerate(scored)]
    table = Table(header=header, columns={h: [r[j] for r in rows] for j, h in enumerate(header)},
                  source="labelled-export.csv")
    schema = Schema(columns=(ColumnSpec(name="date_added", kind="date"),), target="output",
                    positive=("yes",))
    retrain_day = date(2026, 12, 7)
    every = np.arange(len(rows))
    fitted = fit_schema(schema, table, every, retrain_day)
    ages = encode(fitted, table, every, retrain_day)[:, 0]
    # every lead was 2 days old when it was scored, as serving saw it; not 67..154 days
    assert ages.tolist() == [2.0] * len(rows)
    assert fitted.columns[0].fill == 2.0


def test_a_refused_candidates_columns_do_not_bind_the_next_training(tmp_path: Path) -> None:
    from leadscore.bundle import REFUSED_SCHEMA_KEY

    store = LocalObjectStore(tmp_path)
    refused = {"target": "y", "positive": ["won"], "negative": ["lost"],
               "exclude": {"pdays": "constant (at most one distinct value)"},
               "columns": [{"name": "age", "kind": "numeric"}]}
    store.put_bytes(REFUSED_SCHEMA_KEY, json.dumps(refused).encode())
    schema = stack_schema(store, "", HYPER)
    # its target and values say the layout; the columns are inferred again on the new rows
    assert schema is not None and (schema.target, schema.positive, schema.negative) == (
        "y", ("won",), ("lost",))
    assert schema.columns == () and dict(schema.exclude) == {}


def _team_upload(store: LocalObjectStore, job: str, upload: str, n: int) -> list[list[str]]:
    """The team's past leads as the retrain function splits them; the training part's rows."""
    from leadscore.registry.retraining import split_record_key, train_part_key
    from leadscore.registry.split import split_lines

    # the team's file names its columns as people do; the loop records their field keys
    lines = [b"Age,Job,notes,Email,Full Name,output\n"] + [
        f"{30 + i % 40},{'retired' if i % 2 else 'admin.'},note {i},p{i}@example.org,P {i},"
        f"{'yes' if i % 5 == 0 else 'no'}\n".encode() for i in range(n)]
    train: list[bytes] = []
    counts = split_lines(lines, csv_format=True, write_train=train.append,
                         write_gate=lambda _: None, target="output", positive=("yes",))
    store.put_bytes(train_part_key(job, upload), b"".join(train), "text/csv")
    store.put_bytes(split_record_key(job), json.dumps(
        {"source_key": upload, "train": counts.train.as_dict()}).encode(), "application/json")
    return [row.split(",") for row in b"".join(train).decode().splitlines()[1:]]


def test_a_refused_first_models_upload_trains_again_with_the_new_outcomes(
        tmp_path: Path) -> None:
    """Was: the team's past leads held 87 conversions (the job wants 120) and every export
    carried the loop's rows alone: on a 6 % base rate (ISLP's Caravan) no model in 8 weeks."""
    from leadscore.bundle import CHAMPION_POINTER_KEY, WAITING_HISTORY_KEY
    from leadscore.loop.export import history_key_beside
    from leadscore.registry.retraining import split_record_key, train_part_key
    from leadscore.registry.split import split_lines

    _kept_before_a_model(tmp_path)
    store = LocalObjectStore(tmp_path)
    job, upload = "leadscore-past-csv-0123456789ab", "training-data/team/past.csv"
    history = _team_upload(store, job, upload, 300)
    schema = stack_schema(store, "", HYPER)
    assert schema is not None
    runner = DuckDbQueryRunner(tmp_path)
    # the job has not been refused (or no promote function said so): the loop's rows alone
    alone = run_export(runner, store, CONFIG, now_ms=T0 + 5 * DAY, schema=schema)
    assert alone.status == "exported" and alone.history_rows == 0

    store.put_bytes(WAITING_HISTORY_KEY, json.dumps({"job": job}).encode())  # refused
    result = run_export(runner, store, CONFIG, now_ms=T0 + 6 * DAY, schema=schema, force=True)
    assert result.status == "exported" and result.rows == 120
    assert (result.history_rows, result.history_key) == (len(history),
                                                         train_part_key(job, upload))
    body = store.get_bytes(result.key)
    table = list(csv.DictReader(io.StringIO(body.decode())))
    # the export's own columns: the history's "notes" is not one, its leads have no e-mail
    assert list(table[0]) == ["contact_id", "scored_at", "age", "email_domain", "job", "output"]
    carried = [r for r in table if r["contact_id"].startswith("history-")]
    assert [r["contact_id"] for r in table[:120]] == [f"c{i:04d}" for i in range(120)]
    assert len(carried) == len(history) and table[120:] == carried
    assert sorted((r["age"], r["job"], r["output"]) for r in carried) == sorted(
        (age, job_, "yes" if out == "yes" else schema.target_text(False))
        for age, job_, _, _, _, out in history)
    # what a snapshot keeps of a lead: its e-mail's domain, never the address or the name
    assert all(r["scored_at"] == "" and r["email_domain"] == "example.org" for r in carried)
    assert b"@" not in body and b"P 1" not in body
    # the split keeps every carried row on the training side
    gate: list[bytes] = []
    split_lines(body.splitlines(keepends=True), csv_format=True, write_train=lambda _: None,
                write_gate=gate.append, target="output", positive=("yes",))
    assert gate and not any(b"history-" in g for g in gate)
    assert json.loads(store.get_bytes(history_key_beside(result.key)))["history_key"] == (
        train_part_key(job, upload))

    # the first model, trained on that export, passes the same history on
    first = "leadscore-labelled-csv-00000000000a"
    store.put_bytes(CHAMPION_POINTER_KEY, json.dumps(
        {"version": "v1", "source": {"job_name": first}}).encode())
    store.put_bytes(split_record_key(first), json.dumps({"source_key": result.key}).encode())
    again = run_export(runner, store, CONFIG, now_ms=T0 + 7 * DAY, schema=schema, force=True)
    assert (again.history_rows, again.history_key) == (result.history_rows, result.history_key)
    # a champion trained on the team's CSV itself: its retraining learns from the loop's rows
    store.put_bytes(CHAMPION_POINTER_KEY, json.dumps(
        {"version": "v0", "source": {"job_name": job}}).encode())
    direct = run_export(runner, store, CONFIG, now_ms=T0 + 8 * DAY, schema=schema, force=True)
    assert direct.history_rows == 0
