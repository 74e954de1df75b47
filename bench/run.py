"""`make bench`: our system against the original, side by side, in one run (issue 7).

One process orchestrates everything (plus the fresh processes the cold starts need), so every
ratio compares two numbers measured on the same machine within minutes of each other.
Writes .bench/results.json (exactly issue 7's keys), .bench/meta.json (date, machine, notes)
and .bench/README_table.md, and prints the table.

    .venv/bin/python -m bench.run [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _template_blas_threads() -> str | None:
    """OPENBLAS_NUM_THREADS as template.yaml gives it to the functions (None if it does not)."""
    try:
        text = (REPO / "template.yaml").read_text()
    except OSError:
        return None
    found = re.search(r'^\s+OPENBLAS_NUM_THREADS:\s*"?(\d+)"?\s*$', text, re.MULTILINE)
    return found.group(1) if found else None


# Our handler must run with the environment the deployed function gets, and BLAS reads this
# variable once, when numpy loads: set it before anything imports numpy.
TEMPLATE_BLAS_THREADS = _template_blas_threads()
if TEMPLATE_BLAS_THREADS is not None:
    os.environ["OPENBLAS_NUM_THREADS"] = TEMPLATE_BLAS_THREADS

for _p in (REPO / "training", REPO / "layers" / "shared" / "python", REPO):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from bench import coldstart, metrics, sizes  # noqa: E402
from bench.native_adapter import NativeLoadedModel  # noqa: E402
from bench.original import OriginalEnsemble, train_original  # noqa: E402
from tools.lambda_context import lambda_context  # noqa: E402

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

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        print(f"[bench] {name} ...", flush=True)
        t0 = time.perf_counter()
        yield
        self.phase_seconds[name] = round(time.perf_counter() - t0, 2)
        print(f"[bench] {name}: {self.phase_seconds[name]:.1f} s", flush=True)


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


# ----------------------------------------------------------------------------- quality
def quality(run: Run, data: Data, ours: Any, original: OriginalEnsemble) -> None:
    out = ours.predict(data.x_test.astype(np.float32))
    orig = original.predict(data.x_test)
    f = run.flat
    f["quality.auc"] = float(roc_auc_score(data.y_test, out.score))
    f["quality.brier"] = metrics.brier(data.y_test, out.score)
    f["quality.bayes_auc"] = float(roc_auc_score(data.y_test, data.p_test))
    f["quality.bayes_brier"] = metrics.brier(data.y_test, data.p_test)
    f["quality.original_auc"] = float(roc_auc_score(data.y_test, orig.score))
    f["quality.original_brier"] = metrics.brier(data.y_test, orig.score)
    cov, width = metrics.coverage_and_width(out.interval, data.p_test)
    f["interval.coverage"], f["interval.mean_width"] = cov, width
    cov, width = metrics.coverage_and_width(orig.interval, data.p_test)
    f["interval.original_coverage"], f["interval.original_mean_width"] = cov, width
    run.extra["test_conversion_rate"] = float(np.mean(data.y_test))


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
    path = str(REPO / "functions" / "score")
    if path not in sys.path:
        sys.path.insert(0, path)
    import app

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


# ----------------------------------------------------------------------------- contributions
def contributions(run: Run, data: Data, ours: Any, original: OriginalEnsemble, app: Any,
                  template: Mapping[str, Any], bundle_path: Path) -> None:
    from lead_ensemble.shapley import exact_shapley, onnx_score_fn
    from leadscore.features import FEATURE_NAMES

    baseline_map = ours.manifest["baseline"]
    baseline = np.array([baseline_map[n] for n in FEATURE_NAMES], dtype=np.float32)
    rng = np.random.default_rng(PICK_SEED)
    picks = rng.choice(len(data.x_test), size=run.cfg.shapley_leads, replace=False)
    ours_err: list[float] = []
    orig_err: list[float] = []
    details: list[dict[str, Any]] = []

    # the served graph's `score` output alone (fold models pruned), same numbers as serving
    ours_fn = onnx_score_fn(bundle_path / "model.onnx")

    def orig_fn(z: np.ndarray) -> np.ndarray:
        out = []
        z64 = np.asarray(z, dtype=np.float64)
        for start in range(0, len(z64), 1 << 17):
            out.append(original.predict_score(z64[start:start + (1 << 17)]))
        return np.concatenate(out)

    for k, i in enumerate(picks):
        x32 = data.x_test[i].astype(np.float32)
        with stdout_to_devnull():
            body = call(app, score_event(template, {
                "contact_id": f"bench-shap-{k}", "feature_vector": [float(v) for v in x32],
            }, explain=True))
        given_ours = np.array([float(body["feature_contributions"][n]) for n in FEATURE_NAMES])
        t0 = time.perf_counter()
        exact_ours = np.asarray(exact_shapley(ours_fn, x32, baseline), dtype=np.float64)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        exact_orig = np.asarray(
            exact_shapley(orig_fn, x32.astype(np.float64), baseline.astype(np.float64)),
            dtype=np.float64,
        )
        t_orig = time.perf_counter() - t0
        given_orig = original.contributions_vector(x32.astype(np.float64))
        ours_err.append(metrics.relative_l1(given_ours, exact_ours))
        orig_err.append(metrics.relative_l1(given_orig, exact_orig))
        details.append({
            "test_row": int(i),
            "ours_relative_l1": ours_err[-1], "original_relative_l1": orig_err[-1],
            "ours_exact_sum": float(exact_ours.sum()),
            "ours_score_minus_baseline": float(body["predicted_score"])
            - float(ours.manifest["baseline_score"]),
            "ours_given_sum": float(given_ours.sum()),
            "exact_seconds_ours": round(t_ours, 2), "exact_seconds_original": round(t_orig, 2),
        })
    run.flat["contributions.relative_l1_error"] = float(np.mean(ours_err))
    run.flat["contributions.original_relative_l1_error"] = float(np.mean(orig_err))
    run.extra["contributions_per_lead"] = details


# ----------------------------------------------------------------------------- latency
def latency(run: Run, data: Data, ours: Any, original: OriginalEnsemble, app: Any,
            template: Mapping[str, Any], model_dir: Path) -> None:
    from generate_leads import request_part

    n = run.cfg.latency_requests
    native_model = NativeLoadedModel(original, ours)
    leads = [request_part(data.test_leads[i]) for i in range(n)]
    rows32 = [data.x_test[i : i + 1].astype(np.float32) for i in range(n)]
    rows64 = [data.x_test[i : i + 1] for i in range(n)]
    session, input_name = ours.session, ours.input_name
    # Context only (meta.json, not results.json): the original's models pinned to one thread,
    # to show how much of its one-row cost is thread start-up rather than the trees.
    single = OriginalEnsemble.load(model_dir)
    single.xgb_model.set_params(n_jobs=1)
    single.lgb_model.set_params(n_jobs=1)
    samples: dict[str, list[float]] = {
        k: [] for k in ("score", "score_only", "native_score_only", "model_onnx", "model_native",
                        "model_native_one_thread")
    }

    counter = iter(range(10**9))  # a fresh contact id per request: every request is a MISS

    def t_score(i: int) -> float:
        ev = score_event(template, {"contact_id": f"bench-{next(counter)}",
                                    "features": leads[i]}, explain=True)
        t0 = time.perf_counter()
        body = call(app, ev)
        dt_ = time.perf_counter() - t0
        assert not body.get("cached") and body.get("source") == "ensemble", body.get("source")
        return dt_

    def t_score_only(i: int) -> float:
        ev = score_event(template, {"contact_id": f"bench-{next(counter)}",
                                    "features": leads[i]}, explain=False)
        t0 = time.perf_counter()
        body = call(app, ev)
        dt_ = time.perf_counter() - t0
        assert not body.get("cached") and body.get("source") == "ensemble"
        return dt_

    def t_native_score_only(i: int) -> float:
        ev = score_event(template, {"contact_id": f"bench-{next(counter)}",
                                    "features": leads[i]}, explain=False)
        undo = swap_model(app, native_model)
        try:
            t0 = time.perf_counter()
            body = call(app, ev)
            dt_ = time.perf_counter() - t0
        finally:
            undo()
        assert not body.get("cached") and body.get("model_version") == "original-native"
        return dt_

    def t_model_onnx(i: int) -> float:
        feed = {input_name: rows32[i]}
        t0 = time.perf_counter()
        session.run(None, feed)
        return time.perf_counter() - t0

    def t_model_native(i: int) -> float:
        t0 = time.perf_counter()
        original.predict(rows64[i])
        return time.perf_counter() - t0

    def t_model_native_one_thread(i: int) -> float:
        t0 = time.perf_counter()
        single.predict(rows64[i])
        return time.perf_counter() - t0

    variants: list[tuple[str, Callable[[int], float]]] = [
        ("score", t_score), ("score_only", t_score_only),
        ("native_score_only", t_native_score_only),
        ("model_onnx", t_model_onnx), ("model_native", t_model_native),
        ("model_native_one_thread", t_model_native_one_thread),
    ]
    with stdout_to_devnull():
        for i in range(min(20, n)):  # warm-up (not recorded): first calls allocate
            for _, fn in variants:
                fn(i)
        gc.collect()
        for i in range(n):
            shift = i % len(variants)  # rotate the order so no variant always goes first
            for name, fn in variants[shift:] + variants[:shift]:
                samples[name].append(fn(i))
    f = run.flat
    f["latency_ms.score_p50"] = metrics.percentile_ms(samples["score"], 50)
    f["latency_ms.score_p99"] = metrics.percentile_ms(samples["score"], 99)
    f["latency_ms.score_only_p50"] = metrics.percentile_ms(samples["score_only"], 50)
    f["latency_ms.native_score_only_p50"] = metrics.percentile_ms(
        samples["native_score_only"], 50)
    f["latency_ms.model_onnx_p50"] = metrics.percentile_ms(samples["model_onnx"], 50)
    f["latency_ms.model_native_p50"] = metrics.percentile_ms(samples["model_native"], 50)
    run.extra["latency_p50_ms"] = {k: metrics.percentile_ms(v, 50) for k, v in samples.items()}
    run.extra["latency_p99_ms"] = {k: metrics.percentile_ms(v, 99) for k, v in samples.items()}
    run.extra["latency_requests_each"] = n

    # Context only (meta.json + a table row): the same calls back to back, one variant at a
    # time. Interleaving makes every call run after the other system has filled the CPU
    # caches with its own models (cache-cold, as issue 7 prescribes); blocks show cache-warm.
    blocks: dict[str, float] = {}
    with stdout_to_devnull():
        for name, fn in variants:
            for i in range(min(10, n)):
                fn(i)
            blocks[name] = metrics.percentile_ms([fn(i) for i in range(min(200, n))], 50)
    run.extra["latency_p50_ms_back_to_back"] = blocks


# ----------------------------------------------------------------------------- batch
def batch(run: Run, data: Data, ours: Any, original: OriginalEnsemble) -> None:
    rows = run.cfg.batch_rows
    x64 = data.x_test[:rows]
    x32 = x64.astype(np.float32)
    session, input_name = ours.session, ours.input_name
    onnx_t: list[float] = []
    native_t: list[float] = []
    # The original's process did not pin BLAS to one thread: give its batch the library
    # default back (its trees use OpenMP threads either way).
    from threadpoolctl import threadpool_limits

    def native_batch() -> float:
        with threadpool_limits(limits=os.cpu_count(), user_api="blas"):
            t0 = time.perf_counter()
            original.predict(x64)
            return time.perf_counter() - t0

    session.run(None, {input_name: x32})
    native_batch()
    for _ in range(run.cfg.batch_repeats):
        t0 = time.perf_counter()
        session.run(None, {input_name: x32})
        onnx_t.append(time.perf_counter() - t0)
        native_t.append(native_batch())
    run.flat["batch_rows_per_s.onnx"] = rows / statistics.median(onnx_t)
    run.flat["batch_rows_per_s.native"] = rows / statistics.median(native_t)


# ----------------------------------------------------------------------------- cold start
def cold(run: Run, data: Data, bundle: Path, model_dir: Path) -> None:
    ours, native, reports = coldstart.measure(
        repo=REPO,
        ours_env=handler_env(bundle),
        ours_event=REPO / "events" / "score_request.json",
        native_model_dir=model_dir,
        native_vector=[float(v) for v in data.x_test[0]],
        runs=run.cfg.cold_runs,
    )
    run.flat["cold_start_ms.onnx"] = ours.median_ms
    run.flat["cold_start_ms.native"] = native.median_ms
    run.extra["cold_start_samples_ms"] = {"onnx": ours.samples_ms, "native": native.samples_ms}
    leaked = sorted({m for r in reports if r["which"] == "ours"
                     for m in r.get("modules", [])})  # type: ignore[attr-defined]
    if leaked:
        run.notes.append(f"WARNING: our cold-start process imported {leaked}")


# ----------------------------------------------------------------------------- package
def package(run: Run) -> None:
    try:
        mb, source = sizes.built_mb(REPO)
    except FileNotFoundError:
        print("[bench] no build output: running `make build` ...", flush=True)
        try:
            proc = subprocess.run(["make", "build"], cwd=REPO, capture_output=True, text=True,
                                  check=False, timeout=480)
            failed = proc.returncode != 0 and not (REPO / ".build" / "size.json").exists()
        except subprocess.TimeoutExpired:
            failed = True
        if failed:
            mb = sizes.source_mb(REPO)
            source = ("FALLBACK (make build failed): requirements/runtime.txt and its "
                      "dependencies as installed in this venv + functions/ + the shared layer")
        else:
            mb, source = sizes.built_mb(REPO)
    run.flat["package_mb.onnx"] = mb
    run.flat["package_mb.native"] = sizes.installed_mb()
    run.notes.append(
        f"package_mb.onnx from {source} (arm64 Lambda build, unzipped functions + layers); "
        f"package_mb.native = installed size of {', '.join(sizes.NATIVE_DISTRIBUTIONS)} in "
        f"this venv ({platform.machine()}, site-packages dirs + .libs + dist-info) -- a lower "
        "bound for the original, which also needs their dependencies (joblib, threadpoolctl, "
        "python-dateutil, ...)."
    )


# ----------------------------------------------------------------------------- report
def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1_5_15": [round(v, 2) for v in load],
    }


def fmt(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"
    if unit == "rows/s":
        return f"{value:,.0f} rows/s"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "s":
        return f"{value:.1f} s"
    return f"{value:.4f}"


def table(run: Run, meta: Mapping[str, Any]) -> str:
    f = run.flat
    rows: list[tuple[str, str, str, str]] = []

    def ratio(ours: float, orig: float, higher_is_better: bool) -> str:
        if ours == 0 or orig == 0:
            return "n/a"
        r = (ours / orig) if higher_is_better else (orig / ours)
        return f"{r:.1f}x better" if r >= 1 else f"{1 / r:.1f}x worse"

    def row(label: str, ours: float, orig: float | None, unit: str,
            higher_is_better: bool = False) -> None:
        rows.append((
            label, fmt(ours, unit), "—" if orig is None else fmt(orig, unit),
            "" if orig is None else ratio(ours, orig, higher_is_better),
        ))

    row("POST /score p50 (explained)", f["latency_ms.score_p50"], None, "ms")
    row("POST /score p99 (explained)", f["latency_ms.score_p99"], None, "ms")
    row("POST /score?explain=false p50 (same handler, ONNX vs native models)",
        f["latency_ms.score_only_p50"], f["latency_ms.native_score_only_p50"], "ms")
    row("one-row ensemble inference p50", f["latency_ms.model_onnx_p50"],
        f["latency_ms.model_native_p50"], "ms")
    warm = run.extra.get("latency_p50_ms_back_to_back", {})
    if warm:
        row("(context) explain=false p50, each variant back to back (cache-warm)",
            float(warm["score_only"]), float(warm["native_score_only"]), "ms")
        row("(context) one-row inference p50, back to back (cache-warm)",
            float(warm["model_onnx"]), float(warm["model_native"]), "ms")
    one_thread = run.extra.get("latency_p50_ms", {}).get("model_native_one_thread")
    if one_thread is not None:
        row("(context) one-row inference p50, original's models pinned to 1 thread",
            f["latency_ms.model_onnx_p50"], float(one_thread), "ms")
    row("cold start (imports + model load + first answer, median)",
        f["cold_start_ms.onnx"], f["cold_start_ms.native"], "ms")
    row(f"batch of {run.cfg.batch_rows} (ours: 1 thread, original: library default)",
        f["batch_rows_per_s.onnx"],
        f["batch_rows_per_s.native"], "rows/s", higher_is_better=True)
    row("package (unzipped)", f["package_mb.onnx"], f["package_mb.native"], "MB")
    row("held-out AUC (Bayes limit "
        f"{f['quality.bayes_auc']:.4f})", f["quality.auc"], f["quality.original_auc"], "",
        higher_is_better=True)
    row(f"held-out Brier (Bayes limit {f['quality.bayes_brier']:.4f})", f["quality.brier"],
        f["quality.original_brier"], "")
    row("interval coverage of true probability (aim 90 %)", f["interval.coverage"],
        f["interval.original_coverage"], "", higher_is_better=True)
    row("interval mean width", f["interval.mean_width"], f["interval.original_mean_width"], "")
    row("contribution error vs exact Shapley (relative L1)",
        f["contributions.relative_l1_error"], f["contributions.original_relative_l1_error"], "")
    row("training time (8,000 rows)" if run.cfg.train_rows == 8000
        else f"training time ({run.cfg.train_rows} rows)",
        f["training_seconds"], float(run.extra["original_training_seconds"]), "s")
    m = meta["machine"]
    lines = [
        f"Measured {meta['date']} on {m['cpu']}, {m['cores']} cores, Python {m['python']} "
        f"(load average at start {m['load_average_1_5_15']}, at end "
        f"{m.get('load_average_at_end')}); `make bench` took "
        f"{meta['total_seconds']:.0f} s.",
        "",
        "| metric | ours (ONNX) | original (native) | ratio |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += ["", "| target (issue 7) | result | measured |", "|---|---|---|"]
    for t in metrics.check_targets(f):
        lines.append(f"| {t.name} | {'PASS' if t.passed else 'MISS'} | {t.detail} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ours vs the original, one run")
    parser.add_argument("--out", type=Path, default=REPO / ".bench")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes to try the machinery (not the published numbers)")
    parser.add_argument("--reuse", action="store_true",
                        help="development only: reuse the bundle trained by an earlier run")
    args = parser.parse_args(argv)
    cfg = Config(out=args.out)
    if args.quick:
        cfg = Config(out=args.out, train_rows=2_000, test_rows=3_000, latency_requests=60,
                     cold_runs=2, shapley_leads=1, batch_repeats=3)
    cfg.out.mkdir(parents=True, exist_ok=True)
    run = Run(cfg)
    started = time.perf_counter()
    date = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    host = machine()
    warnings.filterwarnings("ignore", category=UserWarning)

    from leadscore.bundle import load_model

    with run.phase("data"):
        data = make_data(run)
    with run.phase("train ours (training/train.py)"):
        bundle = train_ours(run, data, reuse=args.reuse)
    with run.phase("train the original"):
        original, model_dir = train_baseline(run, data)
    ours = load_model(bundle)
    with run.phase("quality + intervals"):
        quality(run, data, ours, original)
    app = import_handler(bundle)
    template = json.loads((REPO / "events" / "score_request.json").read_text())
    with run.phase("latency (interleaved)"):
        latency(run, data, ours, original, app, template, model_dir)
    with run.phase("batch"):
        batch(run, data, ours, original)
    with run.phase("contributions (exact Shapley, 2^20 coalitions per lead and system)"):
        contributions(run, data, ours, original, app, template, bundle)
    with run.phase("cold start"):
        cold(run, data, bundle, model_dir)
    with run.phase("package size"):
        package(run)

    results = metrics.nest(run.flat)
    total = time.perf_counter() - started
    host["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    run.notes += [
        f"OPENBLAS_NUM_THREADS={TEMPLATE_BLAS_THREADS} for the whole run, as template.yaml "
        "sets it for the functions (the original's batch gets the BLAS default back)"
        if TEMPLATE_BLAS_THREADS is not None else
        "template.yaml does not pin BLAS threads: library defaults everywhere",
        "Every request of the latency runs has its own contact id, so each is a cache MISS "
        "(in-memory LRU only: no DynamoDB table, no write-back queue, tracing disabled); "
        "logs and EMF metrics are written to /dev/null.",
        "Latency keys are interleaved request by request (issue 7): each call then runs with "
        "CPU caches holding the other system's models (cache-cold); the back-to-back rows "
        "(context, meta.json) show the cache-warm figures of the same calls.",
        "native_score_only swaps a LoadedModel twin into the same handler whose predict() "
        "calls predict_proba of XGBoost, LightGBM and the MLP plus the stacker on one row.",
        "Original = issue 7's method: library-default threading (predict_proba uses both "
        "cores), while our ONNX session is single-threaded as served.",
        "Original's cold start loads its models from native formats (XGBoost UBJSON, LightGBM "
        "text, scikit-learn arrays in .npz) instead of its pickle: the same work unpickling "
        "does, without pickle in our tree. Its first answer skips feature extraction.",
        f"data: {cfg.train_rows} training rows (seed {TRAIN_SEED}), {cfg.test_rows} test rows "
        f"(seed {TEST_SEED}); the original trains on its own 80 % split of the same rows.",
    ]
    if args.quick:
        run.notes.append("QUICK RUN: reduced sizes, not the published numbers")
    meta = {
        "date": date, "machine": host, "total_seconds": round(total, 1),
        "phase_seconds": run.phase_seconds, "config": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()
        },
        "model_version": ours.version, "notes": run.notes, "details": run.extra,
    }
    text = table(run, meta)
    (cfg.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (cfg.out / "meta.json").write_text(json.dumps(meta, indent=2, default=float) + "\n")
    (cfg.out / "README_table.md").write_text(text)
    print()
    print(text)
    for note in run.notes:
        print(f"- {note}")
    print(f"\nwrote {cfg.out / 'results.json'}, meta.json, README_table.md "
          f"({total:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
