"""Behaviour checks of a fitted scorer: monotone sweeps against the feature directions."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

SWEEP_POINTS = 11
TOLERANCE = 1e-9


def wrong_direction_rates(
    predict: Callable[[np.ndarray], np.ndarray],
    X: np.ndarray,
    directions: Sequence[int],
    names: Sequence[str] | None = None,
    points: int = SWEEP_POINTS,
    tolerance: float = TOLERANCE,
) -> dict[str, float]:
    """Per constrained feature: the share of sweep steps that move the output the wrong way.

    Each row of X is swept along the feature over `points` values spanning its observed range
    (the others held fixed); a step "goes the wrong way" when the output moves against the
    feature's direction by more than `tolerance` (TOLERANCE: any move; 1e-3: a move a
    salesperson could see in a score shown to three decimals).
    """
    X = np.asarray(X, dtype=np.float64)
    out: dict[str, float] = {}
    for j, d in enumerate(directions):
        if d == 0:
            continue
        grid = np.linspace(X[:, j].min(), X[:, j].max(), points)
        swept = np.repeat(X, points, axis=0)
        swept[:, j] = np.tile(grid, X.shape[0])
        f = np.asarray(predict(swept), dtype=np.float64).reshape(X.shape[0], points)
        steps = np.diff(f, axis=1) * d
        out[names[j] if names else str(j)] = float(np.mean(steps < -tolerance))
    return out
