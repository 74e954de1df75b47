"""Upload -> split -> (the job, run here) -> promote, on moto S3: the gate measures on rows the
job never saw, and a candidate's own claims decide nothing."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from leadscore import registry
from leadscore.adapters.s3_store import S3ObjectStore
from leadscore.bundle import MANIFEST_FILE, finalize_bundle, verify_bundle
from leadscore.registry import retraining

from tests.fixtures.bundle import train_bundle
from tests.fixtures.gate_candidates import csv_bytes
from tools.lambda_context import lambda_context

from .conftest import BUCKET
from .test_functions import _completed, _upload

pytestmark = pytest.mark.slow  # the jobs train their candidates

ROWS = 1_700  # ~300 conversions at the generator's ~18 % rate


def _leads_csv(seed: int, *, shuffle_labels: bool = False) -> bytes:
    from generate_leads import generate_leads, to_feature_frame

    rows = to_feature_frame(generate_leads(ROWS, seed))
    if shuffle_labels:
        labels = [r["converted"] for r in rows]
        np.random.default_rng(seed).shuffle(labels)
        for r, label in zip(rows, labels, strict=True):
            r["converted"] = label
    return csv_bytes(rows)


def _start_job(aws: Any, retrain: Any, body: bytes, name: str) -> tuple[str, dict[str, Any]]:
    answer = retrain.lambda_handler(_upload(aws, f"training-data/{name}", body), lambda_context())
    result = answer["results"][0]
    assert result["status"] == "started", result
    job = result["job"]
    split = json.loads(aws.get_object(Bucket=BUCKET, Key=retraining.split_record_key(job))
                       ["Body"].read())
    return job, split


def _run_job(aws: Any, job: str, tmp_path: Path) -> Path:
    """What SageMaker does: train on exactly the channel's object."""
    from leadscore.adapters import client

    described = client("sagemaker").describe_training_job(TrainingJobName=job)
    uri = described["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    assert uri == f"s3://{BUCKET}/{retraining.train_part_key(job, 'x.csv')}"
    channel = tmp_path / "channel"
    channel.mkdir()
    key = uri.split(f"s3://{BUCKET}/", 1)[1]
    (channel / "train.csv").write_bytes(aws.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    out = tmp_path / "bundle"
    assert train_bundle(channel / "train.csv", out) == 0
    return out


def test_the_job_trains_on_its_part_and_the_gate_keeps_the_rest(
    aws: Any, retrain: Any
) -> None:
    body = _leads_csv(21)
    job, split = _start_job(aws, retrain, body, "leads.csv")
    train = aws.get_object(Bucket=BUCKET, Key=retraining.train_part_key(job, "x.csv"))
    gate_part = aws.get_object(Bucket=BUCKET, Key=retraining.gate_part_key(job, "x.csv"))
    train_rows = train["Body"].read().decode().splitlines()
    gate_rows = gate_part["Body"].read().decode().splitlines()
    source_rows = body.decode().splitlines()
    assert train_rows[0] == gate_rows[0] == source_rows[0]  # the header in both parts
    assert sorted(train_rows[1:] + gate_rows[1:]) == sorted(source_rows[1:])
    assert not set(train_rows[1:]) & set(gate_rows[1:])
    assert split["gate"]["rows"] == len(gate_rows) - 1
    assert 0.15 < split["gate"]["rows"] / (len(source_rows) - 1) < 0.25
    # the same upload splits the same way (deterministic)
    assert split["train"]["converted"] + split["gate"]["converted"] == sum(
        int(float(r.rsplit(",", 1)[1])) for r in source_rows[1:])


def test_a_300_conversion_upload_is_measured_and_promoted(
    aws: Any, retrain: Any, promote: Any, tmp_path: Path
) -> None:
    body = _leads_csv(21)
    conversions = sum(int(float(r.rsplit(",", 1)[1])) for r in body.decode().splitlines()[1:])
    assert 280 <= conversions <= 340
    job, split = _start_job(aws, retrain, body, "leads.csv")
    bundle_dir = _run_job(aws, job, tmp_path)
    result = promote.lambda_handler(_completed(aws, job, bundle_dir, gate_part=False),
                                    lambda_context())
    assert result["status"] == "promoted", result
    champion = registry.get_champion(S3ObjectStore(BUCKET)) or {}
    measured = champion["metrics"]
    assert measured["gate_rows"] == split["gate"]["rows"]
    assert measured["auc_lower_bound_95"] < measured["auc"]
    assert champion["claimed_metrics"]["auc"] != measured["auc"]  # two figures, both kept
    counts = next(c for c in champion["gate"]["checks"] if c["name"] == "min_conversions")
    assert "counted by the retrain function" in counts["detail"]


def test_a_shuffled_label_candidate_claiming_auc_099_is_refused(
    aws: Any, retrain: Any, promote: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lead_ensemble import ensemble

    job, _ = _start_job(aws, retrain, _leads_csv(22, shuffle_labels=True), "shuffled.csv")
    # A job that would train on noise anyway (its own refusal switched off), then lies.
    monkeypatch.setattr(ensemble, "check_signal", lambda *a, **k: None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle_dir = _run_job(aws, job, tmp_path)
    manifest = verify_bundle(bundle_dir)
    manifest["metrics"].update(auc=0.99, brier=0.01)
    finalize_bundle(bundle_dir, {k: v for k, v in manifest.items()
                                 if k not in ("files", "sha256", "model_version")})
    assert json.loads((bundle_dir / MANIFEST_FILE).read_text())["metrics"]["auc"] == 0.99
    result = promote.lambda_handler(_completed(aws, job, bundle_dir, gate_part=False),
                                    lambda_context())
    assert result["status"] == "rejected", result
    assert any(r.startswith("auc_lower_bound") for r in result["reasons"]), result
    assert registry.get_champion(S3ObjectStore(BUCKET)) is None
    record = registry.why_rejected(job, S3ObjectStore(BUCKET))
    assert record["claimed_metrics"]["auc"] == 0.99
    assert record["metrics"]["auc"] < 0.65


def test_a_job_without_a_gate_part_is_not_promoted(
    aws: Any, promote: Any, trained_bundle: Path
) -> None:
    result = promote.lambda_handler(
        _completed(aws, "leadscore-unmeasured", trained_bundle, gate_part=False), lambda_context())
    assert result["status"] == "rejected"
    assert "no gate part" in result["reasons"][0]
