"""docs/GHL_SETUP.md's Custom Webhook body, sent as written (merge fields filled in the way
HighLevel fills them: text, "" for an empty field), is scored."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.fixtures.ghl import WEBHOOK_SECRET
from tests.ghl.test_webhook_route import FLAT_STRINGS, TYPED_FEATURES, Harness, harness  # noqa: F401

DOC = Path(__file__).resolve().parents[2] / "docs" / "GHL_SETUP.md"
MARKER = "<!-- ghl-custom-webhook-body"


def documented_body() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(MARKER)
    block = re.search(r"```json\n(.*?)\n```", text[start:], re.S)
    assert block is not None, "the Custom Webhook body is not a json block after its marker"
    return block.group(1)


def render(template: str, contact: dict[str, str], location_id: str) -> str:
    """HighLevel's merge: `{{contact.<key>}}` -> the field's text ("" when empty/unknown)."""
    def value(match: re.Match[str]) -> str:
        scope, key = match.group(1), match.group(2)
        if scope == "location":
            return location_id
        raw = contact.get(key, "")
        return json.dumps(raw)[1:-1]  # inside the body's quotes, as text
    return re.sub(r"\{\{\s*(contact|location)\.(\w+)\s*\}\}", value, template)


def test_the_documented_body_is_valid_json_with_only_flat_names() -> None:
    from leadscore.ghl.payloads import FLAT_NAMES

    body = json.loads(documented_body())
    assert set(body) - {"contact_id", "location"} <= FLAT_NAMES
    assert set(FLAT_NAMES) <= set(body)  # every input has its line


def test_custom_webhook_body_sent_as_written_is_scored(harness: Harness) -> None:  # noqa: F811
    contact = {"id": "contact-doc-1", **FLAT_STRINGS}
    body = render(documented_body(), contact, "loc-1").encode()
    status, answer = harness.post(body, {"x-leadscore-secret": WEBHOOK_SECRET})
    assert status == 200 and answer["status"] == "scored", answer
    assert answer["contact_id"] == "contact-doc-1" and answer["location_id"] == "loc-1"
    [request] = harness.scorer.calls
    assert request["features"] == TYPED_FEATURES  # every documented line reached the model
    [message] = harness.aws.queued()
    assert message["contact_id"] == "contact-doc-1"


@pytest.mark.parametrize("missing", [["comparables", "price_drops"], list(FLAT_STRINGS)])
def test_empty_merge_fields_count_as_absent(harness: Harness, missing: list[str]) -> None:  # noqa: F811
    contact = {"id": "contact-doc-2", **{k: v for k, v in FLAT_STRINGS.items()
                                         if k not in missing}}
    body = render(documented_body(), contact, "loc-1").encode()
    status, answer = harness.post(body, {"x-leadscore-secret": WEBHOOK_SECRET})
    assert status == 200 and answer["status"] == "scored", answer
