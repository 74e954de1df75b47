"""The promote gate against the candidates it must refuse, at full size: ``make bench-gate``.

An 8,000-row champion; candidates trained on 1,000 rows, on a biased upload (three in four
non-conversions dropped), on an upload with 30 % of conversions relabelled, and on 32,000 rows
(genuinely better). Each candidate is measured with the champion on its own upload's gate part
(2,000 rows, corrupted the same way as its upload) and on a clean platform-held set (2,000
newer leads), through `leadscore.registry.gate.measure`: the decision and every statistic of
the rule are printed and written as JSON (``--json``, default .build/gate-candidates.json).
Generated leads (training/generate_leads.py), trained with GATE_HP
(tests/fixtures/gate_candidates.py). Exit 1 when a corrupted candidate is promoted or the
better one refused.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--champion", type=int, default=8000)
    parser.add_argument("--better", type=int, default=32000)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--gate", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=ROOT / ".build" / "gate-candidates.json")
    args = parser.parse_args(argv)

    from leadscore.bundle import load_model
    from leadscore.registry import gate
    from leadscore.settings import PromoteSettings

    from tests.fixtures import gate_candidates as gc

    started = time.perf_counter()
    pool = gc.leads(max(args.better, 3 * args.champion), 41)
    clean_gate = gc.leads(args.gate, 43)
    held = gc.leads(args.gate, 44)
    uploads: dict[str, tuple[list[gc.Row], list[gc.Row]]] = {
        "small": (pool[-args.small:], clean_gate),
        "biased": (gc.biased(pool[args.champion: 2 * args.champion], 1),
                   gc.biased(clean_gate, 2)),
        "label_noise": (gc.label_noise(pool[2 * args.champion: 3 * args.champion], 3),
                        gc.label_noise(clean_gate, 4)),
        "better": (pool[: args.better], clean_gate),
    }
    settings = PromoteSettings()
    holdout, _ = gate.read_rows(gc.csv_bytes(held), jsonl=False, source="2,000 newer clean leads")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        champion_dir = gc.train_on(pool[: args.champion], Path(tmp) / "champion")
        champion = load_model(champion_dir)
        for name, (train_rows, gate_rows) in uploads.items():
            t0 = time.perf_counter()
            bundle_dir = gc.train_on(train_rows, Path(tmp) / name)
            rows, _ = gate.read_rows(gc.csv_bytes(gate_rows), jsonl=False,
                                     source=f"{name} upload's gate part")
            model = load_model(bundle_dir)
            report = gate.measure(model, bundle_dir, settings, rows=rows, holdout=holdout,
                                  champion=champion, counts=gate.claimed_counts(model.manifest))
            sets = report.measured["evaluation_sets"]
            results[name] = {
                "training_rows": len(train_rows),
                "training_conversions": int(sum(int(r["converted"]) for r in train_rows)),
                "promoted": not report.reasons(),
                "reasons": report.reasons(),
                "sets": {k: v.get("champion", {}).get("metrics") for k, v in sets.items()},
                "seconds": round(time.perf_counter() - t0, 1),
            }
            _print(name, results[name])
    expected = {"small": False, "biased": False, "label_noise": False, "better": True}
    ok = all(results[k]["promoted"] == v for k, v in expected.items())
    record = {"sizes": vars(args) | {"json": str(args.json)}, "settings": vars(settings),
              "results": results, "all_as_expected": ok,
              "seconds": round(time.perf_counter() - started, 1),
              "machine": {"cpu": platform.processor() or platform.machine(),
                          "python": platform.python_version()}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2, default=str))
    print(f"{'all as expected' if ok else 'NOT as expected'}; {record['seconds']} s; "
          f"written {args.json}")
    return 0 if ok else 1


def _print(name: str, result: dict[str, Any]) -> None:
    print(f"\n{name}: {result['training_rows']} rows ({result['training_conversions']} "
          f"conversions) -> {'PROMOTED' if result['promoted'] else 'refused'}")
    for set_name, stats in result["sets"].items():
        if not stats:
            continue
        cells = "  ".join(f"{k} {v['candidate']:.4f}/{v['champion']:.4f} "
                          f"loss {v['loss']:+.4f} ub {v['upper_bound']:+.4f}"
                          f"{'' if v['passed'] else ' X'}" for k, v in stats.items())
        print(f"  {set_name}: {cells}")


if __name__ == "__main__":
    sys.exit(main())
