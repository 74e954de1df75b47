"""Training benchmark: a 10,000-row job (8,000 training rows) on generated leads.

Prints the wall time of the whole job (a fresh `python training/train.py` process, imports
included) and the held-out quality against the Bayes limit (the first round's target: AUC ratio
>= 0.98, Brier ratio <= 1.10, wall time <= 90 s on the 2-core machine).

    .venv/bin/python -m bench.bench_training [--rows 10000] [--seed 80801] [--out .bench/training]

`run_training_benchmark` is the same thing as a function for `make bench`. Not run by tests.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from generate_leads import generate_leads, to_feature_frame, write_csv

REPO = Path(__file__).resolve().parents[1]

DATA_SEED = 80_801  # different from the tests' (7) and the other benchmarks' seeds
TARGETS = {"auc_ratio": 0.98, "brier_ratio": 1.10, "wall_seconds": 90.0}


def run_training_benchmark(out: Path, rows: int = 10_000, seed: int = DATA_SEED) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    data = out / "leads.csv"
    write_csv(to_feature_frame(generate_leads(rows, seed)), data)
    bundle = out / "bundle"
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = "ignore"
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(REPO / "training" / "train.py"), "--input", str(data),
         "--output", str(bundle)],
        capture_output=True, text=True, env=env, check=False,
    )
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    (out / "train.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"train.py failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    m = json.loads((bundle / "ensemble_metrics.json").read_text())
    result = {
        "rows": rows,
        "training_samples": m["training_samples"],
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),  # user + system of the job: comparable under contention
        "load_average_at_start": round(load0, 2),
        "phase_seconds": m.get("phase_seconds", {}),
        "ensemble_auc_roc": m["ensemble_auc_roc"],
        "ensemble_brier_score": m["ensemble_brier_score"],
        "bayes_auc": m["bayes_auc"],
        "bayes_brier": m["bayes_brier"],
        "auc_ratio": m["auc_ratio"],
        "brier_ratio": m["brier_ratio"],
        "interval_coverage": m["interval_coverage"],
        "interval_mean_width": m["interval_mean_width"],
        "improvement_over_best_base": m["improvement_over_best_base"],
        "combiner": m["combiner"],
        "parity_max_abs_diff": m["parity_max_abs_diff"],
        "base_training_seconds": {b["model_name"]: b["training_time_seconds"]
                                  for b in m["base_model_metrics"]},
    }
    result["meets_targets"] = (
        result["auc_ratio"] >= TARGETS["auc_ratio"]
        and result["brier_ratio"] <= TARGETS["brier_ratio"]
        and result["wall_seconds"] <= TARGETS["wall_seconds"]
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=DATA_SEED)
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "training")
    args = parser.parse_args()
    r = run_training_benchmark(args.out, args.rows, args.seed)
    print(json.dumps(r, indent=2))
    print(f"\n{r['rows']} rows ({r['training_samples']} training): wall {r['wall_seconds']:.1f} s "
          f"(target <= 90 s; cpu {r['cpu_seconds']:.1f} s, load {r['load_average_at_start']:.1f} "
          f"at start); AUC ratio {r['auc_ratio']:.4f} (>= 0.98); "
          f"Brier ratio {r['brier_ratio']:.4f} (<= 1.10); "
          f"{'MEETS' if r['meets_targets'] else 'MISSES'} the targets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
