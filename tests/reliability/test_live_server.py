"""Against the real local server (tools/serve.py, as `make serve` runs it) on a free
127.0.0.1 port, with the session's trained bundle:

- schemathesis from openapi.json (bounded: fixed seed, a few dozen examples per operation):
  no server error, responses conform to the documented schemas, status codes and content
  types; the webhook route is exercised past its authentication with the workflow secret;
- the short load test CI runs (2 clients x 300 requests; `make loadtest` runs 2 x 10,000):
  zero errors and flat memory.

Only loopback addresses are ever contacted (tools/loadtest.py refuses anything else).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tools import loadtest

ROOT = Path(__file__).resolve().parents[2]
SECRET = "schemathesis-workflow-secret"
SCHEMATHESIS_EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))

# a real server process, schemathesis and a load run: `make test` only
pytestmark = pytest.mark.slow


def _say(request: pytest.FixtureRequest, line: str) -> None:
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        print(line)


@pytest.fixture(scope="module")
def server(trained_bundle: Path) -> Iterator[tuple[str, Any]]:
    port = loadtest.free_port()
    with loadtest.local_server(
        port, model_uri=f"file://{trained_bundle}",
        extra_env={"GHL_WEBHOOK_SECRET": SECRET, "POWERTOOLS_LOG_LEVEL": "WARNING"},
    ) as proc:
        yield f"http://127.0.0.1:{port}", proc


def test_openapi_json_is_served(server: tuple[str, Any]) -> None:
    import urllib.request

    url, _ = server
    with urllib.request.urlopen(f"{url}/openapi.json", timeout=10) as answer:
        served = json.loads(answer.read())
    assert served == json.loads((ROOT / "openapi.json").read_text())


def test_schemathesis_finds_no_failure(
    server: tuple[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url, _ = server
    cli = Path(sys.executable).parent / "schemathesis"
    report = tmp_path / "junit.xml"
    run = subprocess.run(  # our venv's schemathesis, loopback URL only
        [str(cli), "run", str(ROOT / "openapi.json"), "--url", url,
         "--checks", "not_a_server_error,response_schema_conformance,"
                     "status_code_conformance,content_type_conformance",
         "--max-examples", str(SCHEMATHESIS_EXAMPLES), "--seed", "20260205",
         "--header", f"x-leadscore-secret: {SECRET}",
         "--request-timeout", "30", "--no-color",
         "--report", "junit", "--report-junit-path", str(report)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    tail = run.stdout[-3000:]
    assert run.returncode == 0, tail + run.stderr[-2000:]
    found = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert found, tail
    generated, passed = int(found.group(1)), int(found.group(2))
    assert generated == passed and generated >= 5 * 10, tail
    out = ROOT / ".build" / "reliability"
    out.mkdir(parents=True, exist_ok=True)
    (out / "schemathesis.json").write_text(json.dumps(
        {"generated": generated, "passed": passed, "max_examples": SCHEMATHESIS_EXAMPLES}))
    _say(request, f"\nschemathesis: {generated} cases generated, {passed} passed")


def test_short_load_has_no_error_and_flat_memory(
    server: tuple[str, Any], request: pytest.FixtureRequest
) -> None:
    url, proc = server
    report = loadtest.run_load(url, clients=2, requests_per_client=300, server_pid=proc.pid,
                               max_growth_mb=20.0)
    _say(request, "\n" + report.summary())
    assert report.total_requests == 600
    assert report.errors == 0, report.error_samples
    assert report.memory_flat, report.rss_mb
    assert report.p99_ms > 0 and set(report.per_route) >= {"POST /score", "GET /health"}


def test_the_load_tool_refuses_anything_but_loopback() -> None:
    for url in ("http://10.0.0.1:3000", "http://192.168.1.10:80", "http://8.8.8.8:53",
                "https://127.0.0.1:3000", "http://127.0.0.1"):
        with pytest.raises(loadtest.LoadTestError):
            loadtest.loopback_target(url)
    assert loadtest.loopback_target("http://127.0.0.1:3000") == ("127.0.0.1", 3000)
    assert loadtest.loopback_target("http://localhost:3000")[1] == 3000
