"""The benchmark's harness: configuration, data, both systems trained, our handler loaded.

Importing this module first pins BLAS threads as template.yaml gives them to the functions
(`bench.blas_pin`: BLAS reads the variable once, when numpy loads).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.blas_pin import TEMPLATE_BLAS_THREADS  # first: BLAS reads it when numpy loads

# isort: split
import numpy as np

from bench.original import OriginalEnsemble, train_original
from tools.lambda_context import lambda_context

REPO = Path(__file__).resolve().parents[1]

# Seeds of the benchmark's data: different from the tests' and the demo's.
TRAIN_SEED = 70_701
TEST_SEED = 70_702
PICK_SEED = 70_703
STACK_SEED = 42  # the training CLI's default --random-seed, and the original's random_state


@dataclass
class Config:
    out: Path
    train_rows: int = 8_000
    test_rows: int = 20_000
    latency_requests: int = 400
    cold_runs: int = 5
    shapley_leads: int = 3
    batch_rows: int = 1_000
    batch_repeats: int = 15


@dataclass
class Run:
    cfg: Config
    flat: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    # the machine's 1-minute load average when each phase started and ended, and the phase
    # each figure of `flat` was measured in: a shared machine's figures are read beside it
    phase_load: dict[str, list[float]] = field(default_factory=dict)
    figure_phase: dict[str, str] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        print(f"[bench] {name} ...", flush=True)
        before = set(self.flat)
        load_start = load_1min()
        t0 = time.perf_counter()
        yield
        self.phase_seconds[name] = round(time.perf_counter() - t0, 2)
        self.phase_load[name] = [load_start, load_1min()]
        for key in self.flat:
            if key not in before:
                self.figure_phase[key] = name
        print(f"[bench] {name}: {self.phase_seconds[name]:.1f} s (load "
              f"{self.phase_load[name][0]:.2f} -> {self.phase_load[name][1]:.2f})", flush=True)

    def load_of(self, key: str) -> list[float] | None:
        """[start, end] 1-minute load average of the phase that measured figure `key`."""
        phase = self.figure_phase.get(key)
        return None if phase is None else self.phase_load.get(phase)


def load_1min() -> float:
    """The 1-minute load average (0.0 where the platform has none)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else 0.0


# ----------------------------------------------------------------------------- data
@dataclass
class Data:
    train_csv: Path
    x_train: np.ndarray
    y_train: np.ndarray
    test_leads: list[dict[str, Any]]
    x_test: np.ndarray  # float64 [N, 20] (what the extractor produced)
    y_test: np.ndarray
    p_test: np.ndarray  # true_probability


def make_data(run: Run) -> Data:
    from generate_leads import generate_leads, to_feature_frame, write_csv
    from leadscore.features import FEATURE_NAMES

    cfg = run.cfg
    data_dir = cfg.out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    train_leads = generate_leads(cfg.train_rows, TRAIN_SEED)
    train_rows = to_feature_frame(train_leads)
    train_csv = data_dir / "train.csv"
    write_csv(train_rows, train_csv)
    test_leads = generate_leads(cfg.test_rows, TEST_SEED)
    test_rows = to_feature_frame(test_leads)

    def matrix(rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        return np.array([[r[n] for n in FEATURE_NAMES] for r in rows], dtype=np.float64)

    return Data(
        train_csv=train_csv,
        x_train=matrix(train_rows),
        y_train=np.array([r["converted"] for r in train_rows], dtype=int),
        test_leads=test_leads,
        x_test=matrix(test_rows),
        y_test=np.array([r["converted"] for r in test_rows], dtype=int),
        p_test=np.array([r["true_probability"] for r in test_rows], dtype=np.float64),
    )



# ----------------------------------------------------------------------------- training
def train_ours(run: Run, data: Data, *, reuse: bool = False) -> Path:
    bundle = run.cfg.out / "bundle"
    seconds_file = run.cfg.out / "training_seconds.txt"
    if reuse and (bundle / "manifest.json").exists() and seconds_file.exists():
        run.flat["training_seconds"] = float(seconds_file.read_text())
        run.notes.append("REUSED bundle and training_seconds of an earlier run (--reuse)")
        return bundle
    if bundle.exists():
        shutil.rmtree(bundle)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "layers" / "shared" / "python"), str(REPO / "training"), str(REPO)]
    )
    cmd = [
        sys.executable, str(REPO / "training" / "train.py"),
        "--input", str(data.train_csv), "--output", str(bundle),
        "--random-seed", str(STACK_SEED),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    (run.cfg.out / "train.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(
            f"training/train.py failed (exit {proc.returncode}); see .bench/train.log:\n"
            + (proc.stderr or proc.stdout)[-3000:]
        )
    run.flat["training_seconds"] = seconds
    seconds_file.write_text(f"{seconds}\n")
    return bundle


def train_baseline(run: Run, data: Data) -> tuple[OriginalEnsemble, Path]:
    from leadscore.features import FEATURE_NAMES

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = train_original(data.x_train, data.y_train, FEATURE_NAMES,
                                  random_state=STACK_SEED)
    run.extra["original_training_seconds"] = round(time.perf_counter() - t0, 3)
    run.extra["original_mlp_iterations"] = int(original.mlp.n_iter_)
    model_dir = run.cfg.out / "original"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    original.save(model_dir)
    return original, model_dir



# ----------------------------------------------------------------------------- handler
def handler_env(bundle: Path) -> dict[str, str]:
    """The ScoreFunction's environment (template.yaml) minus the AWS resources: no DynamoDB
    table (in-memory cache only), no write-back queue, tracing off (no X-Ray daemon here)."""
    env = {
        "MODEL_URI": bundle.resolve().as_uri(),
        "POWERTOOLS_SERVICE_NAME": "score",
        "POWERTOOLS_METRICS_NAMESPACE": "LeadScoring",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "LOG_LEVEL": "INFO",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "CACHE_TTL_SECONDS": "3600",
        "MODEL_REFRESH_SECONDS": "60",
    }
    if TEMPLATE_BLAS_THREADS is not None:
        env["OPENBLAS_NUM_THREADS"] = TEMPLATE_BLAS_THREADS
    return env


def import_handler(bundle: Path) -> Any:
    for key in ("CACHE_TABLE", "WRITEBACK_QUEUE_URL", "WEBHOOK_DEDUP_TABLE"):
        os.environ.pop(key, None)
    os.environ.update(handler_env(bundle))
    from functions.score import app

    return app


def score_event(template: Mapping[str, Any], body: Mapping[str, Any], *, explain: bool) -> dict[
    str, Any
]:
    event = copy.deepcopy(dict(template))
    event["body"] = json.dumps(body)
    if explain:
        event["queryStringParameters"] = None
        event["multiValueQueryStringParameters"] = None
    else:
        event["queryStringParameters"] = {"explain": "false"}
        event["multiValueQueryStringParameters"] = {"explain": ["false"]}
    return event


def call(app: Any, event: Mapping[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = app.lambda_handler(event, lambda_context(request_id="bench"))
    if response.get("statusCode") != 200:
        raise RuntimeError(f"handler answered {response.get('statusCode')}: "
                           f"{str(response.get('body'))[:500]}")
    body: dict[str, Any] = json.loads(response["body"])
    return body


@contextlib.contextmanager
def stdout_to_devnull() -> Iterator[None]:
    """Send fd 1 to /dev/null: the handler still formats and writes its logs and EMF metrics
    (as it does to CloudWatch in Lambda), the terminal stays readable."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def swap_model(app: Any, model: Any) -> Callable[[], None]:
    """Make the handler's scoring service use `model`; return a function that undoes it.

    The service reads its model through its provider (`current()`); we wrap the provider so
    everything else (parsing, extraction, cache, response shaping) stays the same path.
    """
    provider = app.container().service.provider
    saved = provider.current
    provider.current = lambda: model

    def undo() -> None:
        provider.current = saved

    return undo


