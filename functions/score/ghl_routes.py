"""HighLevel routes: ``POST /webhooks/ghl`` and ``GET /oauth/callback``. The flows are
`leadscore.ghl.webhook` and `leadscore.ghl.lifecycle`.

``functions/score/app.py`` includes ``router`` and calls :func:`configure` once per container
with its settings and its ScoringService accessor; the adapters (replay guard, write-back
queue, installations table, parked deliveries, HighLevel clients) are built here from the
settings, their boto3 clients on first use.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler.api_gateway import Response, Router
from aws_lambda_powertools.metrics import MetricUnit
from leadscore.ghl.answers import acknowledge, retry_later
from leadscore.ghl.auth import raw_body
from leadscore.ghl.delivery import dedupe_ttl_seconds
from leadscore.ghl.installations import Installations
from leadscore.ghl.lifecycle import InstallError, Lifecycle
from leadscore.ghl.parking import ParkedStore
from leadscore.ghl.redirect import redirect_uri
from leadscore.ghl.webhook import (
    ContactEraser,
    GhlDeps,
    Outcome,
    Queue,
    ReplayGuard,
    handle_webhook,
)
from leadscore.loop.hooks import LoopHooks
from leadscore.scoring.service import Scorer
from leadscore.settings import ScoreSettings

logger = Logger(child=True)
metrics = Metrics(namespace="LeadScoring", service="score")  # shares the app's metric set
router = Router()  # type: ignore[no-untyped-call]

JSON = "application/json"
WEBHOOK_PATH = "/webhooks/ghl"

_deps: GhlDeps | None = None


def _count(name: str) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def configure(
    settings: ScoreSettings,
    scorer: Callable[[], Scorer],
    *,
    replay_guard: ReplayGuard | None = None,
    queue: Queue | None = None,
    installations: Installations | None = None,
    lifecycle: Lifecycle | None = None,
    parked: ParkedStore | None = None,
    count: Callable[[str], None] = _count,
    clock: Callable[[], float] = time.time,
    loop: LoopHooks | None = None,
    eraser: ContactEraser | None = None,
    memory_forget: Callable[[str], int] | None = None,
) -> GhlDeps:
    """Wire the routes. Adapters default to DynamoDB / SQS / S3 / KMS from the settings."""
    global _deps
    if replay_guard is None and settings.webhook_dedup_table:
        from leadscore.adapters.ghl_state import DynamoReplayGuard

        replay_guard = DynamoReplayGuard(
            settings.webhook_dedup_table, clock=clock,
            ttl_seconds=dedupe_ttl_seconds(settings.ghl_max_delivery_age_seconds))
    if queue is None and settings.writeback_queue_url:
        from leadscore.adapters.writeback_queue import SqsWritebackQueue

        queue = SqsWritebackQueue(settings.writeback_queue_url, record=True)
    if installations is None and settings.installs.configured:
        from leadscore.adapters import installations as install_adapters

        table = None
        if settings.installs.installations_table:
            table = install_adapters.installations_table(settings.installs, clock=clock)
            if lifecycle is None:
                lifecycle = build_lifecycle(settings, table, clock=clock)
        installations = install_adapters.installations_from_settings(
            settings.installs, table=table, clock=clock)
    if parked is None and settings.parked_bucket:
        from leadscore.adapters.ghl_parked import S3ParkedStore

        parked = S3ParkedStore(settings.parked_bucket, record=True)
    elif parked is None:
        # Local runs (make serve / demo) have no bucket: parked deliveries stay in this
        # process's memory. The stack always sets PARKED_BUCKET.
        from leadscore.ghl.parking import MemoryParkedStore

        parked = MemoryParkedStore()
    from leadscore.adapters.secrets import workflow_secret

    digests = None
    if settings.webhook_dedup_table:
        from leadscore.adapters.ghl_state import DynamoInputDigests

        digests = DynamoInputDigests(settings.webhook_dedup_table, clock=clock)
        if eraser is None:
            from leadscore.adapters.purge import DynamoItems
            from leadscore.loop.deletion import Eraser

            # ContactDelete: keyed deletes (request-path client) and a deletion record
            eraser = Eraser(DynamoItems(settings.webhook_dedup_table, fast=True),
                            sender=loop.recorder.sender if loop is not None else None,
                            memory_forget=memory_forget, clock=clock)
    buckets = None
    if settings.location_rate_per_second > 0:
        from leadscore.throttle import LocationBuckets

        buckets = LocationBuckets(settings.location_rate_per_second, settings.location_burst)
    _deps = GhlDeps(settings=settings, scorer=scorer, replay_guard=replay_guard, queue=queue,
                    installations=installations, lifecycle=lifecycle, parked=parked,
                    count=count, clock=clock, loop=loop, digests=digests, eraser=eraser,
                    buckets=buckets,
                    workflow_secret=workflow_secret(settings.ghl_webhook_secret_arn,
                                                    settings.ghl_webhook_secret))
    return _deps


def build_lifecycle(settings: ScoreSettings, table: Any, *,
                    clock: Callable[[], float] = time.time) -> Lifecycle:
    """Installs against the table (leadscore.adapters.installations.build_lifecycle): an
    agency's setup runs in the background function, never inside this 29 s request."""
    from leadscore.adapters.installations import build_lifecycle as build

    lifecycle: Lifecycle = build(settings.installs, table,
                                 app_id=settings.installs.app_id or settings.ghl_app_id,
                                 clock=clock)
    return lifecycle


def deps() -> GhlDeps:
    if _deps is None:
        raise RuntimeError("ghl_routes.configure() was not called")
    return _deps


def _response(outcome: Outcome) -> Response[str]:
    return Response(status_code=outcome.status_code, content_type=JSON,
                    body=json.dumps(outcome.body), headers=outcome.headers or None)


@router.post(WEBHOOK_PATH)
def ghl_webhook() -> Response[str]:
    event = router.current_event
    raw = event.raw_event
    headers: dict[str, Any] = dict(raw.get("headers") or {})
    for name, values in (raw.get("multiValueHeaders") or {}).items():
        if name not in headers and values:
            headers[name] = values[-1]
    try:
        body = raw_body(raw.get("body"), bool(raw.get("isBase64Encoded")))
    except ValueError:
        outcome = Outcome(400, {"error": "body is not valid base64"})
    else:
        outcome = acknowledge(lambda: handle_webhook(headers, body, deps()))
    if outcome.status_code == 429:
        _count("WebhookRetryLater")  # not recorded: HighLevel sends it again
    return _response(outcome)


def is_delivery(event: dict[str, Any]) -> bool:
    """Whether an API Gateway event is a HighLevel delivery (the webhook route)."""
    return str(event.get("resource") or event.get("path") or "").rstrip("/") == WEBHOOK_PATH


def retry_later_answer() -> dict[str, Any]:
    """The rule's 429 as a Lambda proxy answer, for errors outside the router."""
    outcome = retry_later()
    return {"statusCode": outcome.status_code, "headers": {"Content-Type": JSON,
                                                            **outcome.headers},
            "body": json.dumps(outcome.body), "isBase64Encoded": False}


@router.get("/oauth/callback")
def oauth_callback() -> Response[str]:
    """HighLevel's redirect after a user installs the app: exchange the code at once (codes
    are single-use and short-lived) and fill the installations table."""
    d = deps()
    code = router.current_event.get_query_string_value("code", "") or ""
    if not code:
        return _response(Outcome(400, {"error": "missing code"}))
    if d.lifecycle is None or not isinstance(d.lifecycle, Lifecycle):
        return _response(Outcome(404, {"error": "installs are not configured"}))
    try:
        answer = d.lifecycle.on_callback(code, user_type=d.settings.installs.oauth_user_type,
                                         redirect_uri=redirect_uri(
                                             d.settings.installs.oauth_redirect_uri,
                                             router.current_event.raw_event.get("requestContext")))
    except InstallError as exc:
        logger.error("OAuth install failed", extra={"reason": str(exc)})
        return _response(Outcome(400, {"error": "install failed", "reason": str(exc)}))
    except Exception as exc:
        logger.exception("OAuth install failed")
        status = getattr(exc, "status", 0)
        reason = getattr(exc, "reason", type(exc).__name__)
        # The installing user sees this page: HighLevel refused the code (used, expired) or
        # could not be reached; installing again from HighLevel starts over.
        return _response(Outcome(400, {"error": "install failed", "status": status,
                                       "reason": str(reason)}))
    d.count("GhlInstalled")
    logger.info("installed by OAuth", extra={"locations": answer.get("locations", [])})
    return _response(Outcome(200, answer))
