"""The benchmark's measurements: each function measures one thing for both systems and puts
its figures into `Run.flat` (the benchmark's fixed keys) and `Run.extra` (context for meta.json)."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from bench import coldstart, metrics, sizes
from bench.harness import (
    PICK_SEED,
    REPO,
    Data,
    Run,
    call,
    handler_env,
    score_event,
    stdout_to_devnull,
    swap_model,
)
from bench.native_adapter import NativeLoadedModel
from bench.original import OriginalEnsemble


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
    # Context only: a one-node graph (Relu over the same row) in the served session options:
    # what any onnxruntime call costs at this place of the loop, whatever its graph. With the
    # caches holding the other variants' code and data, this floor is most of the one-row
    # figure; the original's one-row time over it bounds the ratio any graph of ours can reach.
    floor_session = _one_node_session(input_name, rows32[0].shape[1])
    samples: dict[str, list[float]] = {
        k: [] for k in ("score", "score_only", "native_score_only", "model_onnx", "model_native",
                        "model_native_one_thread", "model_onnx_one_node")
    }

    counter = iter(range(10**9))  # a fresh contact id per request: every request is a MISS
    # The CPU time of our handler's calls (this thread's clock: the ONNX session runs on the
    # calling thread). On a shared machine a longer call is more often preempted mid-way, so
    # wall-clock ratios between calls of different lengths grow with the load; CPU time does
    # not wait for the scheduler and is read beside them.
    cpu: dict[str, list[float]] = {"score": [], "score_only": [], "model_onnx": [],
                                   "model_onnx_one_node": []}

    def t_ensemble(i: int, explain: bool) -> float:
        ev = score_event(template, {"contact_id": f"bench-{next(counter)}",
                                    "features": leads[i]}, explain=explain)
        c0 = time.thread_time()
        t0 = time.perf_counter()
        body = call(app, ev)
        dt_ = time.perf_counter() - t0
        cpu["score" if explain else "score_only"].append(time.thread_time() - c0)
        assert not body.get("cached") and body.get("source") == "ensemble", body.get("source")
        return dt_

    def t_score(i: int) -> float:
        return t_ensemble(i, explain=True)

    def t_score_only(i: int) -> float:
        return t_ensemble(i, explain=False)

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

    def timed_session(sess: Any, key: str) -> Callable[[int], float]:
        """One row through `sess`: the wall time returned, the thread's CPU time kept."""
        def run(i: int) -> float:
            feed = {input_name: rows32[i]}
            c0 = time.thread_time()
            t0 = time.perf_counter()
            sess.run(None, feed)
            dt_ = time.perf_counter() - t0
            cpu[key].append(time.thread_time() - c0)
            return dt_
        return run

    t_model_onnx = timed_session(session, "model_onnx")
    t_model_onnx_one_node = timed_session(floor_session, "model_onnx_one_node")

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
        ("model_onnx_one_node", t_model_onnx_one_node),
    ]
    with stdout_to_devnull():
        for i in range(min(20, n)):  # warm-up (not recorded): first calls allocate
            for _, fn in variants:
                fn(i)
        gc.collect()
        for samples_cpu in cpu.values():
            samples_cpu.clear()  # the warm-up's calls are not recorded
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
    run.extra["latency_cpu_p50_ms"] = {k: metrics.percentile_ms(v, 50) for k, v in cpu.items()}

    # Context only (meta.json + a table row): the same calls back to back, one variant at a
    # time. Interleaving makes every call run after the other system has filled the CPU
    # caches with its own models (cache-cold, as the comparison prescribes); blocks show cache-warm.
    blocks: dict[str, float] = {}
    with stdout_to_devnull():
        for name, fn in variants:
            for i in range(min(10, n)):
                fn(i)
            blocks[name] = metrics.percentile_ms([fn(i) for i in range(min(200, n))], 50)
    run.extra["latency_p50_ms_back_to_back"] = blocks


def _one_node_session(input_name: str, width: int) -> Any:
    """An onnxruntime session of one Relu node over [N, width] float32, as the bundle's
    session is opened (`leadscore.bundle.session_options`)."""
    import onnxruntime as ort
    from leadscore.bundle import session_options
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [None, width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, width])
    graph = helper.make_graph([helper.make_node("Relu", [input_name], ["y"])], "one_node",
                              [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return ort.InferenceSession(model.SerializeToString(), sess_options=session_options(),
                                providers=["CPUExecutionProvider"])


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

    onnx_cpu: list[float] = []
    session.run(None, {input_name: x32})
    native_batch()
    for _ in range(run.cfg.batch_repeats):
        c0 = time.thread_time()
        t0 = time.perf_counter()
        session.run(None, {input_name: x32})
        onnx_t.append(time.perf_counter() - t0)
        onnx_cpu.append(time.thread_time() - c0)
        native_t.append(native_batch())
    run.flat["batch_rows_per_s.onnx"] = rows / statistics.median(onnx_t)
    run.flat["batch_rows_per_s.native"] = rows / statistics.median(native_t)
    # Context for a shared machine: the fastest repeat of each (the least disturbed), and our
    # batch's CPU time (one thread; the original's threads make its CPU time incomparable).
    run.extra["batch_rows_per_s_best_repeat"] = {"onnx": rows / min(onnx_t),
                                                 "native": rows / min(native_t)}
    run.extra["batch_rows_per_s_cpu_onnx"] = rows / statistics.median(onnx_cpu)


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


