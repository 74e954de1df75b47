"""Per-location exports (leadscore.loop.location_export): a location without a model of its own
gets its first training upload from its backfilled, resolved leads once they hold enough
conversions, laid out in its own columns; a location with a model retrains on its own new
outcomes or on confirmed drift. Records through the real builders, DuckDB over the files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from leadscore.bundle import CHAMPION_POINTER_KEY
from leadscore.columns.csv_reader import read_bytes
from leadscore.ghl.installations import InstalledLocation
from leadscore.loop.backfill import ContactOutcome
from leadscore.loop.backfill_job import ContactStep
from leadscore.loop.export import ExportConfig
from leadscore.loop.local_query import DuckDbQueryRunner
from leadscore.loop.location_export import run_location_exports, state_key
from leadscore.loop.recorder import LoopRecorder
from leadscore.loop.snapshots import build_snapshot
from leadscore.loop.store_writer import DirectoryRecordWriter
from leadscore.registry.holdout import HOLDOUT_KEY
from leadscore.registry.locations import FIRST_MODEL_TARGET, first_model_needs
from leadscore.registry.store import LocalObjectStore
from leadscore.scoring.scoped import Unscored

from .helpers import DAY, T0, outcome

CONFIG = ExportConfig(min_new_outcomes=5, holdout_fraction=0.2)


def _unscored(location_id: str, contact_id: str, fields: dict[str, Any],
              at_ms: int) -> dict[str, Any]:
    """What the backfill keeps of a closed contact no model may score (ContactStep)."""
    return build_snapshot({"contact_id": contact_id, "fields": fields},
                          {"contact_id": contact_id, "scored": False},
                          location_id=location_id, source="backfill", scored_at_ms=at_ms,
                          point_in_time=False)


def _backfill(location_id: str, n: int, every: int) -> list[dict[str, Any]]:
    """n closed contacts of a location, one in ``every`` won: their fields read after the
    fact by the backfill, their outcomes imported from historical opportunities."""
    records: list[dict[str, Any]] = []
    for i in range(n):
        contact = f"{location_id}-c{i}"
        won = i % every == 0
        fields = {"source": "Referral" if won else "Google", "age": 30 + i % 40,
                  "email": f"p{i}@example.com", "first_name": "Ann"}
        records.append(_unscored(location_id, contact, fields, T0 + 30 * DAY + i))
        imported = outcome(contact, "won" if won else "lost", T0 + i * 1000,
                           T0 + 30 * DAY, location_id=location_id, opportunity_id=f"o{i}")
        records.append({**imported, "point_in_time": False, "event_type": "Backfill"})
    return records


def _run(root: Path, now_ms: int = T0 + 31 * DAY, **kwargs: Any) -> dict[str, Any]:
    store = LocalObjectStore(root)
    results = run_location_exports(DuckDbQueryRunner(root), store, CONFIG,
                                   now_ms=now_ms, **kwargs)
    return {r.location_id: r for r in results}


def test_the_first_model_threshold_keeps_enough_conversions_for_the_job_and_the_gate() -> None:
    # 20 % kept back by the export, 20 % of the rest by the retrain function's gate part
    assert first_model_needs(120, 0.2) == 188
    assert 188 * 0.8 * 0.8 >= 120 > 187 * 0.8 * 0.8


def test_a_location_with_enough_conversions_gets_its_first_upload_in_its_own_columns(
        tmp_path: Path) -> None:
    root = tmp_path / "store"
    # loc-a: 400 contacts, 100 won; loc-b: 100 contacts, 10 won
    DirectoryRecordWriter(root)([*_backfill("loc-a", 400, 4), *_backfill("loc-b", 100, 10)])
    results = _run(root, min_conversions=40)  # needs 63 of each class
    a, b = results["loc-a"], results["loc-b"]
    assert (b.status, b.kind, b.converted, b.needed) == (
        "not_enough_conversions", "first_model", 10, 63)
    assert (a.status, a.kind, a.converted, a.not_converted) == (
        "exported", "first_model", 100, 300)
    assert a.key.startswith("training-data/locations/loc-a/") and a.key.endswith(".csv")
    assert a.rows == 320 and a.holdout_rows == 80 and a.schema_key == ""
    header, rows = read_bytes((root / a.key).read_bytes(), "export")
    # the location's own columns, nothing personal, the outcome in the first-model column
    assert list(header) == ["contact_id", "scored_at", "age", "email_domain", "source",
                            FIRST_MODEL_TARGET]
    assert {r[-1] for r in rows} == {"won", "lost"}
    # its own held-out rows (the newest resolved), in its own registry's folder
    held = [json.loads(line) for line in
            (root / "locations/loc-a" / HOLDOUT_KEY).read_text().splitlines()]
    assert len(held) == 80 and {h[FIRST_MODEL_TARGET] for h in held} <= {"won", "lost"}
    assert max(int(r[0].rsplit("c", 1)[1]) for r in rows) < min(
        int(h["contact_id"].rsplit("c", 1)[1]) for h in held)  # a temporal hold-out
    # nothing of the agency's was written, nothing of loc-b's
    assert not (root / "training-data/auto").exists() and not (root / HOLDOUT_KEY).exists()
    assert not (root / "training-data/locations/loc-b").exists()
    assert (root / state_key("loc-a")).exists() and not (root / state_key("loc-b")).exists()
    # once exported, the same rows are not uploaded twice
    assert _run(root, min_conversions=40)["loc-a"].status == "unchanged"


def _give_champion(root: Path, location_id: str) -> None:
    """A real-estate champion for the location (the recorded test bundle)."""
    from tests.fixtures.location_store import RECORDED, place_champion

    place_champion(root, RECORDED, root=f"locations/{location_id}")


def _scored(location_id: str, n: int, start_ms: int) -> list[dict[str, Any]]:
    """n leads the location's own model scored as they came, and their outcomes a day later."""
    from .helpers import snapshot

    records: list[dict[str, Any]] = []
    for i in range(n):
        contact = f"{location_id}-n{start_ms}-{i}"
        records.append(snapshot(contact, start_ms + i, location_id=location_id,
                                commitment=float(i % 100)))
        records.append(outcome(contact, "won" if i % 3 == 0 else "lost", start_ms + DAY + i,
                               location_id=location_id, opportunity_id=f"o-{contact}"))
    return records


def test_a_location_with_a_model_retrains_on_new_outcomes_or_confirmed_drift(
        tmp_path: Path) -> None:
    root = tmp_path / "store"
    _give_champion(root, "loc-a")
    pointer = (root / "locations/loc-a" / CHAMPION_POINTER_KEY).read_bytes()
    writer = DirectoryRecordWriter(root)
    # its backfill in its own columns does not fit its real-estate champion's layout
    writer([*_backfill("loc-a", 40, 4), *_scored("loc-a", 150, T0)])
    first = _run(root, min_conversions=40, locations=["loc-a"])["loc-a"]
    assert (first.status, first.kind, first.new_outcomes) == ("exported", "retrain", 150)
    assert first.key.endswith(".jsonl") and first.rows == 120  # its real-estate layout
    # nothing new since: not exported, unless its drift was confirmed
    assert _run(root, min_conversions=40)["loc-a"].status == "not_enough_outcomes"
    writer(_scored("loc-a", 3, T0 + 32 * DAY))
    later = T0 + 40 * DAY
    quiet = _run(root, later, min_conversions=40)["loc-a"]
    assert (quiet.status, quiet.new_outcomes) == ("not_enough_outcomes", 3)
    drifted = _run(root, later, min_conversions=40, drift=["loc-a"])["loc-a"]
    assert (drifted.status, drifted.drift) == ("exported", True)
    assert drifted.key != first.key
    # an export never touches the location's champion
    assert (root / "locations/loc-a" / CHAMPION_POINTER_KEY).read_bytes() == pointer


class _NoScope:
    """A scorer whose location has no scope (no model of its own, no pooling)."""

    def score(self, request: Any, *, explain: bool = True) -> Any:
        raise Unscored("loc-a", "no model may score this location")

    def custom_schema(self) -> None:
        return None


class _Recorder(LoopRecorder):
    def __init__(self) -> None:
        super().__init__(None)
        self.kept: list[dict[str, Any]] = []

    def snapshot(self, request: Any, result: Any, *, location_id: str, source: str,
                 point_in_time: bool = True) -> None:
        self.kept.append(build_snapshot(request, result, location_id=location_id,
                                        source=source, scored_at_ms=T0,
                                        point_in_time=point_in_time))


@pytest.mark.parametrize("closed", [True, False])
def test_the_backfill_keeps_an_unscored_closed_contact_in_its_own_fields(closed: bool) -> None:
    recorder = _Recorder()
    step = ContactStep(
        scorer=lambda: _NoScope(),  # type: ignore[arg-type,return-value]
        recorder=recorder, queue=None,
        location_for=lambda location_id: InstalledLocation(
            stack_field_map={"f-age": "age", "f-src": "source", "f-mail": "email"}),
        closed_contacts={"c1"} if closed else set())
    contact = {"id": "c1", "firstName": "Ann", "email": "ann@example.com",
               "customFields": [{"id": "f-age", "value": "41"}, {"id": "f-src", "value": "Zillow"},
                                {"id": "f-mail", "value": "ann@example.com"},
                                {"id": "f-unmapped", "value": "x"}]}
    assert step("loc-a", contact) == ContactOutcome.SKIPPED  # nothing scored, nothing written
    if not closed:
        assert recorder.kept == []  # an open contact teaches nothing yet
        return
    [kept] = recorder.kept
    assert json.loads(kept["inputs"]) == {"fields": {"age": "41", "source": "Zillow",
                                                     "email_domain": "example.com"}}
    assert (kept["predicted_score"], kept["model_version"], kept["point_in_time"]) == (
        None, "", False)


@pytest.mark.slow
def test_a_new_locations_first_model_from_its_backfill_is_gated_and_promoted_for_it_alone(
        tmp_path: Path) -> None:
    """Backfilled contacts (a team's own columns, a leak among them) and their won/lost
    opportunities -> the location's export -> the job as the stack runs it (the retrain
    function's split and hyperparameters, SageMaker mode, schema inferred) -> the gate on the
    job's gate part and the location's own held-out rows -> the location's champion; the
    agency's champion and another location's are untouched."""
    import io
    import warnings

    import train
    from leadscore import registry
    from leadscore.bundle import read_schema
    from leadscore.registry import gate, retraining
    from leadscore.registry.locations import location_store
    from leadscore.registry.split import split_lines
    from leadscore.registry.uploads import location_settings
    from leadscore.settings import PromoteSettings, RetrainSettings

    from tests.fixtures.custom_leads import CUSTOM_TINY_HP, custom_rows
    from tests.fixtures.location_store import RECORDED, place_champion

    root = tmp_path / "store"
    store = LocalObjectStore(root)
    place_champion(root, RECORDED)  # the agency's champion
    place_champion(root, RECORDED, root="locations/loc-old")
    before = {k: (root / k).read_bytes() for k in (
        CHAMPION_POINTER_KEY, f"locations/loc-old/{CHAMPION_POINTER_KEY}")}
    records: list[dict[str, Any]] = []
    for i, row in enumerate(custom_rows(900, seed=21)):
        contact = f"n{i}"
        fields = {k: v for k, v in row.items() if k not in ("status", "contact_id")}
        records.append(_unscored("loc-new", contact, fields, T0 + 30 * DAY + i))
        imported = outcome(contact, row["status"], T0 + i * 1000, T0 + 30 * DAY,
                           location_id="loc-new", opportunity_id=f"o{i}")
        records.append({**imported, "point_in_time": False})
    DirectoryRecordWriter(root)(records)
    [export] = run_location_exports(DuckDbQueryRunner(root), store, CONFIG, now_ms=T0 + 31 * DAY,
                                    min_conversions=30)
    assert (export.location_id, export.status, export.kind) == ("loc-new", "exported",
                                                                 "first_model")

    # the retrain function: its split and its job's hyperparameters for a location upload
    settings = location_settings(RetrainSettings(
        training_hyperparameters={k: json.dumps(v) for k, v in CUSTOM_TINY_HP.items()}),
        export.key)
    train_part, gate_part = io.BytesIO(), io.BytesIO()
    split = split_lines((root / export.key).read_bytes().splitlines(keepends=True),
                        csv_format=True, write_train=train_part.write,
                        write_gate=gate_part.write, target=FIRST_MODEL_TARGET,
                        positive=("won",), negative=("lost",))
    request = retraining.training_job_request("bucket", export.key, None, settings, "us-east-1")
    hyperparameters = {k: json.loads(v) for k, v in request["HyperParameters"].items()
                       if not k.startswith("sagemaker_")}
    opt_ml = tmp_path / "opt-ml"
    channel = opt_ml / "input" / "data" / "training"
    channel.mkdir(parents=True)
    (channel / "train.csv").write_bytes(train_part.getvalue())
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(
        json.dumps({k: json.dumps(v) for k, v in hyperparameters.items()}))
    args = [a for k, v in hyperparameters.items() for a in (f"--{k}", str(v))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert train.main(args, env={"LEADSCORE_OPT_ML_ROOT": str(opt_ml)}) == 0
    bundle_dir = opt_ml / "model"
    schema = read_schema(bundle_dir)
    assert schema is not None and schema.target == FIRST_MODEL_TARGET
    # schema inferred, leak guard on: the column only known after the outcome is left out,
    # so are the provenance column and the free text
    assert "outcome_call_minutes" in schema.exclude and "scored_at" in schema.exclude
    assert {"source", "preapproved"} <= set(schema.column_names)

    rows, _ = gate.read_rows_for_bundle(gate_part.getvalue(), jsonl=False,
                                        bundle_dir=bundle_dir, source="gate part")
    counts = gate.ClassCounts(split.train.converted, split.train.not_converted, "split")
    result = registry.promote(bundle_dir, location_store(store, "loc-new"),
                              PromoteSettings(min_auc=0.6, min_conversions=30),
                              rows=rows, counts=counts)
    assert result.promoted, result.reasons
    sets = (result.gate or {})["measured"]["evaluation_sets"]
    # its own job's gate part and its own held-out rows (the newest it resolved)
    assert set(sets) == {"gate rows", "platform-held"}
    assert sets["platform-held"]["rows"] == export.holdout_rows
    pointer = json.loads((root / "locations/loc-new" / CHAMPION_POINTER_KEY).read_text())
    assert pointer["version"] == result.version
    for key, raw in before.items():
        assert (root / key).read_bytes() == raw, key


@pytest.mark.parametrize(("location_models", "outcomes", "finished", "asked"), [
    ("true", True, True, True),
    ("false", True, True, False),  # one model for the stack: no location learns alone
    ("true", False, True, False),  # no outcomes imported: nothing to learn from
    ("true", True, False, False),  # not finished: the next run asks, at its end
])
def test_a_finished_backfill_asks_for_its_locations_export(
        monkeypatch: pytest.MonkeyPatch, location_models: str, outcomes: bool,
        finished: bool, asked: bool) -> None:
    from leadscore.loop.backfill import Checkpoint

    from functions.backfill import app
    from tools.lambda_context import lambda_context

    monkeypatch.setenv("LOCATION_MODELS", location_models)
    monkeypatch.setenv("EXPORT_FUNCTION_NAME", "stack-export")
    monkeypatch.setenv("BACKFILL_FUNCTION_NAME", "stack-backfill")
    invoked: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(app, "invoke_again", lambda event, name: invoked.append(
        (name, dict(event))))
    monkeypatch.setattr(app, "checkpoint_store", lambda loop: None)
    monkeypatch.setattr(app, "run", lambda event, **kw: Checkpoint(
        "loc-a", "install", done=10, total=10 if finished else 20, finished=finished))
    app.lambda_handler({"location_id": "loc-a", "job_id": "install", "outcomes": outcomes},
                       lambda_context("BackfillFunction"))
    exports = [event for name, event in invoked if name == "stack-export"]
    assert exports == ([{"location_id": "loc-a"}] if asked else [])


def test_the_agencys_export_never_trains_on_rows_no_model_scored(tmp_path: Path) -> None:
    """With a model per location, a location without a model that does not pool keeps its
    history for its own first model: the agency's export (backfill imports included) leaves
    those rows out."""
    from leadscore.columns.schema import Schema
    from leadscore.loop.export import run_export

    root = tmp_path / "store"
    DirectoryRecordWriter(root)(_backfill("loc-a", 400, 4))
    schema = Schema.from_dict({"target": "outcome", "positive": ["won"], "columns": [
        {"name": "age", "kind": "numeric"}, {"name": "source", "kind": "categorical"}]})
    config = ExportConfig(min_new_outcomes=0, include_backfilled=True)
    result = run_export(DuckDbQueryRunner(root), LocalObjectStore(root), config,
                        now_ms=T0 + 31 * DAY, schema=schema, unscored=False)
    assert (result.status, result.rows, result.left_out) == ("too_few_rows", 0, 0)
    # one model for the stack: a lead kept before any model is the stack's to learn from
    result = run_export(DuckDbQueryRunner(root), LocalObjectStore(root), config,
                        now_ms=T0 + 31 * DAY, schema=schema)
    assert (result.status, result.rows) == ("exported", 320)


def test_the_export_function_exports_per_location_with_location_models(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduled run: the agency's export as before plus each location's decision; an
    event naming a location runs that one only (never the agency's)."""
    from functions.export import app as export_app
    from tools.lambda_context import lambda_context

    root = tmp_path / "store"
    DirectoryRecordWriter(root)([*_backfill("loc-a", 400, 4), *_backfill("loc-b", 100, 10)])
    for name, value in {"RECORD_DIR": str(root), "LOCATION_MODELS": "true",
                        "LOCATION_MIN_CONVERSIONS": "40",
                        "POWERTOOLS_METRICS_NAMESPACE": "LeadScoring"}.items():
        monkeypatch.setenv(name, value)
    for name in ("ARTIFACT_BUCKET", "ATHENA_WORK_GROUP", "TEAM_SCHEMA_KEY",
                 "TRAINING_HYPERPARAMETERS"):
        monkeypatch.delenv(name, raising=False)
    export_app.reset()
    try:
        one = export_app.lambda_handler({"location_id": "loc-b", "now_ms": T0 + 31 * DAY},
                                        lambda_context())
        daily = export_app.lambda_handler({"now_ms": T0 + 31 * DAY}, lambda_context())
    finally:
        export_app.reset()
    assert list(one) == ["locations"] and list(one["locations"]) == ["loc-b"]
    assert one["locations"]["loc-b"]["status"] == "not_enough_conversions"
    # the agency's own export: no row any model scored
    assert daily["status"] == "not_enough_outcomes"
    assert {k: v["status"] for k, v in daily["locations"].items()} == {
        "loc-a": "exported", "loc-b": "not_enough_conversions"}
    assert daily["locations"]["loc-a"]["key"].startswith("training-data/locations/loc-a/")


def test_a_locations_retraining_keeps_its_history_and_holds_back_its_newest_leads(
        tmp_path: Path) -> None:
    """A location whose own model reads its columns: its retraining upload holds its backfill
    (what its first model learned from) and every lead it scored since; the held-out rows are
    the newest resolved, scored before their outcome."""
    from leadscore.columns.schema import Schema

    root = tmp_path / "store"
    schema = Schema.from_dict({"target": "outcome", "positive": ["won"], "negative": ["lost"],
                               "columns": [{"name": "age", "kind": "numeric"},
                                           {"name": "source", "kind": "categorical"}]})
    base = root / "locations/loc-a/models"
    (base / "v1").mkdir(parents=True)
    (base / "v1/schema.json").write_text(json.dumps(schema.to_dict()))
    (base / "v1/manifest.json").write_text(json.dumps({"files": {"schema.json": "-"}}))
    (base / "champion.json").write_text(json.dumps({"version": "v1", "prefix": "models/v1/"}))
    records = _backfill("loc-a", 400, 4)
    for i in range(60):  # scored by its own model as they came, resolved a day later
        contact = f"loc-a-new{i}"
        records.append(build_snapshot(
            {"contact_id": contact, "fields": {"age": 40 + i % 9, "source": "Referral"}},
            {"contact_id": contact, "predicted_score": 0.4, "model_version": "v1"},
            location_id="loc-a", source="webhook", scored_at_ms=T0 + 40 * DAY + i))
        records.append(outcome(contact, "won" if i % 3 == 0 else "lost", T0 + 41 * DAY + i,
                               location_id="loc-a", opportunity_id=f"on{i}"))
    DirectoryRecordWriter(root)(records)
    result = _run(root, T0 + 45 * DAY, min_conversions=40)["loc-a"]
    assert (result.status, result.kind, result.new_outcomes) == ("exported", "retrain", 60)
    assert (result.rows, result.holdout_rows) == (368, 92)  # 460 rows, the newest 20 % held
    assert result.schema_key  # its schema beside the rows: the job reproduces it
    held = [json.loads(line) for line in
            (root / "locations/loc-a" / HOLDOUT_KEY).read_text().splitlines()]
    assert sum(1 for h in held if h["point_in_time"]) == 60  # every lead it scored is newest
