"""What one onnxruntime call costs when the CPU caches hold something else, whatever its graph.

`make bench` times our one-row graph interleaved with the original's calls (cache-cold). This
separates the graph from the runtime: in one process it times (CPU time of the calling thread,
median) the served bundle's session and a session of ONE Relu node over the same row, opened
with the same options (`leadscore.bundle.session_options`), in three places:

    back to back          the same call again at once (caches warm)
    after 6 ms idle       after a sleep: the core ran something else meanwhile
    after the original    right after the original's one-row predict (the benchmark's case)

and, for the served graph, each graph optimisation level (outputs compared bit for bit).

    python -m bench.onnx_floor [--bench-dir .bench] [--calls 300]

Reads the bundle and the original's models an earlier `make bench` left in --bench-dir.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# isort: off
from bench import harness  # first: pins BLAS threads before anything loads numpy
# isort: on
import numpy as np

from bench.measure import _one_node_session
from bench.original import OriginalEnsemble


def _cpu_us(fn: Callable[[int], Any], before: Callable[[int], Any] | None, calls: int) -> float:
    samples = []
    for i in range(calls):
        if before is not None:
            before(i)
        c0 = time.thread_time()
        fn(i)
        samples.append(time.thread_time() - c0)
    return statistics.median(samples) * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-dir", type=Path, default=harness.REPO / ".bench")
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args(argv)
    import onnxruntime as ort
    from leadscore.bundle import load_model, session_options

    model = load_model(args.bench_dir / "bundle")
    original = OriginalEnsemble.load(args.bench_dir / "original")
    name = model.input_name
    rows = np.random.default_rng(7).random((args.calls, model.n_inputs)).astype(np.float32)
    one_node = _one_node_session(name, model.n_inputs)
    sessions: dict[str, Any] = {"one Relu node": one_node, "served graph": model.session}
    for level in ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED"):
        options = session_options()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        sessions[f"served graph, {level}"] = ort.InferenceSession(
            str(model.path / "model.onnx"), sess_options=options,
            providers=["CPUExecutionProvider"])
    served = model.session.run(None, {name: rows})
    places: dict[str, Callable[[int], Any] | None] = {
        "back to back": None,
        "after 6 ms idle": lambda i: time.sleep(0.006),
        "after the original": lambda i: original.predict(rows[i:i + 1].astype(np.float64)),
    }
    print(f"{'session':44s} " + " ".join(f"{p:>20s}" for p in places) + "   (CPU µs, median)")
    for label, session in sessions.items():
        same = "" if label == "one Relu node" else (
            "  outputs identical" if all(np.array_equal(a, b) for a, b in zip(
                served, session.run(None, {name: rows}), strict=True)) else "  OUTPUTS DIFFER")

        def call(i: int, session: Any = session) -> Any:
            return session.run(None, {name: rows[i:i + 1]})

        for i in range(20):
            call(i)
        figures = [_cpu_us(call, before, args.calls) for before in places.values()]
        print(f"{label:44s} " + " ".join(f"{f:20.0f}" for f in figures) + same)
    # the original's own figure is wall-clock (its OpenMP threads run on both cores), as in
    # `make bench`
    wall = []
    for i in range(args.calls):
        model.session.run(None, {name: rows[i:i + 1]})
        t0 = time.perf_counter()
        original.predict(rows[i:i + 1].astype(np.float64))
        wall.append(time.perf_counter() - t0)
    print(f"{'the original, one row after our graph (wall µs)':44s} "
          f"{statistics.median(wall) * 1e6:20.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
