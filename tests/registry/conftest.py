"""Fixtures of the retraining tests: a hand-built tiny bundle, a local store, moto AWS."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from leadscore.adapters.s3_store import S3Artifacts, S3ObjectStore, S3Uploads
from leadscore.adapters.sagemaker_jobs import SageMakerJobs
from leadscore.features import FEATURE_NAMES
from leadscore.registry import LocalObjectStore
from leadscore.registry.gate import EvalRows, read_rows
from leadscore.settings import PromoteSettings, RetrainSettings
from onnx import TensorProto, helper, numpy_helper

from tests.fixtures import aws as template_aws
from tests.fixtures.bad_models import write_lying_bundle

# The template's bucket name: the IAM check resolves the functions' policies with it.
BUCKET = template_aws.template_name("ArtifactBucket")
REGION = "us-east-1"

GOOD_METRICS = {"auc": 0.86, "brier": 0.14, "parity_max_abs_diff": 2e-7}


def _tiny_graph(seed: int, sign: float = 1.0, keep: int = 20,
                width: int = 20) -> onnx.ModelProto:
    """A real ONNX graph with the contract's I/O: score [N], base_scores [N,3], interval [N,2].

    A small logistic model on the rules' weights (so it ranks generated leads well, AUC ~0.8),
    perturbed by `seed` so each seed is its own version; `sign=-1` turns it upside down;
    `keep` < 20 uses only the first `keep` features (a weaker model); `width` < 20 takes only
    the first `width` features as its input (a team schema of those columns).
    """
    from leadscore.scoring.rules import INVERTED, RULE_WEIGHTS

    rng = np.random.default_rng(seed)
    direction = np.array([-1.0 if n in INVERTED else 1.0 for n in FEATURE_NAMES])
    weights = np.array([RULE_WEIGHTS[n] for n in FEATURE_NAMES]) * direction * 12.0 * sign
    weights[keep:] = 0.0
    w = (weights[:, None] * (1.0 + 0.05 * rng.normal(size=(20, 3)))).astype(np.float32)
    w = w[:width]
    # about the generator's conversion rate for a typical lead (features near 0.5)
    bias = np.full((1, 3), -1.6 - 0.5 * float(weights[:width].sum()), dtype=np.float32)
    stack = np.array([[0.4], [0.3], [0.3]], dtype=np.float32)
    half = np.array([0.05], dtype=np.float32)
    lo_hi = np.array([0.0, 1.0], dtype=np.float32)
    shape = np.array([-1], dtype=np.int64)
    nodes = [
        helper.make_node("MatMul", ["features", "w"], ["xw"]),
        helper.make_node("Add", ["xw", "bias"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["base_scores"]),
        helper.make_node("MatMul", ["logits", "stack"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
        helper.make_node("Reshape", ["p", "shape"], ["score"]),
        helper.make_node("Sub", ["p", "half"], ["lo_raw"]),
        helper.make_node("Add", ["p", "half"], ["hi_raw"]),
        helper.make_node("Concat", ["lo_raw", "hi_raw"], ["iv_raw"], axis=1),
        helper.make_node("Clip", ["iv_raw", "clip_lo", "clip_hi"], ["interval"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, width])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("base_scores", TensorProto.FLOAT, [None, 3]),
            helper.make_tensor_value_info("interval", TensorProto.FLOAT, [None, 2]),
        ],
        initializer=[
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(bias, "bias"),
            numpy_helper.from_array(stack, "stack"),
            numpy_helper.from_array(half, "half"),
            numpy_helper.from_array(shape, "shape"),
            numpy_helper.from_array(lo_hi[:1].reshape(()), "clip_lo"),
            numpy_helper.from_array(lo_hi[1:].reshape(()), "clip_hi"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


BundleFactory = Callable[..., Path]


@pytest.fixture
def make_bundle(tmp_path: Path) -> BundleFactory:
    """make_bundle(seed=0, metrics=GOOD_METRICS) -> a verified bundle directory (flat).

    The manifest's `metrics` are only claims; the gate measures the graph itself.
    """
    counter = iter(range(10_000))

    def build(seed: int = 0, metrics: dict[str, Any] | None = None, sign: float = 1.0,
              conversions: int = 1000, keep: int = 20) -> Path:
        directory = tmp_path / f"bundle-{next(counter)}"
        return write_lying_bundle(directory, _tiny_graph(seed, sign, keep),
                                  GOOD_METRICS if metrics is None else metrics,
                                  class_counts=(conversions, 4 * conversions))

    return build


@pytest.fixture
def local_store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "store")


def tar_bundle(directory: Path) -> bytes:
    """What SageMaker uploads: the contents of /opt/ml/model as model.tar.gz."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(directory.iterdir()):
            tar.add(path, arcname=path.name)
    return buffer.getvalue()


@pytest.fixture
def aws(aws_env: None) -> Iterator[Any]:
    """moto S3 + SageMaker with the artifact bucket (versioned), fresh boto3 clients."""
    from leadscore.adapters import client

    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    yield s3


_GATE_CSV: list[bytes] = []


def gate_csv() -> bytes:
    """600 generated leads (seed 11, never a training seed in these tests) as a gate part."""
    if not _GATE_CSV:
        from generate_leads import generate_leads, to_feature_frame

        rows = to_feature_frame(generate_leads(600, 11))
        header = [*FEATURE_NAMES, "converted"]
        lines = [",".join(header)] + [",".join(str(r[c]) for c in header) for r in rows]
        _GATE_CSV.append(("\n".join(lines) + "\n").encode())
    return _GATE_CSV[0]


def put_gate_part(s3: Any, job: str, body: bytes | None = None,
                  train_counts: tuple[int, int] = (1000, 4000)) -> None:
    """What the retrain function leaves for `job`: evaluation/<job>/gate.csv + split.json."""
    from leadscore.registry import retraining

    s3.put_object(Bucket=BUCKET, Key=retraining.gate_part_key(job, "x.csv"),
                  Body=gate_csv() if body is None else body)
    record = {"train": {"rows": sum(train_counts), "converted": train_counts[0],
                        "not_converted": train_counts[1], "unlabelled": 0}}
    s3.put_object(Bucket=BUCKET, Key=retraining.split_record_key(job),
                  Body=json.dumps(record).encode())


@pytest.fixture
def retrain(aws: Any) -> Iterator[Any]:
    from functions.retrain import app

    app.set_container(app.Container(RetrainSettings(
        artifact_bucket=BUCKET,
        training_image_uri="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-py312-cpu-py3",
        training_role_arn=template_aws.role_arn("SageMakerTrainingRole"),
        region="us-east-1",
        head_bytes=4096,
    ), S3Uploads(), SageMakerJobs()))
    yield app
    app.set_container(None)


GATE = PromoteSettings(artifact_bucket=BUCKET, min_auc=0.70, max_auc_drop=0.02, max_brier=0.20)


@pytest.fixture
def promote(aws: Any) -> Iterator[Any]:
    from functions.promote import app

    app.set_container(app.Container(GATE, S3ObjectStore(BUCKET), S3Artifacts()))
    yield app
    app.set_container(None)


@pytest.fixture(scope="session")
def gate_rows() -> EvalRows:
    """The same 600 held-out leads as labelled rows (what `modelctl promote --eval` reads)."""
    rows, skipped = read_rows(gate_csv(), jsonl=False, source="generated leads, seed 11")
    assert skipped == 0
    return rows
