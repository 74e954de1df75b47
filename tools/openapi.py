"""Generate openapi.json from the scoring API's resolver and its request/response models.

    python -m tools.openapi            # (re)write openapi.json at the repository root
    python -m tools.openapi --check    # exit 1 when openapi.json is out of date

How: the real resolver (`functions.score.app.app`, GoHighLevel router included) is the list
of routes; `tools/api_models.py` holds a pydantic model for each request and response body.
Each real route is mirrored on a documentation-only Powertools resolver by a stub whose
signature carries those models, and Powertools' own `get_openapi_json_schema` writes the
document. The serving resolver itself is left untouched (no pydantic, no validation on the
hot path). A real route without a description here, or a description of a route that does not
exist, is an error, so the document cannot silently miss or invent a route.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from tools import api_models as m

ROOT = Path(__file__).resolve().parents[1]

OUTPUT = ROOT / "openapi.json"
TITLE = "Lead scoring API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Serverless lead scoring for real-estate teams on GoHighLevel: a stacked ensemble "
    "(XGBoost + LightGBM + MLP, logistic-regression stacker) served as one ONNX graph, with a "
    "transparent rules fallback. Every 4xx answer is JSON with a clear `error`; no route "
    "answers 500 by design (an unexpected failure is `{\"error\": \"internal error\", "
    "\"request_id\"}`). The scoring routes need an API key (`x-api-key`) on API Gateway. "
    "Limits (settings of the score function; defaults shown): a body of at most MAX_BODY_BYTES "
    f"({m.LIMITS.max_body_bytes:,}) bytes, at most MAX_BATCH_SIZE ({m.LIMITS.max_batch_size}) "
    f"leads per batch, at most MAX_LIST_ITEMS ({m.LIMITS.max_list_items}) comparables and "
    "price drops per lead; a 400 lists the first MAX_ERROR_PATHS "
    f"({m.LIMITS.max_error_paths}) paths plus `error_count`; an answer is at most "
    f"MAX_ANSWER_BYTES ({m.LIMITS.max_answer_bytes:,}) bytes per call and "
    f"MAX_LEAD_ANSWER_BYTES ({m.LIMITS.max_lead_answer_bytes:,}) per lead. A body, batch or "
    "answer over its limit is a 413 whose `limit` names it."
)

ExplainFlag = Annotated[
    Literal["true", "false", "1", "0", "yes", "no"] | None,
    Query(description="false skips contributions and factors (case-insensitive)"),
]


def _json(model: type[Any], description: str) -> OpenAPIResponse:
    return {"description": description, "content": {"application/json": {"model": model}}}


ERR_400 = _json(m.ErrorResponse, "invalid request: every offending field path in `errors`")
ERR_413 = _json(m.ErrorResponse, "over a limit named in `limit`: MAX_BODY_BYTES, "
                 "MAX_BATCH_SIZE, MAX_ANSWER_BYTES or MAX_LEAD_ANSWER_BYTES")
ERR_503_FIELDS = _json(m.ErrorResponse, "a `fields` request while no model is loaded (the "
                                        "rules score reads only the real-estate features)")
# A location's own key (x-leadscore-key): unknown or rotated, for another location, or that
# location over its own request rate.
LOCATION_KEY_ANSWERS: dict[int, OpenAPIResponse] = {
    401: _json(m.ErrorResponse, "`x-leadscore-key` is not a location's current API key (or "
                                "the stack requires one and none was sent)"),
    403: _json(m.ErrorResponse, "the location key names another `location_id`"),
    429: _json(m.ErrorResponse, "this location is over its own request rate (Retry-After)"),
}


LocationKey = Annotated[
    str | None,
    Header(alias="x-leadscore-key", description="a location's own API key (tools/ghlctl.py "
           "api-key): the leads are that location's; naming another `location_id` is a 403"),
]


def _score(
    body: Annotated[m.ScoreByFeatures | m.ScoreByVector | m.ScoreByFields, Body()],
    explain: ExplainFlag = None,
    x_leadscore_key: LocationKey = None,
) -> None:
    """Score one lead."""


def _score_batch(body: Annotated[m.BatchRequest, Body()], explain: ExplainFlag = None,
                 x_leadscore_key: LocationKey = None) -> None:
    """Score up to 1000 leads in one model call."""


def _webhook(
    body: Annotated[m.GhlWebhook, Body()],
    x_ghl_signature: Annotated[
        str | None, Header(alias="x-ghl-signature", description="Ed25519 signature (base64)")
    ] = None,
    x_wh_signature: Annotated[
        str | None,
        Header(alias="x-wh-signature", description="legacy RSA signature, when configured"),
    ] = None,
    x_leadscore_secret: Annotated[
        str | None, Header(alias="x-leadscore-secret",
                           description="the location's own workflow secret")
    ] = None,
) -> None:
    """A HighLevel webhook."""


def _no_body() -> None:
    """A GET route."""


def _oauth_callback(
    code: Annotated[str, Query(description="HighLevel's authorization code (single use)")],
) -> None:
    """HighLevel's redirect after an install."""


@dataclass(frozen=True)
class RouteDoc:
    stub: Callable[..., None]
    summary: str
    description: str
    responses: dict[int, OpenAPIResponse] = field(default_factory=dict)
    tags: tuple[str, ...] = ("scoring",)


ROUTES: dict[tuple[str, str], RouteDoc] = {
    ("POST", "/score"): RouteDoc(
        _score,
        "Score one lead",
        "A lead score with every field of the original LeadScorePrediction, plus base scores, "
        "factors with reasons, the rules score and `source` (`rules` when no model is usable). "
        "Send either `features` (the raw lead, docs/FEATURES.md) or `feature_vector`; a bundle "
        "trained on a team's own columns takes `fields` {column: value} instead (docs/SCHEMA.md:"
        " contributions and factors are then keyed by column, `unseen_categories` lists values "
        "scored as \"other\", `composite_score` is null). The wrong form for the loaded model "
        "is a 400 naming it. `model_scope` says which model answered; with per-location "
        "models (LOCATION_MODELS) a location no model may score is answered "
        "`{\"scored\": false, \"model_scope\": \"none\", \"reason\"}` instead.",
        {200: _json(m.LeadScore | m.Unscored, "the lead score, or an honest unscored answer"),
         400: ERR_400, 413: ERR_413,
         503: ERR_503_FIELDS, **LOCATION_KEY_ANSWERS},
    ),
    ("POST", "/score/batch"): RouteDoc(
        _score_batch,
        "Score a batch of leads",
        "Valid leads are scored in one model call; invalid ones are listed in `errors` by "
        "index. Each lead takes the form of POST /score (`fields` for a custom-schema bundle).",
        {200: _json(m.BatchResponse, "scores and per-lead errors"), 400: ERR_400, 413: ERR_413,
         503: ERR_503_FIELDS, **LOCATION_KEY_ANSWERS},
    ),
    ("GET", "/model"): RouteDoc(
        _no_body,
        "The served model",
        "Manifest, metrics and feature importance of the bundle being served.",
        {200: _json(m.ModelInfo, "the model card"),
         503: _json(m.ModelDown, "no model loaded (scores come from the rules)")},
        ("model",),
    ),
    ("GET", "/health"): RouteDoc(
        _no_body,
        "Health",
        "200 with the model version when a model is loaded; 503 otherwise (the API still "
        "answers /score from the rules).",
        {200: _json(m.HealthOk, "model loaded"),
         503: _json(m.HealthDown, "no model loaded: rules fallback")},
        ("model",),
    ),
    ("POST", "/webhooks/ghl"): RouteDoc(
        _webhook,
        "HighLevel webhook",
        "Verifies the signature (or the workflow secret), then: deduplicates, checks the app "
        "and the installed location, scores the contact and queues the write-back, or "
        "handles INSTALL/UNINSTALL. An authentic delivery that cannot be processed is parked "
        "with its reason (200); only when even that fails, 429 with Retry-After so HighLevel "
        "sends it again (docs/GHL_SETUP.md).",
        {
            200: _json(m.WebhookAck, "scored, queued, ignored, duplicate, parked, installed "
                                     "or uninstalled"),
            400: _json(m.ErrorResponse, "the API Gateway body is not valid base64"),
            401: _json(m.ErrorResponse, "bad or missing signature / secret"),
            413: ERR_413,
            429: _json(m.WebhookRetry, "could not even be parked: retry later"),
        },
        ("gohighlevel",),
    ),
    ("GET", "/oauth/callback"): RouteDoc(
        _oauth_callback,
        "HighLevel OAuth install",
        "HighLevel redirects the installing user here: the code is exchanged for tokens and "
        "the location(s) installed (an agency install: every installed location).",
        {
            200: _json(m.OAuthInstalled, "installed"),
            400: _json(m.ErrorResponse, "no code, or HighLevel refused the code or an install "
                                        "step"),
            404: _json(m.ErrorResponse, "OAuth installs are not configured"),
        },
        ("gohighlevel",),
    ),
}


def real_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the serving resolver answers."""
    from functions.score import app as score_app

    resolver = score_app.app
    routes = list(resolver._static_routes) + list(resolver._dynamic_routes)
    return {(r.method.upper(), r.path) for r in routes}


def build_document() -> dict[str, Any]:
    real = real_routes()
    undocumented = real - set(ROUTES)
    invented = set(ROUTES) - real
    if undocumented or invented:
        raise SystemExit(
            f"openapi: routes out of sync with functions/score/app.py: undocumented "
            f"{sorted(undocumented)}, documented but absent {sorted(invented)}"
        )
    doc = APIGatewayRestResolver()
    for (method, path), spec in sorted(ROUTES.items()):
        doc.route(
            path,
            method,
            summary=spec.summary,
            description=spec.description,
            responses=spec.responses,
            tags=list(spec.tags),
            operation_id=f"{method.lower()}_{path.strip('/').replace('/', '_')}",
        )(spec.stub)
    text = doc.get_openapi_json_schema(title=TITLE, version=VERSION, description=DESCRIPTION)
    document: dict[str, Any] = json.loads(text)
    _prune_unreferenced(document)
    return document


def _prune_unreferenced(document: dict[str, Any]) -> None:
    """Drop component schemas nothing refers to (Powertools always adds its validation-error
    models; this API does not validate with Powertools, so they never appear in answers)."""
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    while True:
        text = json.dumps({k: v for k, v in document.items() if k != "components"}) + json.dumps(
            schemas
        )
        unused = [name for name in schemas if f'"#/components/schemas/{name}"' not in text]
        if not unused:
            return
        for name in unused:
            del schemas[name]


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write or check openapi.json")
    parser.add_argument("--check", action="store_true", help="fail when openapi.json differs")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render(build_document())
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run `make openapi`", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output} ({len(text)} bytes, {len(ROUTES)} routes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
