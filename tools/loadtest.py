"""A bounded load test of the local scoring API (``make loadtest``; CI runs a short one).

    python -m tools.loadtest                       # 2 clients x 10,000 requests, own server
    python -m tools.loadtest --requests 300        # the CI size
    python -m tools.loadtest --url http://127.0.0.1:3000 --server-pid 1234

Without ``--url`` it starts ``tools/serve.py`` on a free 127.0.0.1 port, waits for
``GET /health``, runs, and stops it. It only ever sends traffic to a loopback address: any
other host is refused before a single request.

The workload is deterministic: ``POST /score`` (with and without ``?explain=false``, contact
ids and list prices cycling so the caches see both hits and misses), ``POST /score/batch`` of
10 leads, ``GET /health``, and a malformed ``POST /score`` that must answer 400. An *error* is
a transport failure or any status other than the expected one. The server's resident memory
(VmRSS from /proc) is sampled after the warm-up, at the middle and at the end: "flat" means
the second half of the run grew it by less than ``--max-growth-mb``.

Exit status 0 only with zero errors and flat memory; the figures are printed (and written as
JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
BATCH_SIZE = 10


class LoadTestError(RuntimeError):
    """The load test could not run (bad target, server did not start)."""


# -- target safety ----------------------------------------------------------------------------


def loopback_target(url: str) -> tuple[str, int]:
    """(host, port) of `url`; refuses anything that does not resolve to a loopback address."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise LoadTestError(f"expected http://127.0.0.1:<port>, got {url!r}")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise LoadTestError(f"cannot resolve {parts.hostname!r}") from exc
    addresses = {info[4][0] for info in infos}
    if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        raise LoadTestError(
            f"refusing to load-test {parts.hostname!r} ({sorted(addresses)}): loopback only"
        )
    return parts.hostname, parts.port


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MiB (Linux /proc), or None when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


# -- workload ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    route: str
    method: str
    path: str
    body: bytes | None
    expected: int


def _base_lead() -> dict[str, Any]:
    event = json.loads((EVENTS / "score_request.json").read_text())
    lead: dict[str, Any] = json.loads(event["body"])
    return lead


def _lead(base: dict[str, Any], i: int) -> dict[str, Any]:
    lead: dict[str, Any] = json.loads(json.dumps(base))
    lead["contact_id"] = f"load-{i % 3000}"
    lead["features"]["property_data"]["list_price"] = 700_000 + (i % 7) * 25_000
    return lead


def request_for(i: int, base: dict[str, Any]) -> Request:
    """The i-th request of the deterministic mix (20 slots: 14 score, 2 batch, 2 health,
    2 malformed)."""
    slot = i % 20
    if slot < 7:
        return Request("POST /score", "POST", "/score", json.dumps(_lead(base, i)).encode(), 200)
    if slot < 14:
        return Request("POST /score?explain=false", "POST", "/score?explain=false",
                       json.dumps(_lead(base, i)).encode(), 200)
    if slot < 16:
        leads = [_lead(base, i * BATCH_SIZE + k) for k in range(BATCH_SIZE)]
        return Request("POST /score/batch", "POST", "/score/batch",
                       json.dumps({"leads": leads}).encode(), 200)
    if slot < 18:
        return Request("GET /health", "GET", "/health", None, 200)
    return Request("POST /score (malformed)", "POST", "/score",
                   b'{"contact_id": "x", "features": {"property_data": {"list_price": "lots"}}}',
                   400)


# -- clients ----------------------------------------------------------------------------------


@dataclass
class ClientResult:
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    done: int = 0


def run_client(
    host: str, port: int, start: int, count: int, step: int, result: ClientResult,
    progress: list[int], lock: threading.Lock, timeout: float,
) -> None:
    base = _base_lead()
    conn: http.client.HTTPConnection | None = None
    for n in range(count):
        req = request_for(start + n * step, base)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        began = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            conn.request(req.method, req.path, body=req.body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            elapsed = (time.perf_counter() - began) * 1e3
            if response.status != req.expected:
                result.errors.append(
                    f"{req.route}: status {response.status}, expected {req.expected}: "
                    f"{payload[:200]!r}"
                )
            else:
                json.loads(payload)  # every answer is JSON
                result.latencies_ms.setdefault(req.route, []).append(elapsed)
            if response.getheader("Connection", "").lower() == "close" or response.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            result.errors.append(f"{req.route}: {type(exc).__name__}: {exc}")
            if conn is not None:
                conn.close()
            conn = None
        result.done += 1
        with lock:
            progress[0] += 1
    if conn is not None:
        conn.close()


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Report:
    url: str
    clients: int
    requests_per_client: int
    total_requests: int
    errors: int
    error_samples: list[str]
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    per_route: dict[str, dict[str, float]]
    rss_mb: dict[str, float | None]
    rss_growth_second_half_mb: float | None
    max_growth_mb: float
    memory_flat: bool

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.memory_flat

    def summary(self) -> str:
        rss = self.rss_mb
        lines = [
            f"load test against {self.url}: {self.clients} clients x "
            f"{self.requests_per_client} requests = {self.total_requests} in {self.seconds:.1f} s "
            f"({self.requests_per_second:.0f} req/s)",
            f"errors: {self.errors}",
            f"latency: p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, "
            f"max {self.max_ms:.2f} ms",
        ]
        for route, stats in sorted(self.per_route.items()):
            lines.append(f"  {route:<28} n={int(stats['n']):>6}  p50 {stats['p50_ms']:.2f} ms  "
                         f"p99 {stats['p99_ms']:.2f} ms")
        lines.append(
            "server RSS: start {} MiB, middle {} MiB, end {} MiB -> {}".format(
                *(f"{rss[k]:.1f}" if rss.get(k) is not None else "?"
                  for k in ("start", "middle", "end")),
                "flat" if self.memory_flat else
                f"GROWING (+{self.rss_growth_second_half_mb} MiB in the second half)",
            )
        )
        for sample in self.error_samples:
            lines.append(f"  error: {sample}")
        return "\n".join(lines)


def run_load(
    url: str, *, clients: int, requests_per_client: int, server_pid: int | None,
    max_growth_mb: float, warmup: int = 50, timeout: float = 30.0,
) -> Report:
    host, port = loopback_target(url)
    # Warm-up (not counted): the model, the caches and the interpreter settle.
    warm = ClientResult()
    run_client(host, port, 10**6, warmup, 1, warm, [0], threading.Lock(), timeout)
    if warm.errors:
        raise LoadTestError("warm-up failed: " + "; ".join(warm.errors[:3]))

    total = clients * requests_per_client
    rss: dict[str, float | None] = {"start": rss_mb(server_pid) if server_pid else None}
    results = [ClientResult() for _ in range(clients)]
    progress = [0]
    lock = threading.Lock()
    threads = [
        threading.Thread(
            target=run_client,
            args=(host, port, c, requests_per_client, clients, results[c], progress, lock,
                  timeout),
            daemon=True,
        )
        for c in range(clients)
    ]
    began = time.perf_counter()
    for t in threads:
        t.start()
    middle_taken = False
    while any(t.is_alive() for t in threads):
        if not middle_taken and progress[0] >= total // 2:
            rss["middle"] = rss_mb(server_pid) if server_pid else None
            middle_taken = True
        time.sleep(0.01)
    seconds = time.perf_counter() - began
    for t in threads:
        t.join()
    if not middle_taken:
        rss["middle"] = rss_mb(server_pid) if server_pid else None
    rss["end"] = rss_mb(server_pid) if server_pid else None

    every: list[float] = []
    per_route: dict[str, list[float]] = {}
    errors: list[str] = []
    for r in results:
        errors += r.errors
        for route, values in r.latencies_ms.items():
            per_route.setdefault(route, []).extend(values)
            every.extend(values)
    growth: float | None = None
    middle, end = rss.get("middle"), rss.get("end")
    if middle is not None and end is not None:
        growth = round(end - middle, 1)
    return Report(
        url=url,
        clients=clients,
        requests_per_client=requests_per_client,
        total_requests=total,
        errors=len(errors),
        error_samples=errors[:5],
        seconds=round(seconds, 2),
        requests_per_second=round(total / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=round(percentile(every, 50), 3),
        p99_ms=round(percentile(every, 99), 3),
        max_ms=round(max(every), 3) if every else float("nan"),
        per_route={
            route: {"n": float(len(v)), "p50_ms": round(percentile(v, 50), 3),
                    "p99_ms": round(percentile(v, 99), 3)}
            for route, v in per_route.items()
        },
        rss_mb={k: (round(v, 1) if v is not None else None) for k, v in rss.items()},
        rss_growth_second_half_mb=growth,
        max_growth_mb=max_growth_mb,
        memory_flat=growth is None or growth < max_growth_mb,
    )


@contextmanager
def local_server(
    port: int, *, model_uri: str | None = None, startup_timeout: float = 120.0,
    extra_env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """tools/serve.py on 127.0.0.1:`port` (MODEL_URI = `model_uri` when given, else the
    local store `make demo` fills), stopped by its own pid on exit."""
    env = dict(os.environ)
    if model_uri:
        env["MODEL_URI"] = model_uri
    env.pop("CACHE_TABLE", None)  # never a real DynamoDB table from the caller's shell
    env.pop("WRITEBACK_QUEUE_URL", None)
    env.update(extra_env or {})
    log = open(os.devnull, "wb")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script, no shell
        [sys.executable, "-m", "tools.serve", "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise LoadTestError(f"tools/serve.py exited with {proc.returncode}: {err[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/health")
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise LoadTestError("tools/serve.py did not answer /health with 200 in time")
            time.sleep(0.2)
        if proc.stderr is not None:  # keep draining so a chatty server never blocks
            threading.Thread(target=proc.stderr.read, daemon=True).start()
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--requests", type=int, default=10_000, help="per client")
    parser.add_argument("--url", help="an already running server (loopback only)")
    parser.add_argument("--server-pid", type=int, help="pid of --url's server, for its RSS")
    parser.add_argument("--max-growth-mb", type=float, default=10.0,
                        help="largest RSS growth over the second half still called flat")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--model-uri", help="MODEL_URI for the server this tool starts "
                        "(default: the local store `make demo` fills)")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.requests < 1:
        parser.error("--clients and --requests must be positive")
    try:
        if args.url:
            report = run_load(args.url, clients=args.clients, requests_per_client=args.requests,
                              server_pid=args.server_pid, max_growth_mb=args.max_growth_mb)
        else:
            port = free_port()
            with local_server(port, model_uri=args.model_uri) as proc:
                report = run_load(f"http://127.0.0.1:{port}", clients=args.clients,
                                  requests_per_client=args.requests, server_pid=proc.pid,
                                  max_growth_mb=args.max_growth_mb)
    except LoadTestError as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
