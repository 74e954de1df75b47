"""The retrain and promote Lambda functions against moto (S3 + SageMaker)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from leadscore import registry
from leadscore.adapters.s3_store import S3ObjectStore
from leadscore.bundle import MODEL_FILE, WAITING_HISTORY_KEY, finalize_bundle
from leadscore.features import FEATURE_NAMES

from tools.lambda_context import lambda_context

from .conftest import BUCKET, GOOD_METRICS, BundleFactory, put_gate_part, tar_bundle

EVENTS = Path(__file__).resolve().parents[2] / "events"
HEADER = ",".join([*FEATURE_NAMES, "converted"])
ROW = ",".join(["0.5"] * 20 + ["1"])


def _event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


# ----------------------------------------------------------------------------- retrain


def _upload(s3: Any, key: str, body: bytes) -> dict[str, Any]:
    answer = s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    event = _event("s3_training_upload.json")
    record = event["Records"][0]
    record["s3"]["bucket"]["name"] = BUCKET
    record["s3"]["object"].update(
        key=key.replace(" ", "+"), size=len(body), versionId=answer["VersionId"],
        eTag=answer["ETag"].strip('"'),
    )
    return event


def _jobs(aws: Any) -> list[str]:
    from leadscore.adapters import client

    return [j["TrainingJobName"] for j in client("sagemaker").list_training_jobs()
            ["TrainingJobSummaries"]]


def test_an_upload_starts_exactly_one_job_even_when_delivered_twice(
    aws: Any, retrain: Any
) -> None:
    body = (HEADER + "\n" + (ROW + "\n") * 50).encode()
    event = _upload(aws, "training-data/leads 2026.csv", body)
    first = retrain.lambda_handler(event, lambda_context())
    second = retrain.lambda_handler(copy.deepcopy(event), lambda_context())
    assert first["results"][0]["status"] == "started"
    assert second["results"][0]["status"] == "duplicate"
    jobs = _jobs(aws)
    assert len(jobs) == 1
    assert jobs == [first["results"][0]["job"]]

    from leadscore.adapters import client

    job = client("sagemaker").describe_training_job(TrainingJobName=jobs[0])
    # the channel is the job's own training part of the checked upload, not the upload
    assert job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == (
        f"s3://{BUCKET}/jobs/{jobs[0]}/input/train.csv"
    )
    assert json.loads(job["HyperParameters"]["sagemaker_program"]) == "train.py"


def test_a_new_version_of_the_same_key_starts_a_new_job(aws: Any, retrain: Any) -> None:
    body = (HEADER + "\n" + ROW + "\n").encode()
    for _ in range(2):
        retrain.lambda_handler(_upload(aws, "training-data/leads.csv", body), lambda_context())
    assert len(_jobs(aws)) == 2


def test_a_csv_without_converted_is_refused_with_a_reason(aws: Any, retrain: Any) -> None:
    body = (",".join(FEATURE_NAMES) + "\n" + ",".join(["0.5"] * 20) + "\n").encode()
    event = _upload(aws, "training-data/no_target.csv", body)
    result = retrain.lambda_handler(event, lambda_context())["results"][0]
    assert result["status"] == "refused"
    assert _jobs(aws) == []
    record = json.loads(aws.get_object(
        Bucket=BUCKET, Key="training-data/rejected/no_target.csv.json")["Body"].read())
    assert record["reasons"] == ["Target column 'converted' not found"]
    assert record["source_key"] == "training-data/no_target.csv"
    assert record["source_version"] == event["Records"][0]["s3"]["object"]["versionId"]


def test_only_the_head_of_a_large_file_is_read(aws: Any, retrain: Any) -> None:
    # a valid header followed by far more than head_bytes of rows the head check never
    # sees (the split reads them all, record by record, and refuses an unreadable one)
    body = (HEADER + "\n" + (ROW + "\n") * 2_000).encode()
    result = retrain.lambda_handler(_upload(aws, "training-data/big.csv", body), lambda_context())
    assert result["results"][0]["status"] == "started"


def test_an_upload_the_split_cannot_read_is_refused_with_its_line(aws: Any, retrain: Any
                                                                  ) -> None:
    body = (HEADER + "\n" + ROW + "\n").encode() + b"\xff" * 100_000
    result = retrain.lambda_handler(_upload(aws, "training-data/big.csv", body), lambda_context())
    assert result["results"][0]["status"] == "refused"
    assert "line 3" in result["results"][0]["reasons"][0]
    assert _jobs(aws) == []


def test_other_keys_are_ignored(aws: Any, retrain: Any) -> None:
    event = _upload(aws, "training-data/rejected/x.csv", b"anything")
    assert retrain.lambda_handler(event, lambda_context())["results"][0]["status"] == "ignored"
    assert _jobs(aws) == []


# ----------------------------------------------------------------------------- promote

def _completed(aws: Any, job: str, bundle_dir: Path, *, gate_part: bool = True
               ) -> dict[str, Any]:
    key = f"jobs/{job}/output/model.tar.gz"
    aws.put_object(Bucket=BUCKET, Key=key, Body=tar_bundle(bundle_dir))
    if gate_part:
        put_gate_part(aws, job)
    event = _event("sagemaker_job_completed.json")
    event["detail"]["TrainingJobName"] = job
    event["detail"]["ModelArtifacts"]["S3ModelArtifacts"] = f"s3://{BUCKET}/{key}"
    return event


def _champion_bytes(aws: Any) -> bytes | None:
    try:
        return bytes(aws.get_object(Bucket=BUCKET, Key=registry.CHAMPION_KEY)["Body"].read())
    except aws.exceptions.NoSuchKey:
        return None


def test_a_completed_job_with_a_good_bundle_becomes_champion(
    aws: Any, promote: Any, make_bundle: BundleFactory
) -> None:
    directory = make_bundle(seed=1)
    result = promote.lambda_handler(_completed(aws, "job-a", directory), lambda_context())
    assert result["status"] == "promoted"
    champion = json.loads(_champion_bytes(aws) or b"{}")
    manifest = json.loads((directory / "manifest.json").read_text())
    assert champion["version"] == manifest["model_version"]
    assert champion["source"]["job_name"] == "job-a"
    keys = S3ObjectStore(BUCKET).list(champion["prefix"])
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == sorted(p.name for p in directory.iterdir())
    # the same event again changes nothing
    before = _champion_bytes(aws)
    again = promote.lambda_handler(_completed(aws, "job-a", directory), lambda_context())
    assert again["status"] == "duplicate"
    assert _champion_bytes(aws) == before


def test_the_trained_bundle_becomes_champion(
    aws: Any, promote: Any, trained_bundle: Path
) -> None:
    result = promote.lambda_handler(_completed(aws, "job-real", trained_bundle), lambda_context())
    assert result["status"] == "promoted", result
    champion = json.loads(_champion_bytes(aws) or b"{}")
    assert champion["version"] == json.loads(
        (trained_bundle / "manifest.json").read_text())["model_version"]


def _tampered(make_bundle: BundleFactory) -> Path:
    directory = make_bundle(seed=4)
    with open(directory / MODEL_FILE, "ab") as fh:
        fh.write(b"\x00")
    return directory


def _unloadable(make_bundle: BundleFactory) -> Path:
    directory = make_bundle(seed=5)
    (directory / MODEL_FILE).write_bytes(b"not an onnx graph")
    finalize_bundle(directory, {"metrics": GOOD_METRICS})
    return directory


def _below_gate(make_bundle: BundleFactory) -> Path:
    # ranks leads upside down while its manifest claims the good figures
    return make_bundle(seed=6, sign=-1.0)


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (_below_gate, "auc_lower_bound"),
        (_tampered, "sha256 mismatch"),
        (_unloadable, "does not load"),
    ],
)
def test_a_bad_bundle_is_refused_and_the_champion_is_unchanged(
    aws: Any, promote: Any, make_bundle: BundleFactory, build: Any, fragment: str
) -> None:
    assert promote.lambda_handler(
        _completed(aws, "job-good", make_bundle(seed=1)), lambda_context())["status"] == "promoted"
    before = _champion_bytes(aws)
    event = _completed(aws, "job-bad", build(make_bundle))
    result = promote.lambda_handler(event, lambda_context())
    assert result["status"] == "rejected"
    assert any(fragment in r for r in result["reasons"]), result
    assert _champion_bytes(aws) == before
    record = registry.why_rejected("job-bad", S3ObjectStore(BUCKET))
    assert record["reasons"] == result["reasons"]
    assert record["source"]["job_name"] == "job-bad"
    # a model serves: its own history is what exports carry, not the refused job's
    assert not S3ObjectStore(BUCKET).exists(WAITING_HISTORY_KEY)


def test_a_first_candidate_the_gate_refuses_has_its_history_carried(
    aws: Any, promote: Any, make_bundle: BundleFactory
) -> None:
    # refused on its own held-out part, its upload still holds what the team knew before the
    # loop: the next export carries it, as after a job that failed
    result = promote.lambda_handler(_completed(aws, "job-weak", _below_gate(make_bundle)),
                                    lambda_context())
    assert result["status"] == "rejected" and _champion_bytes(aws) is None
    assert json.loads(aws.get_object(Bucket=BUCKET, Key=WAITING_HISTORY_KEY)["Body"].read()
                      ) == {"job": "job-weak"}


def test_an_unsafe_archive_is_refused(aws: Any, promote: Any, tmp_path: Path) -> None:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    key = "jobs/job-evil/output/model.tar.gz"
    aws.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())
    event = _event("sagemaker_job_completed.json")
    event["detail"]["TrainingJobName"] = "job-evil"
    event["detail"]["ModelArtifacts"]["S3ModelArtifacts"] = f"s3://{BUCKET}/{key}"
    result = promote.lambda_handler(event, lambda_context())
    assert result["status"] == "rejected" and "escapes" in result["reasons"][0]
    assert _champion_bytes(aws) is None


def test_a_completed_job_without_its_artifact_is_refused(aws: Any, promote: Any) -> None:
    event = _event("sagemaker_job_completed.json")
    event["detail"]["TrainingJobName"] = "job-lost"
    event["detail"]["ModelArtifacts"]["S3ModelArtifacts"] = (
        f"s3://{BUCKET}/jobs/job-lost/output/model.tar.gz")
    result = promote.lambda_handler(event, lambda_context())
    assert result["status"] == "rejected" and "does not exist" in result["reasons"][0]
    assert registry.why_rejected("job-lost", S3ObjectStore(BUCKET))["reasons"] == result["reasons"]
    other = _event("sagemaker_job_completed.json")
    other["detail"]["TrainingJobName"] = "job-elsewhere"
    other["detail"]["ModelArtifacts"]["S3ModelArtifacts"] = (
        "s3://someone-elses-bucket/jobs/job-elsewhere/output/model.tar.gz")
    result = promote.lambda_handler(other, lambda_context())
    assert result["status"] == "rejected" and "outside bucket" in result["reasons"][0]
    assert _champion_bytes(aws) is None


def test_a_failed_job_is_recorded_with_its_failure_reason(aws: Any, promote: Any) -> None:
    event = _event("sagemaker_job_failed.json")
    result = promote.lambda_handler(event, lambda_context())
    assert result["status"] == "rejected"
    job = event["detail"]["TrainingJobName"]
    record = json.loads(aws.get_object(
        Bucket=BUCKET, Key=f"models/rejected/{job}.json")["Body"].read())
    assert record["failure_reason"] == event["detail"]["FailureReason"]
    assert event["detail"]["FailureReason"] in record["reasons"][0]
    assert _champion_bytes(aws) is None
    # no model serves: the loop's next export carries the history this job's upload held
    assert json.loads(aws.get_object(Bucket=BUCKET, Key=WAITING_HISTORY_KEY)["Body"].read()
                      ) == {"job": job}


def test_a_stopped_job_is_recorded_like_a_failed_one(
    aws: Any, promote: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted: list[str] = []
    monkeypatch.setattr(promote.metrics, "add_metric",
                        lambda **metric: counted.append(metric["name"]))
    event = _event("sagemaker_job_stopped.json")  # MaxRuntimeExceeded
    result = promote.lambda_handler(event, lambda_context())
    assert result["status"] == "rejected"
    job = event["detail"]["TrainingJobName"]
    record = json.loads(aws.get_object(
        Bucket=BUCKET, Key=f"models/rejected/{job}.json")["Body"].read())
    assert record["training_status"] == "Stopped"
    assert "MaxRuntimeExceeded" in record["reasons"][0]
    assert "TrainingJobsFailed" in counted  # the metric TrainingJobFailedAlarm watches
    assert _champion_bytes(aws) is None


@pytest.mark.parametrize("status", ["InProgress", "Stopping"])
def test_other_statuses_are_ignored(aws: Any, promote: Any, status: str) -> None:
    event = _event("sagemaker_job_failed.json")
    event["detail"]["TrainingJobStatus"] = status
    assert promote.lambda_handler(event, lambda_context())["status"] == "ignored"
    assert S3ObjectStore(BUCKET).list("models/") == []


def test_rollback_on_s3_restores_the_previous_champion(
    aws: Any, promote: Any, make_bundle: BundleFactory
) -> None:
    first, second = make_bundle(seed=1), make_bundle(seed=4)  # about as good: promoted
    promote.lambda_handler(_completed(aws, "job-1", first), lambda_context())
    promote.lambda_handler(_completed(aws, "job-2", second), lambda_context())
    store = S3ObjectStore(BUCKET)
    champion = registry.get_champion(store)
    assert champion is not None and champion["source"]["job_name"] == "job-2"
    restored = registry.rollback(store)
    assert restored["source"]["job_name"] == "job-1"
    after = registry.get_champion(store)
    assert after is not None and after["version"] == restored["version"]
