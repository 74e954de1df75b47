"""`make bench`: our system against the original, side by side, in one run.

One process orchestrates everything (plus the fresh processes the cold starts need), so every
ratio compares two numbers measured on the same machine within minutes of each other.
Writes .bench/results.json (exactly the fixed keys), .bench/meta.json (date, machine, notes)
and .bench/README_table.md, and prints the table.

    .venv/bin/python -m bench.run [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

# isort: off
from bench import harness  # noqa: F401  first: pins BLAS threads before anything loads numpy
# isort: on
from bench import metrics
from bench.harness import (
    REPO,
    TEMPLATE_BLAS_THREADS,
    TEST_SEED,
    TRAIN_SEED,
    Config,
    Run,
    import_handler,
    make_data,
    score_event,
    train_baseline,
    train_ours,
)
from bench.measure import batch, cold, contributions, latency, package, quality
from bench.report import machine, table

__all__ = ["score_event"]  # tests build events with it

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
        "Latency keys are interleaved request by request: each call then runs with "
        "CPU caches holding the other system's models (cache-cold); the back-to-back rows "
        "(context, meta.json) show the cache-warm figures of the same calls.",
        "native_score_only swaps a LoadedModel twin into the same handler whose predict() "
        "calls predict_proba of XGBoost, LightGBM and the MLP plus the stacker on one row.",
        "Original = its own method: library-default threading (predict_proba uses both "
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
        "phase_seconds": run.phase_seconds, "phase_load_1min": run.phase_load,
        "figures": {key: {"value": value, "phase": run.figure_phase.get(key),
                          "load_1min_start_end": run.load_of(key), "cpu": host["cpu"]}
                    for key, value in run.flat.items()},
        "config": {
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
