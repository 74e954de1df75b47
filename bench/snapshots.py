"""What recording snapshots costs a `/score` request (p50 may grow by at most 0.1 ms).

The score function's own `lambda_handler` answers `events/score_request.json` (a new contact id
per request, so every request is a memory-cache miss and really scored), with the loop's
recorder off and on, interleaved in blocks so both see the same machine. With the recorder on,
each scored lead is buffered per container and sent with Firehose `PutRecordBatch` by the
recorder's background thread (botocore's whole client path, the HTTP exchange answered
in-process) — the managed batching path, never an S3 write per request. The sends compete for
the same interpreter, as they would in Lambda. Also measured: the request thread's own added
work (the recorder's put) and the background CPU per record.

    .venv/bin/python -m bench.snapshots [--bundle .bench/bundle] [--n 3000]
Writes .bench/snapshots.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

from tools.lambda_context import lambda_context

REPO = Path(__file__).resolve().parents[1]

LIMIT_MS = 0.1
REGION = "us-east-1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=REPO / ".bench" / "bundle")
    parser.add_argument("--n", type=int, default=3000, help="requests per arm")
    parser.add_argument("--block", type=int, default=1, help="requests per arm in a row")
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "snapshots.json")
    args = parser.parse_args(argv)
    if not (args.bundle / "manifest.json").is_file():
        print(f"no bundle at {args.bundle}: run `make bench` first", file=sys.stderr)
        return 2
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ[key] = "bench"  # the client never leaves this process
    os.environ["AWS_DEFAULT_REGION"] = REGION

    import boto3
    from botocore.awsrequest import AWSResponse
    from leadscore.adapters.firehose import FirehoseSender
    from leadscore.loop.hooks import LoopHooks
    from leadscore.loop.recorder import LoopRecorder
    from leadscore.scoring.model_store import ModelStore
    from leadscore.settings import ScoreSettings

    from functions.score import app

    # botocore's whole client path (serialise, sign, parse) with the HTTP exchange answered
    # in-process: the CPU a real PutRecordBatch costs this process (the network wait does not).
    firehose = boto3.client("firehose", region_name=REGION)
    sent_records = [0]

    class _Raw:
        def __init__(self, data: bytes) -> None:
            self._data = data

        def stream(self, **_: Any) -> Any:
            yield self._data

        def read(self, *_: Any) -> bytes:
            return self._data

    def answer_locally(request: Any, **_: Any) -> AWSResponse:
        n = len(json.loads(request.body)["Records"])
        sent_records[0] += n
        body = json.dumps(
            {
                "FailedPutCount": 0,
                "Encrypted": True,
                "RequestResponses": [{"RecordId": str(i)} for i in range(n)],
            }
        )
        return AWSResponse(
            request.url, 200, {"Content-Type": "application/x-amz-json-1.1"}, _Raw(body.encode())
        )

    firehose.meta.events.register("before-send.firehose.PutRecordBatch", answer_locally)
    settings = ScoreSettings(model_uri=f"file://{args.bundle.resolve()}")

    def container(with_loop: bool) -> Any:
        store = ModelStore(settings.model_uri)
        loop = None
        if with_loop:
            sender = FirehoseSender("bench-loop-records", firehose)
            loop = LoopHooks(LoopRecorder(sender, max_age_seconds=1.0))
        return app.build_container(settings, store=store, loop=loop)

    off, on = container(False), container(True)
    event = json.loads((REPO / "events" / "score_request.json").read_text())
    request = json.loads(event["body"])
    counter = iter(range(10**9))

    def once(c: Any) -> float:
        app.set_container(c)
        body = dict(request, contact_id=f"bench-{next(counter)}", location_id="loc-bench")
        e = dict(event, body=json.dumps(body))
        started = time.perf_counter()
        answer = app.lambda_handler(e, lambda_context("bench", request_id="bench"))
        elapsed = time.perf_counter() - started
        assert answer["statusCode"] == 200, answer
        return elapsed

    times: dict[str, list[float]] = {"off": [], "on": []}
    with contextlib.redirect_stdout(io.StringIO()):  # Powertools' metric lines
        for _ in range(100):  # warm both
            once(off)
            once(on)
        while len(times["on"]) < args.n:
            for name, c in (("off", off), ("on", on)):
                times[name] += [once(c) for _ in range(args.block)]
    # The only work added on the request thread: the recorder's put (a closure appended).
    scored = on.service.score(dict(request, contact_id="direct"), explain=True)
    direct = []
    for _ in range(args.n):
        started = time.perf_counter()
        on.loop.scored(request, scored, "loc-bench", "api")
        direct.append(time.perf_counter() - started)
    on.loop.recorder.flush()
    stats = on.loop.recorder.sink.stats
    # The background thread's CPU per record: build + serialise + PutRecordBatch, 500 at once.
    background = LoopRecorder(FirehoseSender("bench-loop-records", firehose), background=False)
    batches = []
    for _ in range(max(args.n // 500, 3)):
        for _ in range(500):
            background.snapshot(request, scored, location_id="loc-bench", source="api")
        started = time.perf_counter()
        background.flush()
        batches.append((time.perf_counter() - started) / 500)

    p50 = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    p90 = {k: statistics.quantiles(v, n=10)[-1] * 1e3 for k, v in times.items()}
    result = {
        "requests_per_arm": len(times["on"]),
        "p50_ms_off": round(p50["off"], 4),
        "p50_ms_on": round(p50["on"], 4),
        "p50_delta_ms": round(p50["on"] - p50["off"], 4),
        "p90_ms_off": round(p90["off"], 4),
        "p90_ms_on": round(p90["on"], 4),
        "request_thread_put_p50_us": round(statistics.median(direct) * 1e6, 2),
        "limit_ms": LIMIT_MS,
        "snapshots_accepted": stats.accepted,
        "snapshots_sent": stats.sent,
        "snapshots_dropped": stats.dropped,
        "put_record_batch_calls": stats.batches,
        "background_cpu_per_record_us": round(statistics.median(batches) * 1e6, 2),
        "records_through_put_record_batch": sent_records[0],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(
        f"snapshots: /score p50 {p50['off']:.3f} ms off, {p50['on']:.3f} ms on "
        f"(+{p50['on'] - p50['off']:.3f} ms; limit +{LIMIT_MS} ms); request-thread put p50 "
        f"{statistics.median(direct) * 1e6:.1f} us, background CPU per record "
        f"{statistics.median(batches) * 1e6:.1f} us; "
        f"{stats.sent}/{stats.accepted} snapshots in {stats.batches} PutRecordBatch calls"
    )
    return 0 if p50["on"] - p50["off"] <= LIMIT_MS else 1


if __name__ == "__main__":
    sys.exit(main())
