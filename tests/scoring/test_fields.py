"""Serving a bundle trained on a team's own columns: the `fields` request form.

The bundle is trained in the session from a small generated export (tests/fixtures/
custom_leads.py); the requests are the event files events/score_request_fields.json and
events/score_batch_fields.json, driven through the score function's handler.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from leadscore import bundle as bundle_mod
from leadscore.columns.schema import Schema

from tests.fixtures.scoring import load_event, with_body


def _schema(bundle_dir: Path) -> Schema:
    return Schema.from_dict(json.loads((bundle_dir / bundle_mod.SCHEMA_FILE).read_text()))


def test_fields_event_answers_with_contributions_keyed_by_column(
    custom_bundle: Path, install: Any, invoke: Any
) -> None:
    install(f"file://{custom_bundle}")
    event = load_event("score_request_fields")
    answer = invoke(event)
    assert answer.status == 200, answer.body
    body = answer.body
    schema = _schema(custom_bundle)
    assert body["contact_id"] == "lead_77001"
    assert body["source"] == "ensemble" and body["explained"] is True
    assert list(body["feature_contributions"]) == schema.column_names
    assert "outcome_call_minutes" not in body["feature_contributions"]  # the leak is out
    total = sum(body["feature_contributions"].values())
    assert total == pytest.approx(body["predicted_score"] - body["baseline_score"], abs=1e-5)
    assert body["composite_score"] is None  # the rules score is real-estate only
    assert body["unseen_categories"] == []
    assert body["feature_values"]["source"] == "Referral"
    assert body["feature_values"]["budget"] == 425000.0
    for factor in body["top_positive_factors"] + body["top_negative_factors"]:
        assert factor["feature"] in schema.column_names
        assert factor["reason"]
    lo, hi = body["confidence_interval"]
    assert lo <= body["predicted_score"] <= hi


def test_fields_batch_reports_unseen_categories_and_missing_columns(
    custom_bundle: Path, install: Any, invoke: Any
) -> None:
    install(f"file://{custom_bundle}")
    answer = invoke(load_event("score_batch_fields"))
    assert answer.status == 200, answer.body
    first, second = answer.body["results"]
    assert first["unseen_categories"] == [{"column": "source", "value": "TikTok"}]
    assert set(first["missing_fields"]) == {"stage", "budget", "days_since_reply"}
    assert first["feature_values"]["budget"] is None
    reasons = {f["feature"]: f["reason"] for f in
               first["top_positive_factors"] + first["top_negative_factors"]}
    if "source" in reasons:
        assert "not seen in training" in reasons["source"]
    assert second["feature_values"]["budget"] == 180000.0  # "180,000" as exported
    assert second["missing_fields"] == ["preapproved"]


def test_bad_fields_are_400_with_every_path(custom_bundle: Path, install: Any,
                                           invoke: Any) -> None:
    install(f"file://{custom_bundle}")
    event = with_body(load_event("score_request_fields"), {
        "contact_id": "lead_1",
        "fields": {"budget": "a lot", "preapproved": "perhaps", "created": "last week",
                   "source": ["Referral"]},
    })
    answer = invoke(event)
    assert answer.status == 400
    assert sorted(e["path"] for e in answer.body["errors"]) == [
        "fields.budget", "fields.created", "fields.preapproved", "fields.source"]
    answer = invoke(with_body(load_event("score_request_fields"),
                              {"contact_id": "lead_1", "fields": "source=Referral"}))
    assert answer.status == 400 and answer.body["errors"][0]["path"] == "fields"


def test_the_wrong_form_for_the_loaded_model_is_named(
    custom_bundle: Path, trained_bundle: Path, install: Any, invoke: Any
) -> None:
    install(f"file://{custom_bundle}")
    answer = invoke(load_event("score_request"))  # real-estate features to a custom bundle
    assert answer.status == 400
    assert [e["path"] for e in answer.body["errors"]] == ["features"]
    install(f"file://{trained_bundle}")
    answer = invoke(load_event("score_request_fields"))  # fields to the real-estate default
    assert answer.status == 400
    assert [e["path"] for e in answer.body["errors"]] == ["fields"]


def test_fields_without_a_model_is_503_not_a_rules_guess(install: Any, invoke: Any,
                                                        tmp_path: Path) -> None:
    install(f"file://{tmp_path / 'no-such-bundle'}")
    answer = invoke(load_event("score_request_fields"))
    assert answer.status == 503
    assert "rules" in answer.body["error"]
    assert invoke(load_event("score_request")).status == 200  # the default form still falls back


def test_unseen_values_do_not_share_a_cache_entry(custom_bundle: Path, install: Any,
                                                 invoke: Any) -> None:
    install(f"file://{custom_bundle}")
    base = json.loads(load_event("score_request_fields")["body"])
    answers = []
    for source in ("TikTok", "Billboard"):
        fields = dict(base["fields"], source=source)
        answers.append(invoke(with_body(load_event("score_request_fields"),
                                        {"contact_id": "lead_9", "fields": fields})).body)
    assert answers[0]["predicted_score"] == answers[1]["predicted_score"]  # both "other"
    assert [a["unseen_categories"][0]["value"] for a in answers] == ["TikTok", "Billboard"]
    again = invoke(with_body(load_event("score_request_fields"),
                             {"contact_id": "lead_9", "fields": dict(base["fields"],
                                                                     source="TikTok")})).body
    assert again["cached"] is True and again["unseen_categories"][0]["value"] == "TikTok"


def test_model_route_and_field_map_for_a_custom_bundle(custom_bundle: Path) -> None:
    model = bundle_mod.load_model(custom_bundle)
    assert model.schema is not None
    assert model.n_inputs == model.schema.n_inputs == len(model.manifest["feature_names"])
    out = model.predict(np.zeros((2, model.n_inputs), dtype=np.float32))
    assert out.score.shape == (2,)
    assert model.manifest["schema"]["target"] == "status"
    assert "outcome_call_minutes" in model.manifest["schema"]["excluded"]
    today = datetime.now(UTC).date()
    enc = model.schema.encode_fields({"created": today.isoformat()}, today=today)
    assert enc.values[model.schema.input_names.index("created")] == 0.0


def test_a_column_sent_under_another_spelling_is_read(
    custom_bundle: Path, install: Any, invoke: Any
) -> None:
    """A team's file names a column as people do (``MOSTYPE``, ``Lead Source``); a model
    trained on the loop's export names it by its field key. Was: the request's value was
    ignored as an unknown key, the column scored as missing, every lead alike."""
    install(f"file://{custom_bundle}")
    event = load_event("score_request_fields")
    fields = json.loads(event["body"])["fields"]
    respelled = {name.upper().replace("_", " "): value for name, value in fields.items()}
    assert not set(respelled) & set(fields)
    exact, other = (invoke(with_body(event, {**json.loads(event["body"]), "fields": f})).body
                    for f in (fields, respelled))
    assert other["predicted_score"] == exact["predicted_score"]
    assert other["feature_contributions"] == exact["feature_contributions"]
    # its own name wins over another spelling of it
    both = {**respelled, **fields}
    assert invoke(with_body(event, {**json.loads(event["body"]), "fields": both})
                  ).body["predicted_score"] == exact["predicted_score"]
    schema = _schema(custom_bundle)
    assert schema.encode_fields(respelled).missing == schema.encode_fields(fields).missing
