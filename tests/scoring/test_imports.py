"""Serving imports onnxruntime and numpy only: never the training libraries (a fresh process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
from functions.score import app
from tools.lambda_context import lambda_context

statuses = []
for name in {events!r}:
    event = json.load(open({root!r} + "/events/" + name + ".json"))
    answer = app.lambda_handler(event, lambda_context())
    statuses.append(answer["statusCode"])
    if name in ("score_request", "score_request_fields"):
        source = json.loads(answer["body"])["source"]
forbidden = ["xgboost", "lightgbm", "sklearn", "scipy", "pandas", "joblib", "onnx"]
loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
# what only other routes need: left to the first request that uses it (cold start)
deferred = ["cryptography", "leadscore.registry.gate", "leadscore.registry.promotion",
            "leadscore.loop.export", "leadscore.ghl.webhook", "leadscore.wiring.ghl",
            # the explainer's fixed permutations come from leadscore.explain.fixed_uniforms
            "numpy.random",
            # installation records: read by location keys, location models and webhooks only
            "leadscore.ghl.installations"]
eager = sorted(m for m in deferred if m in sys.modules)
print("RESULT " + json.dumps({{"statuses": statuses, "source": source, "loaded": loaded,
                               "eager": eager}}))
"""


def _serve(bundle: Path, events: tuple[str, ...]) -> dict[str, object]:
    env = {"MODEL_URI": f"file://{bundle}", "POWERTOOLS_TRACE_DISABLED": "true",
           "POWERTOOLS_METRICS_NAMESPACE": "LeadScoring", "PATH": "/usr/bin:/bin",
           # the checkout under test first, as in the parent (an editable install may
           # point at another one)
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(root=str(ROOT), events=events)],
        capture_output=True, text=True, env=env, timeout=120, check=False, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result: dict[str, object] = json.loads(line.removeprefix("RESULT "))
    return result


@pytest.mark.slow  # a fresh interpreter per test
def test_handler_never_imports_training_libraries(trained_bundle: Path) -> None:
    result = _serve(trained_bundle, ("score_request", "score_batch", "health_get", "model_get"))
    assert result["statuses"] == [200, 200, 200, 200]
    assert result["source"] == "ensemble"
    assert result["loaded"] == []
    # webhook flows and signatures, the promote gate and the loop's export are not the
    # scoring path
    assert result["eager"] == []


@pytest.mark.slow
def test_a_custom_schema_bundle_is_served_without_them_too(custom_bundle: Path) -> None:
    """The `fields` form: schema.json's transform is numpy only."""
    result = _serve(custom_bundle, ("score_request_fields", "score_batch_fields", "model_get"))
    assert result["statuses"] == [200, 200, 200]
    assert result["source"] == "ensemble"
    assert result["loaded"] == []
