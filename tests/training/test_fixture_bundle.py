"""The shared session bundle is complete and loads with onnxruntime alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from leadscore import bundle
from leadscore.features import FEATURE_NAMES


def test_trained_bundle_loads_and_scores(trained_bundle: Path) -> None:
    model = bundle.load_model(trained_bundle)
    x = np.full((4, len(FEATURE_NAMES)), 0.5, dtype=np.float32)
    x[1] = 0.0
    x[2] = 1.0
    out = model.predict(x)
    assert out.score.shape == (4,)
    assert out.base_scores.shape == (4, 3)
    assert out.interval.shape == (4, 2)
    assert np.all((out.score >= 0) & (out.score <= 1))
    assert np.all(out.interval[:, 0] <= out.score + 1e-6)
    assert np.all(out.score <= out.interval[:, 1] + 1e-6)
