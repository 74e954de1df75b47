"""AWS clients fail fast, and a DynamoDB brownout costs /score (almost) nothing.

The brownout is real at the socket level: a server on 127.0.0.1 that accepts TCP connections
and never answers (what an overloaded or partitioned endpoint looks like to botocore). The
scoring handler runs with its template settings against it through AWS_ENDPOINT_URL_DYNAMODB.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.brownout import Blackhole as SilentServer  # accepts, never answers
from tests.fixtures import aws as template_aws
from tests.fixtures.fakes import FakeClock
from tests.fixtures.http import serving
from tests.fixtures.scoring import load_event
from tools.lambda_context import lambda_context

API_TIMEOUT_SECONDS = 29.0  # API Gateway's integration timeout
REQUESTS = 200
P99_LIMIT_MS = 100.0


@pytest.fixture
def silent_dynamodb(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[SilentServer]:
    from leadscore.adapters import reset_clients

    server = SilentServer()
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", server.url)
    reset_clients()
    yield server
    reset_clients()
    server.close()


def test_request_path_client_makes_one_attempt_within_its_read_timeout(
    silent_dynamodb: SilentServer,
) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ReadTimeoutError
    from leadscore.adapters import REQUEST_PATH_CONFIG, client

    def waited(ddb: Any) -> tuple[int, float]:
        return _network_wait(ddb, lambda: ddb.get_item(
            TableName=template_aws.template_name("CacheTable"), Key={"pk": {"S": "score#x"}},
        ), ReadTimeoutError)

    fast = client("dynamodb", fast=True)
    assert fast.meta.config.read_timeout == REQUEST_PATH_CONFIG["read_timeout"]
    attempts, seconds = waited(fast)
    assert attempts == silent_dynamodb.accepted == 1  # one attempt in total, not "one retry"
    # the baseline, in the same run: the same profile with a single retry
    retried = boto3.client("dynamodb", config=Config(**{
        **REQUEST_PATH_CONFIG, "retries": {"total_max_attempts": 2, "mode": "standard"}}))
    baseline_attempts, baseline_seconds = waited(retried)
    assert baseline_attempts == 2 and silent_dynamodb.accepted == 3
    assert seconds < baseline_seconds, (seconds, baseline_seconds)


def _network_wait(
    boto_client: Any, call: Callable[[], object], raises: type[Exception] = Exception
) -> tuple[int, float]:
    """(attempts `call` sent through `boto_client`, seconds from the first send until it
    raised): the network wait only, so a busy CPU building the request is not counted; a
    timing test compares it with a baseline measured the same way in the same run."""
    sent: list[float] = []

    def mark(**_: Any) -> None:
        sent.append(time.perf_counter())

    boto_client.meta.events.register("before-send", mark)
    try:
        with pytest.raises(raises):
            call()
    finally:
        boto_client.meta.events.unregister("before-send", mark)
    return len(sent), time.perf_counter() - sent[0]


def _worst_case_seconds(config: dict[str, Any]) -> float:
    from leadscore.adapters import worst_case_seconds

    return worst_case_seconds(config)


def test_client_profiles_fit_the_api_timeout() -> None:
    from leadscore.adapters import DEFAULT_CONFIG, REQUEST_PATH_CONFIG, _cached_client

    for config in (DEFAULT_CONFIG, REQUEST_PATH_CONFIG):
        assert config["retries"]["mode"] == "standard"
        assert "max_attempts" not in config["retries"]  # that one counts retries, not attempts
    # A failing dependency on the request path costs at most ~0.7 s; anything else leaves the
    # function time to answer (rules fallback, 5xx-free) within API Gateway's 29 s.
    assert _worst_case_seconds(REQUEST_PATH_CONFIG) <= 1.0
    assert _worst_case_seconds(DEFAULT_CONFIG) <= API_TIMEOUT_SECONDS - 5
    made = _cached_client.__wrapped__("s3", False)  # a fresh client, default profile
    assert made.meta.config.retries == DEFAULT_CONFIG["retries"]
    assert made.meta.config.read_timeout == DEFAULT_CONFIG["read_timeout"]


def test_dynamodb_that_never_answers_costs_score_nothing_after_the_first_timeout(
    silent_dynamodb: SilentServer, trained_bundle: Path, score_app: Any, tmp_path: Path,
) -> None:
    """200 /score requests against a DynamoDB that never answers, interleaved with the same
    requests to a container without a remote cache (the healthy path on this machine now)."""
    from leadscore.settings import ScoreSettings

    settings = replace(ScoreSettings(), model_uri=trained_bundle.as_uri(),
                       model_cache_dir=str(tmp_path / "models"))
    healthy = score_app.build_container(settings)
    brownout = score_app.build_container(
        replace(settings, cache_table=template_aws.template_name("CacheTable")))
    event = load_event("score_request")
    body = json.loads(event["body"])
    latencies: dict[str, list[float]] = {"brownout": [], "healthy": []}
    for n in range(REQUESTS):
        for name, container in (("brownout", brownout), ("healthy", healthy)):
            score_app.set_container(container)
            body["contact_id"] = f"{name}-{n}"  # every request misses the memory tier
            started = time.perf_counter()
            answer = score_app.lambda_handler({**event, "body": json.dumps(body)},
                                              lambda_context())
            latencies[name].append((time.perf_counter() - started) * 1000)
            assert answer["statusCode"] == 200, answer
            assert json.loads(answer["body"])["source"] == "ensemble"
    cache = brownout.cache
    p50, p99 = np.percentile(latencies["brownout"], [50, 99])
    healthy_p99 = float(np.percentile(latencies["healthy"], 99))
    figures = {"requests": REQUESTS, "p50_ms": round(float(p50), 1),
               "p99_ms": round(float(p99), 1), "max_ms": round(max(latencies["brownout"]), 1),
               "healthy_p99_ms": round(healthy_p99, 1),
               "connections_to_dynamodb": silent_dynamodb.accepted,
               "breaker_skips": cache.breaker.skipped, "breaker_opened": cache.breaker.opened,
               "load_average_1min": round(os.getloadavg()[0], 1)}
    out = Path(__file__).resolve().parents[2] / ".build" / "reliability" / "fail_fast.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=1))
    print("DynamoDB brownout:", figures)
    # The target is p99 <= 100 ms. On a machine so loaded that the healthy path alone is
    # slower than that, the brownout may add at most 50 ms to the healthy p99 instead.
    assert p99 <= max(P99_LIMIT_MS, healthy_p99 + 50), figures
    assert cache.breaker.opened >= 1 and cache.breaker.skipped >= REQUESTS
    assert silent_dynamodb.accepted <= 3, figures  # the endpoint is tried once per period


def test_breaker_opens_on_failure_skips_then_lets_one_trial_through() -> None:
    from leadscore.circuit import CircuitBreaker

    clock = FakeClock(0.0)
    breaker = CircuitBreaker(open_seconds=30, clock=clock)
    assert breaker.allow() and breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow() and breaker.skipped == 1
    clock.now = 29.9
    assert not breaker.allow()
    clock.now = 30.0
    assert breaker.state == "half-open"
    assert breaker.allow()  # the one trial
    assert not breaker.allow()  # others wait for its outcome
    breaker.failure()  # the trial failed: open for another period
    assert breaker.state == "open" and breaker.opened == 2
    clock.now = 60.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


def test_a_failing_remote_tier_is_skipped_not_waited_for() -> None:
    from leadscore.circuit import CircuitBreaker
    from leadscore.scoring.cache import CachedScore, MemoryLRU, TieredCache

    class Broken:
        calls = 0

        def get(self, key: str) -> None:
            self.calls += 1
            raise TimeoutError("no answer")

        def put(self, key: str, value: CachedScore, expires_at: float) -> None:
            self.calls += 1
            raise TimeoutError("no answer")

    clock = FakeClock(0.0)
    remote = Broken()
    cache = TieredCache(MemoryLRU(10, 60), remote, breaker=CircuitBreaker(clock=clock))
    for n in range(5):
        assert cache.get(f"k{n}") is None
        cache.put(f"k{n}", CachedScore({"x": n}, explained=True))
    assert remote.calls == 1 and cache.remote_errors == 1  # tried once, then skipped
    assert cache.get("k3") == CachedScore({"x": 3}, explained=True)  # memory still serves
    clock.now = 31.0
    assert cache.get("k-new") is None  # the request skips the tier ...
    cache.breaker.wait_for_trial(5)
    assert remote.calls == 2  # ... while one background trial reads it after the period


class SlowSqs:
    """Answers every SQS SendMessage (JSON protocol) correctly, after ``delay`` seconds
    (run it with `serving(slow.server)`)."""

    def __init__(self, delay: float) -> None:
        import hashlib
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.sent: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(delay)
                outer.sent.append(body["MessageBody"])
                answer = json.dumps({
                    "MessageId": f"m-{len(outer.sent)}",
                    "MD5OfMessageBody": hashlib.md5(  # nosec B324 (SQS's own)
                        body["MessageBody"].encode()).hexdigest(),
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def test_the_write_back_requeue_waits_out_a_slow_queue_instead_of_returning_the_message(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-queue that fails returns the message, and every return counts toward the poison
    guard: the 10,000-write soak dead-lettered 10 writable messages that way, the re-queue
    having used the request-path profile (0.5 s read, one attempt). An SQS that answers in
    0.8 s must take the delayed copy."""
    from leadscore.adapters import reset_clients
    from leadscore.adapters.writeback_queue import SqsRequeue

    slow = SlowSqs(delay=0.8)
    with serving(slow.server) as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", url)
        reset_clients()
        try:
            requeue = SqsRequeue(f"{url}/123456789012/writeback", f"{url}/123456789012/dlq")
            requeue.delay('{"kind": "score"}', 30)
            requeue.dead_letter('{"kind": "score"}', "a reason", {"reason": "a reason"})
        finally:
            reset_clients()
    assert slow.sent == ['{"kind": "score"}', '{"kind": "score"}']


def test_the_worker_send_fits_the_write_back_deadline_reserve() -> None:
    from leadscore.adapters import WORKER_SEND_CONFIG, WORKER_SEND_WORST_SECONDS
    from leadscore.settings import WritebackSettings

    assert _worst_case_seconds(WORKER_SEND_CONFIG) == WORKER_SEND_WORST_SECONDS
    assert WritebackSettings().deadline_reserve_seconds > WORKER_SEND_WORST_SECONDS
    assert WORKER_SEND_CONFIG["read_timeout"] > 0.5  # the profile that lost messages


def test_every_secret_read_is_bounded_by_the_record_profile(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workflow secret, HighLevel tokens and the OAuth client secret all go through one
    provider on the RECORD profile; it is Powertools' default too, so a direct
    parameters.get_secret cannot fall back to the 60 s client."""
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
    from leadscore.adapters import RECORD_CONFIG, reset_clients, worst_case_seconds
    from leadscore.adapters.ghl_api import read_token_secret
    from leadscore.adapters.secrets import provider

    from bench.brownout import Blackhole

    dark = Blackhole()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", dark.url)
        reset_clients()
        parameters.clear_caches()  # type: ignore[no-untyped-call]
        bounded = provider()
        assert DEFAULT_PROVIDERS["secrets"] is bounded
        config = bounded.client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (
            RECORD_CONFIG["connect_timeout"], RECORD_CONFIG["read_timeout"])
        arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:tok-AbCdEf"
        with pytest.raises(Exception):  # noqa: B017 - the first call also warms the harness
            read_token_secret(arn)
        attempts, seconds = _network_wait(bounded.client, lambda: read_token_secret(arn))
        # the baseline, in the same run: one call of the record profile's client itself
        _, one_call = _network_wait(bounded.client,
                                    lambda: bounded.client.get_secret_value(SecretId=arn))
    finally:
        dark.close()
        reset_clients()
        parameters.clear_caches()  # type: ignore[no-untyped-call]
    assert attempts == 1 and dark.accepted == 3  # one attempt per read
    assert worst_case_seconds(RECORD_CONFIG) <= 2.0  # what the 3 s answer leaves room for
    assert seconds < 2 * one_call, (seconds, one_call)  # a retry would wait twice
