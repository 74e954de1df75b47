"""The training data's own distributions, carried in every bundle as `reference.json`.

Written by training from the rows the ensemble was fitted on (features) and the held-out
split (score and calibration), keyed by the bundle's feature names:

    {"version": 1, "rows": n,
     "features": {name: {"edges": [...], "fractions": [...]}},
     "score": {"edges": [...], "fractions": [...]},
     "calibration": [{"lo", "hi", "n", "mean_predicted", "observed_rate"}, ...]}

Drift monitoring compares recent traffic with it (`leadscore.monitoring.drift`), and the
health page draws "now vs at training" from it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leadscore import metrics
from leadscore.bundle import REFERENCE_FILE

VERSION = 1


@dataclass(frozen=True, slots=True)
class Reference:
    rows: int
    features: dict[str, metrics.ReferenceDistribution]
    score: metrics.ReferenceDistribution
    calibration: list[metrics.CalibrationBin]


def build_reference(
    feature_names: Sequence[str], train_features: np.ndarray,
    heldout_scores: np.ndarray, heldout_labels: np.ndarray,
) -> dict[str, Any]:
    """The JSON-ready reference of one bundle."""
    matrix = np.asarray(train_features, dtype=np.float64)
    return {
        "version": VERSION,
        "rows": int(matrix.shape[0]),
        "features": {name: metrics.reference_distribution(matrix[:, j])
                     for j, name in enumerate(feature_names)},
        "score": metrics.reference_distribution(heldout_scores),
        "calibration": metrics.calibration_bins(heldout_labels, heldout_scores),
    }


def _distribution(obj: Any, where: str) -> metrics.ReferenceDistribution:
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where}: must be an object")
    edges, fractions = obj.get("edges"), obj.get("fractions")
    if not isinstance(edges, list) or not isinstance(fractions, list) \
            or len(fractions) != len(edges) + 1:
        raise ValueError(f"{where}: needs edges and one more fraction than edges")
    return metrics.ReferenceDistribution(edges=[float(e) for e in edges],
                                         fractions=[float(f) for f in fractions])


def parse_reference(obj: Any) -> Reference:
    if not isinstance(obj, Mapping) or obj.get("version") != VERSION:
        raise ValueError(f"{REFERENCE_FILE}: not a version-{VERSION} reference")
    features = obj.get("features")
    if not isinstance(features, Mapping):
        raise ValueError(f"{REFERENCE_FILE}: features must be an object")
    calibration = obj.get("calibration")
    return Reference(
        rows=int(obj.get("rows", 0)),
        features={str(k): _distribution(v, f"features.{k}") for k, v in features.items()},
        score=_distribution(obj.get("score"), "score"),
        calibration=list(calibration) if isinstance(calibration, list) else [],
    )


def load_reference(bundle_dir: Path) -> Reference | None:
    """A bundle's reference, or None for bundles trained before references existed."""
    path = Path(bundle_dir) / REFERENCE_FILE
    if not path.is_file():
        return None
    return parse_reference(json.loads(path.read_text()))
