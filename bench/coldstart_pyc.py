"""Cold-start import of the score function on CPython 3.12: layers with and without .pyc.

Lambda mounts layers read-only under /opt, so a layer without .pyc files compiles every
module of numpy, onnxruntime, Powertools, botocore and leadscore again on every cold start
(and cannot keep the result). This builds the two layers as `make build` does, but with
x86_64 wheels so they import on this machine (the code is the same; only native
extensions differ), then imports the score function's app.py in fresh `python3.12`
processes that may not write bytecode (-B, like a read-only /opt):

    no .pyc    every module compiled at import
    .pyc       compiled at build time (compileall, unchecked-hash), as the layer Makefiles do

    python -m bench.coldstart_pyc [--runs 15] [--json .build/bench/coldstart_pyc.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import sys, time
sys.path[:0] = [{task!r}, {opt!r}]
started, cpu = time.perf_counter(), time.process_time()
import app  # noqa: F401
print(time.perf_counter() - started, time.process_time() - cpu)
"""


def python312() -> str:
    found = subprocess.run([str(ROOT / "tools" / "find_python312.sh")], capture_output=True,
                           text=True, check=True)
    return found.stdout.strip()


def build(work: Path, py312: str) -> tuple[Path, Path]:
    opt = work / "opt" / "python"
    task = work / "task"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-compile", "--platform", "manylinux2014_x86_64", "--platform",
         "manylinux_2_28_x86_64", "--python-version", "3.12", "--implementation", "cp",
         "--abi", "cp312", "--only-binary=:all:", "--target", str(opt),
         "-r", str(ROOT / "requirements" / "runtime.txt")],
        check=True)
    shutil.copytree(ROOT / "layers" / "shared" / "python" / "leadscore", opt / "leadscore",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    task.mkdir(parents=True)
    for path in (ROOT / "functions" / "score").glob("*.py"):
        shutil.copy(path, task / path.name)
    return opt, task


def strip_pyc(root: Path) -> None:
    for cache in root.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def compile_pyc(root: Path, py312: str) -> None:
    subprocess.run([py312, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
                    "unchecked-hash", str(root)], check=False, stdout=subprocess.DEVNULL)


def measure(py312: str, opt: Path, task: Path, runs: int) -> list[tuple[float, float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AWS_"))}
    env.update({"PYTHONDONTWRITEBYTECODE": "1", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_LAMBDA_FUNCTION_NAME": "score", "POWERTOOLS_SERVICE_NAME": "score",
                "POWERTOOLS_METRICS_NAMESPACE": "LeadScoring", "OPENBLAS_NUM_THREADS": "1"})
    code = PROBE.format(task=str(task), opt=str(opt))
    times = []
    for _ in range(runs):
        out = subprocess.run([py312, "-B", "-s", "-c", code], capture_output=True, text=True,
                             env=env, check=True, cwd=str(task))
        wall, cpu = out.stdout.strip().splitlines()[-1].split()
        times.append((float(wall) * 1000, float(cpu) * 1000))
    return times


def summary(times: list[tuple[float, float]]) -> dict[str, float]:
    """Wall time (what a cold start waits) and CPU time (what the import costs; steadier on
    a shared machine)."""
    wall = [w for w, _ in times]
    cpu = [c for _, c in times]
    return {"wall_median_ms": round(statistics.median(wall), 1),
            "wall_min_ms": round(min(wall), 1), "cpu_median_ms": round(statistics.median(cpu), 1),
            "cpu_min_ms": round(min(cpu), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", type=Path, default=ROOT / ".build" / "bench" /
                        "coldstart_pyc.json")
    args = parser.parse_args(argv)
    py312 = python312()
    with tempfile.TemporaryDirectory(prefix="coldstart-") as tmp:
        opt, task = build(Path(tmp), py312)
        strip_pyc(opt.parent)
        strip_pyc(task)
        compiled = Path(tmp) / "opt-pyc" / "python"
        shutil.copytree(opt, compiled)
        compile_pyc(compiled, py312)
        without: list[tuple[float, float]] = []
        with_pyc: list[tuple[float, float]] = []
        for _ in range(args.runs):  # interleaved, so machine load hits both alike
            without += measure(py312, opt, task, 1)
            with_pyc += measure(py312, compiled, task, 1)
        version = subprocess.run([py312, "--version"], capture_output=True, text=True).stdout
    result = {"python": version.strip(), "runs": args.runs,
              "import_score_app_without_pyc": summary(without),
              "import_score_app_with_pyc": summary(with_pyc)}
    load = os.getloadavg()[0]
    result["load_average_1min"] = round(load, 1)
    for kind in ("wall", "cpu"):
        result[f"{kind}_median_gain_ms"] = round(
            result["import_score_app_without_pyc"][f"{kind}_median_ms"]
            - result["import_score_app_with_pyc"][f"{kind}_median_ms"], 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
