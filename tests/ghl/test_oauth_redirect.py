"""The OAuth code exchange sends the callback's own URL as redirect_uri (derived from the
request, since the stack cannot give the function its API's URL without a dependency cycle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from leadscore.ghl.redirect import redirect_uri

from functions.score import app as score_app
from tests.ghl.test_installs import Agency, agency  # noqa: F401 - the fixture
from tests.ghl.test_webhook_route import harness  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("configured", "context", "expected"),
    [
        ("", {"domainName": "a1.execute-api.us-east-1.amazonaws.com",
              "path": "/Prod/oauth/callback", "stage": "Prod",
              "resourcePath": "/oauth/callback"},
         "https://a1.execute-api.us-east-1.amazonaws.com/Prod/oauth/callback"),
        # a custom domain with a base path mapping: the path as requested, not the stage
        ("", {"domainName": "leads.example.com", "path": "/scoring/oauth/callback",
              "stage": "Prod", "resourcePath": "/oauth/callback"},
         "https://leads.example.com/scoring/oauth/callback"),
        # no path in the context (older event shapes): the stage and the resource
        ("", {"domainName": "a1.execute-api.us-east-1.amazonaws.com", "stage": "Prod",
              "resourcePath": "/oauth/callback"},
         "https://a1.execute-api.us-east-1.amazonaws.com/Prod/oauth/callback"),
        ("https://proxy.example.com/cb", {"domainName": "a1.example", "path": "/Prod/x"},
         "https://proxy.example.com/cb"),
        ("", {"path": "/Prod/oauth/callback"}, ""),
        ("", None, ""),
    ],
)
def test_the_redirect_uri_is_the_callbacks_own_url_unless_configured(
    configured: str, context: dict[str, Any] | None, expected: str
) -> None:
    assert redirect_uri(configured, context) == expected


def test_the_callback_exchanges_the_code_with_its_own_url(
    agency: Agency, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    seen: dict[str, Any] = {}

    def on_callback(code: str, **kwargs: Any) -> dict[str, Any]:
        seen.update(kwargs, code=code)
        return {"locations": []}

    monkeypatch.setattr(agency.lifecycle, "on_callback", on_callback)
    event = json.loads((ROOT / "events" / "ghl_oauth_callback.json").read_text())
    answer = score_app.app.resolve(event, None)  # type: ignore[arg-type]
    assert answer["statusCode"] == 200, answer
    context = event["requestContext"]
    assert seen["redirect_uri"] == f"https://{context['domainName']}{context['path']}"
    assert seen["code"] == event["queryStringParameters"]["code"]
