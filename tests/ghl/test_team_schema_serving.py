"""A bundle trained on a team's own columns, served the stack's ways: through the champion
pointer (the stack's default), under an experiment, by the queued write-back and by the
backfill. HighLevel webhooks are the events/ files with the team's fields in them."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from leadscore import registry
from leadscore.adapters.s3_store import open_store
from leadscore.experiments import store as experiment_store
from leadscore.experiments.serving import ExperimentScorer, experiment_scorer
from leadscore.ghl.installations import InstalledLocation
from leadscore.ghl.messages import webhook_message
from leadscore.ghl.webhook import GhlDeps, handle_webhook
from leadscore.loop.backfill import ContactOutcome
from leadscore.loop.backfill_job import ContactStep
from leadscore.loop.recorder import LoopRecorder
from leadscore.registry.store import LocalObjectStore
from leadscore.scoring.model_store import ModelStore
from leadscore.scoring.service import ScoringService, scorer_schema
from leadscore.settings import PromoteSettings, ScoreSettings

from tests.fixtures.custom_leads import custom_rows
from tests.fixtures.fakes import MemoryInputDigests
from tests.fixtures.scoring import bundle_version, load_event, with_body

pytestmark = pytest.mark.slow  # the session's custom bundle is trained once

SECRET = "local-demo-webhook-secret"  # the one in events/ghl_workflow_webhook.json
LOCATION = "loc_ve9EPM428h8vShlRW1KT"
TEAM_COLUMNS = ("source", "stage", "budget", "days_since_reply", "preapproved", "created")


def _team_fields(i: int) -> dict[str, str]:
    row = custom_rows(40, seed=11)[i]
    return {k: row[k] for k in (*TEAM_COLUMNS, "tenant", "outcome_call_minutes")}


def _workflow_body(contact_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """events/ghl_workflow_webhook.json with the team's fields as the workflow's custom data
    (the name, e-mail, phone and address HighLevel puts at the root stay in)."""
    body = json.loads(load_event("ghl_workflow_webhook")["body"])
    body["contact_id"] = contact_id
    body["customData"] = dict(fields)
    return body


def _store_with(champion: Path, tmp_path: Path, *others: Path) -> Path:
    root = tmp_path / "store"
    local = LocalObjectStore(root)
    assert registry.promote(champion, local, PromoteSettings(), force=True).promoted
    for other in others:
        version = bundle_version(other)
        shutil.copytree(other, root / "models" / version)
    return root


def _pointer_scorer(root: Path, tmp_path: Path) -> ScoringService | ExperimentScorer:
    """The scorer the stack builds for a champion-pointer MODEL_URI."""
    uri = f"file://{root}/models/champion.json"
    service = ScoringService(ModelStore(uri, refresh_seconds=0, cache_dir=tmp_path / "cache"))
    return experiment_scorer(service, uri, refresh_seconds=0, open_store=open_store)


def test_a_team_webhook_is_scored_through_the_champion_pointer(
    custom_bundle: Path, tmp_path: Path, install: Callable[..., Any], invoke: Any
) -> None:
    root = _store_with(custom_bundle, tmp_path)
    container = install(f"file://{root}/models/champion.json", ghl_webhook_secret=SECRET)
    # the stack's default path: each location by its scope, the agency's by its experiments
    assert isinstance(container.scorer.inner, ExperimentScorer)
    event = load_event("ghl_workflow_webhook")
    answer = invoke(with_body(event, _workflow_body("lead_team_1", _team_fields(0))))
    assert answer.status == 200, answer.body
    assert answer.body["status"] == "scored", answer.body
    assert answer.body["model_version"] == bundle_version(custom_bundle)
    direct = container.service.score(
        {"contact_id": "lead_team_1", "fields": _team_fields(0)}, explain=False)
    assert answer.body["predicted_score"] == direct["predicted_score"]


def test_a_signed_contact_update_carries_the_teams_custom_fields(
    custom_bundle: Path, tmp_path: Path, install: Callable[..., Any], invoke: Any,
    ghl_ed25519: Any,
) -> None:
    """events/ghl_webhook_contact_update.json, its customFields ({id, value} as HighLevel
    sends them) the team's fields, mapped by the deployment's field ids."""
    event = load_event("ghl_webhook_contact_update")
    payload = json.loads(event["body"])
    fields = _team_fields(4)
    payload["customFields"] = [{"id": f"fld_{k}", "value": v} for k, v in fields.items()]
    payload["timestamp"] = datetime.now(UTC).isoformat(timespec="milliseconds")  # fresh
    root = _store_with(custom_bundle, tmp_path)
    install(f"file://{root}/models/champion.json",
            ghl_public_key_ed25519=ghl_ed25519.public_pem,
            ghl_field_map={f"fld_{k}": k for k in fields})
    body = json.dumps(payload)
    signed = with_body(event, payload)
    signed["body"] = body
    signed["headers"] = {**event["headers"], "x-ghl-signature": ghl_ed25519.sign(body.encode())}
    answer = invoke(signed)
    assert answer.status == 200 and answer.body["status"] == "scored", answer.body
    assert answer.body["model_version"] == bundle_version(custom_bundle)


def test_a_team_webhook_is_scored_under_an_experiment(
    custom_bundle: Path, second_custom_bundle: Path, tmp_path: Path,
    install: Callable[..., Any], invoke: Any
) -> None:
    challenger = bundle_version(second_custom_bundle)
    root = _store_with(custom_bundle, tmp_path, second_custom_bundle)
    experiment_store.create(LocalObjectStore(root), "team-columns", ["champion", challenger],
                            [50, 50], shadow=challenger)
    install(f"file://{root}/models/champion.json", ghl_webhook_secret=SECRET)
    event = load_event("ghl_workflow_webhook")
    versions: Counter[str] = Counter()
    for i in range(24):
        answer = invoke(with_body(event, _workflow_body(f"lead_team_{i}", _team_fields(i))))
        assert answer.status == 200 and answer.body["status"] == "scored", answer.body
        versions[answer.body["model_version"]] += 1
    assert versions[challenger] > 0 and versions[bundle_version(custom_bundle)] > 0


def test_experiment_fields_requests_carry_variant_and_shadow(
    custom_bundle: Path, second_custom_bundle: Path, tmp_path: Path
) -> None:
    challenger = bundle_version(second_custom_bundle)
    root = _store_with(custom_bundle, tmp_path, second_custom_bundle)
    experiment_store.create(LocalObjectStore(root), "team-columns", ["champion", challenger],
                            [50, 50], shadow=challenger)
    scorer = _pointer_scorer(root, tmp_path)
    assert isinstance(scorer, ExperimentScorer)
    schema = scorer_schema(scorer)
    assert schema is not None and set(TEAM_COLUMNS) <= set(schema.column_names)
    answers = [scorer.score({"contact_id": f"c{i}", "fields": _team_fields(i)}, explain=False)
               for i in range(20)]
    assert {a["variant"] for a in answers} == {"champion", challenger}
    assert all(a["shadow"] is not None and a["shadow"]["model_version"] == challenger
               for a in answers)
    batch = scorer.score_batch([{"contact_id": f"c{i}", "fields": _team_fields(i)}
                                for i in range(5)], explain=False)
    assert len(batch["results"]) == 5 and batch["errors"] == []
    # a bad value is still the lead's 400, naming its path
    bad = scorer.score_batch([{"contact_id": "c-bad", "fields": {"budget": "lots"}}])
    assert bad["errors"][0]["errors"][0]["path"] == "fields.budget"


def test_a_variant_that_cannot_read_the_lead_leaves_the_champion_answering(
    custom_bundle: Path, trained_bundle: Path, tmp_path: Path
) -> None:
    """A real-estate challenger against a team-schema champion: it cannot read `fields`, so
    the champion answers and the lead counts for no arm; a shadow on the wrong form is null."""
    other = bundle_version(trained_bundle)
    root = _store_with(custom_bundle, tmp_path, trained_bundle)
    experiment_store.create(LocalObjectStore(root), "mixed", ["champion", other], [0, 100],
                            shadow=other)
    scorer = _pointer_scorer(root, tmp_path)
    answer = scorer.score({"contact_id": "c1", "fields": _team_fields(1)}, explain=False)
    assert answer["variant"] is None and answer["shadow"] is None
    assert answer["model_version"] == bundle_version(custom_bundle)
    # the rules arm reads no team's columns either: the champion answers, uncounted
    local = LocalObjectStore(root)
    experiment_store.stop(local, "mixed")
    experiment_store.create(local, "rules-arm", ["champion", "rules"], [0, 100])
    scorer = _pointer_scorer(root, tmp_path)
    answer = scorer.score({"contact_id": "c1", "fields": _team_fields(1)}, explain=False)
    assert answer["variant"] is None and answer["source"] == "ensemble"


def test_a_changed_team_field_rescores_the_contact(custom_bundle: Path, tmp_path: Path) -> None:
    scorer = _pointer_scorer(_store_with(custom_bundle, tmp_path), tmp_path)
    clock = iter(float(t) for t in range(1_770_285_600, 1_770_285_700))
    deps = GhlDeps(settings=ScoreSettings(ghl_webhook_secret=SECRET), scorer=lambda: scorer,
                   digests=MemoryInputDigests(), clock=lambda: next(clock))
    fields = _team_fields(2)

    def send(values: dict[str, str]) -> dict[str, Any]:
        body = json.dumps(_workflow_body("lead_team_9", values)).encode()
        return handle_webhook({"x-leadscore-secret": SECRET}, body, deps).body

    first = send(fields)
    assert first["status"] == "scored", first
    assert send(fields)["status"] == "unchanged"  # our own write coming back
    changed = send({**fields, "budget": str(int(float(fields["budget"] or 1)) + 50_000)})
    assert changed["status"] == "scored", changed
    assert send({**fields, "stage": "Appointment" if fields["stage"] != "Appointment"
                 else "New"})["status"] == "scored"


def test_the_queued_write_back_scores_a_team_request_under_an_experiment(
    custom_bundle: Path, second_custom_bundle: Path, tmp_path: Path
) -> None:
    challenger = bundle_version(second_custom_bundle)
    root = _store_with(custom_bundle, tmp_path, second_custom_bundle)
    experiment_store.create(LocalObjectStore(root), "queued", ["champion", challenger],
                            [50, 50])
    scorer = _pointer_scorer(root, tmp_path)
    message = webhook_message({"contact_id": "c7", "fields": _team_fields(7)},
                              location_id=LOCATION, received_at="2026-02-05T10:00:00.000Z")
    assert message.webhook is not None
    score = scorer.score(message.webhook, explain=False)
    assert score["source"] == "ensemble" and score["variant"] in ("champion", challenger)


def test_the_backfill_scores_contacts_on_the_bundles_columns(
    custom_bundle: Path, tmp_path: Path
) -> None:
    scorer = _pointer_scorer(_store_with(custom_bundle, tmp_path), tmp_path)
    scored: list[dict[str, Any]] = []

    class Recorder(LoopRecorder):
        def snapshot(self, request: Any, result: Any, **kw: Any) -> None:
            scored.append(dict(request))

    step = ContactStep(scorer=lambda: scorer, recorder=Recorder(None), queue=None)
    fields = _team_fields(3)
    contact = {"id": "c-backfill", "email": "a@b.example",
               "customFields": [{"id": f"fld_{k}", "value": v} for k, v in fields.items()]}
    step.location_for = lambda location_id: InstalledLocation(
        stack_field_map={f"fld_{k}": k for k in fields})
    assert step(LOCATION, contact) == ContactOutcome.SCORED
    assert scored[0]["fields"]["budget"] == fields["budget"]


def test_the_writeback_function_scores_a_queued_team_webhook_under_an_experiment(
    custom_bundle: Path, second_custom_bundle: Path, tmp_path: Path, ghl_aws: Any,
    fake_highlevel: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The write-back function, configured like the stack (MODEL_URI = the champion pointer),
    scores a webhook queued as a `fields` request and writes it."""
    from tests.fixtures.ghl import sqs_event, writeback_function
    from tools.lambda_context import lambda_context

    challenger = bundle_version(second_custom_bundle)
    root = _store_with(custom_bundle, tmp_path, second_custom_bundle)
    experiment_store.create(LocalObjectStore(root), "queued", ["champion", challenger],
                            [50, 50])
    env = {"GHL_API_BASE": fake_highlevel.base_url, "GHL_TOKEN_SECRET_ARN": ghl_aws.secret_arn,
           "GHL_SCORE_FIELD_ID": "fld_lead_score", "GHL_CLASS_FIELD_ID": "fld_lead_class",
           "CACHE_TABLE": ghl_aws.table, "WRITEBACK_QUEUE_URL": ghl_aws.queue_url,
           "WRITEBACK_DLQ_URL": ghl_aws.dlq_url, "MODEL_URI": f"file://{root}/models/champion.json",
           "MODEL_CACHE_DIR": str(tmp_path / "model-cache"),
           "POWERTOOLS_METRICS_NAMESPACE": "LeadScoring"}
    body = webhook_message({"contact_id": "c-team", "fields": _team_fields(5)},
                           location_id="loc-1", received_at="2026-02-05T10:00:00.000Z").to_json()
    event = sqs_event(body)
    with writeback_function(env, monkeypatch) as app:
        answer = app.lambda_handler(event, lambda_context("writeback"))
    assert answer["batchItemFailures"] == []
    put = fake_highlevel.requests[0]
    assert put.method == "PUT" and put.path == "/contacts/c-team"


def test_a_date_column_is_an_age_on_the_day_of_the_request(custom_bundle: Path) -> None:
    """Training measured ages from its own day (the schema's as_of); a served lead's age is
    counted from the day it is scored, so a lead created today is 0 days old."""
    from leadscore.bundle import load_model

    model = load_model(custom_bundle)
    assert model.schema is not None and model.schema.column("created").as_of == "2026-06-01"

    class Provider:
        def current(self) -> Any:
            return model

    service = ScoringService(Provider())  # type: ignore[arg-type]
    today = datetime.now(UTC).date()
    answer = service.score({"contact_id": "c-new", "fields": {
        **_team_fields(6), "created": today.isoformat()}}, explain=False)
    assert answer["feature_values"]["created"] == 0.0
    week_ago = (today - timedelta(days=7)).isoformat()
    answer = service.score({"contact_id": "c-old", "fields": {
        **_team_fields(6), "created": week_ago}}, explain=False)
    assert answer["feature_values"]["created"] == 7.0


def test_a_team_model_answering_nan_is_a_503_not_a_rules_score_of_its_columns(
    custom_bundle: Path,
) -> None:
    """The rules score reads the 20 real-estate features; a team's encoded columns are not
    them, so a lead the team model cannot answer is NoModelForFields (503; the webhook
    queues it for the write-back), never the rules run on the wrong vector."""
    import numpy as np
    from leadscore.bundle import ModelOutputs, load_model
    from leadscore.scoring.service import NoModelForFields

    model = load_model(custom_bundle)

    class Broken:
        manifest = model.manifest
        explainer = None
        version = model.version
        schema = model.schema

        def predict(self, x32: np.ndarray) -> ModelOutputs:
            n = len(x32)
            return ModelOutputs(np.full(n, np.nan, np.float32), np.zeros((n, 3), np.float32),
                                np.zeros((n, 2), np.float32))

    class Provider:
        def current(self) -> Any:
            return Broken()

    service = ScoringService(Provider())  # type: ignore[arg-type]
    with pytest.raises(NoModelForFields):
        service.score({"contact_id": "c", "fields": _team_fields(8)}, explain=False)
