"""The one rule for what HighLevel gets back (leadscore.ghl.answers): 2xx once recorded, 429
when a delivery cannot be recorded now, never a 5xx, wherever the failure happens."""

from __future__ import annotations

import json
from typing import Any

import pytest
from leadscore.ghl.answers import RETRY_AFTER_SECONDS, Outcome, acknowledge, retry_later

from tests.fixtures.scoring import load_event
from tools.api_event import api_event
from tools.lambda_context import lambda_context

WEBHOOK_BODY = b'{"contact_id": "c-1", "location": {"id": "loc-1"}}'


def _raise() -> Outcome:
    raise RuntimeError("a dependency nobody expected")


@pytest.mark.parametrize("step, expected", [
    (lambda: Outcome(200, {"status": "scored"}), 200),
    (lambda: Outcome(200, {"status": "parked"}), 200),
    (lambda: Outcome(401, {"error": "unauthorized"}), 401),
    (lambda: Outcome(413, {"error": "body too large"}), 413),
    (lambda: Outcome(503, {"error": "try again later"}), 429),
    (lambda: Outcome(500, {"error": "internal"}), 429),
    (_raise, 429),
], ids=["scored", "parked", "401", "413", "503", "500", "exception"])
def test_acknowledge_applies_the_rule(step: Any, expected: int) -> None:
    outcome = acknowledge(step)
    assert outcome.status_code == expected
    if expected == 429:
        assert outcome == retry_later()
        assert outcome.headers == {"Retry-After": str(RETRY_AFTER_SECONDS)}


def test_the_route_never_answers_a_delivery_with_a_5xx(
    score_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the flow returns or raises, and even when the container cannot be built."""
    from leadscore.settings import ScoreSettings

    from functions.score import ghl_routes

    score_app.set_container(score_app.build_container(ScoreSettings()))
    event = api_event("/webhooks/ghl", WEBHOOK_BODY, {})
    monkeypatch.setattr(ghl_routes, "handle_webhook",
                        lambda *_: Outcome(503, {"error": "try again later"}))
    assert score_app.lambda_handler(event, lambda_context())["statusCode"] == 429
    monkeypatch.setattr(ghl_routes, "handle_webhook", lambda *_: _raise())
    assert score_app.lambda_handler(event, lambda_context())["statusCode"] == 429

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("settings unusable")

    score_app.set_container(None)
    monkeypatch.setattr(score_app, "build_container", broken)
    answer = score_app.lambda_handler(event, lambda_context())
    assert answer["statusCode"] == 429, answer
    assert answer["headers"]["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert json.loads(answer["body"]) == {"error": "try again later"}
    # an API caller still learns that it was our fault
    assert score_app.lambda_handler(load_event("score_request"),
                                    lambda_context())["statusCode"] == 500
