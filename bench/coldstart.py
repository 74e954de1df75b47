"""Cold starts in fresh `python -c` processes: imports + model load + first answer.

The clock starts in the parent just before the process is spawned and stops when the child
has its first answer in hand (the child reports `time.time()` at that moment), so interpreter
start-up counts, as it does in a Lambda init; process teardown does not.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MARKER = "BENCH_COLD_RESULT "

# Ours: exactly what a Lambda container does -- import the handler module (which loads the
# bundle from MODEL_URI once per container, eagerly or on first use) and answer one event.
OURS_CHILD = """
import json, sys, time
sys.path[:0] = {paths!r}
import app
from tools.lambda_context import lambda_context
with open({event!r}) as fh:
    event = json.load(fh)
response = app.lambda_handler(event, lambda_context(request_id="bench-cold-start"))
t_answer = time.time()
body = json.loads(response["body"])
print({marker!r} + json.dumps({{"t": t_answer, "status": response["statusCode"],
      "source": body.get("source"), "modules": sorted(m for m in ("xgboost", "lightgbm",
      "sklearn", "scipy", "pandas") if m in sys.modules)}}), flush=True)
"""

# The original: its runtime stack, its models from disk, one answer (score, band, top-5
# "contributions") for one feature vector. Its own feature extractor and service wrapper are
# not counted, which can only flatter it.
NATIVE_CHILD = """
import json, sys, time
sys.path[:0] = {paths!r}
import numpy as np
import pandas
import sklearn
import xgboost
import lightgbm
from pathlib import Path
from bench.original import OriginalEnsemble
model = OriginalEnsemble.load(Path({model_dir!r}))
x = np.asarray([{vector!r}], dtype=np.float64)
out = model.predict(x)
contributions = model.contributions(x[0])
t_answer = time.time()
print({marker!r} + json.dumps({{"t": t_answer, "status": 200,
      "score": float(out.score[0]), "n_contributions": len(contributions)}}), flush=True)
"""


@dataclass(frozen=True)
class ColdStart:
    samples_ms: list[float]

    @property
    def median_ms(self) -> float:
        return float(statistics.median(self.samples_ms))


def _run_child(code: str, env: Mapping[str, str], cwd: Path, timeout: float) -> dict[str, object]:
    started = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise RuntimeError(f"cold-start child failed (exit {proc.returncode}):\n{tail}")
    result: dict[str, object] = json.loads(lines[-1][len(MARKER):])
    t_answer = result["t"]
    assert isinstance(t_answer, float)
    result["elapsed_ms"] = (t_answer - started) * 1e3
    return result


def ours_code(paths: Sequence[str], event_path: Path) -> str:
    return OURS_CHILD.format(paths=list(paths), event=str(event_path), marker=MARKER)


def native_code(paths: Sequence[str], model_dir: Path, vector: Sequence[float]) -> str:
    return NATIVE_CHILD.format(
        paths=list(paths), model_dir=str(model_dir), vector=[float(v) for v in vector],
        marker=MARKER,
    )


def measure(
    *,
    repo: Path,
    ours_env: Mapping[str, str],
    ours_event: Path,
    native_model_dir: Path,
    native_vector: Sequence[float],
    runs: int = 5,
    timeout: float = 120.0,
) -> tuple[ColdStart, ColdStart, list[dict[str, object]]]:
    """Alternate ours/native `runs` times each; return both sample sets and the child reports."""
    ours_paths = [str(repo / "functions" / "score"), str(repo / "layers" / "shared" / "python"),
                  str(repo)]
    native_paths = [str(repo)]
    # Children start from this environment minus what the benchmark set for our handler:
    # ours gets `ours_env` (the function's environment), the original library defaults.
    base_env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OPENBLAS_NUM_THREADS")
    }
    ours: list[float] = []
    native: list[float] = []
    reports: list[dict[str, object]] = []
    # One untimed run of each first: byte-code caches written, files in the page cache, as
    # for a Lambda image that has been deployed before (both sides get the same treatment).
    _run_child(ours_code(ours_paths, ours_event), {**base_env, **ours_env}, repo, timeout)
    _run_child(native_code(native_paths, native_model_dir, native_vector), base_env, repo,
               timeout)
    for i in range(runs):
        order = ("ours", "native") if i % 2 == 0 else ("native", "ours")
        for which in order:
            if which == "ours":
                rep = _run_child(ours_code(ours_paths, ours_event), {**base_env, **ours_env},
                                 repo, timeout)
                if rep.get("status") != 200:
                    raise RuntimeError(f"our cold-start answer was not 200: {rep}")
                ours.append(float(rep["elapsed_ms"]))  # type: ignore[arg-type]
            else:
                rep = _run_child(native_code(native_paths, native_model_dir, native_vector),
                                 base_env, repo, timeout)
                native.append(float(rep["elapsed_ms"]))  # type: ignore[arg-type]
            rep["which"] = which
            reports.append(rep)
    return ColdStart(ours), ColdStart(native), reports
