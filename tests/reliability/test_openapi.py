"""openapi.json: generated from the resolver + tools/api_models.py, kept in sync, and true.

"True" = real answers of the handler (driven by the events/ corpus and the session's trained
bundle) validate against the response schema the document gives for their route and status.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.fixtures.scoring import load_event, with_body
from tools import openapi

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi.build_document()


def test_committed_openapi_json_is_up_to_date(document: dict[str, Any]) -> None:
    committed = (ROOT / "openapi.json").read_text()
    assert committed == openapi.render(document), "openapi.json is stale: run `make openapi`"


def test_every_served_route_is_documented_and_nothing_else(document: dict[str, Any]) -> None:
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    assert documented == openapi.real_routes()
    assert {("POST", "/score"), ("POST", "/webhooks/ghl"), ("GET", "/health")} <= documented


def test_a_route_missing_from_the_document_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = dict(openapi.ROUTES)
    routes.pop(("GET", "/model"))
    monkeypatch.setattr(openapi, "ROUTES", routes)
    with pytest.raises(SystemExit, match="undocumented"):
        openapi.build_document()


def test_no_route_documents_a_500(document: dict[str, Any]) -> None:
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert not any(c.startswith("5") and c != "503" for c in codes), (method, path)
            if "503" in codes:  # no model: /score only for the `fields` form
                assert path in {"/health", "/model", "/score", "/score/batch"}


def _validator(document: dict[str, Any], path: str, method: str, status: int) -> Any:
    op = document["paths"][path][method.lower()]
    schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    wrapped = {"$ref": schema["$ref"]} if "$ref" in schema else schema
    root = {**wrapped, "components": document["components"]}
    return jsonschema.Draft202012Validator(root)


def _check(document: dict[str, Any], event: dict[str, Any], answer: Any, status: int) -> None:
    assert answer.status == status, answer.body
    path = event["path"]
    errors = sorted(
        _validator(document, path, event["httpMethod"], status).iter_errors(answer.body),
        key=str,
    )
    assert not errors, f"{event['httpMethod']} {path} {status}: {errors[0].message}"


@pytest.fixture
def served(install: Any, trained_bundle: Path) -> Any:
    return install(f"file://{trained_bundle}")


@pytest.mark.parametrize(
    ("event_name", "status"),
    [("score_request", 200), ("score_request_noexplain", 200), ("score_request_vector", 200),
     ("score_batch", 200), ("score_invalid", 400), ("health_get", 200), ("model_get", 200)],
)
def test_real_answers_match_the_documented_schema(
    document: dict[str, Any], served: Any, invoke: Any, event_name: str, status: int
) -> None:
    event = load_event(event_name)
    _check(document, event, invoke(event), status)


def test_rules_fallback_and_no_model_answers_match_too(
    document: dict[str, Any], install: Any, invoke: Any, tmp_path: Path
) -> None:
    install(f"file://{tmp_path}/no-such-bundle")
    _check(document, load_event("score_request"), invoke(load_event("score_request")), 200)
    _check(document, load_event("health_get"), invoke(load_event("health_get")), 503)
    _check(document, load_event("model_get"), invoke(load_event("model_get")), 503)


def test_custom_schema_answers_match_the_documented_schema(
    document: dict[str, Any], install: Any, custom_bundle: Path, invoke: Any, tmp_path: Path
) -> None:
    install(f"file://{custom_bundle}")
    for name in ("score_request_fields", "score_batch_fields"):
        _check(document, load_event(name), invoke(load_event(name)), 200)
    wrong = with_body(load_event("score_request_fields"), {"contact_id": "c", "fields": 3})
    _check(document, wrong, invoke(wrong), 400)
    install(f"file://{tmp_path}/no-such-bundle")
    _check(document, load_event("score_request_fields"),
           invoke(load_event("score_request_fields")), 503)


def test_a_wrong_answer_would_be_caught(document: dict[str, Any], served: Any,
                                        invoke: Any) -> None:
    event = load_event("score_request")
    answer = invoke(event)
    answer.body["predicted_class"] = "scorching"
    with pytest.raises(AssertionError, match=r"predicted_class|scorching"):
        _check(document, event, answer, 200)


def test_oversized_body_answer_matches(document: dict[str, Any], install: Any,
                                       trained_bundle: Path, invoke: Any) -> None:
    install(f"file://{trained_bundle}", max_body_bytes=1000)
    event = with_body(load_event("score_request"), {"contact_id": "c", "pad": "x" * 2000})
    _check(document, event, invoke(event), 413)
    assert json.dumps(document)  # the document itself is plain JSON
