"""Which features the served model leans on now: permutation importance on recent outcomes.

For each feature, its column in the recent labelled rows is shuffled (a fixed seed, a few
repeats) and the drop in AUC is the feature's importance this week. Tracked week by week it
shows a model whose signal moved to other features, or a feature gone dead upstream (a field
that stopped arriving drops to zero importance) before the headline AUC shows it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from leadscore import metrics

Predict = Callable[[np.ndarray], np.ndarray]
DEFAULT_REPEATS = 3
MIN_ROWS = 100


def permutation_importance(
    predict: Predict, feature_names: Sequence[str], features: np.ndarray,
    converted: np.ndarray, *, repeats: int = DEFAULT_REPEATS, seed: int = 0,
) -> dict[str, float] | None:
    """AUC drop per feature; None when the rows cannot support an AUC (too few, one class)."""
    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(converted, dtype=bool)
    if len(y) < MIN_ROWS or y.all() or not y.any():
        return None
    base = metrics.auc(y, predict(x))
    rng = np.random.default_rng(seed)
    drops: dict[str, float] = {}
    for j, name in enumerate(feature_names):
        shuffled = x.copy()
        aucs = []
        for _ in range(repeats):
            shuffled[:, j] = x[rng.permutation(len(x)), j]
            aucs.append(metrics.auc(y, predict(shuffled)))
        drops[name] = round(float(base - np.mean(aucs)), 6)
    return drops
