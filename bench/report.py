"""The benchmark's report: the machine it ran on and the table of figures."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench import metrics
from bench.harness import Run


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
    figures = run.flat
    rows: list[tuple[str, str, str, str, str]] = []

    def ratio(ours: float, orig: float, higher_is_better: bool) -> str:
        if ours == 0 or orig == 0:
            return "n/a"
        factor = (ours / orig) if higher_is_better else (orig / ours)
        return f"{factor:.1f}x better" if factor >= 1 else f"{1 / factor:.1f}x worse"

    def row(label: str, ours: float, orig: float | None, unit: str,
            higher_is_better: bool = False, *, measured_with: str) -> None:
        """`measured_with`: a figure of the same phase, whose load average the row shows."""
        load = run.load_of(measured_with)
        rows.append((
            label, fmt(ours, unit), "—" if orig is None else fmt(orig, unit),
            "" if orig is None else ratio(ours, orig, higher_is_better),
            "—" if load is None else f"{load[0]:.2f} → {load[1]:.2f}",
        ))

    lat = "latency_ms.score_p50"
    row("POST /score p50 (explained)", figures["latency_ms.score_p50"], None, "ms",
        measured_with=lat)
    row("POST /score p99 (explained)", figures["latency_ms.score_p99"], None, "ms",
        measured_with=lat)
    row("POST /score?explain=false p50 (same handler, ONNX vs native models)",
        figures["latency_ms.score_only_p50"], figures["latency_ms.native_score_only_p50"], "ms",
        measured_with=lat)
    row("one-row ensemble inference p50", figures["latency_ms.model_onnx_p50"],
        figures["latency_ms.model_native_p50"], "ms", measured_with=lat)
    warm = run.extra.get("latency_p50_ms_back_to_back", {})
    if warm:
        row("(context) explain=false p50, each variant back to back (cache-warm)",
            float(warm["score_only"]), float(warm["native_score_only"]), "ms",
            measured_with=lat)
        row("(context) one-row inference p50, back to back (cache-warm)",
            float(warm["model_onnx"]), float(warm["model_native"]), "ms", measured_with=lat)
    cpu = run.extra.get("latency_cpu_p50_ms", {})
    if cpu:
        row("(context) POST /score p50 (explained), CPU time of the call", float(cpu["score"]),
            None, "ms", measured_with=lat)
        row("(context) POST /score?explain=false p50, CPU time of the call",
            float(cpu["score_only"]), None, "ms", measured_with=lat)
    if cpu.get("model_onnx") is not None:
        row("(context) one-row inference p50, CPU time of the call", float(cpu["model_onnx"]),
            None, "ms", measured_with=lat)
    one_node = run.extra.get("latency_p50_ms", {}).get("model_onnx_one_node")
    if one_node is not None:
        row("(context) a one-node ONNX graph (Relu) in the same loop: any onnxruntime call "
            "there, vs the original's one row", float(one_node), figures["latency_ms."
            "model_native_p50"], "ms", measured_with=lat)
    one_thread = run.extra.get("latency_p50_ms", {}).get("model_native_one_thread")
    if one_thread is not None:
        row("(context) one-row inference p50, original's models pinned to 1 thread",
            figures["latency_ms.model_onnx_p50"], float(one_thread), "ms", measured_with=lat)
    row("cold start (imports + model load + first answer, median)",
        figures["cold_start_ms.onnx"], figures["cold_start_ms.native"], "ms",
        measured_with="cold_start_ms.onnx")
    row(f"batch of {run.cfg.batch_rows} (ours: 1 thread, original: library default)",
        figures["batch_rows_per_s.onnx"],
        figures["batch_rows_per_s.native"], "rows/s", higher_is_better=True,
        measured_with="batch_rows_per_s.onnx")
    best = run.extra.get("batch_rows_per_s_best_repeat")
    if best:
        row(f"(context) batch of {run.cfg.batch_rows}, fastest of "
            f"{run.cfg.batch_repeats} repeats each", float(best["onnx"]), float(best["native"]),
            "rows/s", higher_is_better=True, measured_with="batch_rows_per_s.onnx")
    if "batch_rows_per_s_cpu_onnx" in run.extra:
        row(f"(context) batch of {run.cfg.batch_rows}, ours per CPU second (1 thread)",
            float(run.extra["batch_rows_per_s_cpu_onnx"]), None, "rows/s",
            measured_with="batch_rows_per_s.onnx")
    row("package (unzipped)", figures["package_mb.onnx"], figures["package_mb.native"], "MB",
        measured_with="package_mb.onnx")
    row(f"held-out AUC (Bayes limit {figures['quality.bayes_auc']:.4f})",
        figures["quality.auc"], figures["quality.original_auc"], "", higher_is_better=True,
        measured_with="quality.auc")
    row(f"held-out Brier (Bayes limit {figures['quality.bayes_brier']:.4f})",
        figures["quality.brier"], figures["quality.original_brier"], "",
        measured_with="quality.auc")
    row("interval coverage of true probability (95 % interval)", figures["interval.coverage"],
        figures["interval.original_coverage"], "", higher_is_better=True,
        measured_with="quality.auc")
    row("interval mean width", figures["interval.mean_width"],
        figures["interval.original_mean_width"], "", measured_with="quality.auc")
    row("contribution error vs exact Shapley (relative L1)",
        figures["contributions.relative_l1_error"],
        figures["contributions.original_relative_l1_error"], "",
        measured_with="contributions.relative_l1_error")
    row("training time (8,000 rows)" if run.cfg.train_rows == 8000
        else f"training time ({run.cfg.train_rows} rows)",
        figures["training_seconds"], float(run.extra["original_training_seconds"]), "s",
        measured_with="training_seconds")
    host = meta["machine"]
    lines = [
        f"Measured {meta['date']} on {host['cpu']}, {host['cores']} cores, Python {host['python']} "
        f"(load average at start {host['load_average_1_5_15']}, at end "
        f"{host.get('load_average_at_end')}); `make bench` took "
        f"{meta['total_seconds']:.0f} s.",
        "",
        f"| metric | ours (ONNX) | original (native) | ratio | load average, 1 min (start → "
        f"end of its phase; {host['cores']} cores, {host['cpu']}) |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [f"| {label} | {ours} | {orig} | {ratio_text} | {load} |"
              for label, ours, orig, ratio_text, load in rows]
    for title, targets in (("target (first-round speed)", metrics.check_targets(figures)),
                           ("target (honest interval, back under a millisecond)",
                            metrics.check_speed_targets(figures, cpu_p50_ms=cpu or None))):
        lines += ["", f"| {title} | result | measured |", "|---|---|---|"]
        for target in targets:
            verdict = "PASS" if target.passed else "MISS"
            lines.append(f"| {target.name} | {verdict} | {target.detail} |")
    return "\n".join(lines) + "\n"


