"""A LoadedModel-compatible twin whose predict() runs the ORIGINAL's native models.

Swapped into our scoring service in place of the ONNX session, it measures what our handler
path would cost with the original's in-process native inference (`predict_proba` of the
three models + the stacker on one row), everything else being equal.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from leadscore.bundle import ModelOutputs

from bench.original import OriginalEnsemble


class NativeLoadedModel:
    """Quacks like `leadscore.bundle.LoadedModel` (manifest, version, explainer, predict)."""

    def __init__(self, original: OriginalEnsemble, like: Any) -> None:
        self.original = original
        self.manifest: dict[str, Any] = dict(like.manifest)
        self.version: str = "original-native"
        self.manifest["model_version"] = self.version
        self.path = getattr(like, "path", None)
        self.input_name: str = str(getattr(like, "input_name", "features"))
        self.output_names: list[str] = list(getattr(like, "output_names", []))
        # The original had no Shapley explainer; this twin is only used with explain=false.
        self.explainer = None
        self.baseline_score: float = float(like.baseline_score)
        self.class_thresholds: dict[str, float] | None = like.class_thresholds

    def predict(self, x32: np.ndarray) -> ModelOutputs:
        x = np.asarray(x32, dtype=np.float64)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        out = self.original.predict(x)
        return ModelOutputs(score=out.score, base_scores=out.base_scores, interval=out.interval)
