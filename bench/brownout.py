"""Brownouts: `/score` and the webhook while an AWS dependency stops answering.

Each scenario drives the score function's own `lambda_handler` in this process (one warm
container, as Lambda keeps one) and interleaves it, request by request, with a healthy twin:
the same handler and requests, the dependency answering. The twin is the baseline of the same
run. Before measuring, both answer `--warmup` requests with every dependency healthy.

* ``dynamodb``: the score cache's table stops answering (every request a memory-cache miss,
  so every request would read and write the table); `/score` latency.
* ``s3``: the model bucket stops answering while the champion pointer is re-read (a refresh is
  due every `--refresh-seconds`); `/score` latency, and the model that answered.
* ``secrets``: Secrets Manager stops answering; workflow webhooks whose secret the container
  has not cached; the answer (must be 429) and its latency. ``--secrets-cold`` forgets the
  failed read before every webhook, so each one waits out the client's timeout itself.

"Stops answering" is real at the socket level: `Switch`, a TCP proxy on 127.0.0.1 in front of
moto's server, forwards until it is switched off; then it accepts connections and never
answers, and forwards nothing more on the open ones (what a partitioned or overloaded
endpoint looks like to botocore). Requests are paced at `--rate` per second in real time,
nothing simulated: the brownout request and its twin share each tick, or (`--twin-first`) the
twin runs its requests before the dependency goes dark and the brownout arm then runs alone
at the rate. Every result records the rate the brownout arm achieved.

    .venv/bin/python -m bench.brownout [--scenario dynamodb s3 secrets] [--requests 1000]
        [--rate 50] [--bundle DIR] [--out .bench/brownout-<scenario>-<rate>.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tools.api_event import api_event
from tools.lambda_context import lambda_context
from tools.loadtest import free_port

REPO = Path(__file__).resolve().parents[1]

REGION = "us-east-1"
TABLE = "bench-cache"
BUCKET = "bench-models"
SECRET = "bench/workflow-secret"
SECRET_VALUE = "bench-workflow-secret"
P99_LIMIT_MS = 100.0
WEBHOOK_LIMIT_S = 3.0


# -------------------------------------------------------------------------------- sockets


class Blackhole:
    """A TCP endpoint on 127.0.0.1 that never answers. ``accepting=True``: it accepts every
    connection and never reads or writes (botocore waits out its read timeout); False: its
    accept queue is kept full, so a new connection is never established (botocore waits out
    its connect timeout)."""

    def __init__(self, *, accepting: bool = True) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        if accepting:
            self.sock.listen(128)
            self.sock.settimeout(0.1)
            self._thread: threading.Thread | None = threading.Thread(target=self._serve,
                                                                     daemon=True)
            self._thread.start()
        else:
            self.sock.listen(0)
            self._thread = None
            for _ in range(4):  # fill the accept queue; later SYNs are dropped
                filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError, OSError):
                    filler.connect(("127.0.0.1", self.port))
                self.held.append(filler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.held.append(conn)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for conn in self.held:
            conn.close()
        self.sock.close()


class Switch:
    """A TCP proxy to ``upstream`` (host, port) that can be switched off: from then on it
    accepts connections and never answers, and drops whatever either side sends on the
    connections already open."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.forwarding = True
        self.accepted = 0
        self.accepted_while_off = 0
        self._open: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def off(self) -> None:
        self.forwarding = False

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self._open.append(conn)
            if not self.forwarding:
                self.accepted_while_off += 1
                continue  # held open, never answered
            upstream = socket.create_connection(self.upstream)
            self._open.append(upstream)
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.forwarding:
                continue  # swallowed: the other side waits for an answer that never comes
            if not data:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.close()
        self.sock.close()


def _serve_moto(port: int) -> None:
    import logging

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    make_server("127.0.0.1", port, DomainDispatcherApplication(create_backend_app), True,
                request_handler=MotoRequestHandler).serve_forever()


@contextlib.contextmanager
def moto_server() -> Iterator[tuple[str, int]]:
    """moto's server in its own process (its work never holds this process's interpreter,
    as AWS's never holds a Lambda's); yields (host, port)."""
    import multiprocessing

    port = free_port()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve_moto, args=(port,), daemon=True)
    process.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or not process.is_alive():
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.join(10)


def aws_credentials() -> None:
    """Fake credentials: every client of this process talks to 127.0.0.1 only."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[key] = "bench"
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    os.environ["AWS_DEFAULT_REGION"] = REGION


def bounded_client(service: str, profile: str, endpoint: str) -> Any:
    """A boto3 client with one of the product's client profiles (leadscore.adapters)."""
    import boto3
    from botocore.config import Config
    from leadscore.adapters import PROFILES

    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        config=Config(**PROFILES[profile]))


# -------------------------------------------------------------------------------- runs


@dataclass
class Result:
    scenario: str
    requests: int
    rate: float
    brownout_ms: list[float]
    healthy_ms: list[float]
    details: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        import numpy as np

        def pct(values: list[float]) -> dict[str, float]:
            p50, p99 = np.percentile(values, [50, 99]) if values else (float("nan"),) * 2
            return {"p50_ms": round(float(p50), 2), "p99_ms": round(float(p99), 2),
                    "max_ms": round(max(values), 2) if values else float("nan"),
                    # a request held by a dark dependency waits >= its client's timeout
                    # (0.5 s and more); the machine's own hiccups show in the twin as well
                    "over_250_ms": sum(1 for v in values if v > 250)}

        return {"scenario": self.scenario, "requests": self.requests, "rate_per_s": self.rate,
                "brownout": pct(self.brownout_ms), "healthy": pct(self.healthy_ms),
                **self.details, "load_average_1min": round(os.getloadavg()[0], 2),
                "cpu": _cpu_model()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def paced(requests: int, rate: float) -> Iterator[int]:
    """Yield 0..requests-1, each at its tick (``rate`` per second; 0 = as fast as possible)."""
    start = time.perf_counter()
    for n in range(requests):
        if rate > 0:
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        yield n


def run_arms(brown: Callable[[int], float], healthy: Callable[[int], float], *,
             requests: int, rate: float, interleave: bool,
             go_dark: Callable[[], None]) -> tuple[dict[str, list[float]], float]:
    """Latencies of both arms, and the rate the brownout arm achieved. Interleaved: the two
    share every tick (the same machine moment; the pair must fit a tick to keep the rate).
    Otherwise the healthy arm runs first, then the dependency goes dark and the brownout arm
    runs alone at the rate."""
    times: dict[str, list[float]] = {"brownout": [], "healthy": []}
    if not interleave:
        times["healthy"] = [healthy(n) for n in paced(requests, rate)]
    go_dark()
    started = time.perf_counter()
    for n in paced(requests, rate):
        times["brownout"].append(brown(n))
        if interleave:
            times["healthy"].append(healthy(n))
    return times, requests / (time.perf_counter() - started)


def _score_event() -> tuple[dict[str, Any], dict[str, Any]]:
    event = json.loads((REPO / "events" / "score_request.json").read_text())
    return event, json.loads(event["body"])


def _timed(app: Any, container: Any, event: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    app.set_container(container)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # Powertools' metric lines
        answer = app.lambda_handler(event, lambda_context())
    return (time.perf_counter() - started) * 1000, answer


def _score_once(app: Any, container: Any, tag: str) -> float:
    event, body = _score_event()
    body["contact_id"] = tag  # a new contact: a memory-cache miss, really scored
    elapsed, answer = _timed(app, container, {**event, "body": json.dumps(body)})
    if answer["statusCode"] != 200:
        raise AssertionError(f"/score answered {answer['statusCode']}: {answer.get('body')}")
    return elapsed


def dynamodb_scenario(bundle: Path, *, requests: int, rate: float, warmup: int = 50,
                      skip_seconds: float | None = None, table: str = TABLE,
                      interleave: bool = True) -> Result:
    """The score cache's table goes dark on a warm container."""
    from leadscore.adapters.dynamodb import DynamoScoreCache
    from leadscore.settings import ScoreSettings

    from functions.score import app

    aws_credentials()
    settings = ScoreSettings(model_uri=bundle.resolve().as_uri(), cache_table=table)
    if skip_seconds is not None:
        settings = replace(settings, remote_cache_skip_seconds=skip_seconds)
    with moto_server() as upstream:
        endpoint = f"http://{upstream[0]}:{upstream[1]}"
        bounded_client("dynamodb", "default", endpoint).create_table(
            TableName=table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST")
        switch = Switch(upstream)
        try:
            brown = app.build_container(settings, remote_cache=DynamoScoreCache(
                table, bounded_client("dynamodb", "request", switch.url)))
            healthy = app.build_container(settings, remote_cache=DynamoScoreCache(
                table, bounded_client("dynamodb", "request", endpoint)))
            for n in range(warmup):
                _score_once(app, brown, f"warm-b-{n}")
                _score_once(app, healthy, f"warm-h-{n}")
            times, achieved = run_arms(
                lambda n: _score_once(app, brown, f"b-{n}"),
                lambda n: _score_once(app, healthy, f"h-{n}"),
                requests=requests, rate=rate, interleave=interleave, go_dark=switch.off)
            breaker = brown.cache.breaker
            details = {"dependency": "DynamoDB (score cache)", "interleaved": interleave,
                       "achieved_rate_per_s": round(achieved, 2),
                       "skip_seconds": settings.remote_cache_skip_seconds,
                       "remote_errors": brown.cache.remote_errors,
                       "breaker_opened": breaker.opened, "breaker_skipped": breaker.skipped,
                       "background_trials": breaker.trials,
                       "connections_while_dark": switch.accepted_while_off}
        finally:
            app.set_container(None)
            switch.close()
    return Result("dynamodb", requests, rate, times["brownout"], times["healthy"], details)


def _put_bundle(s3: Any, bundle: Path, bucket: str) -> str:
    manifest = json.loads((bundle / "manifest.json").read_text())
    version = str(manifest["model_version"])
    s3.create_bucket(Bucket=bucket)
    for path in sorted(bundle.iterdir()):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=f"models/{version}/{path.name}",
                          Body=path.read_bytes())
    s3.put_object(Bucket=bucket, Key="models/champion.json", Body=json.dumps(
        {"version": version, "prefix": f"models/{version}/",
         "sha256": manifest["sha256"]}).encode())
    return version


def s3_scenario(bundle: Path, *, requests: int, rate: float, warmup: int = 50,
                refresh_seconds: int = 1, bucket: str = BUCKET,
                interleave: bool = True) -> Result:
    """The model bucket goes dark on a warm container while pointer refreshes come due."""
    import tempfile

    from leadscore.adapters import reset_clients
    from leadscore.adapters.s3 import S3Store
    from leadscore.scoring.model_store import ModelStore
    from leadscore.settings import ScoreSettings

    from functions.score import app

    aws_credentials()
    settings = replace(ScoreSettings(model_uri=f"s3://{bucket}/models/champion.json"),
                       model_refresh_seconds=refresh_seconds)
    with moto_server() as upstream, tempfile.TemporaryDirectory() as tmp:
        endpoint = f"http://{upstream[0]}:{upstream[1]}"
        version = _put_bundle(bounded_client("s3", "default", endpoint), bundle, bucket)
        switch = Switch(upstream)
        root = Path(tmp)

        def container(s3_endpoint: str, name: str) -> Any:
            # the score function's own store settings (app.build_container), its S3 client
            # pointed at this endpoint
            store = ModelStore(settings.model_uri, s3=S3Store(
                bounded_client("s3", "default", s3_endpoint)),
                refresh_seconds=settings.model_refresh_seconds, cache_dir=root / name,
                refresh_wait_seconds=settings.model_refresh_wait_seconds,
                first_load_wait_seconds=settings.model_first_load_wait_seconds)
            return app.build_container(settings, store=store)

        saved = os.environ.get("AWS_ENDPOINT_URL_S3")
        try:
            # The running experiment is read from the same bucket with the container's own
            # S3 client (leadscore.adapters.client, endpoint from the environment, made on
            # first use): the twin makes its client while the variable names moto itself.
            os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
            reset_clients()
            healthy = container(endpoint, "healthy")
            for n in range(warmup):
                _score_once(app, healthy, f"warm-h-{n}")
            os.environ["AWS_ENDPOINT_URL_S3"] = switch.url
            reset_clients()
            brown = container(switch.url, "brown")
            for n in range(warmup):
                _score_once(app, brown, f"warm-b-{n}")
            served: set[str] = set()

            def brown_once(n: int) -> float:
                elapsed = _score_once(app, brown, f"b-{n}")
                served.add(str(brown.store.status().model_version))
                return elapsed

            times, achieved = run_arms(
                brown_once, lambda n: _score_once(app, healthy, f"h-{n}"),
                requests=requests, rate=rate, interleave=interleave, go_dark=switch.off)
            details = {"dependency": "S3 (champion pointer)", "interleaved": interleave,
                       "achieved_rate_per_s": round(achieved, 2),
                       "refresh_seconds": refresh_seconds,
                       "refresh_wait_seconds": settings.model_refresh_wait_seconds,
                       "model_versions_served": sorted(served), "expected_version": version,
                       "background_refreshes": brown.store.background_refreshes,
                       "connections_while_dark": switch.accepted_while_off}
        finally:
            app.set_container(None)
            switch.close()
            if saved is None:
                os.environ.pop("AWS_ENDPOINT_URL_S3", None)
            else:
                os.environ["AWS_ENDPOINT_URL_S3"] = saved
            reset_clients()
    return Result("s3", requests, rate, times["brownout"], times["healthy"], details)


def _workflow_event(n: int) -> dict[str, Any]:
    body = json.dumps({"contact_id": f"c-{n}", "location": {"id": "loc-bench"},
                       "customData": {"list_price": "800000"}}).encode()
    return api_event("/webhooks/ghl", body, {"x-leadscore-secret": SECRET_VALUE})


def secrets_scenario(bundle: Path, *, requests: int, rate: float, warmup: int = 20,
                     cold: bool = False, accepting: bool = True,
                     secret_name: str = SECRET) -> Result:
    """Secrets Manager goes dark (or never accepts: ``accepting=False``) and the container has
    not cached the workflow secret. Baseline: the same container and webhooks before, with the
    store answering and the secret cached (Powertools' cache is per process, so the twin
    cannot run interleaved here)."""
    from aws_lambda_powertools.utilities import parameters
    from leadscore.adapters import reset_clients
    from leadscore.adapters.secrets import reset_breakers
    from leadscore.settings import ScoreSettings

    from functions.score import app

    aws_credentials()
    saved = os.environ.get("AWS_ENDPOINT_URL_SECRETS_MANAGER")

    def use(endpoint_url: str) -> None:
        os.environ["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = endpoint_url
        reset_clients()
        parameters.clear_caches()  # type: ignore[no-untyped-call]

    achieved: list[float] = []

    def run(container: Any, first: int, statuses: dict[int, int]) -> list[float]:
        times = []
        started = time.perf_counter()
        for n in paced(requests, rate):
            if cold:
                reset_breakers()
            elapsed, answer = _timed(app, container, _workflow_event(first + n))
            times.append(elapsed)
            code = int(answer["statusCode"])
            statuses[code] = statuses.get(code, 0) + 1
        achieved.append(requests / (time.perf_counter() - started))
        return times

    with moto_server() as upstream:
        endpoint = f"http://{upstream[0]}:{upstream[1]}"
        arn = bounded_client("secretsmanager", "default", endpoint).create_secret(
            Name=secret_name, SecretString=SECRET_VALUE)["ARN"]
        dark = Blackhole(accepting=accepting)
        settings = ScoreSettings(model_uri=bundle.resolve().as_uri(),
                                 ghl_webhook_secret_arn=arn)
        healthy_answers: dict[int, int] = {}
        dark_answers: dict[int, int] = {}
        try:
            container = app.build_container(settings)
            use(endpoint)
            for n in range(warmup):
                _timed(app, container, _workflow_event(n))
            healthy = run(container, warmup, healthy_answers)
            use(dark.url)  # from here the store does not answer, and nothing is cached
            brownout = run(container, warmup + requests, dark_answers)
            details = {"dependency": "Secrets Manager (workflow secret, not cached)",
                       "endpoint": "accepts, never answers" if accepting else "never accepts",
                       "cold": cold, "achieved_rate_per_s": round(achieved[-1], 2),
                       "answers": {str(k): v for k, v in sorted(dark_answers.items())},
                       "healthy_answers": {str(k): v for k, v in sorted(healthy_answers.items())},
                       "connections_to_dark_store": dark.accepted,
                       "limit_s": WEBHOOK_LIMIT_S}
        finally:
            app.set_container(None)
            dark.close()
            if saved is None:
                os.environ.pop("AWS_ENDPOINT_URL_SECRETS_MANAGER", None)
            else:
                os.environ["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = saved
            reset_clients()
            parameters.clear_caches()  # type: ignore[no-untyped-call]
    return Result("secrets", requests, rate, brownout, healthy, details)


# -------------------------------------------------------------------------------- main


def tiny_bundle(out: Path) -> Path:
    """A small bundle trained with train.py (tiny hyperparameters), reused when present."""
    if (out / "manifest.json").is_file():
        return out
    import warnings

    import train
    from generate_leads import generate_leads, to_feature_frame, write_csv

    out.parent.mkdir(parents=True, exist_ok=True)
    data = out.parent / "brownout-leads.csv"
    write_csv(to_feature_frame(generate_leads(1500, 7)), data)
    hp = {"xgb_n_estimators": "20", "lgb_n_estimators": "20", "folds": "3",
          "mlp_hidden": "16,8", "mlp_max_iter": "30"}
    args = ["--input", str(data), "--output", str(out)]
    for key, value in hp.items():
        args += ["--hp", f"{key}={value}"]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if train.main(args) != 0:
            raise SystemExit("training the bench bundle failed")
    return out


SCENARIOS: dict[str, Callable[..., Result]] = {
    "dynamodb": dynamodb_scenario, "s3": s3_scenario, "secrets": secrets_scenario,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", nargs="+", choices=sorted(SCENARIOS),
                        default=["dynamodb", "s3", "secrets"])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0,
                        help="brownout requests per second (0 = as fast as possible)")
    parser.add_argument("--refresh-seconds", type=int, default=1,
                        help="s3: the champion pointer's refresh interval")
    parser.add_argument("--secrets-cold", action="store_true",
                        help="secrets: forget the failed read before every webhook")
    parser.add_argument("--never-accepts", action="store_true",
                        help="secrets: the store never accepts a connection")
    parser.add_argument("--twin-first", action="store_true",
                        help="dynamodb, s3: run the healthy twin before the brownout instead "
                             "of interleaved (so the brownout alone keeps the rate)")
    parser.add_argument("--bundle", type=Path, default=REPO / ".bench" / "brownout-bundle")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    for key, value in {"OPENBLAS_NUM_THREADS": "1", "POWERTOOLS_TRACE_DISABLED": "true",
                       "POWERTOOLS_METRICS_DISABLED": "true",
                       "POWERTOOLS_LOG_LEVEL": "CRITICAL"}.items():
        os.environ.setdefault(key, value)  # before the handler's modules are imported
    bundle = tiny_bundle(args.bundle)
    ok = True
    for name in args.scenario:
        kwargs: dict[str, Any] = {"requests": args.requests, "rate": args.rate}
        if name in ("dynamodb", "s3"):
            kwargs["interleave"] = not args.twin_first
        if name == "s3":
            kwargs["refresh_seconds"] = args.refresh_seconds
        if name == "secrets":
            kwargs["cold"] = args.secrets_cold
            kwargs["accepting"] = not args.never_accepts
        started = time.time()
        summary = SCENARIOS[name](bundle, **kwargs).summary()
        summary["wall_seconds"] = round(time.time() - started, 1)
        if name == "secrets":
            passed = (summary["brownout"]["max_ms"] <= WEBHOOK_LIMIT_S * 1000
                      and set(summary["answers"]) == {"429"})
        else:
            passed = summary["brownout"]["p99_ms"] <= P99_LIMIT_MS
        summary["passed"] = passed
        ok = ok and passed
        tag = f"{name}{'-cold' if args.secrets_cold and name == 'secrets' else ''}"
        out = args.out or REPO / ".bench" / f"brownout-{tag}-{args.rate:g}rps.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
