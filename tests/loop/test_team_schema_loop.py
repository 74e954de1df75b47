"""The loop on a team's own columns: webhooks scored by a team-schema champion leave snapshots
with the raw values of every exported column (never a name, e-mail, phone or address), their
outcomes label them, and the export writes the team's own layout with its schema beside it."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from leadscore import registry
from leadscore.bundle import read_schema
from leadscore.columns.schema import PROVENANCE_REASON
from leadscore.experiments.serving import experiment_scorer
from leadscore.ghl.webhook import GhlDeps, handle_webhook
from leadscore.loop.export import ExportConfig, ExportResult, run_export, stack_schema
from leadscore.loop.hooks import LoopHooks
from leadscore.loop.local_query import DuckDbQueryRunner
from leadscore.loop.recorder import LoopRecorder
from leadscore.loop.snapshots import build_snapshot, sanitize_fields
from leadscore.loop.store_writer import DirectoryRecordWriter
from leadscore.registry.holdout import HOLDOUT_KEY
from leadscore.registry.retraining import schema_key_beside
from leadscore.registry.store import LocalObjectStore
from leadscore.scoring.model_store import ModelStore
from leadscore.scoring.service import ScoringService
from leadscore.settings import PromoteSettings, ScoreSettings

from tests.fixtures.custom_leads import custom_rows
from tests.fixtures.scoring import load_event

SECRET = "local-demo-webhook-secret"
TEAM = ("source", "stage", "budget", "days_since_reply", "preapproved", "created")
#: what a snapshot must never hold, and fragments of it
PERSONAL = ("Jordan", "Example", "jordan@example.com", "+15555550123", "1 Main St",
            "Maria", "Gonzalez", "555-0100", "12 Elm Street", "maria.g@example.com")


def test_a_team_snapshot_keeps_raw_columns_and_nothing_personal() -> None:
    fields = {
        "source": "Referral", "budget": 425000, "preapproved": "yes", "created": "2026-05-20",
        # personal by column name, whatever a schema calls them
        "First Name": "Maria", "last_name": "Gonzalez", "email": "maria.g@example.com",
        "Phone": "+1 555-0100 777", "street_address": "12 Elm Street",
        # personal by shape under innocent names
        "owner": "maria.g@example.com", "callback": "(555) 555-0100", "where": "12 Elm Street",
        "nested": {"x": "Maria"}, "listing": ["Maria"],
    }
    result = {"contact_id": "c1", "predicted_score": 0.4, "predicted_class": "warm",
              "model_version": "lsm-team", "feature_values": {"source": "Referral"}}
    record = build_snapshot({"contact_id": "c1", "fields": fields}, result,
                            location_id="loc1", source="webhook", scored_at_ms=1_790_000_000_000)
    text = json.dumps(record)
    for fragment in PERSONAL:
        assert fragment not in text
    assert record["features"] is None
    assert json.loads(record["inputs"]) == {"fields": {
        "source": "Referral", "budget": 425000, "preapproved": "yes", "created": "2026-05-20",
        "email_domain": "example.com", "owner_domain": "example.com"}}
    assert sanitize_fields("not an object") is None


def _workflow(contact_id: str, row: dict[str, str]) -> bytes:
    """events/ghl_workflow_webhook.json (a name, e-mail, phone and address at its root) with the
    team's fields, and the export's own e-mail and notes, in its custom data."""
    body = json.loads(load_event("ghl_workflow_webhook")["body"])
    body["contact_id"] = contact_id
    body["customData"] = {k: row[k] for k in (*TEAM, "tenant", "outcome_call_minutes",
                                               "email", "notes")}
    return json.dumps(body).encode()


def _all_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*")
                     if p.is_file() and "models" not in p.parts)


@pytest.mark.slow
def test_webhook_snapshots_outcomes_and_export_use_the_teams_columns(
    custom_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    store = LocalObjectStore(root)
    assert registry.promote(custom_bundle, store, PromoteSettings(), force=True).promoted
    pointer = f"file://{root}/models/champion.json"
    scorer = experiment_scorer(ScoringService(ModelStore(pointer, cache_dir=tmp_path / "c")),
                               pointer, refresh_seconds=60)
    recorder = LoopRecorder(DirectoryRecordWriter(root), background=False)
    hooks = LoopHooks(recorder)
    deps = GhlDeps(settings=ScoreSettings(ghl_webhook_secret=SECRET), scorer=lambda: scorer,
                   loop=hooks)
    rows = custom_rows(150, seed=5)
    for i, row in enumerate(rows):
        outcome = handle_webhook({"x-leadscore-secret": SECRET}, _workflow(f"lead{i}", row), deps)
        assert outcome.body["status"] == "scored", outcome.body
    recorder.flush()
    later = recorder.now_ms() + 3_600_000
    for i, row in enumerate(rows):
        hooks.on_outcome_event({
            "type": "OpportunityStatusUpdate", "locationId": "loc_ve9EPM428h8vShlRW1KT",
            "id": f"opp{i}", "contactId": f"lead{i}", "status": row["status"],
            "pipelineId": "p1", "pipelineStageId": "",
            "timestamp": _iso(later)})

    schema = stack_schema(store)
    assert schema is not None and schema.target == "status"
    # the export function on its schedule, in local mode over this store: the champion's
    # schema picks the layout
    from functions.export import app as export_app
    from tools.lambda_context import lambda_context

    for name, value in {"RECORD_DIR": str(root), "EXPORT_MIN_NEW_OUTCOMES": "1",
                        "POWERTOOLS_METRICS_NAMESPACE": "LeadScoring"}.items():
        monkeypatch.setenv(name, value)
    for name in ("ARTIFACT_BUCKET", "ATHENA_WORK_GROUP", "TEAM_SCHEMA_KEY"):
        monkeypatch.delenv(name, raising=False)
    export_app.reset()
    try:
        answer = export_app.lambda_handler({"now_ms": later + 3_600_000}, lambda_context())
    finally:
        export_app.reset()
    result = ExportResult(**answer)
    assert result.status == "exported" and result.key.endswith(".csv"), result
    assert result.rows == 120 and result.holdout_rows == 30 and result.left_out == 0
    assert result.schema_key == schema_key_beside(result.key)

    table = list(csv.DictReader(io.StringIO(store.get_bytes(result.key).decode())))
    header = list(table[0])
    # the team's layout: the model's columns, the excluded ones it kept, the target last;
    # never the e-mail, the notes or the contact's name / phone / address
    assert header == ["contact_id", "scored_at", *TEAM, "tenant", "outcome_call_minutes",
                      "status"]
    sent = {f"lead{i}": row for i, row in enumerate(rows)}
    for line in table:
        row = sent[line["contact_id"]]
        assert {k: line[k] for k in TEAM} == {k: row[k] for k in TEAM}
        assert line["scored_at"] < _iso(later)  # scored before its outcome
        # the target in the schema's words: its positive value, else one its rule reads as not
        assert schema.label_rule().label(line["status"]) == (row["status"] == "won")
        assert line["status"] == ("won" if row["status"] == "won" else "0")
    written = json.loads(store.get_bytes(schema_key_beside(result.key)))
    assert written["target"] == "status" and written["positive"] == ["won"]
    # the export's own scoring time is excluded from training, with its reason
    assert written["exclude"] == {**schema.exclude, "scored_at": PROVENANCE_REASON}
    assert [c["name"] for c in written["columns"]] == schema.column_names
    assert all("categories" not in c and "fill" not in c for c in written["columns"])

    held = [json.loads(line) for line in store.get_bytes(HOLDOUT_KEY).decode().splitlines()]
    assert len(held) == 30 and all(h["status"] in ("won", "0") for h in held)
    for h in held:  # the raw values as sent (an empty one is absent, as HighLevel's are)
        row = sent[h["contact_id"]]
        assert {k: v for k, v in h["fields"].items() if k in TEAM} == \
            {k: row[k] for k in TEAM if row[k]}

    everything = _all_text(root)
    for fragment in PERSONAL[:5]:
        assert fragment not in everything, fragment
    assert "lead0@example.com" not in everything and "#0" not in everything  # e-mail, notes


def _iso(ms: int) -> str:
    from leadscore.loop.records import iso_ms

    return iso_ms(ms)


@pytest.mark.slow
def test_retraining_on_the_export_reproduces_the_teams_schema(
    custom_bundle: Path, tmp_path: Path
) -> None:
    """The export's CSV and the schema beside it train (as the stack's job does: SageMaker
    mode, train.py --schema naming the file in its channel) into a bundle with the same
    target, positive values, exclusions and directions, with nothing done by hand."""
    import warnings

    import train

    from tests.fixtures.custom_leads import CUSTOM_TINY_HP

    root = tmp_path / "store"
    store = LocalObjectStore(root)
    served = read_schema(custom_bundle)
    directed = served.with_columns(
        c if c.name != "days_since_reply" else replace(c, direction=-1)
        for c in served.columns)
    store.put_bytes("config/team-schema.json",
                    json.dumps(directed.unfitted().to_dict()).encode(), "application/json")
    schema = stack_schema(store, "config/team-schema.json")  # a hand-edited schema
    assert schema is not None
    rows = custom_rows(700, seed=9)
    t0 = 1_790_000_000_000
    records: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        fields = {k: v for k, v in row.items() if k != "status"}
        records.append(build_snapshot(
            {"contact_id": f"c{i}", "fields": fields},
            {"contact_id": f"c{i}", "predicted_score": 0.3, "predicted_class": "warm",
             "model_version": "lsm-x"},
            location_id="loc1", source="webhook", scored_at_ms=t0 + i))
        records.append(_outcome(f"c{i}", row["status"], t0 + 10_000_000 + i))
    DirectoryRecordWriter(root)(records)
    result = run_export(DuckDbQueryRunner(root), store,
                        ExportConfig(min_new_outcomes=1, holdout_fraction=0.1),
                        now_ms=t0 + 20_000_000, schema=schema)
    assert result.status == "exported", result
    # the job as the stack runs it: SageMaker mode, the rows and the schema in the channel
    # (the retrain function's layout), --schema relative to it
    opt_ml = tmp_path / "opt-ml"
    channel = opt_ml / "input" / "data" / "training"
    channel.mkdir(parents=True)
    (channel / "train.csv").write_bytes((root / result.key).read_bytes())
    (channel / "train.csv.schema.json").write_bytes(
        (root / schema_key_beside(result.key)).read_bytes())
    args = ["--schema", "train.csv.schema.json"]
    for key, value in CUSTOM_TINY_HP.items():
        args += [f"--{key}", value]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert train.main(args, env={"LEADSCORE_OPT_ML_ROOT": str(opt_ml)}) == 0
    out = opt_ml / "model"
    retrained = read_schema(out)
    assert (retrained.target, retrained.positive) == (served.target, served.positive)
    assert set(served.exclude) <= set(retrained.exclude)
    assert retrained.column_names == served.column_names
    assert retrained.column("days_since_reply").direction == -1
    assert {c.name: c.kind for c in retrained.columns} == \
        {c.name: c.kind for c in served.columns}


def _outcome(contact_id: str, status: str, at_ms: int) -> dict[str, Any]:
    from leadscore.loop.outcomes import OutcomeRuleBook, outcomes_from_event

    return outcomes_from_event(
        {"type": "OpportunityStatusUpdate", "locationId": "loc1", "id": f"o-{contact_id}",
         "contactId": contact_id, "status": status, "pipelineId": "p1", "pipelineStageId": ""},
        OutcomeRuleBook(), occurred_at_ms=at_ms, received_at_ms=at_ms)[0]
