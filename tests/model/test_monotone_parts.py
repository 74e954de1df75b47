"""The network and the logistic regression that follow declared directions, and the stacker
that drops parts which do not help out of fold."""

from __future__ import annotations

import numpy as np
import pytest
from lead_ensemble.ensemble import PART_NAMES, choose_parts
from lead_ensemble.monotone import MonotoneNetwork


def _against_the_grain(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Column 0 lowers the odds, though it is declared +1; column 1 raises them; column 2 is
    free and bends the effect of the others (an interaction the network may learn)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    z = -1.5 * X[:, 0] + 1.0 * X[:, 1] + 0.8 * X[:, 1] * X[:, 2]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-z))).astype(np.int64)
    return X, y


@pytest.mark.slow
@pytest.mark.parametrize("hidden", [(), (8, 4)])
def test_outputs_never_move_against_a_declared_direction(hidden: tuple[int, ...]) -> None:
    X, y = _against_the_grain()
    net = MonotoneNetwork([1, 1, 0], hidden=hidden, alpha=1.0, max_iter=100, seed=1).fit(X, y)
    grid = np.linspace(-3, 3, 25)
    for j in (0, 1):
        rows = np.repeat(X[:50], grid.size, axis=0)
        rows[:, j] = np.tile(grid, 50)
        steps = np.diff(net.decision_function(rows).reshape(50, grid.size), axis=1)
        assert steps.min() >= -1e-12, (hidden, j, steps.min())
    # it still learns what it may: column 1 raises the score
    assert net.decision_function(np.array([[0.0, 2.0, 0.0]]))[0] > net.decision_function(
        np.array([[0.0, -2.0, 0.0]]))[0] + 1.0
    if hidden:  # the free column can bend the others: the network is not additive in it
        lo = net.decision_function(np.array([[0, 2, -2], [0, -2, -2]], dtype=float))
        hi = net.decision_function(np.array([[0, 2, 2], [0, -2, 2]], dtype=float))
        assert abs((hi[0] - hi[1]) - (lo[0] - lo[1])) > 0.1


@pytest.mark.slow
def test_the_concave_units_export_as_a_plain_relu_network() -> None:
    """min(a, 0) = -relu(-a): coefs_/intercepts_ (what ONNX and the explainer read) are a
    plain ReLU network equal to the one trained."""
    X, y = _against_the_grain(300)
    net = MonotoneNetwork([1, 1, 0], hidden=(6, 4), alpha=1.0, max_iter=60, seed=2).fit(X, y)
    theta = np.concatenate([a for w, b in zip(net.coefs_, net.intercepts_, strict=True)
                            for a in (w.ravel(), b)])
    # undo the export's sign flips to get the trained parameters back, then run them
    ws = [w.copy() for w in net.coefs_]
    bs = [b.copy() for b in net.intercepts_]
    for layer, concave in enumerate(net._concave()):
        ws[layer][:, concave] *= -1
        bs[layer][concave] *= -1
        ws[layer + 1][concave, :] *= -1
    trained = np.concatenate([a for w, b in zip(ws, bs, strict=True) for a in (w.ravel(), b)])
    z_trained = net._forward(trained, X, 3)[0]
    assert not np.allclose(trained, theta)  # there were concave units to flip
    np.testing.assert_allclose(net.decision_function(X), z_trained, atol=1e-10)


def test_the_stacker_drops_a_part_that_does_not_help_out_of_fold() -> None:
    rng = np.random.default_rng(4)
    signal = rng.normal(size=3000)
    y = (rng.uniform(size=3000) < 1 / (1 + np.exp(-signal))).astype(np.int64)
    oof = np.column_stack([signal + rng.normal(scale=0.5, size=3000),
                           signal + rng.normal(scale=0.5, size=3000),
                           rng.normal(size=3000),  # noise: helps nobody
                           signal + rng.normal(scale=0.2, size=3000)])
    choice = choose_parts(oof, y, c=1.0, folds=5, seed=0)
    assert 2 not in choice.kept and 3 in choice.kept
    assert "+".join(PART_NAMES) in choice.tried  # every part was tried first
    assert choice.stack_oof.shape == (3000,)
