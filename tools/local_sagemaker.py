"""A SageMaker training job run on this machine: what `make simulate` uses in local mode.

moto records ``CreateTrainingJob`` but runs nothing. ``run_job`` does what SageMaker's
script mode would: downloads the job's ``training`` channel (the exact S3 prefix the retrain
function asked for), writes ``hyperparameters.json`` from the job's JSON-encoded
hyperparameters, runs ``training/train.py`` with ``/opt/ml`` moved to a temporary directory
(``LEADSCORE_OPT_ML_ROOT``) and the decoded hyperparameters as flags (as the training toolkit
passes them), uploads ``model.tar.gz`` to the job's output path, and answers the EventBridge
"SageMaker Training Job State Change" event the promote function receives.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


LIST_FLAGS = frozenset({"positive", "negative", "exclude", "keep"})


def _toolkit_args(hyperparameters: dict[str, str]) -> list[str]:
    args: list[str] = []
    for key, encoded in hyperparameters.items():
        if key.startswith("sagemaker_"):
            continue
        try:
            value = json.loads(encoded)
        except json.JSONDecodeError:
            value = encoded
        if key in LIST_FLAGS:
            # train.py's list flags repeat on its command line; a job's hyperparameter holds
            # them comma-separated (what SageMaker's hyperparameters.json reading splits)
            for part in str(value).split(","):
                if part.strip():
                    args += [f"--{key}", part.strip()]
            continue
        args += [f"--{key}", str(value)]
    return args


def _tar(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(directory)))
    return buffer.getvalue()


def run_job(
    sagemaker: Any, s3: Any, job_name: str, *, timeout_seconds: float = 900
) -> dict[str, Any]:
    """Run one recorded training job; answer the EventBridge event of its end."""
    job = sagemaker.describe_training_job(TrainingJobName=job_name)
    channel = next(c for c in job["InputDataConfig"] if c["ChannelName"] == "training")
    bucket, prefix = _split(channel["DataSource"]["S3DataSource"]["S3Uri"])
    out_bucket, out_prefix = _split(job["OutputDataConfig"]["S3OutputPath"])
    hyperparameters = dict(job.get("HyperParameters") or {})
    with tempfile.TemporaryDirectory(prefix="opt-ml-") as tmp:
        opt_ml = Path(tmp)
        data = opt_ml / "input" / "data" / "training"
        config = opt_ml / "input" / "config"
        data.mkdir(parents=True)
        config.mkdir(parents=True)
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        for item in listing.get("Contents", []):
            name = item["Key"].rsplit("/", 1)[-1]
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            (data / name).write_bytes(body)
        (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "LEADSCORE_"))}
        env.update(
            LEADSCORE_OPT_ML_ROOT=str(opt_ml),
            OMP_NUM_THREADS="1",
            OPENBLAS_NUM_THREADS="1",
            PYTHONWARNINGS="ignore",
            MPLBACKEND="Agg",
        )
        result = subprocess.run(  # noqa: S603 (our own interpreter and script)
            [sys.executable, str(ROOT / "training" / "train.py"), *_toolkit_args(hyperparameters)],
            cwd=ROOT / "training",
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_seconds,
            check=False,
        )
        failure_file = opt_ml / "output" / "failure"
        detail: dict[str, Any] = {
            "TrainingJobName": job_name,
            "TrainingJobArn": job.get("TrainingJobArn", ""),
            "HyperParameters": hyperparameters,
        }
        if result.returncode != 0:
            reason = (
                failure_file.read_text()[:1000]
                if failure_file.exists()
                else (result.stderr[-1000:] or f"exit code {result.returncode}")
            )
            detail.update(TrainingJobStatus="Failed", FailureReason=reason)
        else:
            key = f"{out_prefix.rstrip('/')}/{job_name}/output/model.tar.gz".lstrip("/")
            s3.put_object(Bucket=out_bucket, Key=key, Body=_tar(opt_ml / "model"))
            detail.update(
                TrainingJobStatus="Completed",
                ModelArtifacts={"S3ModelArtifacts": f"s3://{out_bucket}/{key}"},
            )
    return {
        "version": "0",
        "detail-type": "SageMaker Training Job State Change",
        "source": "aws.sagemaker",
        "detail": detail,
    }


def pending_jobs(sagemaker: Any, seen: set[str]) -> list[str]:
    """Training jobs created since the last look (oldest first)."""
    names: list[str] = []
    for page in sagemaker.get_paginator("list_training_jobs").paginate(
        SortBy="CreationTime", SortOrder="Ascending"
    ):
        names += [j["TrainingJobName"] for j in page["TrainingJobSummaries"]]
    return [n for n in names if n not in seen]
