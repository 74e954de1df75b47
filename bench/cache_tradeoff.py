"""Does the DynamoDB cache read pay for itself against recomputing the score?

Measured in one process on the benchmark's bundle (.bench/bundle, run `make bench` first):

* recompute: a full `ScoringService.score` on a memory-cache miss (explained, and with
  `explain=false`) with no remote cache: what a DynamoDB hit would save;
* DynamoDB client floor: `DynamoScoreCache.get` of a cached answer with the HTTP exchange
  answered in-process (botocore's before-send hook): request building, SigV4 signing and
  answer parsing only. Every real
  read costs at least this; it adds the network round trip and DynamoDB's own time on top;
* DynamoDB on loopback: the same read against moto's server on 127.0.0.1 (HTTP included, but
  moto's Python service time is not DynamoDB's, so this is context, not a bound).

A hit pays for itself only if it is cheaper than the recompute it saves, and a miss always
costs the read on top of the recompute.

    .venv/bin/python -m bench.cache_tradeoff [--bundle .bench/bundle] [--n 2000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as template.yaml sets it for Lambda

import boto3
from botocore.awsrequest import AWSResponse
from leadscore.adapters.dynamodb import DynamoScoreCache
from leadscore.scoring.cache import MemoryLRU, TieredCache, answer_key
from leadscore.scoring.model_store import ModelStore
from leadscore.scoring.service import ScoringService, parse_request

from tests.fixtures.aws import cache_table  # the table from template.yaml

REPO = Path(__file__).resolve().parents[1]

REGION = "us-east-1"


def p50_ms(fn: Callable[[int], Any], n: int, warmup: int = 50) -> float:
    for i in range(warmup):
        fn(i)
    times = []
    for i in range(n):
        started = time.perf_counter()
        fn(warmup + i)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


class _Raw:
    """The raw body botocore reads from an HTTP answer."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data

    def read(self, *_: Any) -> bytes:
        return self.data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=REPO / ".bench" / "bundle")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "cache_tradeoff.json")
    args = parser.parse_args(argv)
    if not (args.bundle / "manifest.json").is_file():
        print(f"no bundle at {args.bundle}: run `make bench` first", file=sys.stderr)
        return 2

    request = json.loads(json.loads((REPO / "events" / "score_request.json").read_text())["body"])
    store = ModelStore(f"file://{args.bundle.resolve()}")

    svc = ScoringService(store, TieredCache(MemoryLRU(16, 3600), None))
    svc.score(dict(request, contact_id="warm"))

    # The cached item exactly as the adapter writes it.
    model = store.current()
    assert model is not None
    lead = parse_request(dict(request, contact_id="warm"))
    key = answer_key(lead.contact_id, lead.x32, model.version, form=lead.form,
                     raw=lead.raw_features, missing=lead.missing_fields, explain=True,
                     values=lead.values)
    if key is None:
        raise RuntimeError("the warm request has no cache key")
    entry = svc.cache.memory.get(key)
    if entry is None:
        raise RuntimeError("the warm answer is not in the memory cache")
    body = json.dumps(entry.to_json_obj(), separators=(",", ":"))

    def recompute(explain: bool) -> Callable[[int], Any]:
        # A new contact id each time: a memory miss, and no remote cache to consult.
        return lambda i: svc.score(dict(request, contact_id=f"lead-{explain}-{i}"),
                                   explain=explain)

    recompute_explained = p50_ms(recompute(True), args.n)
    recompute_score_only = p50_ms(recompute(False), args.n)

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION=REGION)

    # Client floor: botocore's whole client path (serialise, sign, parse) with the HTTP
    # exchange answered in-process by a canned GetItem response.
    stub_client = boto3.client("dynamodb", region_name=REGION)
    expires = str(int(time.time()) + 3600)
    canned = json.dumps({"Item": {"pk": {"S": key}, "body": {"S": body},
                                  "expires_at": {"N": expires}}}).encode()

    def answer_locally(request: Any, **_: Any) -> AWSResponse:
        return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.0"},
                           _Raw(canned))

    stub_client.meta.events.register("before-send.dynamodb.GetItem", answer_locally)
    stubbed = DynamoScoreCache("LeadScoreCache", ddb_client=stub_client)
    assert stubbed.get(key) is not None
    client_floor = p50_ms(lambda i: stubbed.get(key), args.n)

    # Loopback: moto's server over HTTP.
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        ddb = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)
        table = cache_table(ddb)
        remote = DynamoScoreCache(table, ddb_client=ddb)
        ddb.put_item(TableName=table, Item={"pk": {"S": key}, "body": {"S": body},
                                            "expires_at": {"N": expires}})
        loopback = p50_ms(lambda i: remote.get(key), min(args.n, 1000))
    finally:
        server.stop()

    result = {
        "recompute_explained_p50_ms": round(recompute_explained, 3),
        "recompute_score_only_p50_ms": round(recompute_score_only, 3),
        "dynamodb_read_client_floor_p50_ms": round(client_floor, 3),
        "dynamodb_read_loopback_moto_p50_ms": round(loopback, 3),
        # What the network round trip plus DynamoDB's own time must stay under for a hit to
        # beat recomputing (negative: a hit can never win).
        "network_budget_ms": round(recompute_explained - client_floor, 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| what (p50) | ms |\n|---|---:|")
    print(f"| recompute, explained (a memory miss) | {recompute_explained:.3f} |")
    print(f"| recompute, explain=false | {recompute_score_only:.3f} |")
    print(f"| DynamoDB read, client work only (floor of any real read) | {client_floor:.3f} |")
    print(f"| DynamoDB read against moto on 127.0.0.1 (context) | {loopback:.3f} |")
    verdict = ("can pay for itself only when the network and DynamoDB add less than "
               f"{result['network_budget_ms']:.2f} ms"
               if result["network_budget_ms"] > 0 else
               "never pays for itself: its client work alone exceeds the recompute")
    print(f"\nA DynamoDB cache read {verdict}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
