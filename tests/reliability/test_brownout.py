"""Brownouts through the score function's own handler: the scenarios of bench/brownout.py,
smaller. A dependency stops answering at the socket level (a proxy in front of moto's server
that then accepts and never answers); each brownout request runs interleaved with a healthy
twin, which is the baseline: the bounds are relative to it, except HighLevel's contract (429
within 3 s).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import brownout
from tests.fixtures import aws as template_aws


@pytest.fixture
def bench_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The variables the scenarios set, restored afterwards."""
    from leadscore.adapters import reset_clients

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "bench")
    monkeypatch.setenv("AWS_DEFAULT_REGION", brownout.REGION)
    for key in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3",
                "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    reset_clients()
    yield
    reset_clients()


def _p99(summary: dict[str, Any], arm: str) -> float:
    return float(summary[arm]["p99_ms"])


def test_breaker_trials_never_run_inside_a_request(
    bench_env: None, trained_bundle: Path
) -> None:
    """DynamoDB dark, and the breaker half-open every 0.2 s (30 s deployed) so that many
    trials fall inside the run. A trial that ran inside a request cost it the request-path
    client's whole read timeout (0.5 s): at one request per second that was ~3 % of requests,
    so the p99. Now the trial is a background read."""
    from leadscore.adapters import REQUEST_PATH_CONFIG

    # Paced (1 s in all), so several trial periods fall inside the dark part on any machine.
    result = brownout.dynamodb_scenario(
        trained_bundle, requests=200, rate=200, warmup=10, skip_seconds=0.2,
        table=template_aws.template_name("CacheTable")).summary()
    print("DynamoDB dark, trials every 0.2 s:", result)
    timeout_ms = REQUEST_PATH_CONFIG["read_timeout"] * 1000
    assert result["background_trials"] >= 2, result
    assert result["connections_while_dark"] >= 2, result  # the table really was tried
    # no brownout request pays the read timeout beyond its twin's tail
    assert _p99(result, "brownout") < _p99(result, "healthy") + timeout_ms / 2, result


def test_a_dark_model_bucket_never_holds_a_request(
    bench_env: None, trained_bundle: Path
) -> None:
    """S3 dark while the champion pointer is due every second. Inline, each due refresh
    held its request for the S3 client's worst case (three attempts of 1 + 5 s)."""
    from leadscore.settings import ScoreSettings

    # Paced, so the dark part lasts 2.5 s and refreshes come due in it: as fast as possible,
    # a quiet machine finished the 200 pairs within the 1 s refresh period and no refresh
    # was ever due while S3 was dark.
    result = brownout.s3_scenario(
        trained_bundle, requests=200, rate=80, warmup=10, refresh_seconds=1,
        bucket=template_aws.template_name("ArtifactBucket")).summary()
    print("S3 dark during pointer refreshes:", result)
    wait_ms = ScoreSettings().model_refresh_wait_seconds * 1000
    assert result["connections_while_dark"] >= 1 and result["background_refreshes"] >= 1
    assert result["model_versions_served"] == [result["expected_version"]]  # it kept serving
    assert _p99(result, "brownout") < _p99(result, "healthy") + 2 * wait_ms, result


@pytest.mark.parametrize("accepting", [True, False], ids=["never-answers", "never-accepts"])
def test_a_webhook_whose_secret_cannot_be_read_is_answered_429_within_3_s(
    bench_env: None, trained_bundle: Path, accepting: bool
) -> None:
    """Each webhook waits out the secret store itself (the failed read is forgotten before
    every one): Powertools' own client waited 60 s per attempt, past API Gateway's 29 s."""
    from leadscore.adapters import RECORD_CONFIG, worst_case_seconds

    result = brownout.secrets_scenario(
        trained_bundle, requests=4, rate=0, warmup=3, cold=True, accepting=accepting,
        secret_name=template_aws.template_name("GhlWorkflowSecret")).summary()
    print("Secrets Manager dark, every webhook cold:", result)
    assert result["healthy_answers"] == {"200": 4}
    assert result["answers"] == {"429": 4}
    assert worst_case_seconds(RECORD_CONFIG) <= 2.0  # what the 3 s contract leaves room for
    assert result["brownout"]["max_ms"] <= brownout.WEBHOOK_LIMIT_S * 1000, result
    if accepting:
        assert result["connections_to_dark_store"] == 4  # one attempt each, no retry


def test_after_one_failed_secret_read_webhooks_get_429_at_once(
    bench_env: None, trained_bundle: Path
) -> None:
    result = brownout.secrets_scenario(
        trained_bundle, requests=60, rate=0, warmup=3,
        secret_name=template_aws.template_name("GhlWorkflowSecret")).summary()
    print("Secrets Manager dark:", result)
    assert result["answers"] == {"429": 60}
    assert result["connections_to_dark_store"] == 1  # then skipped; retried in the background
    # only the first waited for the store: the median is the healthy twin's, or less
    assert result["brownout"]["p50_ms"] <= result["healthy"]["p50_ms"], result


def test_a_delivery_that_cannot_be_recorded_is_answered_429_within_the_record_bounds(
    bench_env: None, score_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No model (so the webhook must be queued), the write-back queue and the parking bucket
    both dark: two RECORD-profile calls, then 429. On the default profile (three attempts of
    1 + 5 s each) the two took ~40 s, past API Gateway's 29 s: a 504, a lost delivery."""
    import time
    from dataclasses import replace

    from leadscore.adapters import (
        DEFAULT_CONFIG,
        RECORD_CONFIG,
        client,
        reset_clients,
        worst_case_seconds,
    )
    from leadscore.scoring.model_store import ModelStore
    from leadscore.settings import ScoreSettings

    from tools.api_event import api_event
    from tools.lambda_context import lambda_context

    sqs, s3 = brownout.Blackhole(), brownout.Blackhole()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", sqs.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.url)
        reset_clients()
        queue = f"{sqs.url}/123456789012/{template_aws.template_name('WritebackQueue')}"
        settings = replace(ScoreSettings(), writeback_queue_url=queue,
                           parked_bucket=template_aws.template_name("ArtifactBucket"),
                           ghl_webhook_secret="local-secret")
        score_app.set_container(score_app.build_container(settings, store=ModelStore("")))
        event = api_event("/webhooks/ghl", (
            b'{"contact_id": "c-1", "location": {"id": "loc-1"}, '
            b'"customData": {"list_price": "800000"}}'), {"x-leadscore-secret": "local-secret"})
        # the first call also makes the clients (and the test harness transforms the template
        # for its IAM check): a warm container is what is timed
        first = score_app.lambda_handler(event, lambda_context())
        started = time.perf_counter()
        answer = score_app.lambda_handler(event, lambda_context())
        elapsed = time.perf_counter() - started
        # the baseline, in the same run: the same two RECORD-profile calls made directly
        started = time.perf_counter()
        with pytest.raises(Exception):  # noqa: B017 - whatever botocore raises on a timeout
            client("sqs", record=True).send_message(QueueUrl=queue, MessageBody="{}")
        queue_call = time.perf_counter() - started
        with pytest.raises(Exception):  # noqa: B017
            client("s3", record=True).put_object(
                Bucket=settings.parked_bucket, Key="parked/x.json", Body=b"{}")
        two_calls = time.perf_counter() - started
    finally:
        sqs.close()
        s3.close()
    assert first["statusCode"] == answer["statusCode"] == 429, answer
    assert "Retry-After" in {**answer.get("headers", {}), **answer.get("multiValueHeaders", {})}
    # neither queued nor parked: one attempt each (and the baseline's one each)
    assert sqs.accepted == 3 and s3.accepted == 3
    assert worst_case_seconds(RECORD_CONFIG) < worst_case_seconds(DEFAULT_CONFIG) / 10
    # the two calls, then the answer at once (a retry of either would add a whole call)
    assert elapsed < 1.25 * two_calls, (elapsed, two_calls)
    # the put waits one read like the send, not first for a "100-continue" (was: 2.0 s / 1.0 s)
    assert two_calls - queue_call < 1.5 * queue_call, (two_calls - queue_call, queue_call)
