"""How fast the retrain function's split runs, for the upload limit (docs/RETRAINING.md).

The retrain function streams an upload once through `leadscore.registry.split.split_lines`
into two spooled files (the training part and the gate part), then uploads both. This times
the split alone on this machine in CPU seconds (one process, one core), for the two upload
formats: a CSV of the 20 features + `converted`, and JSON Lines of raw leads, each written to
temporary files as the function does. The slower format's rate is the one
`leadscore.registry.retraining.SPLIT_BYTES_PER_SECOND` must not exceed.

    .venv/bin/python -m bench.retrain_split [--mb 64] [--json .bench/retrain_split.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

from leadscore.features import FEATURE_NAMES
from leadscore.registry.split import split_lines

ROOT = Path(__file__).resolve().parents[1]


def _csv(path: Path, target_bytes: int, rng: random.Random) -> int:
    with path.open("wb") as out:
        out.write((",".join([*FEATURE_NAMES, "converted"]) + "\n").encode())
        written = 0
        while written < target_bytes:
            row = ",".join(f"{rng.random():.4f}" for _ in FEATURE_NAMES)
            line = f"{row},{int(rng.random() < 0.3)}\n".encode()
            out.write(line)
            written += len(line)
    return path.stat().st_size


def _jsonl(path: Path, target_bytes: int, rng: random.Random) -> int:
    sample = json.loads((ROOT / "events" / "score_request.json").read_text())["body"]
    lead = json.loads(sample) if isinstance(sample, str) else sample
    with path.open("wb") as out:
        written = 0
        while written < target_bytes:
            record = {**lead, "contact_id": f"c{rng.randrange(10**9)}",
                      "converted": int(rng.random() < 0.3)}
            line = (json.dumps(record) + "\n").encode()
            out.write(line)
            written += len(line)
    return path.stat().st_size


def _time_split(path: Path, csv_format: bool) -> float:
    with path.open("rb") as source, tempfile.TemporaryFile() as train, \
            tempfile.TemporaryFile() as gate:
        # CPU time (user + system, the file writes included): on a shared, loaded machine
        # wall time measures the neighbours; one Lambda vCPU is what the limit budgets.
        start = time.process_time()
        split_lines(source, csv_format=csv_format, write_train=train.write,
                    write_gate=gate.write)
        return time.process_time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=64, help="size of each generated upload")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=ROOT / ".bench" / "retrain_split.json")
    args = parser.parse_args()
    rng = random.Random(7)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make, csv_format in (("csv", _csv, True), ("jsonl", _jsonl, False)):
            path = Path(tmp) / f"upload.{name}"
            size = make(path, args.mb * 1024 * 1024, rng)
            seconds = [_time_split(path, csv_format) for _ in range(args.repeats)]
            best, median = min(seconds), sorted(seconds)[len(seconds) // 2]
            results[name] = {"bytes": size, "seconds": seconds,
                             "mb_per_cpu_s_median": round(size / median / 1e6, 1),
                             "mb_per_cpu_s_best": round(size / best / 1e6, 1)}
            print(f"{name}: {size / 1e6:.0f} MB split in {median:.2f} CPU s (median of "
                  f"{args.repeats}) = {size / median / 1e6:.1f} MB per CPU second")
    results["machine"] = {"cpu": platform.processor() or platform.machine(),
                          "python": platform.python_version(),
                          "load_1min": round(os.getloadavg()[0], 2)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"load {results['machine']['load_1min']}; written {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
