"""Bundle loading from file:// and S3 (moto), corrupt bundles, and the champion switch."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from leadscore.adapters.s3 import S3Store
from leadscore.scoring.model_store import ModelStore, ModelUnavailable, parse_model_uri, scrub
from leadscore.scoring.public import UNAVAILABLE

from tests.fixtures.fakes import FakeClock
from tests.fixtures.scoring import (
    bundle_version,
    load_event,
    upload_bundle,
    write_pointer,
)


def test_parse_model_uri() -> None:
    assert parse_model_uri("s3://b/models/champion.json").pointer is True
    src = parse_model_uri("s3://b/models/lsm-1")
    assert (src.kind, src.bucket, src.path, src.pointer) == ("s3", "b", "models/lsm-1/", False)
    assert parse_model_uri("file:///x/models/champion.json").pointer is True
    assert parse_model_uri("file:///x/bundle").path == "/x/bundle"
    for bad in ("", "http://x/y", "s3:///key"):
        with pytest.raises(ModelUnavailable):
            parse_model_uri(bad)


def test_scrub_removes_paths() -> None:
    text = scrub("bundle directory not found: /tmp/abc/def/bundle and file:///x/y.json")
    assert "/tmp" not in text and "/x/" not in text
    assert "bundle" in text and "y.json" in text


def test_missing_bundle_health_503_and_rules_answers(
    install: Any, invoke: Any, tmp_path: Path
) -> None:
    container = install(f"file://{tmp_path}/no-such-bundle")
    health = invoke(load_event("health_get"))
    assert health.status == 503
    assert health.body["loaded"] is False and health.body["reason"] == UNAVAILABLE
    assert "not found" in str(container.store.status().reason)  # the detail: logs, not answers
    assert invoke(load_event("model_get")).status == 503
    answer = invoke(load_event("score_request"))
    assert answer.status == 200
    body = answer.body
    assert body["source"] == "rules" and body["model_version"] == "rules"
    assert body["predicted_score"] == pytest.approx(body["composite_score"] / 100)
    assert body["confidence_interval"] is None and body["model_agreement"] is None
    assert body["feature_contributions"] == {} and body["explained"] is False
    batch = invoke(load_event("score_batch"))
    assert batch.status == 200
    assert {r["source"] for r in batch.body["results"]} == {"rules"}


def test_corrupt_bundle_is_refused_with_a_reason(
    install: Any, invoke: Any, corrupt_bundle: Path
) -> None:
    container = install(f"file://{corrupt_bundle}")
    health = invoke(load_event("health_get"))
    assert health.status == 503
    assert "sha256" in str(container.store.status().reason)
    assert str(corrupt_bundle) not in json.dumps(health.body)
    body = invoke(load_event("score_request")).body
    assert body["source"] == "rules"


def test_s3_prefix_bundle_is_downloaded_and_verified(
    install: Any, invoke: Any, trained_bundle: Path, s3_bucket: tuple[Any, str]
) -> None:
    s3, bucket = s3_bucket
    version = bundle_version(trained_bundle)
    upload_bundle(s3, bucket, trained_bundle, f"models/{version}/")
    install(f"s3://{bucket}/models/{version}/", s3=S3Store(s3))
    health = invoke(load_event("health_get"))
    assert health.status == 200 and health.body["model_version"] == version
    assert invoke(load_event("score_request")).body["source"] == "ensemble"


def test_s3_pointer_bundle(
    install: Any, invoke: Any, trained_bundle: Path, s3_bucket: tuple[Any, str]
) -> None:
    s3, bucket = s3_bucket
    version = bundle_version(trained_bundle)
    upload_bundle(s3, bucket, trained_bundle, f"models/{version}/")
    write_pointer(s3, bucket, trained_bundle)
    install(f"s3://{bucket}/models/champion.json", s3=S3Store(s3))
    body = invoke(load_event("score_request")).body
    assert body["source"] == "ensemble" and body["model_version"] == version


def test_s3_tampered_object_is_refused(
    install: Any, invoke: Any, trained_bundle: Path, s3_bucket: tuple[Any, str]
) -> None:
    s3, bucket = s3_bucket
    version = bundle_version(trained_bundle)
    upload_bundle(s3, bucket, trained_bundle, f"models/{version}/")
    s3.put_object(Bucket=bucket, Key=f"models/{version}/model.onnx", Body=b"not a model")
    write_pointer(s3, bucket, trained_bundle)
    container = install(f"s3://{bucket}/models/champion.json", s3=S3Store(s3))
    health = invoke(load_event("health_get"))
    assert health.status == 503 and "sha256" in str(container.store.status().reason)
    assert bucket not in json.dumps(health.body)
    assert invoke(load_event("score_request")).body["source"] == "rules"


def test_s3_champion_switch_without_a_failed_request(
    install: Any,
    invoke: Any,
    trained_bundle: Path,
    second_bundle: Path,
    s3_bucket: tuple[Any, str],
) -> None:
    s3, bucket = s3_bucket
    v1, v2 = bundle_version(trained_bundle), bundle_version(second_bundle)
    assert v1 != v2
    upload_bundle(s3, bucket, trained_bundle, f"models/{v1}/")
    upload_bundle(s3, bucket, second_bundle, f"models/{v2}/")
    write_pointer(s3, bucket, trained_bundle)
    clock = FakeClock()
    install(f"s3://{bucket}/models/champion.json", s3=S3Store(s3), clock=clock,
            model_refresh_seconds=60)
    event = load_event("score_request_noexplain")
    versions = []
    for step in range(6):
        if step == 2:
            write_pointer(s3, bucket, second_bundle)  # the promote function's atomic write
        answer = invoke(event)
        assert answer.status == 200 and answer.body["source"] == "ensemble"
        versions.append(answer.body["model_version"])
        clock.advance(25)
    # t=0, 25 on v1; pointer changes at t=50 but the next check is due at t=60
    assert versions == [v1, v1, v1, v2, v2, v2]


def test_broken_new_champion_keeps_serving_the_current_one(
    install: Any, invoke: Any, trained_bundle: Path, tmp_path: Path
) -> None:
    store_root = tmp_path / "store"
    v1 = bundle_version(trained_bundle)
    shutil.copytree(trained_bundle, store_root / "models" / v1)
    pointer = store_root / "models" / "champion.json"
    pointer.write_text(json.dumps({"version": v1, "prefix": f"models/{v1}/"}))
    clock = FakeClock()
    install(f"file://{pointer}", clock=clock, model_refresh_seconds=60)
    assert invoke(load_event("health_get")).body["model_version"] == v1
    # a new pointer whose bundle is missing, then one whose pointer is garbage
    pointer.write_text(json.dumps({"version": "lsm-ffffffffffffffff",
                                   "prefix": "models/lsm-ffffffffffffffff/"}))
    clock.advance(61)
    answer = invoke(load_event("score_request"))
    assert answer.status == 200 and answer.body["model_version"] == v1
    pointer.write_text("{not json")
    clock.advance(61)
    health = invoke(load_event("health_get"))
    assert health.status == 200 and health.body["model_version"] == v1


def test_file_pointer_switch(
    install: Any, invoke: Any, trained_bundle: Path, second_bundle: Path, tmp_path: Path
) -> None:
    store_root = tmp_path / "store"
    v1, v2 = bundle_version(trained_bundle), bundle_version(second_bundle)
    shutil.copytree(trained_bundle, store_root / "models" / v1)
    shutil.copytree(second_bundle, store_root / "models" / v2)
    pointer = store_root / "models" / "champion.json"
    pointer.write_text(json.dumps({"version": v1, "prefix": f"models/{v1}/"}))
    clock = FakeClock()
    install(f"file://{pointer}", clock=clock, model_refresh_seconds=60)
    assert invoke(load_event("health_get")).body["model_version"] == v1
    pointer.write_text(json.dumps({"version": v2, "prefix": f"models/{v2}/"}))
    clock.advance(59)
    assert invoke(load_event("health_get")).body["model_version"] == v1
    clock.advance(2)
    assert invoke(load_event("health_get")).body["model_version"] == v2


def test_pointer_sha_mismatch_is_refused(trained_bundle: Path, tmp_path: Path) -> None:
    store_root = tmp_path / "store"
    v1 = bundle_version(trained_bundle)
    shutil.copytree(trained_bundle, store_root / "models" / v1)
    pointer = store_root / "models" / "champion.json"
    pointer.write_text(json.dumps({"version": v1, "sha256": "0" * 64}))
    store = ModelStore(f"file://{pointer}")
    status = store.status()
    assert status.loaded is False and "sha256" in (status.reason or "")


def test_unavailable_store_retries_after_the_refresh_interval(
    trained_bundle: Path, tmp_path: Path
) -> None:
    target = tmp_path / "late"
    clock = FakeClock()
    store = ModelStore(f"file://{target}", clock=clock, refresh_seconds=60)
    assert store.current() is None
    shutil.copytree(trained_bundle, target)
    clock.advance(30)
    assert store.current() is None  # not re-checked before the interval
    clock.advance(31)
    model = store.current()
    assert model is not None and model.version == bundle_version(trained_bundle)


def test_a_lasting_failure_is_logged_at_error_once_per_reason(
    trained_bundle: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stack waiting for its first model refreshes every minute: one ERROR saying so, the
    repeats at DEBUG; a new reason, or a refused candidate after a model served, is an ERROR
    again. (Was: an ERROR every refresh, hundreds a day burying the one that mattered.)"""
    store_root = tmp_path / "store"
    pointer = store_root / "models" / "champion.json"
    clock = FakeClock()
    store = ModelStore(f"file://{pointer}", clock=clock, refresh_seconds=60)
    caplog.set_level(logging.DEBUG, logger="leadscore.scoring.model_store")

    def refreshes(times: int) -> None:
        for _ in range(times):
            store.current()
            clock.advance(61)

    def errors() -> list[tuple[str, str]]:
        return [(r.getMessage(), str(getattr(r, "reason", ""))) for r in caplog.records
                if r.levelno == logging.ERROR]

    refreshes(4)
    assert [m for m, _ in errors()] == ["model unavailable"]
    assert sum(r.getMessage() == "model unavailable" for r in caplog.records) == 4
    pointer.parent.mkdir(parents=True)
    pointer.write_text("{not json")
    refreshes(3)
    assert [m for m, _ in errors()] == ["model unavailable"] * 2  # a new reason
    v1 = bundle_version(trained_bundle)
    shutil.copytree(trained_bundle, store_root / "models" / v1)
    pointer.write_text(json.dumps({"version": v1, "prefix": f"models/{v1}/"}))
    refreshes(1)
    assert store.status().model_version == v1
    pointer.write_text("{not json")  # the reason logged before the model loaded: new again
    refreshes(3)
    assert [m for m, _ in errors()][2:] == ["new model rejected; still serving the current one"]
    assert store.status().model_version == v1
