"""Fifty locations' own models served by one process: /score p99 after each model's first
load, the first load itself, and the process's memory against the template's 1,024 MB.

One store on disk holds the agency's champion and a champion for each of N locations (the
recorded real-estate bundle re-issued as N versions, or `--bundle DIR` re-issued). The score
function runs in process with LOCATION_MODELS on and AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1024
(the cache's budget is its share of that), driven through `lambda_handler` with API Gateway
events (parsing, routing, logging and metrics included):

* phase "one model" (the baseline, measured in the same run): the same requests with
  LOCATION_MODELS off, every lead answered by the agency's one champion;
* phase "rotation": the N locations in turn, R rounds; each location's first request loads
  its model (timed apart), the following requests (`--requests` per location per round, each
  with a new contact id so no answer comes from the answer cache) are the "after first load"
  latencies: p50/p99 over all of them and the worst location's p99;
* phase "eviction" (`--evict-models K`, `--evict-rounds`): the same rotation with a budget of
  K models' bytes, so the cache keeps dropping and re-loading: the loads and the memory stay
  bounded (the resident memory at each round's start shows whether it levels off);
* phase "refresh" (skip with `--no-refresh`): a new champion promoted for every location
  while the container serves; pointers are checked every second on a background thread that
  no request waits for, so each location is answered by its old model until the new one has
  loaded: the latencies while 50 models are replaced against a steady round before, and
  which model answered;
* phase "memory": the N models loaded by a `LocationModels` alone (no requests, so no answer
  cache grows): the resident memory each further model adds, against the bytes the cache
  counts for it.

Peak RSS is the process's VmHWM (Linux). With each phase: the 1-minute load average, the
machine's CPU busy share and this process's CPU seconds (the machine may be shared: read the
latencies with them), and each request's CPU time on the answering thread beside its wall
time (the difference is time spent waiting for a CPU).

    nice -n 10 .venv/bin/python -m bench.location_models [--locations 50] [--rounds 2]
        [--requests 40] [--evict-models 10] [--bundle DIR [--request BODY.json]] [--no-refresh]
        [--out .bench/location_models.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.blas_pin import REPO  # first: BLAS reads the thread count when numpy loads

# isort: split
from leadscore import bundle
from leadscore.bundle import location_root
from leadscore.scoring.location_models import bundle_bytes, counted_bytes

from tests.fixtures.location_store import place_champion, reissued
from tools.api_event import api_event
from tools.lambda_context import lambda_context

RECORDED = REPO / "tests" / "scoring" / "default_contract" / "bundle"
MEMORY_MB = 1024  # template.yaml's ScoreFunction MemorySize
REFRESH_SECONDS = 1  # the refresh phase's pointer checks (the template's default is 60)
REFRESH_ROUNDS = 2
SETTLE_SECONDS = 20.0


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def rss_mb() -> float:
    return round(_rss_kb("VmRSS") / 1024, 1)


def peak_mb() -> float:
    return round(_rss_kb("VmHWM") / 1024, 1)


def load_1min() -> float:
    return round(os.getloadavg()[0], 2)


def _cpu_ticks() -> tuple[int, int]:
    """The machine's (busy, total) CPU ticks since boot (/proc/stat's first line)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


class CpuWatch:
    """What the CPUs did during a phase: this process's CPU seconds, and how busy the whole
    machine was (every process: a shared machine's other work shows here)."""

    def __init__(self) -> None:
        self._ticks = _cpu_ticks()
        self._process = time.process_time()
        self._wall = time.perf_counter()

    def figures(self) -> dict[str, Any]:
        busy0, total0 = self._ticks
        busy1, total1 = _cpu_ticks()
        wall = time.perf_counter() - self._wall
        cpus = os.cpu_count() or 1
        return {"cpus": cpus, "cpu_model": cpu_model(),
                "process_cpu_seconds": round(time.process_time() - self._process, 2),
                "process_cpu_share": round((time.process_time() - self._process)
                                           / max(wall, 1e-9), 3),
                "machine_cpu_busy_pct": (round(100 * (busy1 - busy0) / (total1 - total0), 1)
                                         if total1 > total0 else None)}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("model name", "Model", "CPU part"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def build_store(source: Path, work: Path, n: int) -> tuple[Path, list[str], int]:
    store = work / "store"
    place_champion(store, source)
    locations = [f"bench-loc-{i:03d}" for i in range(n)]
    size = 0  # what the cache counts for the biggest
    for loc in locations:
        directory = reissued(work / "bundles" / loc, loc, source)
        size = max(size, counted_bytes(directory))
        place_champion(store, directory, location_root(loc))
    return store, locations, size


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return round(ordered[index], 3)


def _env(store: Path, cache: Path, budget: int | None, per_location: bool = True) -> None:
    for key in ("CACHE_TABLE", "WRITEBACK_QUEUE_URL", "WEBHOOK_DEDUP_TABLE",
                "INSTALLATIONS_TABLE"):
        os.environ.pop(key, None)
    os.environ.update({
        "MODEL_URI": f"file://{store}/{bundle.CHAMPION_POINTER_KEY}",
        "MODEL_CACHE_DIR": str(cache), "LOCATION_MODELS": "true" if per_location else "false",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(MEMORY_MB),
        "POWERTOOLS_SERVICE_NAME": "score", "POWERTOOLS_METRICS_NAMESPACE": "LeadScoring",
        "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING",
        "LOG_LEVEL": "WARNING", "MODEL_REFRESH_SECONDS": "60",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    })
    if budget is None:
        os.environ.pop("LOCATION_MODEL_BYTES", None)
    else:
        os.environ["LOCATION_MODEL_BYTES"] = str(budget)


def _call(app: Any, template: dict[str, Any], location: str,
          ) -> tuple[float, float, dict[str, Any]]:
    """One /score request through the handler: its wall milliseconds, the CPU milliseconds
    of the thread that answered it (a background refresh's work is not in it; a wait for a
    CPU is in the wall time only), and the answer."""
    body = {**template, "contact_id": f"c-{uuid.uuid4().hex[:12]}", "location_id": location}
    event = api_event("/score", json.dumps(body).encode(), {})
    cpu = time.thread_time()
    started = time.perf_counter()
    answer = app.lambda_handler(event, lambda_context(request_id="bench"))
    elapsed = (time.perf_counter() - started) * 1e3
    cpu_ms = (time.thread_time() - cpu) * 1e3
    if answer.get("statusCode") != 200:
        raise RuntimeError(f"{answer.get('statusCode')}: {str(answer.get('body'))[:300]}")
    return elapsed, cpu_ms, json.loads(answer["body"])


def _spread(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p99": percentile(values, 99),
            "max": round(max(values), 3)}


def run_phase(name: str, app: Any, locations: list[str], rounds: int, requests: int,
              template: dict[str, Any], scope: str = "location") -> dict[str, Any]:
    app.set_container(None)
    load_start = load_1min()
    first: list[float] = []
    after: list[float] = []
    after_cpu: list[float] = []
    per_location: dict[str, list[float]] = {loc: [] for loc in locations}
    wrong_scope = 0
    started = time.perf_counter()
    cpu = CpuWatch()
    rss_one_model = 0.0
    # the handler still formats its logs and EMF metrics, as in Lambda; the terminal is spared
    rss_by_round: list[float] = []
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        for _ in range(rounds):
            rss_by_round.append(rss_mb())
            for loc in locations:
                ms, _, answer = _call(app, template, loc)
                first.append(ms)
                rss_one_model = rss_one_model or rss_mb()
                wrong_scope += answer.get("model_scope") != scope
                for _ in range(requests):
                    ms, cpu_ms, answer = _call(app, template, loc)
                    after.append(ms)
                    after_cpu.append(cpu_ms)
                    per_location[loc].append(ms)
                    wrong_scope += answer.get("model_scope") != scope
    models = app.container().scorer.models
    loads = [x.seconds * 1e3 for x in models.loads] if models is not None else []
    sizes = [x.bytes / 2**20 for x in models.loads] if models is not None else []
    result = {
        "phase": name,
        "locations": len(locations), "rounds": rounds, "requests_after_first": len(after),
        "budget_bytes": models.budget_bytes if models else None,
        "cached_models": len(models.cached()) if models else None,
        "cached_bytes": models.total_bytes if models else None,
        "evictions": models.evictions if models else None,
        f"answers_not_from_{scope}_scope": wrong_scope,
        "first_request_ms": {"p50": percentile(first, 50), "p99": percentile(first, 99),
                             "max": round(max(first), 3)},
        "model_load_ms": {"count": len(models.loads), **_spread(loads),
                          "p99": percentile(loads, 99)} if loads else None,
        "counted_mb_per_model": {"min": round(min(sizes), 3), "max": round(max(sizes), 3)}
        if sizes else None,
        "after_first_load_ms": {"p50": percentile(after, 50), "p99": percentile(after, 99),
                                "worst_location_p99": max(percentile(v, 99)
                                                          for v in per_location.values())},
        # the answering thread's CPU time: what a request costs when it gets a CPU at once
        "after_first_load_cpu_ms": {"p50": percentile(after_cpu, 50),
                                    "p99": percentile(after_cpu, 99)},
        "rss_mb": rss_mb(), "peak_rss_mb": peak_mb(), "memory_setting_mb": MEMORY_MB,
        "peak_rss_within_setting": peak_mb() <= MEMORY_MB,
        "rss_with_one_model_mb": rss_one_model,
        # at the start of each round and at the end: a churning cache must level off
        "rss_by_round_mb": [*rss_by_round, rss_mb()],
        # what each further model added to the process (resident memory, not file bytes)
        "rss_per_further_model_mb": round((rss_mb() - rss_one_model)
                                          / max(1, len(locations) - 1), 3),
        "seconds": round(time.perf_counter() - started, 1),
        "load_1min": [load_start, load_1min()], **cpu.figures(),
    }
    print(json.dumps(result), flush=True)
    return result


def refresh_phase(app: Any, store: Path, source: Path, work: Path, locations: list[str],
                  requests: int, template: dict[str, Any]) -> dict[str, Any]:
    """Every location's champion replaced while its old one serves: each location's models
    are checked every REFRESH_SECONDS on a background thread (no wait), so the requests that
    follow a promotion are answered by the old model until the new one has loaded. The
    latencies of those rounds against a round of the same container before the promotions."""
    _env(store, work / "cache-refresh", None)
    os.environ["MODEL_REFRESH_SECONDS"] = str(REFRESH_SECONDS)
    app.set_container(None)
    steady: list[float] = []
    during: list[float] = []
    served: dict[str, list[str]] = {loc: [] for loc in locations}
    old: dict[str, str] = {}
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        for loc in locations:  # first loads, then a steady round
            old[loc] = _call(app, template, loc)[2]["model_version"]
        for loc in locations:
            steady.extend(_call(app, template, loc)[0] for _ in range(requests))
        new = {loc: place_champion(store, reissued(work / "bundles-new" / loc,
                                                   f"{loc} refreshed", source),
                                   location_root(loc)) for loc in locations}
        time.sleep(REFRESH_SECONDS * 1.1)  # every location's check is due
        load_start, cpu = load_1min(), CpuWatch()
        started = time.perf_counter()
        for _ in range(REFRESH_ROUNDS):
            for loc in locations:
                for _ in range(requests):
                    ms, _, answer = _call(app, template, loc)
                    during.append(ms)
                    served[loc].append(answer["model_version"])
        seconds = time.perf_counter() - started
        # a location whose new model is still loading (a busy machine) is asked again until
        # it answers with it: the phase checks that every refresh lands, not only the fast
        deadline = time.perf_counter() + SETTLE_SECONDS
        for loc in locations:
            while served[loc][-1] != new[loc] and time.perf_counter() < deadline:
                time.sleep(0.01)
                served[loc].append(_call(app, template, loc)[2]["model_version"])
        all_new_after = time.perf_counter() - started
    models = app.container().scorer.models
    app.set_container(None)
    os.environ["MODEL_REFRESH_SECONDS"] = "60"
    result = {
        "phase": "refresh", "locations": len(locations), "refresh_seconds": REFRESH_SECONDS,
        "steady_round_ms": {"requests": len(steady), "p50": percentile(steady, 50),
                            "p99": percentile(steady, 99)},
        "while_refreshing_ms": {"requests": len(during), "p50": percentile(during, 50),
                                "p99": percentile(during, 99), "max": round(max(during), 3)},
        # answered by the old champion after the promotion: the requests no load held
        "answers_by_old_model": sum(v == old[loc] for loc, vs in served.items() for v in vs),
        "locations_on_new_model": sum(vs[-1] == new[loc] for loc, vs in served.items()),
        "answers_by_neither": sum(v not in (old[loc], new[loc])
                                  for loc, vs in served.items() for v in vs),
        "seconds_until_every_location_on_new": round(all_new_after, 2),
        "model_loads": len(models.loads) if models is not None else None,
        "peak_rss_mb": peak_mb(), "seconds": round(seconds, 1),
        "load_1min": [load_start, load_1min()], **cpu.figures(),
    }
    print(json.dumps(result), flush=True)
    return result


def memory_phase(store: Path, locations: list[str], cache: Path) -> dict[str, Any]:
    """The resident memory the models alone take (no requests: no answer cache grows)."""
    import gc

    from leadscore.scoring.location_models import LocationModels

    gc.collect()
    models = LocationModels(f"file://{store}/{bundle.CHAMPION_POINTER_KEY}",
                            budget_bytes=1 << 40, cache_dir=cache)
    models.get(locations[0])
    one = rss_mb()
    for loc in locations[1:]:
        models.get(loc)
    gc.collect()
    further = (rss_mb() - one) / max(1, len(locations) - 1)
    result = {"phase": "memory", "locations": len(locations),
              "rss_per_further_model_mb": round(further, 3),
              "counted_bytes_per_model_mb": round(models.total_bytes / len(locations) / 2**20, 3),
              "model_load_ms_p50": percentile([x.seconds * 1e3 for x in models.loads], 50),
              "peak_rss_mb": peak_mb(), "load_1min": load_1min()}
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locations", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--evict-models", type=int, default=10)
    parser.add_argument("--evict-rounds", type=int, default=4,
                        help="rounds of the eviction phase (each reloads most models)")
    parser.add_argument("--bundle", type=Path, default=RECORDED)
    parser.add_argument("--request", type=Path, default=None,
                        help="the /score body to send (JSON; default events/score_request.json's "
                             "body; a bundle on a team's columns needs {\"fields\": {...}})")
    parser.add_argument("--no-refresh", dest="refresh", action="store_false",
                        help="skip the phase that replaces every location's champion")
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "location_models.json")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-locations-"))
    try:
        store, locations, size = build_store(args.bundle, work, args.locations)
        template = (json.loads(args.request.read_text()) if args.request else json.loads(
            json.loads((REPO / "events" / "score_request.json").read_text())["body"]))
        _env(store, work / "cache", None)
        from functions.score import app

        results: dict[str, Any] = {"counted_bytes_per_model": size,
                                   "bundle_file_bytes": bundle_bytes(args.bundle)}
        _env(store, work / "cache-one", None, per_location=False)
        phases = [run_phase("one model", app, locations, args.rounds, args.requests, template,
                            scope="agency")]
        _env(store, work / "cache", None)
        phases.append(run_phase("rotation", app, locations, args.rounds, args.requests,
                                template))
        if args.evict_models:
            # K models as the cache counts them
            _env(store, work / "cache-evict", args.evict_models * size)
            phases.append(run_phase("eviction", app, locations, args.evict_rounds,
                                    args.requests, template))
        if args.refresh:
            phases.append(refresh_phase(app, store, args.bundle, work, locations,
                                        args.requests, template))
        app.set_container(None)
        phases.append(memory_phase(store, locations, work / "cache-memory"))
        results["phases"] = phases
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"[bench] wrote {args.out}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
