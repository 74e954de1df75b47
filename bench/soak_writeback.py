"""The write-back soak: many queued writes for many locations, a misbehaving HighLevel,
several concurrent writers; then every contact is checked against its newest score.

    python -m bench.soak_writeback                      # the full soak (make soak)
    python -m bench.soak_writeback --messages 600 --locations 4 --json out.json

What runs, all on this machine and in real time (nothing is simulated or scaled unless the
options say so):

* THE fake HighLevel (tests/fixtures/fake_highlevel.py) with one strict sub-account per
  location, a Private Integration Token each, the score and class fields, the contacts, and
  its misbehaviour switched on (``Chaos``: random 429s with rate-limit headers, 5xx, timeouts,
  slow answers, truncated bodies, garbage status lines). Its own per-location limit
  (``--limit`` requests per ``--window-ms``, HighLevel's 100 per 10 s by default) stays on.
* moto in server mode in its own process (DynamoDB, SQS, Secrets Manager), the cache table
  and the write-back queue + DLQ built from template.yaml. DynamoDB applies each conditional
  write atomically and moto does not lock, so the server serialises requests.
* ``--writers`` processes, each a Lambda container: it receives up to 10 messages, calls
  ``functions/writeback/app.lambda_handler`` with a 60 s context, deletes what was not
  reported as a batch item failure (what the SQS event source mapping does).
* Messages: ``--messages`` writes over ``--locations`` locations in Zipf proportions (the
  busiest location gets the most, so the limit binds there), ``--versions`` scores per contact
  with distinct ``received_at``, sent in random order, plus 2 % redeliveries.

Checked at the end: every contact carries the score, class and class tag of its newest
message; the DLQ is empty (every message could be written); no location saw more than
``--limit`` requests in any ``--window-ms`` sliding window (every request counted, refused
or not).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import random
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tools.loadtest import free_port

ROOT = Path(__file__).resolve().parents[1]

REGION = "us-east-1"
#: the run ends once the queue stays empty this long (polled every IDLE_POLL_SECONDS)
IDLE_SECONDS = 1.0
IDLE_POLL_SECONDS = 0.25
SCORE_FIELD = "fldLeadScore00000001"
CLASS_FIELD = "fldLeadClass00000001"
CLASSES = ("hot", "warm", "lukewarm", "cold")


@dataclass
class SoakConfig:
    messages: int = 10_000
    locations: int = 20
    versions: int = 5  # scores per contact
    writers: int = 5
    limit: int = 100  # HighLevel's burst limit per location ...
    window_ms: int = 10_000  # ... per this many ms
    seed: int = 11
    p_429: float = 0.02
    p_5xx: float = 0.03
    p_timeout: float = 0.005
    p_slow: float = 0.05
    p_truncated: float = 0.01
    p_garbage: float = 0.01
    slow_seconds: float = 0.5
    http_timeout_seconds: float = 2.0
    visibility_timeout: int = 30
    max_seconds: float = 1800.0
    queued: int = 300  # the feeder keeps at most this many messages waiting on the queue
    log_dir: str = ""  # each writer's log lines (WARNING and up) go to writer-<n>.log here
    #: how long a contact stays leased after a call whose fate is unknown (production: 30 s)
    inflight_grace_seconds: float = 10.0


@dataclass
class SoakReport:
    config: dict[str, Any]
    seconds: float = 0.0
    contacts: int = 0
    contacts_wrong: int = 0
    wrong_examples: list[str] = field(default_factory=list)
    dead_letters: int = 0
    left_on_queue: int = 0
    requests: int = 0
    requests_by_status: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    max_in_window: dict[str, int] = field(default_factory=dict)
    max_in_window_overall: int = 0
    invocations: int = 0
    batch_item_failures: int = 0
    messages_per_location: dict[str, int] = field(default_factory=dict)
    requests_per_location: dict[str, int] = field(default_factory=dict)
    #: the writers' own metrics (EMF lines), summed: written, stale, delayed, retried, ...
    outcomes: dict[str, float] = field(default_factory=dict)
    invocation_seconds_p50: float = 0.0
    invocation_seconds_max: float = 0.0
    finished: bool = False

    @property
    def ok(self) -> bool:
        return (self.finished and self.contacts_wrong == 0 and self.dead_letters == 0
                and self.max_in_window_overall <= self.config["limit"])


# --------------------------------------------------------------------------- moto server


def _serve_moto(port: int) -> None:
    """moto's server app behind one lock (DynamoDB's per-item atomicity, see the module doc)."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def locked(environ: Any, start_response: Any) -> Any:
        with lock:
            return list(app(environ, start_response))

    make_server("127.0.0.1", port, locked, True, request_handler=MotoRequestHandler
                ).serve_forever()


def _aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


# --------------------------------------------------------------------------- writers


def _writer(env: dict[str, str], stop: Any, results: Any, log_path: str) -> None:
    os.environ.update(env)
    # the writer's log lines (WARNING and up) and EMF metrics
    sys.stdout = open(log_path or os.devnull, "a")  # noqa: SIM115
    import boto3

    from functions.writeback import app
    from tools.lambda_context import lambda_context

    sqs = boto3.client("sqs", region_name=REGION)
    url = env["WRITEBACK_QUEUE_URL"]
    invocations = failures = 0
    while not stop.is_set():
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                  AttributeNames=["All"])
        messages = got.get("Messages", [])
        if not messages:
            time.sleep(0.2)
            continue
        event = {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": {},
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:wb",
            "awsRegion": REGION,
        } for m in messages]}
        started = time.monotonic()
        answer = app.lambda_handler(event, lambda_context("writeback", timeout_ms=60_000))
        print(json.dumps({"invocation_seconds": round(time.monotonic() - started, 3),
                          "records": len(messages)}))
        invocations += 1
        failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
        failures += len(failed)
        done = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(messages) if m["MessageId"] not in failed]
        if done:
            sqs.delete_message_batch(QueueUrl=url, Entries=done)
    results.put((invocations, failures))


# --------------------------------------------------------------------------- the run


def _messages(cfg: SoakConfig, locations: list[str], rng: random.Random
              ) -> tuple[list[str], dict[tuple[str, str], tuple[int, str]]]:
    """The message bodies (shuffled) and each contact's newest (rounded score, class).

    Locations get messages in Zipf proportions (weight 1/rank), so the busiest ones need
    more than HighLevel's limit and the shared budget has to hold them back; each location
    has about ``messages per location / versions`` contacts with ``--versions`` scores each."""
    base = 1_770_285_600.0  # 2026-02-05T10:00:00Z
    weights = [1.0 / (rank + 1) for rank in range(len(locations))]
    per_location = Counter(rng.choices(locations, weights=weights, k=cfg.messages))
    planned: list[tuple[float, str, str]] = []
    for loc, count in per_location.items():
        contacts = max(1, count // cfg.versions)
        for n in range(count):
            contact = f"{loc}-c{n % contacts:05d}"
            version = n // contacts
            planned.append((base + version * 60 + rng.random() * 59, loc, contact))
    newest: dict[tuple[str, str], tuple[int, int, str]] = {}
    out: list[str] = []
    for at, loc, contact in planned:
        score = round(rng.random(), 4)
        cls = CLASSES[min(3, int((1 - score) * 4))]
        ms = int(at * 1000)
        received = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{ms % 1000:03d}Z"
        out.append(json.dumps({
            "kind": "score", "contact_id": contact, "location_id": loc,
            "predicted_score": score, "predicted_class": cls, "model_version": "lsm-soak",
            "received_at": received,
        }))
        key = (loc, contact)
        if key not in newest or ms > newest[key][0]:
            newest[key] = (ms, min(100, math.floor(score * 100 + 0.5)), cls)
    out += [rng.choice(out) for _ in range(len(out) // 50)]  # 2 % redeliveries
    rng.shuffle(out)
    return out, {k: (v[1], v[2]) for k, v in newest.items()}


def max_in_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def run_soak(cfg: SoakConfig) -> SoakReport:
    import tempfile

    import boto3

    from tests.fixtures import aws as template_aws
    from tests.fixtures.fake_highlevel import Chaos, FakeHighLevel, serve

    report = SoakReport(config=asdict(cfg))
    log_dir = cfg.log_dir or tempfile.mkdtemp(prefix="soak-writeback-")
    rng = random.Random(cfg.seed)
    ctx = mp.get_context("spawn")
    port = free_port()
    moto = ctx.Process(target=_serve_moto, args=(port,), daemon=True)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved_env = {k: os.environ.get(k) for k in _aws_env(endpoint)}
    os.environ.update(_aws_env(endpoint))
    writers: list[Any] = []
    stop = ctx.Event()
    results = ctx.Queue()
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        ddb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        table = template_aws.cache_table(ddb, "soak-cache")
        queues = template_aws.writeback_queues(sqs)
        sqs.set_queue_attributes(QueueUrl=queues.url, Attributes={
            "VisibilityTimeout": str(cfg.visibility_timeout)})

        fake = FakeHighLevel()
        locations, tokens = [], {}
        for i in range(cfg.locations):
            loc = fake.add_location(f"soakLocation{i:04d}xx")
            loc.rate.burst_max = cfg.limit
            loc.rate.interval_ms = cfg.window_ms
            fake.add_field(loc.id, "Lead Score", "NUMERICAL", field_id=SCORE_FIELD)
            fake.add_field(loc.id, "Lead Class", field_id=CLASS_FIELD)
            tokens[loc.id] = fake.add_pit(loc.id)
            locations.append(loc.id)
        bodies, newest = _messages(cfg, locations, rng)
        report.messages_per_location = dict(Counter(json.loads(b)["location_id"] for b in bodies))
        for loc_id, contact_id in newest:
            fake.add_contact(loc_id, contact_id=contact_id)
        # one location: a plain Private Integration Token; several: the per-location map
        token_secret = (next(iter(tokens.values())) if len(tokens) == 1
                        else json.dumps({"locations": tokens}))
        secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="soak/ghl-tokens", SecretString=token_secret)["ARN"]
        # moto's SQS costs O(queue length) per call: a feeder keeps at most cfg.queued
        # messages waiting (every message still passes through the queue, in shuffled order).
        fed = threading.Event()

        def feed() -> None:
            sender = boto3.client("sqs", region_name=REGION)
            i = 0
            while i < len(bodies) and not stop.is_set():
                attrs = sender.get_queue_attributes(QueueUrl=queues.url, AttributeNames=[
                    "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"])
                if sum(int(v) for v in attrs["Attributes"].values()) >= cfg.queued:
                    time.sleep(0.2)
                    continue
                sender.send_message_batch(QueueUrl=queues.url, Entries=[
                    {"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[i:i + 10])])
                i += 10
            fed.set()

        feeder = threading.Thread(target=feed, daemon=True)

        fake.chaos = Chaos(seed=cfg.seed, p_429=cfg.p_429, p_5xx=cfg.p_5xx,
                           p_timeout=cfg.p_timeout, p_slow=cfg.p_slow,
                           p_truncated=cfg.p_truncated, p_garbage=cfg.p_garbage,
                           slow_seconds=cfg.slow_seconds,
                           timeout_seconds=cfg.http_timeout_seconds + 0.5)
        with serve(fake) as fake:
            env = {
                **_aws_env(endpoint),
                "GHL_API_BASE": fake.base_url,
                "GHL_TOKEN_SECRET_ARN": secret,
                "GHL_SCORE_FIELD_ID": SCORE_FIELD,
                "GHL_CLASS_FIELD_ID": CLASS_FIELD,
                "CACHE_TABLE": table,
                "WRITEBACK_QUEUE_URL": queues.url,
                "WRITEBACK_DLQ_URL": queues.dlq_url,
                "HTTP_TIMEOUT_SECONDS": str(cfg.http_timeout_seconds),
                "MAX_RATE_LIMIT_WAIT_SECONDS": "5",
                "WRITEBACK_RETRY_BASE_SECONDS": "1",
                "WRITEBACK_MAX_ATTEMPTS": "12",
                "WRITEBACK_INFLIGHT_GRACE_SECONDS": str(cfg.inflight_grace_seconds),
                "MODEL_URI": "",
                "POWERTOOLS_LOG_LEVEL": os.environ.get("SOAK_LOG_LEVEL", "WARNING"),
                "POWERTOOLS_METRICS_NAMESPACE": "LeadScoring",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "false",  # the outcomes are read from them
            }
            started = time.monotonic()
            writers = [ctx.Process(target=_writer, daemon=True, args=(
                env, stop, results, f"{log_dir}/writer-{i}.log"))
                for i in range(cfg.writers)]
            for w in writers:
                w.start()
            feeder.start()
            # Done once the queue has held nothing (visible, in flight or delayed) for a whole
            # second: a writer re-queues a message's delayed copy before deleting it, so the
            # count never touches 0 while anything is still owed.
            idle_since: float | None = None
            while time.monotonic() - started < cfg.max_seconds:
                time.sleep(IDLE_POLL_SECONDS)
                attrs = sqs.get_queue_attributes(QueueUrl=queues.url, AttributeNames=[
                    "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed"])["Attributes"]
                pending = sum(int(v) for v in attrs.values())
                now = time.monotonic()
                if pending or not fed.is_set():
                    idle_since = None
                elif idle_since is None:
                    idle_since = now
                elif now - idle_since >= IDLE_SECONDS:
                    report.finished = True
                    break
            ended = idle_since if report.finished and idle_since is not None else time.monotonic()
            report.seconds = round(ended - started, 1)
            stop.set()
            for _ in writers:
                inv, failed = results.get(timeout=120)
                report.invocations += inv
                report.batch_item_failures += failed
            attrs = sqs.get_queue_attributes(QueueUrl=queues.url, AttributeNames=["All"])
            report.left_on_queue = sum(int(attrs["Attributes"][k]) for k in (
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed"))
            dlq = sqs.get_queue_attributes(QueueUrl=queues.dlq_url,
                                           AttributeNames=["ApproximateNumberOfMessages"])
            report.dead_letters = int(dlq["Attributes"]["ApproximateNumberOfMessages"])

            with fake.lock:
                requests = list(fake.requests)
            report.requests = len(requests)
            report.requests_by_status = dict(Counter(str(r.status) for r in requests))
            report.faults = dict(Counter(r.fault for r in requests if r.fault))
            for loc_id in locations:
                times = [r.at for r in requests if r.location_id == loc_id]
                report.max_in_window[loc_id] = max_in_window(times, cfg.window_ms / 1000.0)
            report.max_in_window_overall = max(report.max_in_window.values(), default=0)
            report.requests_per_location = dict(Counter(r.location_id for r in requests))
            _read_writer_logs(log_dir, report)
            report.contacts = len(newest)
            for (loc_id, contact_id), (score, cls) in sorted(newest.items()):
                contact = fake.locations[loc_id].contacts[contact_id]
                tags = {t for t in contact.tags if t.endswith("-lead")}
                got = (str(contact.custom_fields.get(SCORE_FIELD)),
                       contact.custom_fields.get(CLASS_FIELD), tags)
                if got != (str(score), cls, {f"{cls}-lead"}):
                    report.contacts_wrong += 1
                    if len(report.wrong_examples) < 5:
                        history = [
                            f"{r.at - started:.2f}s {r.method} {r.fault or '-'} {r.status} "
                            f"{json.dumps(r.body, separators=(',', ':'))[:80]}"
                            for r in requests if f"/contacts/{contact_id}" in r.path]
                        report.wrong_examples.append(
                            f"{contact_id}: want {score}/{cls}, "
                            f"got {got[0]}/{got[1]}/{sorted(tags)}; requests: {history}")
    finally:
        stop.set()
        for w in writers:
            w.join(timeout=10)
            if w.is_alive():
                w.terminate()
        moto.terminate()
        moto.join(timeout=10)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return report


def _read_writer_logs(log_dir: str, report: SoakReport) -> None:
    """Sum the writers' EMF metrics and the invocation durations they printed."""
    outcomes: Counter[str] = Counter()
    durations: list[float] = []
    for path in Path(log_dir).glob("writer-*.log"):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if not isinstance(data, dict):
                continue
            if "invocation_seconds" in data:
                durations.append(float(data["invocation_seconds"]))
            for spec in data.get("_aws", {}).get("CloudWatchMetrics", []):
                for metric in spec.get("Metrics", []):
                    value = data.get(metric["Name"], 0)
                    outcomes[metric["Name"]] += sum(value) if isinstance(value, list) else value
    report.outcomes = dict(sorted(outcomes.items()))
    if durations:
        durations.sort()
        report.invocation_seconds_p50 = round(durations[len(durations) // 2], 3)
        report.invocation_seconds_max = round(durations[-1], 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = SoakConfig()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    args = vars(parser.parse_args(argv))
    out = args.pop("json")
    report = run_soak(SoakConfig(**args))
    text = json.dumps({**asdict(report), "ok": report.ok}, indent=2)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
