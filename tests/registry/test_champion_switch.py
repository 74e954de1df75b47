"""A scoring container pointed at the champion follows what the promote function decides:
it switches to a newly promoted version at its next refresh (within a minute), never serves
without a model in between, and ignores a refused candidate and follows a rollback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from leadscore import registry
from leadscore.adapters.s3 import S3Store
from leadscore.adapters.s3_store import S3ObjectStore
from leadscore.scoring.model_store import ModelStore

from tests.fixtures.fakes import FakeClock
from tools.lambda_context import lambda_context

from .conftest import BUCKET, BundleFactory
from .test_functions import _completed


def test_scoring_follows_promotions_and_rollback_within_a_minute(
    aws: Any, promote: Any, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    app = promote
    first, second = make_bundle(seed=1), make_bundle(seed=4)  # about as good: promoted
    weak = make_bundle(seed=3, sign=-1.0)  # measured: ranks leads upside down
    assert app.lambda_handler(_completed(aws, "job-1", first), lambda_context())["status"] == (
        "promoted")

    clock = FakeClock(0.0)
    store = ModelStore(f"s3://{BUCKET}/models/champion.json", s3=S3Store(aws),
                       cache_dir=tmp_path / "cache", refresh_seconds=60, clock=clock)
    x = np.full((1, 20), 0.5, dtype=np.float32)

    def serve() -> str:
        model = store.current()
        assert model is not None  # never a request without a model
        assert np.isfinite(model.predict(x).score).all()
        return model.version

    v1 = serve()
    assert app.lambda_handler(_completed(aws, "job-2", second), lambda_context())["status"] == (
        "promoted")
    v2 = str((registry.get_champion(S3ObjectStore(BUCKET)) or {})["version"])
    seen = []
    for _ in range(4):
        clock.now += 20
        seen.append(serve())
    assert v1 != v2
    assert seen == [v1, v1, v2, v2]  # the switch happens at the first check after t=60

    # a refused candidate changes nothing for the container
    assert app.lambda_handler(_completed(aws, "job-3", weak), lambda_context())["status"] == (
        "rejected")
    clock.now += 61
    assert serve() == v2

    registry.rollback(S3ObjectStore(BUCKET))
    clock.now += 61
    assert serve() == v1
