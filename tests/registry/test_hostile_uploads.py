"""The retrain function refuses a hostile upload with a written reason (moto)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from leadscore.adapters.s3_store import S3Uploads
from leadscore.adapters.sagemaker_jobs import SageMakerJobs
from leadscore.settings import RetrainSettings
from leadscore.wiring.container import PerContainer

from tools.lambda_context import lambda_context

from .conftest import BUCKET


def test_the_retrain_function_writes_a_refusal_for_a_deep_jsonl_upload(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: RecursionError, no refusal record, retries, then the async failure queue.
    from functions.retrain import app

    container = app.Container(RetrainSettings(
        artifact_bucket=BUCKET,
        training_image_uri="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        training_role_arn="arn:aws:iam::123456789012:role/lead-scoring-sagemaker-training",
        region="us-east-1",
    ), S3Uploads(), SageMakerJobs())
    monkeypatch.setattr(app, "_container", PerContainer(lambda: container))
    key = "training-data/deep.jsonl"
    put = aws.put_object(Bucket=BUCKET, Key=key, Body=b"[" * 5000 + b"\n")
    event = {"Records": [{"s3": {"bucket": {"name": BUCKET},
                                 "object": {"key": key, "versionId": put["VersionId"],
                                            "eTag": put["ETag"].strip('"')}}}]}
    answer = app.lambda_handler(event, lambda_context())
    assert answer["results"][0]["status"] == "refused"
    record = json.loads(aws.get_object(Bucket=BUCKET,
                                       Key="training-data/rejected/deep.jsonl.json")["Body"].read())
    assert record["reasons"] and "nested" in " ".join(record["reasons"])
