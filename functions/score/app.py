"""The scoring API: POST /score, POST /score/batch, GET /model, GET /health, POST /webhooks/ghl.

Thin: parse the HTTP request, call `leadscore.scoring.ScoringService`, shape the answer.
One container = one `Container` (settings, model store, cache, scoring service), built on the
first request (the bundle is loaded then, once) and reused; tests swap it with
`set_container`.

Answers: 200 JSON; 400 ``{"error", "errors": [{"path", "message"}, ...]}`` naming every bad
path (a body that is not JSON included), capped at ``MAX_ERROR_PATHS`` paths plus
``error_count``; 404 ``{"error": "not found"}``; 413 ``{"error", "limit": {"name", "value"}}``
for a body over ``MAX_BODY_BYTES``, a batch over ``MAX_BATCH_SIZE`` or an answer that would be
over ``MAX_ANSWER_BYTES`` (one lead: ``MAX_LEAD_ANSWER_BYTES``); 503 from /health and /model
without a model, and from /score for a ``fields`` request without a model (the rules score
cannot read a team's own columns); 500 ``{"error": "internal error", "request_id"}`` for
anything unexpected (logged with its stack trace, never answered with it). Logs carry the
request id (correlation id) and the contact id, never the lead's payload.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from leadscore import jsonsafe
from leadscore.adapters.log_format import LeanFormatter
from leadscore.adapters.tracing import make_tracer
from leadscore.errors import FieldError, InvalidInput
from leadscore.ghl import credentials
from leadscore.headers import header
from leadscore.identifiers import ID_RULE, has_lone_surrogate, is_safe_id
from leadscore.loop.hooks import LoopHooks
from leadscore.loop.recorder import LoopRecorder
from leadscore.scoring import answer_json
from leadscore.scoring.cache import RemoteCache, TieredCache
from leadscore.scoring.lead_score import LeadScore
from leadscore.scoring.location_models import ModelLoad
from leadscore.scoring.model_store import ModelProvider
from leadscore.scoring.public import names_in, public_reason, redact
from leadscore.scoring.scoped import ScopedScorer, Unscored
from leadscore.scoring.service import BatchTooLarge, NoModelForFields, ScoringService
from leadscore.settings import ScoreSettings
from leadscore.throttle import LocationBuckets
from leadscore.wiring.container import PerContainer
from leadscore.wiring.loop import loop_hooks, loop_settings
from leadscore.wiring.scoring import build_scoring

if __package__:  # imported from the repository (tests, tools): functions.score.app
    from . import ghl_routes
else:  # in Lambda the function's directory is the code root
    import ghl_routes  # type: ignore[no-redef]

JSON = "application/json"

logger = Logger(service="score", logger_formatter=LeanFormatter())
metrics = Metrics(namespace="LeadScoring", service="score")
tracer = make_tracer("score")
app = APIGatewayRestResolver()
app.include_router(ghl_routes.router)


class PayloadTooLarge(Exception):
    """A body, batch or answer over a configured limit (HTTP 413 naming the limit)."""

    def __init__(self, message: str, limit_name: str, limit_value: int) -> None:
        super().__init__(message)
        self.limit_name = limit_name
        self.limit_value = limit_value


@dataclass
class Container:
    settings: ScoreSettings
    store: ModelProvider
    cache: TieredCache
    service: ScoringService
    # the service, routed by a running experiment, each location by its model scope
    scorer: ScopedScorer
    # snapshots, outcomes, engagement; None when no record stream is configured
    loop: LoopHooks | None = None
    clock: Callable[[], float] = time.time

    @property
    def recorder(self) -> LoopRecorder | None:
        return None if self.loop is None else self.loop.recorder


def build_container(
    settings: ScoreSettings,
    *,
    store: ModelProvider | None = None,
    remote_cache: RemoteCache | None = None,
    clock: Callable[[], float] = time.time,
    loop: LoopHooks | None = None,
) -> Container:
    """Everything one container needs. Nothing here calls AWS; clients are made on first use."""
    scoring = build_scoring(settings, store=store, remote_cache=remote_cache, clock=clock,
                            installation=_installation, on_load=_publish_load)
    if loop is None:
        loop = loop_hooks(loop_settings(), clock=clock)
    return Container(settings, scoring.store, scoring.cache, scoring.service, scoring.scorer,
                     loop, clock)


def _publish_load(load: ModelLoad) -> None:
    """A location model's load time and size: flushed with the next request's metrics."""
    metrics.add_metric(name="LocationModelLoad", unit=MetricUnit.Milliseconds,
                       value=load.seconds * 1e3)
    metrics.add_metric(name="LocationModelBytes", unit=MetricUnit.Bytes, value=load.bytes)


def _installation(location_id: str) -> Any:
    """The location's installation record (its pooling setting and columns), if any."""
    installs = ghl_routes.deps().installations
    return None if installs is None else installs.installation(location_id)


def _routes_on(new: Container) -> Container:
    # wired when a webhook, an install or a location key first needs it (cold start)
    ghl_routes.configure_on_first_use(new.settings, lambda: new.scorer, clock=new.clock,
                                      loop=new.loop, memory_forget=new.cache.memory.forget_prefix)
    return new


_container = PerContainer(lambda: _routes_on(build_container(ScoreSettings.from_env())))


def set_container(new: Container | None) -> None:
    """Install a container (tests) or forget it (the next request builds one from the env)."""
    _container.set(None if new is None else _routes_on(new))


def container() -> Container:
    return _container.get()


# -- request parsing --------------------------------------------------------------------------


def _json_body() -> Any:
    event = app.current_event
    body = event.body
    if body is None or body == "":
        raise InvalidInput([FieldError("", "a JSON body is required")])
    limit = container().settings.max_body_bytes
    try:
        text = (event.decoded_body or "") if event.is_base64_encoded else body
    except ValueError:  # bad base64 or not UTF-8
        raise InvalidInput([FieldError("", "body is not valid base64 UTF-8 text")]) from None
    size = len(text)
    if size > limit or (size * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit):
        raise PayloadTooLarge(f"body larger than {limit} bytes", "MAX_BODY_BYTES", limit)
    try:
        # e.g. 100,000 nested "[" or a 4,400-digit integer (which is named by its field)
        return jsonsafe.loads(text)
    except jsonsafe.UntrustedJSONError as exc:
        raise InvalidInput([FieldError("", f"body is {exc}")]) from None


_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def _explain_flag() -> bool:
    raw = app.current_event.get_query_string_value("explain")
    if raw is None:
        return True
    flag = raw.strip().lower()
    if flag in _TRUE:
        return True
    if flag in _FALSE:
        return False
    raise InvalidInput([FieldError("explain", "must be true or false")])


def _count(result: LeadScore) -> None:
    metrics.add_metric(
        name="CacheHit" if result.get("cached") else "CacheMiss", unit=MetricUnit.Count, value=1
    )
    if result.get("source") == "rules" and not result.get("variant"):
        metrics.add_metric(name="RulesFallback", unit=MetricUnit.Count, value=1)
    variant = result.get("variant")
    if variant:
        arm = variant if variant in ("rules", "champion") else "version"
        metrics.add_metric(name=f"ExperimentArm{arm.capitalize()}", unit=MetricUnit.Count,
                           value=1)
    metrics.add_metric(
        name=f"Class{str(result.get('predicted_class', 'unknown')).capitalize()}",
        unit=MetricUnit.Count,
        value=1,
    )


class Forbidden(Exception):
    """A location's API key used for another location (403; nothing scored or recorded)."""


class Unauthorized(Exception):
    """An ``x-leadscore-key`` that is no location's current key (401)."""


class Throttled(Exception):
    """One location over its own request rate (429 with Retry-After)."""

    def __init__(self, wait_seconds: float) -> None:
        super().__init__("this location is over its request rate")
        self.wait_seconds = wait_seconds


_buckets: LocationBuckets | None = None


def _throttle(locations: list[str]) -> None:
    """Each location's calls take from its own bucket (LOCATION_RATE_PER_SECOND; 0 = off)."""
    global _buckets
    settings = container().settings
    if settings.location_rate_per_second <= 0:
        return
    if _buckets is None or _buckets.rate != settings.location_rate_per_second:
        _buckets = LocationBuckets(settings.location_rate_per_second, settings.location_burst)
    for location in dict.fromkeys(loc for loc in locations if loc):
        wait = _buckets.take(location)
        if wait > 0:
            raise Throttled(wait)


def _caller_location() -> str:
    """The location whose own API key the caller presented, or '' for the operator (the
    stack-wide API Gateway key alone). A location key is checked against the digest in the
    location's installation record (`leadscore.ghl.credentials`)."""
    # the event's own headers: `header` matches any case (Powertools' `headers` property builds
    # a lower-cased copy of them on every access)
    given = header(app.current_event.get("headers"), credentials.API_KEY_HEADER) or ""
    if not given.strip():
        if container().settings.require_location_key:
            raise Unauthorized(f"a location API key is required ({credentials.API_KEY_HEADER})")
        return ""
    credential = credentials.parse(given)
    installs = ghl_routes.deps().installations
    if credential is None or credential.kind != credentials.API_KEY or installs is None:
        raise Unauthorized("not a location API key")
    for fresh in (False, True):  # a key rotated seconds ago is in the fresh record
        inst = installs.installation(credential.location_id, fresh=fresh)
        if inst is not None and inst.enabled and credentials.matches(credential,
                                                                     inst.api_key_hash):
            return credential.location_id
    raise Unauthorized("not a location API key")


def _location_of(request: Any, caller: str = "") -> str:
    """The HighLevel location a lead is attributed to: the caller's own (a location key;
    naming another is Forbidden), else the ``location_id`` the operator named, or ''."""
    location = request.get("location_id") if isinstance(request, dict) else None
    if location not in (None, "") and not is_safe_id(location):
        raise InvalidInput([FieldError("location_id", ID_RULE)])
    named = location if isinstance(location, str) else ""
    if caller:
        if named and named != caller:
            raise Forbidden("the API key is for another location")
        return caller
    return named


# -- routes -----------------------------------------------------------------------------------


def _bounded(answer: Mapping[str, Any], limit_name: str, limit: int) -> Response[str]:
    """The answer as JSON, or a 413 naming the limit it would break (never a 6 MB 502)."""
    # the cache wrote the service's answer a moment ago: its text is reused, not written again
    text = answer_json.dumps(answer)
    if len(text) > limit and len(text.encode()) > limit:
        raise PayloadTooLarge(
            f"the answer would be larger than {limit} bytes; send fewer leads or "
            "explain=false", limit_name, limit,
        )
    return Response(status_code=200, content_type=JSON, body=text)


@app.post("/score")
@tracer.capture_method
def score() -> Response[str]:
    body = _json_body()
    explain = _explain_flag()
    c = container()
    location = _location_of(body, _caller_location())  # before anything is scored
    _throttle([location])
    if isinstance(body, dict):
        contact_id = body.get("contact_id")
        if isinstance(contact_id, str) and 0 < len(contact_id) <= 128 \
                and not has_lone_surrogate(contact_id):
            logger.append_keys(contact_id=contact_id)
    try:
        result = c.scorer.score(body, explain=explain, location_id=location)
    except Unscored as exc:
        # no scope can score this location: said plainly, nothing recorded or written
        metrics.add_metric(name="Unscored", unit=MetricUnit.Count, value=1)
        logger.info("unscored", extra={"model_scope": "none"})
        return _json(200, exc.answer(body.get("contact_id") if isinstance(body, dict)
                                     else None))
    if c.loop is not None:
        c.loop.scored(body, result, location, "api")
    _count(result)
    logger.info(
        "scored",
        extra={
            "predicted_class": result["predicted_class"],
            "source": result["source"],
            "cached": result["cached"],
            "model_version": result["model_version"],
            "model_scope": result.get("model_scope"),
        },
    )
    settings = container().settings
    return _bounded(result, "MAX_LEAD_ANSWER_BYTES",
                    min(settings.max_lead_answer_bytes, settings.max_answer_bytes))


@app.post("/score/batch")
@tracer.capture_method
def score_batch() -> Response[str]:
    body = _json_body()
    explain = _explain_flag()
    leads = body.get("leads") if isinstance(body, dict) else None
    if not isinstance(leads, list):
        raise InvalidInput([FieldError("leads", "must be a list of scoring requests")])
    c = container()
    caller = _caller_location()
    locations = [_location_of(lead, caller) for lead in leads]  # before anything is scored
    _throttle(locations)
    answer = c.scorer.score_batch(leads, explain=explain, location_ids=locations)
    if c.loop is not None:
        invalid = {e["index"] for e in (*answer["errors"], *answer.get("unscored", []))}
        valid = [(lead, locations[i]) for i, lead in enumerate(leads) if i not in invalid]
        for (lead, location), result in zip(valid, answer["results"], strict=True):
            c.loop.scored(lead, result, location, "batch")
    for result in answer["results"]:
        _count(result)
    logger.info(
        "batch scored",
        extra={"leads": len(leads), "scored": len(answer["results"]),
               "invalid": len(answer["errors"])},
    )
    return _bounded(answer, "MAX_ANSWER_BYTES", container().settings.max_answer_bytes)


@app.get("/model")
@tracer.capture_method
def model_info() -> dict[str, Any] | Response[str]:
    store = container().store
    info = store.info()
    status = store.status()
    if info is None:
        return _json(503, {"error": "model not loaded", "loaded": False,
                           "reason": public_reason(status.reason)})
    answer = {"model_version": status.model_version, "loaded": True, **info}
    redacted: dict[str, Any] = redact(answer, _infrastructure_names())
    return redacted


@app.get("/health")
def health() -> dict[str, Any] | Response[str]:
    status = container().store.status()
    if not status.loaded:  # the store logged the detail (which object, which error)
        return _json(503, {"loaded": False, "reason": public_reason(status.reason),
                           "fallback": "rules"})
    return {"loaded": True, "model_version": status.model_version}


def _infrastructure_names() -> list[str]:
    """The deployment's own resource names, which no answer may contain."""
    settings = container().settings
    return names_in(settings.model_uri, settings.cache_table, settings.writeback_queue_url)


# -- errors -----------------------------------------------------------------------------------


def _json(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(status_code=status, content_type=JSON, body=json.dumps(body))


@app.exception_handler(InvalidInput)  # type: ignore[untyped-decorator]
def _invalid(exc: InvalidInput) -> Response[str]:
    max_paths = container().settings.max_error_paths
    logger.info("invalid request", extra={"paths": [p[:200] for p in exc.paths[:max_paths]],
                                          "error_count": len(exc.errors)})
    return _json(400, exc.to_dict(max_paths))


def _limit_answer(message: str, name: str, value: int) -> Response[str]:
    return _json(413, {"error": message, "limit": {"name": name, "value": value}})


@app.exception_handler(Forbidden)  # type: ignore[untyped-decorator]
def _forbidden(exc: Forbidden) -> Response[str]:
    logger.warning("API key used for another location")
    return _json(403, {"error": "forbidden", "reason": str(exc),
                       "errors": [{"path": "location_id", "message": str(exc)}]})


@app.exception_handler(Unauthorized)  # type: ignore[untyped-decorator]
def _unauthorized(exc: Unauthorized) -> Response[str]:
    return _json(401, {"error": "unauthorized", "reason": str(exc)})


@app.exception_handler(Throttled)  # type: ignore[untyped-decorator]
def _throttled(exc: Throttled) -> Response[str]:
    return Response(status_code=429, content_type=JSON,
                    body=json.dumps({"error": str(exc)}),
                    headers={"Retry-After": str(max(1, round(exc.wait_seconds + 0.5)))})


@app.exception_handler(PayloadTooLarge)  # type: ignore[untyped-decorator]
def _too_large(exc: PayloadTooLarge) -> Response[str]:
    return _limit_answer(str(exc), exc.limit_name, exc.limit_value)


@app.exception_handler(NoModelForFields)  # type: ignore[untyped-decorator]
def _no_model_for_fields(exc: NoModelForFields) -> Response[str]:
    return _json(503, {"error": str(exc)})


@app.exception_handler(BatchTooLarge)  # type: ignore[untyped-decorator]
def _batch_too_large(exc: BatchTooLarge) -> Response[str]:
    return _limit_answer(str(exc), "MAX_BATCH_SIZE", exc.limit)


def _request_id() -> str:
    try:
        return str(app.current_event.request_context.request_id or "")
    except Exception:
        return ""


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def _unexpected(exc: Exception) -> Response[str]:
    logger.exception("unexpected error")
    return _json(500, {"error": "internal error", "request_id": _request_id()})


@app.not_found
def _not_found(exc: Exception) -> Response[str]:
    return _json(404, {"error": "not found"})


# -- entry point ------------------------------------------------------------------------------


def _correlation_id(event: Any) -> Any:
    """API Gateway's request id (Powertools' ``correlation_paths.API_GATEWAY_REST``), read
    directly: a JMESPath search per request cost a third of the log line's time."""
    context = event.get("requestContext") if isinstance(event, dict) else None
    return context.get("requestId") if isinstance(context, dict) else None


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.perf_counter()
    logger.set_correlation_id(_correlation_id(event))
    try:
        container()
        answer = app.resolve(event, context)
    except Exception:
        logger.exception("unexpected error outside the router")
        request_id = str((event.get("requestContext") or {}).get("requestId", ""))
        answer = {
            "statusCode": 500,
            "headers": {"Content-Type": JSON},
            "body": json.dumps({"error": "internal error", "request_id": request_id}),
            "isBase64Encoded": False,
        }
        if ghl_routes.is_delivery(event):  # never a 5xx to HighLevel (leadscore.ghl.answers)
            answer = ghl_routes.retry_later_answer()
    metrics.add_metric(
        name="Latency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1e3
    )
    return answer
