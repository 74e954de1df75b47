"""POST /webhooks/ghl: the route only. The flow is `leadscore.ghl.webhook.handle_webhook`.

``functions/score/app.py`` includes ``router`` and calls :func:`configure` once per container
with its settings and its ScoringService accessor; the adapters (replay guard, write-back
queue) are built here from the settings, their boto3 clients on first use.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler.api_gateway import Response, Router
from leadscore.ghl.auth import raw_body
from leadscore.ghl.webhook import GhlDeps, Outcome, Queue, ReplayGuard, handle_webhook
from leadscore.loop.hooks import LoopHooks
from leadscore.scoring.service import Scorer
from leadscore.settings import ScoreSettings

logger = Logger(child=True)
router = Router()  # type: ignore[no-untyped-call]

JSON = "application/json"

_deps: GhlDeps | None = None


def configure(
    settings: ScoreSettings,
    scorer: Callable[[], Scorer],
    *,
    replay_guard: ReplayGuard | None = None,
    queue: Queue | None = None,
    clock: Callable[[], float] = time.time,
    loop: LoopHooks | None = None,
) -> GhlDeps:
    """Wire the route. Adapters default to DynamoDB / SQS from the settings; their boto3
    clients are created on first use, not here."""
    global _deps
    if replay_guard is None and settings.webhook_dedup_table:
        from leadscore.adapters.ghl_state import DynamoReplayGuard

        replay_guard = DynamoReplayGuard(settings.webhook_dedup_table, clock=clock)
    if queue is None and settings.writeback_queue_url:
        from leadscore.adapters.writeback_queue import SqsWritebackQueue

        queue = SqsWritebackQueue(settings.writeback_queue_url)
    _deps = GhlDeps(
        settings=settings,
        scorer=scorer,
        replay_guard=replay_guard,
        queue=queue,
        clock=clock,
        loop=loop,
    )
    return _deps


def deps() -> GhlDeps:
    if _deps is None:
        raise RuntimeError("ghl_routes.configure() was not called")
    return _deps



@router.post("/webhooks/ghl")
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
        try:
            outcome = handle_webhook(headers, body, deps())
        except Exception:
            # A safety net only (handle_webhook catches what it expects): never a 5xx, which
            # HighLevel would not retry; a 429 makes it send the webhook again.
            logger.exception("unexpected error in the webhook route")
            outcome = Outcome(429, {"error": "try again later"}, {"Retry-After": "600"})
    return Response(
        status_code=outcome.status_code,
        content_type=JSON,
        body=json.dumps(outcome.body),
        headers=outcome.headers or None,
    )
