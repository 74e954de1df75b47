"""The retrain function's upload limit follows from its sizing (memory, timeout, /tmp), and an
upload over it is refused with a written record before anything is split or started."""

from __future__ import annotations

import json
from typing import Any

import pytest
from leadscore.adapters.s3_store import S3Uploads
from leadscore.adapters.sagemaker_jobs import SageMakerJobs
from leadscore.registry import retraining
from leadscore.settings import RetrainSettings
from leadscore.wiring.container import PerContainer

from tests.fixtures.aws import resources
from tools.lambda_context import lambda_context

from .conftest import BUCKET

GIB = 1024**3
OLD_CAP = 5 * GIB  # the fixed cap before the limit was computed


def test_the_template_sizes_the_retrain_function_as_the_limit_assumes() -> None:
    props = resources("AWS::Serverless::Function")["RetrainFunction"]["Properties"]
    assert props["MemorySize"] == retraining.FUNCTION_MEMORY_MB
    assert props["Timeout"] == retraining.FUNCTION_TIMEOUT_SECONDS
    assert props["EphemeralStorage"] == {"Size": retraining.FUNCTION_EPHEMERAL_MB}
    assert "TRAINING_MAX_UPLOAD_BYTES" not in props["Environment"]["Variables"]


def test_the_limit_fits_tmp_and_the_time_the_split_needs() -> None:
    limit = retraining.UPLOAD_LIMIT_BYTES
    # both parts of the split are spooled at once: together the upload's size
    assert limit <= (retraining.FUNCTION_EPHEMERAL_MB - retraining.TMP_RESERVE_MB) * 1024**2
    vcpu = min(1.0, retraining.FUNCTION_MEMORY_MB / retraining.MB_PER_VCPU)
    seconds = limit * retraining.SPLIT_SAFETY_FACTOR / (
        retraining.SPLIT_BYTES_PER_CPU_SECOND * vcpu)
    assert seconds <= retraining.FUNCTION_TIMEOUT_SECONDS - retraining.TIME_RESERVE_SECONDS
    assert 500 * 1024**2 < limit < GIB < OLD_CAP  # the figures docs/RETRAINING.md gives
    # the sizing before (512 MB, 60 s, 512 MB of /tmp) could not split even 100 MB in time
    assert retraining.upload_limit_bytes(512, 60, 512) < 100 * 1024**2


def test_the_configured_limit_may_lower_the_computed_one_never_raise_it() -> None:
    assert retraining.upload_limit(RetrainSettings()) == retraining.UPLOAD_LIMIT_BYTES
    assert retraining.upload_limit(RetrainSettings(max_upload_bytes=1000)) == 1000
    assert retraining.upload_limit(RetrainSettings(max_upload_bytes=OLD_CAP)) == (
        retraining.UPLOAD_LIMIT_BYTES)
    limit = retraining.UPLOAD_LIMIT_BYTES
    assert retraining.check_upload_size(limit, RetrainSettings()) is None
    assert retraining.check_upload_size(limit + 1, RetrainSettings())


@pytest.mark.parametrize("size", [GIB, retraining.UPLOAD_LIMIT_BYTES + 1, OLD_CAP - 1])
def test_an_upload_between_the_limit_and_the_old_cap_is_refused_without_a_job(
    aws: Any, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    from functions.retrain import app

    settings = RetrainSettings(
        artifact_bucket=BUCKET,
        training_image_uri="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-py312-cpu-py3",
        training_role_arn="arn:aws:iam::123456789012:role/lead-scoring-sagemaker-training",
        region="us-east-1",
    )
    key = "training-data/huge.csv"
    header = ",".join(["urgency_level", "converted"]).encode()
    put = aws.put_object(Bucket=BUCKET, Key=key, Body=header + b"\n0.5,1\n" * 200)
    class BigObject(S3Uploads):
        def head(self, bucket: str, key: str, version: str | None,
                 length: int) -> tuple[bytes, bool, int | None]:
            head, _complete, _size = super().head(bucket, key, version, length)
            return head, False, size  # what S3's Content-Range says of a `size`-byte object

    container = app.Container(settings, BigObject(), SageMakerJobs())
    monkeypatch.setattr(app, "_container", PerContainer(lambda: container))
    event = {"Records": [{"s3": {"bucket": {"name": BUCKET},
                                 "object": {"key": key, "versionId": put["VersionId"],
                                            "eTag": put["ETag"].strip('"')}}}]}
    answer = app.lambda_handler(event, lambda_context())
    assert answer["results"][0]["status"] == "refused"
    record = json.loads(aws.get_object(
        Bucket=BUCKET, Key="training-data/rejected/huge.csv.json")["Body"].read())
    (reason,) = record["reasons"]
    assert f"the file is {size} bytes" in reason and str(retraining.UPLOAD_LIMIT_BYTES) in reason
    written = [o["Key"] for o in aws.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert not [k for k in written if k.startswith(("jobs/", "evaluation/"))], written
    import boto3

    jobs = boto3.client("sagemaker", region_name="us-east-1").list_training_jobs()
    assert jobs["TrainingJobSummaries"] == []
