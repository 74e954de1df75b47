"""The custom-schema proof on real leads: ``make bank-proof DATA=/path/to/file.csv``.

Trains from the raw UCI "Bank Marketing" export (41,188 telemarketing leads; not in this
repository, not used by the tests) exactly as a team would: ``--target output --positive yes``
and no schema written by hand. Then checks, from the bundle the job wrote:

- ``duration`` (the length of the deciding call, known only after it) was excluded by the leak
  guard and is named as a leak in the report;
- the ensemble's held-out AUC is at least that of a LightGBM with default parameters on the
  same split and inputs (both measured by the job);
- the wall time of the whole job (``--max-seconds``, default 60).

Prints the figures (AUCs, calibration, interval width, phases) and writes them as JSON
(``--json``, default .build/bank-proof.json). Exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="bank_marketing_leads.csv")
    parser.add_argument("--output", type=Path, default=ROOT / ".build" / "bank-proof")
    parser.add_argument("--json", type=Path, default=ROOT / ".build" / "bank-proof.json")
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"no such file: {args.data}", file=sys.stderr)
        return 2

    import shutil
    import warnings

    import train

    if args.output.exists():
        shutil.rmtree(args.output)
    load_before = os.getloadavg()
    cpu_before = time.process_time()
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = train.main(["--input", str(args.data), "--output", str(args.output),
                           "--target", "output", "--positive", "yes",
                           "--random-seed", str(args.seed)])
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_before  # this process and its threads
    load_after = os.getloadavg()
    if code != 0:
        print(f"training failed (exit {code})", file=sys.stderr)
        return 1

    metrics = json.loads((args.output / "ensemble_metrics.json").read_text())
    report = (args.output / "training_report.txt").read_text()
    columns = metrics["columns"]
    ensemble_auc = float(metrics["ensemble_auc_roc"])
    reference_auc = float(metrics["reference_lightgbm_default_auc"])
    checks = {
        "duration excluded as a leak": "duration" in columns["leaks_excluded"]
        and "EXCLUDED duration: leak" in report,
        "ensemble AUC >= default LightGBM AUC": ensemble_auc >= reference_auc,
        f"wall time <= {args.max_seconds:.0f} s": wall <= args.max_seconds,
    }
    figures = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "rows": metrics["training_samples"] + metrics["validation_samples"],
        "held_out_rows": metrics["validation_samples"],
        "inputs": len(json.loads((args.output / "manifest.json").read_text())["feature_names"]),
        "columns": columns["schema"],
        "leaks_excluded": columns["leaks_excluded"],
        "column_auc": columns["column_auc"],
        "ensemble_auc": ensemble_auc,
        "reference_lightgbm_default_auc": reference_auc,
        "base_model_auc": {m["model_name"]: m["auc_roc"] for m in metrics["base_model_metrics"]},
        "brier": metrics["ensemble_brier_score"],
        "calibration": metrics["calibration"],
        "interval_mean_width": metrics["interval_mean_width"],
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "phase_seconds": metrics["phase_seconds"],
        "checks": checks,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")

    print(f"rows {figures['rows']} (held out {figures['held_out_rows']}), "
          f"{figures['inputs']} model inputs from {len(columns['schema'])} columns")
    for name, reason in columns["leaks_excluded"].items():
        print(f"excluded {name}: {reason}")
    print(f"held-out AUC: ensemble {ensemble_auc:.4f}, LightGBM default {reference_auc:.4f} "
          f"(base models: " + ", ".join(f"{k} {v:.4f}" for k, v in
                                        figures["base_model_auc"].items()) + ")")
    print(f"Brier {figures['brier']:.4f}; 95 % interval mean width "
          f"{figures['interval_mean_width']:.4f}")
    print("calibration (held out):  bin      rows  predicted  observed")
    for row in metrics["calibration"]:
        if row["rows"]:
            print(f"                         {row['bin']:<8}{row['rows']:>5}  "
                  f"{row['mean_predicted']:>9.3f}  {row['observed_rate']:>8.3f}")
    print(f"CPU {cpu:.1f} s; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
          "(2 cores shared)")
    print(f"wall time {wall:.1f} s (" + ", ".join(
        f"{k} {v:.1f}" for k, v in metrics["phase_seconds"].items()) + ")")
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    print(f"figures written to {args.json}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
