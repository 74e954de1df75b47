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
from leadscore import bundle
from leadscore.features import FEATURE_NAMES
from leadscore.registry import LocalObjectStore
from onnx import TensorProto, helper, numpy_helper

from tests.fixtures import aws as template_aws

# The template's bucket name: the IAM check resolves the functions' policies with it.
BUCKET = template_aws.template_name("ArtifactBucket")
REGION = "us-east-1"

GOOD_METRICS = {"auc": 0.86, "brier": 0.14, "parity_max_abs_diff": 2e-7}


def _tiny_graph(seed: int) -> onnx.ModelProto:
    """A real ONNX graph with the contract's I/O: score [N], base_scores [N,3], interval [N,2]."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(20, 3)).astype(np.float32)
    stack = np.array([[0.4], [0.3], [0.3]], dtype=np.float32)
    half = np.array([0.05], dtype=np.float32)
    shape = np.array([-1], dtype=np.int64)
    nodes = [
        helper.make_node("MatMul", ["features", "w"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["base_scores"]),
        helper.make_node("MatMul", ["logits", "stack"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
        helper.make_node("Reshape", ["p", "shape"], ["score"]),
        helper.make_node("Sub", ["p", "half"], ["lo"]),
        helper.make_node("Add", ["p", "half"], ["hi"]),
        helper.make_node("Concat", ["lo", "hi"], ["interval"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 20])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("base_scores", TensorProto.FLOAT, [None, 3]),
            helper.make_tensor_value_info("interval", TensorProto.FLOAT, [None, 2]),
        ],
        initializer=[
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(stack, "stack"),
            numpy_helper.from_array(half, "half"),
            numpy_helper.from_array(shape, "shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


BundleFactory = Callable[..., Path]


@pytest.fixture
def make_bundle(tmp_path: Path) -> BundleFactory:
    """make_bundle(seed=0, metrics=GOOD_METRICS) -> a verified bundle directory (flat)."""
    counter = iter(range(10_000))

    def build(seed: int = 0, metrics: dict[str, Any] | None = None) -> Path:
        directory = tmp_path / f"bundle-{next(counter)}"
        directory.mkdir()
        onnx.save(_tiny_graph(seed), str(directory / bundle.MODEL_FILE))
        summary = dict(GOOD_METRICS if metrics is None else metrics)
        (directory / bundle.METRICS_FILE).write_text(
            json.dumps({"ensemble_auc_roc": summary.get("auc"), "model_version": "x"})
        )
        bundle.finalize_bundle(
            directory, {"metrics": summary, "feature_names": list(FEATURE_NAMES)}
        )
        return directory

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
