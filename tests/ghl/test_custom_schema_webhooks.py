"""HighLevel webhooks for a bundle trained on a team's own columns: the contact's
fields are read by the schema's HighLevel field keys (or the deployment's GHL_FIELD_MAP, or the
column names) into a `fields` request and scored by the custom model."""

from __future__ import annotations

import json
from pathlib import Path

from leadscore import bundle as bundle_mod
from leadscore.columns.schema import Schema
from leadscore.ghl.payloads import parse_webhook
from leadscore.ghl.webhook import GhlDeps, handle_webhook
from leadscore.scoring.service import ScoringService
from leadscore.settings import ScoreSettings

from tests.fixtures.fakes import StaticProvider
from tests.fixtures.ghl_payloads import contact_event, workflow_webhook

LOCATION = "ve9EPM428h8vShlRW1KT"
SECRET = "custom-schema-secret-1"
SCHEMA = Schema.from_dict({"columns": [
    {"name": "source", "kind": "categorical", "categories": ["Referral", "Google"]},
    {"name": "budget", "kind": "numeric", "fill": 300000.0},
    {"name": "preapproved", "kind": "boolean", "field_key": "contact.pre_approved", "fill": 0},
]})


def test_marketplace_fields_by_id_map_key_and_column_name() -> None:
    payload = contact_event(location_id=LOCATION, contact_id="c1",
                            custom_fields={"fld8Budget0000000001": "425000",
                                           "fldPreApproval000001": "yes"})
    payload["customFields"][1]["key"] = "contact.pre_approved"  # the field key, when sent
    parsed = parse_webhook(payload, {"fld8Budget0000000001": "budget"}, SCHEMA)
    assert parsed.request == {"contact_id": "c1", "fields": {
        "budget": "425000", "preapproved": "yes", "source": "public api"}}
    # the real-estate default reads nothing of this
    assert parse_webhook(payload, {}).request["features"] == {}


def test_workflow_custom_data_by_display_name() -> None:
    payload = workflow_webhook(location_id=LOCATION, contact_id="c2",
                               custom_data={"Pre-Approved": "no", "Budget": "180,000",
                                            "Source": "Referral"})
    parsed = parse_webhook(payload, {}, SCHEMA)
    assert parsed.request["fields"] == {"preapproved": "no", "budget": "180,000",
                                        "source": "Referral"}
    # a map entry naming something that is not a column is not read
    parsed = parse_webhook(payload, {"Budget": "list_price"}, SCHEMA)
    assert "budget" not in parsed.request["fields"]


def test_a_workflow_webhook_is_scored_by_the_custom_bundle(custom_bundle: Path) -> None:
    model = bundle_mod.load_model(custom_bundle)
    service = ScoringService(StaticProvider(model))
    assert service.custom_schema() is model.schema
    deps = GhlDeps(settings=ScoreSettings(ghl_webhook_secret=SECRET), scorer=lambda: service)
    fields = {"source": "Referral", "stage": "Appointment", "budget": "425000",
              "days_since_reply": "2", "preapproved": "yes"}
    body = json.dumps(workflow_webhook(location_id=LOCATION, contact_id="c3",
                                       custom_data=fields)).encode()
    outcome = handle_webhook({"x-leadscore-secret": SECRET}, body, deps)
    assert outcome.status_code == 200, outcome.body
    assert outcome.body["status"] == "scored"
    assert outcome.body["model_version"] == model.version
    direct = service.score({"contact_id": "c3", "fields": fields}, explain=False)
    assert outcome.body["predicted_score"] == direct["predicted_score"]
