"""tools/serve.py: HTTP on a real socket -> API Gateway event -> the real score handler."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.http import serving
from tools.serve import make_handler, to_event

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(trained_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("MODEL_URI", trained_bundle.as_uri())
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    for name in ("CACHE_TABLE", "WRITEBACK_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    from functions.score import app

    app.set_container(None)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(app.lambda_handler, None))
    try:
        with serving(httpd) as url:
            yield url
    finally:
        app.set_container(None)


def call(url: str, method: str = "GET", body: Any = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_score_health_and_unknown_routes(server: str, trained_bundle: Path) -> None:
    request = json.loads(json.loads((ROOT / "events/score_request.json").read_text())["body"])
    status, body = call(f"{server}/score?explain=false", "POST", request)
    assert status == 200, body
    assert body["contact_id"] == request["contact_id"]
    assert body["explained"] is False
    status, body = call(f"{server}/health")
    version = json.loads((trained_bundle / "manifest.json").read_text())["model_version"]
    assert (status, body["model_version"]) == (200, version)
    status, body = call(f"{server}/score", "POST", {"contact_id": "x", "features": "nope"})
    assert status == 400 and body["errors"]
    assert call(f"{server}/nowhere")[0] == 404


def test_event_shape_matches_the_sample_events() -> None:
    sample = json.loads((ROOT / "events/score_request_noexplain.json").read_text())
    event = to_event("POST", "/score?explain=false", {"x-api-key": "k"}, b'{"a": 1}')
    assert set(sample) <= set(event)
    assert event["queryStringParameters"] == sample["queryStringParameters"]
    assert event["resource"] == sample["resource"] and event["isBase64Encoded"] is False
    assert event["requestContext"]["requestId"]
