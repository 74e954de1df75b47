"""HighLevel routes: ``POST /webhooks/ghl`` and ``GET /oauth/callback``. The flows are
`leadscore.ghl.webhook` and `leadscore.ghl.lifecycle`.

``functions/score/app.py`` includes ``router`` and calls :func:`configure_on_first_use` once
per container with its settings and its ScoringService accessor (the wiring runs on the first
`deps()` call); the adapters (replay guard, write-back
queue, installations table, parked deliveries, HighLevel clients) are built by
`leadscore.wiring.ghl` from the settings, their boto3 clients on first use.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler.api_gateway import Response, Router
from aws_lambda_powertools.metrics import MetricUnit

if TYPE_CHECKING:
    from leadscore.ghl.installations import Installations
    from leadscore.ghl.lifecycle import Lifecycle
    from leadscore.ghl.parking import ParkedStore
    from leadscore.ghl.webhook import ContactEraser, GhlDeps, Outcome, Queue, ReplayGuard
    from leadscore.loop.hooks import LoopHooks
    from leadscore.scoring.service import Scorer
    from leadscore.settings import ScoreSettings

# The webhook and install flows (and their adapters) are imported and wired on the first
# request that needs them: a container serving /score never loads them, and their imports
# were about a fifth of the scoring function's cold start.

logger = Logger(child=True)
metrics = Metrics(namespace="LeadScoring", service="score")  # shares the app's metric set
router = Router()  # type: ignore[no-untyped-call]

JSON = "application/json"
WEBHOOK_PATH = "/webhooks/ghl"

_deps: GhlDeps | None = None
_pending: Callable[[], GhlDeps] | None = None  # configure_on_first_use's wiring, not yet run
_wiring = threading.Lock()


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
    """Wire the routes (leadscore.wiring.ghl builds what is not given)."""
    from leadscore.wiring import ghl as wiring_ghl

    global _deps, _pending
    _pending = None
    _deps = wiring_ghl.ghl_deps(
        settings, scorer, replay_guard=replay_guard, queue=queue, installs=installations,
        lifecycle=lifecycle, parked=parked, count=count, clock=clock, loop=loop, eraser=eraser,
        memory_forget=memory_forget, sender=loop.recorder.sender if loop is not None else None)
    return _deps


def configure_on_first_use(settings: ScoreSettings, scorer: Callable[[], Scorer], *,
                           clock: Callable[[], float] = time.time, loop: LoopHooks | None = None,
                           memory_forget: Callable[[str], int] | None = None) -> None:
    """`configure` with the same arguments, run by the first `deps()` call."""
    global _deps, _pending
    with _wiring:
        _deps = None
        _pending = lambda: configure(settings, scorer, clock=clock, loop=loop,  # noqa: E731
                                     memory_forget=memory_forget)


def deps() -> GhlDeps:
    if _deps is None and _pending is not None:
        with _wiring:
            if _deps is None and _pending is not None:
                _pending()
    if _deps is None:
        raise RuntimeError("ghl_routes.configure() was not called")
    return _deps


def _response(outcome: Outcome) -> Response[str]:
    return Response(status_code=outcome.status_code, content_type=JSON,
                    body=json.dumps(outcome.body), headers=outcome.headers or None)


def handle_webhook(headers: dict[str, Any], body: bytes, d: GhlDeps) -> Outcome:
    """`leadscore.ghl.webhook.handle_webhook`, imported on the first delivery."""
    from leadscore.ghl.webhook import handle_webhook as flow

    return flow(headers, body, d)


@router.post(WEBHOOK_PATH)
def ghl_webhook() -> Response[str]:
    from leadscore.ghl.answers import acknowledge
    from leadscore.ghl.auth import raw_body
    from leadscore.ghl.webhook import Outcome

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
    from leadscore.ghl.answers import retry_later

    outcome = retry_later()
    return {"statusCode": outcome.status_code, "headers": {"Content-Type": JSON,
                                                            **outcome.headers},
            "body": json.dumps(outcome.body), "isBase64Encoded": False}


@router.get("/oauth/callback")
def oauth_callback() -> Response[str]:
    """HighLevel's redirect after a user installs the app: exchange the code at once (codes
    are single-use and short-lived) and fill the installations table."""
    from leadscore.ghl.lifecycle import InstallError, Lifecycle
    from leadscore.ghl.redirect import redirect_uri
    from leadscore.ghl.webhook import Outcome

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
