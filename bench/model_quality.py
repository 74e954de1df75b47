"""Model-quality benchmarks: small data, the interval, monotone constraints, speed.

    .venv/bin/python -m bench.model_quality [--part small|interval|constraints|speed|all]

- small: the original system's own test fixture, rebuilt from its description (500 leads,
  20 features drawn uniformly on [0, 1], the outcome driven by 3 of them:
  P(converted) = sigmoid(1.6 (x0 + x1 + x2 - 1.5)), a Bayes AUC of 0.705 on a large sample),
  split 80/20 stratified like the original (random_state = the seed): the 400 training leads
  are what a training job fits on. Scored on 20,000 FRESH leads of the same distribution (a
  100-lead held-out split cannot tell 0.01 of AUC from noise): the served model, each of its
  parts, a cross-validated logistic regression (LogisticRegressionCV, 5 folds, on the same
  400 leads) and the Bayes limit (true probability). Seeds 42-46 plus two seeds never used to
  choose anything (SMALL_UNSEEN_SEEDS).
- interval: coverage of the true probability by the 95 % interval on generated leads, at
  2k / 8k / 32k exported rows (each fitted on what a retraining job fits on: the export minus
  the gate's part minus the job's held-out split), for 4 generator seeds never used to choose
  the method (INTERVAL_EVAL_SEEDS), overall and for hot leads, with the mean width; beside it
  the per-lead jackknife of the fold ensembles that the served width model stands for.
- constraints: wrong-direction rates in monotone sweeps and the Bayes ratios, with and
  without the monotone constraints, on one fresh seed.
- speed: wall time of fit_ensemble at 200k and 1M rows, and held-out AUC.

Heavy: run under `nice`, with OMP_NUM_THREADS=1 on a shared machine. Results go to
.bench/model_quality.json and a markdown table to .bench/model_quality.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from leadscore.classes import DEFAULT_CLASS_THRESHOLDS

REPO = Path(__file__).resolve().parents[1]

SMALL_SEEDS = (42, 43, 44, 45, 46)
SMALL_UNSEEN_SEEDS = (610_001, 610_002)  # never used to choose the method or its settings
SMALL_ROWS = 500
SMALL_FRESH_ROWS = 20_000
SMALL_FRESH_OFFSET = 1_000_000  # fresh leads of seed s come from generator seed s + this
SMALL_DRIVERS = (0, 1, 2)  # psychological_commitment_score, urgency_score, motivation_intensity
INTERVAL_EVAL_SEEDS = (510_001, 510_002, 510_003, 510_004)  # never used to choose the method
INTERVAL_SIZES = (2_000, 8_000, 32_000)  # exported rows (fitted_rows gives what is fitted)
HELD_OUT_ROWS = 4_000
HOT = DEFAULT_CLASS_THRESHOLDS["hot"]  # a hot lead, as the product classes it


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return out


def original_fixture(seed: int, n: int = SMALL_ROWS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, true probability) of the original's 500-lead test fixture (see module doc)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, size=(n, 20))
    p = _sigmoid(1.6 * (X[:, list(SMALL_DRIVERS)].sum(axis=1) - 1.5))
    y = (rng.uniform(size=n) < p).astype(np.int64)
    return X, y, p


def _directions() -> list[int]:
    from leadscore.features import FEATURE_DIRECTIONS, FEATURE_NAMES

    return [int(FEATURE_DIRECTIONS[n]) for n in FEATURE_NAMES]


def _fit(X: np.ndarray, y: np.ndarray, seed: int, **hp: Any) -> Any:
    from lead_ensemble.ensemble import Hyperparameters, fit_ensemble

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_ensemble(X, y, Hyperparameters.from_mapping({"seed": seed, **hp}),
                            directions=_directions())


def small_data(seeds: Sequence[int] = SMALL_SEEDS,
               unseen: Sequence[int] = SMALL_UNSEEN_SEEDS) -> dict[str, Any]:
    from lead_ensemble.ensemble import PART_NAMES
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    rows = []
    for seed in (*seeds, *unseen):
        X, y, _ = original_fixture(seed)
        Xf, yf, pf = original_fixture(seed + SMALL_FRESH_OFFSET, SMALL_FRESH_ROWS)
        tr, _ = train_test_split(np.arange(y.size), test_size=0.2, random_state=seed, stratify=y)
        t0 = time.perf_counter()
        ens = _fit(X[tr], y[tr], seed)
        fit_s = time.perf_counter() - t0
        out = ens.predict_native(Xf)
        logits = ens.served.logits(Xf)
        parts = {name: float(roc_auc_score(yf, logits[:, i]))
                 for i, name in enumerate(PART_NAMES)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lr = LogisticRegressionCV(cv=5, max_iter=2000).fit(X[tr], y[tr])
        rows.append({
            "seed": seed,
            "unseen": seed in unseen,
            "fresh_leads": int(yf.size),
            "served_auc": float(roc_auc_score(yf, out.score)),
            "best_base_auc": max(parts.values()),
            "base_auc": parts,
            "logistic_cv_auc": float(roc_auc_score(yf, lr.predict_proba(Xf)[:, 1])),
            "bayes_auc": float(roc_auc_score(yf, pf)),
            "combiner": ens.combiner,
            "weights": [round(float(w), 4) for w in ens.weights],
            "dropped": list(ens.dropped),
            "fit_seconds": round(fit_s, 2),
        })
        print(json.dumps(rows[-1]), flush=True)
    keys = ("served_auc", "best_base_auc", "logistic_cv_auc", "bayes_auc")

    def mean_of(sel: list[dict[str, Any]]) -> dict[str, float]:
        return {k: float(np.mean([r[k] for r in sel])) for k in keys}

    mean = mean_of([r for r in rows if not r["unseen"]])
    unseen_rows = [r for r in rows if r["unseen"]]
    mean_unseen = mean_of(unseen_rows) if unseen_rows else None
    return {
        "rows": rows,
        "mean": mean,
        "mean_unseen": mean_unseen,
        "mean_at_least_logistic_minus_001": mean["served_auc"] >= mean["logistic_cv_auc"] - 0.01,
        "unseen_each_at_least_logistic_minus_001": all(
            r["served_auc"] >= r["logistic_cv_auc"] - 0.01 for r in unseen_rows),
    }


def _leads(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from generate_leads import generate_leads, to_feature_frame
    from leadscore.features import FEATURE_NAMES

    rows = to_feature_frame(generate_leads(n, seed))
    X = np.array([[r[f] for f in FEATURE_NAMES] for r in rows], dtype=np.float64)
    y = np.array([int(r["converted"]) for r in rows], dtype=np.int64)
    p = np.array([float(r["true_probability"]) for r in rows], dtype=np.float64)
    return X, y, p


def fitted_rows(exported: int) -> int:
    """Rows a retraining job fits on from an export of `exported` labelled rows: the gate keeps
    its part (registry/split.py), the job holds out its test split (train.py)."""
    from leadscore.registry.split import GATE_FRACTION
    from train import JobConfig

    test_size = JobConfig.__dataclass_fields__["test_size"].default
    return round(exported * (1.0 - GATE_FRACTION) * (1.0 - float(test_size)))


def _coverage(lo: np.ndarray, hi: np.ndarray, truth: np.ndarray, hot: np.ndarray
              ) -> dict[str, Any]:
    inside = (lo <= truth) & (truth <= hi)
    return {"coverage": float(inside.mean()),
            "hot_coverage": float(inside[hot].mean()) if hot.any() else None,
            "mean_width": float(np.mean(hi - lo))}


def interval(seeds: Sequence[int] = INTERVAL_EVAL_SEEDS,
             sizes: Sequence[int] = INTERVAL_SIZES, **hp: Any) -> dict[str, Any]:
    rows = []
    for seed in seeds:
        X, y, p = _leads(fitted_rows(max(sizes)) + HELD_OUT_ROWS, seed)
        Xh, ph = X[-HELD_OUT_ROWS:], p[-HELD_OUT_ROWS:]
        for n in sizes:
            fitted = fitted_rows(n)
            t0 = time.perf_counter()
            ens = _fit(X[:fitted], y[:fitted], seed, **hp)
            fit_s = time.perf_counter() - t0
            out = ens.predict_native(Xh)
            hot = out.score >= HOT
            served = _coverage(out.interval[:, 0], out.interval[:, 1], ph, hot)
            # what the width model stands for: the folds' own jackknife se, lead by lead
            z = np.log(out.score) - np.log1p(-out.score)
            folds = ens.interval_from(z, ens.fold_se(Xh))
            rows.append({
                "seed": seed, "rows": n, "fitted_rows": fitted, **served,
                "hot_leads": int(hot.sum()),
                "fold_jackknife": _coverage(folds[:, 0], folds[:, 1], ph, hot),
                "fit_seconds": round(fit_s, 1),
            })
            print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for n in sizes:
        sel = [r for r in rows if r["rows"] == n]
        hots = [r["hot_coverage"] for r in sel if r["hot_coverage"] is not None]
        summary[str(n)] = {
            "fitted_rows": fitted_rows(n),
            "coverage_mean": float(np.mean([r["coverage"] for r in sel])),
            "coverage_min": float(np.min([r["coverage"] for r in sel])),
            "hot_coverage_mean": float(np.mean(hots)) if hots else None,
            "hot_coverage_min": float(np.min(hots)) if hots else None,
            "mean_width": float(np.mean([r["mean_width"] for r in sel])),
            "fold_jackknife_coverage_mean": float(np.mean(
                [r["fold_jackknife"]["coverage"] for r in sel])),
            "fold_jackknife_mean_width": float(np.mean(
                [r["fold_jackknife"]["mean_width"] for r in sel])),
        }
    return {"rows": rows, "by_size": summary}


CONSTRAINT_SEED = 520_001
CONSTRAINT_ROWS = 8_000
SWEEP_ROWS = 200


def constraints(seed: int = CONSTRAINT_SEED) -> dict[str, Any]:
    """Wrong-direction rates and Bayes ratios with the monotone constraints on and off."""
    from lead_ensemble.checks import wrong_direction_rates
    from lead_ensemble.ensemble import sigmoid
    from leadscore import metrics
    from leadscore.features import FEATURE_NAMES

    X, y, p = _leads(CONSTRAINT_ROWS + HELD_OUT_ROWS, seed)
    Xh, yh, ph = X[-HELD_OUT_ROWS:], y[-HELD_OUT_ROWS:], p[-HELD_OUT_ROWS:]
    bayes_auc, bayes_brier = metrics.auc(yh, ph), metrics.brier(yh, ph)
    out: dict[str, Any] = {"seed": seed, "rows": CONSTRAINT_ROWS}
    for label, monotone in (("monotone", 1), ("unconstrained", 0)):
        ens = _fit(X[:CONSTRAINT_ROWS], y[:CONSTRAINT_ROWS], seed, monotone=monotone)
        score = ens.predict_native(Xh).score

        def served(x: np.ndarray, e: Any = ens) -> np.ndarray:
            return np.asarray(sigmoid(e.combine(e.served.logits(x))))

        rates = wrong_direction_rates(served, Xh[:SWEEP_ROWS], _directions(), FEATURE_NAMES)
        visible = wrong_direction_rates(served, Xh[:SWEEP_ROWS], _directions(), FEATURE_NAMES,
                                        tolerance=1e-3)
        out[label] = {
            "wrong_direction_visible_mean": float(np.mean(list(visible.values()))),
            "wrong_direction_visible_max": float(np.max(list(visible.values()))),
            "auc_ratio": metrics.auc(yh, score) / bayes_auc,
            "brier_ratio": metrics.brier(yh, score) / bayes_brier,
            "wrong_direction_mean": float(np.mean(list(rates.values()))),
            "wrong_direction_max": float(np.max(list(rates.values()))),
            "wrong_direction_by_feature": rates,
            "weights": [round(float(w), 4) for w in ens.weights],
        }
        print(json.dumps({label: {k: v for k, v in out[label].items()
                                  if k != "wrong_direction_by_feature"}}), flush=True)
    return out


SPEED_SIZES = (200_000, 1_000_000)
SPEED_SEED = 530_001
SPEED_TARGETS = {200_000: 60.0, 1_000_000: 300.0}
SPEED_HELD_OUT_ROWS = 20_000


def speed(sizes: Sequence[int] = SPEED_SIZES, *, quality_check: bool = True) -> dict[str, Any]:
    """Wall and CPU time of the whole fit (5 folds + served models) at 200k and 1M rows.

    The leads are generated once into .bench/ (the generator is pure Python: minutes for 1M).
    Then, untimed, the quality check of the network's row cap: the smallest size fitted again
    with the network on four times the cap (``mlp_max_rows``; the full-batch network on every
    row of 200k would take longer than the rest of the bench; the OpenMP wait policy changes
    no result), and the two held-out AUCs compared (aim: within 0.002).
    """
    import os
    import resource

    from generate_leads import generate_leads, to_feature_frame, write_csv
    from leadscore import metrics
    from leadscore.features import FEATURE_NAMES

    def leads(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        path = REPO / ".bench" / f"leads_{n}_{seed}.csv"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_csv(to_feature_frame(generate_leads(n, seed)), path)
        data = np.genfromtxt(path, delimiter=",", names=True)
        features = np.column_stack([data[name] for name in FEATURE_NAMES]).astype(np.float64)
        return features, data["converted"].astype(np.int64)

    # Training rows from one seed, the 20,000 held-out rows from another: every size trains on
    # exactly its number of rows (1,000,000 means 1,000,000).
    X, y = leads(max(sizes), SPEED_SEED)
    X_held, y_held = leads(SPEED_HELD_OUT_ROWS, SPEED_SEED + 1)
    rows = []
    for n in sizes:
        n = min(n, len(y))
        load_before = os.getloadavg()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        ens = _fit(X[:n], y[:n], SPEED_SEED)
        wall = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        score = ens.predict_native(X_held).score
        target = SPEED_TARGETS.get(n)
        rows.append({"rows": n, "fit_wall_seconds": round(wall, 1),
                     "fit_cpu_seconds": round(cpu, 1),
                     "held_out_auc": metrics.auc(y_held, score),
                     "seconds_by_model": {k: round(v, 1)
                                          for k, v in ens.training_seconds.items()},
                     "target_seconds": target,
                     "met": None if target is None else wall <= target,
                     "load_average_before_after": [round(load_before[0], 2),
                                                   round(os.getloadavg()[0], 2)]})
        print(json.dumps(rows[-1]), flush=True)
    out: dict[str, Any] = {"rows": rows}
    if quality_check and rows:
        n = rows[0]["rows"]
        from lead_ensemble.ensemble import Hyperparameters

        reference = _fit(X[:n], y[:n], SPEED_SEED,
                         mlp_max_rows=min(n, 4 * Hyperparameters().mlp_max_rows))
        auc = metrics.auc(y_held, reference.predict_native(X_held).score)
        change = rows[0]["held_out_auc"] - auc
        out["quality_check"] = {"rows": n, "uncapped_mlp_auc": auc,
                                "capped_mlp_auc": rows[0]["held_out_auc"],
                                "auc_change": change, "within_0.002": abs(change) <= 0.002}
        print(json.dumps(out["quality_check"]), flush=True)
    return out


PARTS: dict[str, Callable[[], dict[str, Any]]] = {
    "small": small_data, "interval": interval, "constraints": constraints, "speed": speed,
}


def markdown(results: dict[str, Any]) -> str:
    """The tables docs/BENCHMARKS.md shows, from .bench/model_quality.json."""
    out: list[str] = []
    if "interval" in results:
        out += ["| exported rows (fitted) | coverage (mean, min over seeds) | hot leads (mean, "
                "min) | mean width | per-lead fold jackknife: coverage, width |",
                "|---:|---:|---:|---:|---:|"]
        for n, r in results["interval"]["by_size"].items():
            hot = (f"{r['hot_coverage_mean']:.1%}, {r['hot_coverage_min']:.1%}"
                   if r["hot_coverage_mean"] is not None else "-")
            folds = (f"{r['fold_jackknife_coverage_mean']:.1%}, "
                     f"{r['fold_jackknife_mean_width']:.3f}"
                     if "fold_jackknife_coverage_mean" in r else "-")
            out.append(f"| {int(n):,} ({r.get('fitted_rows', int(n)):,}) | "
                       f"{r['coverage_mean']:.1%}, {r['coverage_min']:.1%} | "
                       f"{hot} | {r['mean_width']:.3f} | {folds} |")
        out.append("")
    if "small" in results:
        out += ["| seed | served | best part | CV logistic regression | Bayes limit | combiner "
                "(parts dropped) |", "|---:|---:|---:|---:|---:|---|"]
        for r in results["small"]["rows"]:
            seed = f"{r['seed']} (unseen)" if r.get("unseen") else str(r["seed"])
            dropped = f" ({', '.join(r['dropped'])})" if r.get("dropped") else ""
            out.append(f"| {seed} | {r['served_auc']:.3f} | {r['best_base_auc']:.3f} | "
                       f"{r['logistic_cv_auc']:.3f} | {r['bayes_auc']:.3f} | "
                       f"{r['combiner']}{dropped} |")
        for label, key in (("mean, tuning seeds", "mean"), ("mean, unseen seeds", "mean_unseen")):
            mean = results["small"].get(key)
            if mean:
                out.append(f"| {label} | {mean['served_auc']:.3f} | "
                           f"{mean['best_base_auc']:.3f} | {mean['logistic_cv_auc']:.3f} | "
                           f"{mean['bayes_auc']:.3f} | |")
        out.append("")
    if "constraints" in results:
        c = results["constraints"]
        out += [f"| {c['rows']:,} rows, seed {c['seed']} | wrong-direction steps, any size "
                "(mean, worst feature) | steps > 0.001 (mean, worst) | AUC / Bayes | "
                "Brier / Bayes |", "|---|---:|---:|---:|---:|"]
        for label in ("unconstrained", "monotone"):
            r = c[label]
            visible = (f"{r['wrong_direction_visible_mean']:.2%}, "
                       f"{r['wrong_direction_visible_max']:.2%}"
                       if "wrong_direction_visible_mean" in r else "-")
            out.append(f"| {label} | {r['wrong_direction_mean']:.2%}, "
                       f"{r['wrong_direction_max']:.2%} | {visible} | {r['auc_ratio']:.4f} | "
                       f"{r['brier_ratio']:.4f} |")
        out.append("")
    if "speed" in results:
        out += ["| rows | fit wall s | fit CPU s | held-out AUC | target s | load before, after |",
                "|---:|---:|---:|---:|---:|---|"]
        for r in results["speed"]["rows"]:
            load = r.get("load_average_before_after", ["-", "-"])
            out.append(f"| {r['rows']:,} | {r['fit_wall_seconds']} | {r['fit_cpu_seconds']} | "
                       f"{r['held_out_auc']:.4f} | {r['target_seconds']} | "
                       f"{load[0]}, {load[1]} |")
        check = results["speed"].get("quality_check")
        if check:
            out += ["", f"Quality at {check['rows']:,} rows: AUC {check['capped_mlp_auc']:.4f} "
                        f"with the MLP capped at 100,000 rows vs {check['uncapped_mlp_auc']:.4f} "
                        f"on every row (change {check['auc_change']:+.4f}; aim within 0.002)."]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=[*PARTS, "all"], default="all")
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "model_quality.json")
    parser.add_argument("--speed-sizes", default=",".join(str(n) for n in SPEED_SIZES),
                        help="training sizes of the speed part (default 200000,1000000)")
    args = parser.parse_args(argv)
    sizes = tuple(int(v) for v in args.speed_sizes.split(","))
    PARTS["speed"] = lambda: speed(sizes)
    parts = list(PARTS) if args.part == "all" else [args.part]
    results: dict[str, Any] = {}
    if args.out.is_file():
        results = json.loads(args.out.read_text())
    for name in parts:
        results[name] = PARTS[name]()
        print(json.dumps({name: results[name]}, indent=1, default=str))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
