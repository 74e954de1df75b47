"""What a long training job says while it works: rows read, each model's fit, an ETA.

A 41k-row export took 36 s and a 200 MB one 7 minutes without a word, so a person could not
tell a working job from a stuck one. `train.main` switches the messages on (stdout, flushed,
so SageMaker's log stream shows them as they happen); library calls and tests stay quiet.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping

_STATE = {"on": False, "started": time.perf_counter()}
ROWS_EVERY = 50_000  # a "rows read" line per this many records of a large file


def enable(on: bool = True) -> None:
    _STATE["on"] = on
    _STATE["started"] = time.perf_counter()


def say(message: str) -> None:
    if _STATE["on"]:
        elapsed = time.perf_counter() - float(_STATE["started"])
        print(f"[{elapsed:7.1f} s] {message}", file=sys.stdout, flush=True)


class FitProgress:
    """Per fitted fold: each model's seconds and the fit's ETA (the folds take about the same
    time; the served refit on all rows about 1 / (1 - 1/folds) of one fold)."""

    def __init__(self, folds: int) -> None:
        self.folds = folds
        self.started = time.perf_counter()
        self.last: dict[str, float] = {}

    def __call__(self, step: str, timings: Mapping[str, float]) -> None:
        spent = {k: v - self.last.get(k, 0.0) for k, v in timings.items()
                 if k in ("xgboost", "lightgbm", "neural_network", "linear")}
        self.last = dict(timings)
        models = ", ".join(f"{k} {v:.1f} s" for k, v in spent.items())
        elapsed = time.perf_counter() - self.started
        done = step.startswith("fold ")
        eta = ""
        if done:
            k = int(step.split()[1].split("/")[0])
            per_fold = elapsed / k
            remaining = per_fold * (self.folds - k) + per_fold * self.folds / max(
                self.folds - 1, 1)
            eta = f"; fit ETA {remaining:.0f} s"
        say(f"fit {step}: {models}{eta}")
