"""Networks whose output respects the feature contract's directions (training side only).

`MonotoneNetwork` is a ReLU network fitted by L-BFGS-B with sign bounds on its weights:

* first layer: the weights from a feature with direction +1 are >= 0, with -1 <= 0, free
  features any sign, so every first-layer pre-activation moves with the declared directions;
* every later layer's weights are >= 0, and each hidden unit is either ``relu(a)`` (convex)
  or ``min(a, 0)`` (concave), both non-decreasing. A non-negative sum of non-decreasing
  functions is non-decreasing, so the output (the logit) follows every declared direction,
  whatever the free features are. Units of both shapes are needed: with ``relu`` alone the
  network could only be convex in its inputs and could not bend the other way (the
  convex/concave mix of "constrained monotonic neural networks", Runje and
  Shankaranarayana 2023).

``min(a, 0) = -relu(-a)``, so `coefs_` / `intercepts_` after `fit` are those of a plain ReLU
network (the concave units' incoming weights and outgoing weights negated): the ONNX chain,
the explainer and `lead_ensemble.ensemble.mlp_logit` read it like scikit-learn's MLP.

With ``hidden=()`` the network is a logistic regression whose coefficients carry the declared
signs: the ensemble's small-data part (`SignedLogistic`), with its L2 penalty chosen by
cross-validation on the rows it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, ClassifierMixin

# A fit holds out this share of its rows to stop on (the network only; never the OOF rows).
VALIDATION_FRACTION = 0.1
# L-BFGS-B iterations between two looks at the validation loss.
CHUNK_ITERATIONS = 25


def _unpack(theta: np.ndarray, shapes: list[tuple[int, int]]
            ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    ws, bs, i = [], [], 0
    for fan_in, fan_out in shapes:
        ws.append(theta[i:i + fan_in * fan_out].reshape(fan_in, fan_out))
        i += fan_in * fan_out
        bs.append(theta[i:i + fan_out])
        i += fan_out
    return ws, bs


class MonotoneNetwork(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A binary classifier: ReLU/concave network, monotone in the declared features."""

    def __init__(self, directions: Sequence[int], hidden: Sequence[int] = (64, 32, 16),
                 alpha: float = 1.0, max_iter: int = 300, seed: int = 0,
                 early_stopping: bool = True) -> None:
        self.directions = np.asarray(list(directions), dtype=np.int64)
        self.hidden = tuple(int(h) for h in hidden)
        self.alpha = float(alpha)
        self.max_iter = int(max_iter)
        self.seed = int(seed)
        self.early_stopping = early_stopping

    # ----------------------------------------------------------------- structure

    def _shapes(self, d: int) -> list[tuple[int, int]]:
        sizes = [d, *self.hidden, 1]
        return [(sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)]

    def _concave(self) -> list[np.ndarray]:
        """Per hidden layer: which units are min(a, 0) (the second half of each layer)."""
        return [np.arange(h) >= (h + 1) // 2 for h in self.hidden]

    def _bounds(self, d: int) -> list[tuple[float | None, float | None]]:
        constrained = bool(np.any(self.directions != 0))
        bounds: list[tuple[float | None, float | None]] = []
        for layer, (fan_in, fan_out) in enumerate(self._shapes(d)):
            if layer == 0:
                for j in range(fan_in):
                    b = {1: (0.0, None), -1: (None, 0.0)}.get(int(self.directions[j]),
                                                            (None, None))
                    bounds += [b] * fan_out
            else:
                bounds += [(0.0, None) if constrained else (None, None)] * (fan_in * fan_out)
            bounds += [(None, None)] * fan_out
        return bounds

    def _init(self, d: int, rng: np.random.Generator) -> np.ndarray:
        parts = []
        for layer, (fan_in, fan_out) in enumerate(self._shapes(d)):
            w = rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=(fan_in, fan_out))
            if layer == 0:
                signed = self.directions != 0
                w[signed] = np.abs(w[signed]) * self.directions[signed][:, None]
            elif np.any(self.directions != 0):
                w = np.abs(w)
            parts += [w.ravel(), np.zeros(fan_out)]
        return np.concatenate(parts)

    # ----------------------------------------------------------------- maths

    def _forward(self, theta: np.ndarray, X: np.ndarray, d: int
                 ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        ws, bs = _unpack(theta, self._shapes(d))
        acts: list[np.ndarray] = [X]
        masks: list[np.ndarray] = []
        h = X
        for layer, (w, b) in enumerate(zip(ws, bs, strict=True)):
            a = h @ w + b
            if layer == len(ws) - 1:
                return a[:, 0], acts, masks
            concave = self._concave()[layer]
            on = np.where(concave, a < 0.0, a > 0.0)
            h = np.where(on, a, 0.0)
            acts.append(h)
            masks.append(on)
        raise AssertionError("unreachable")

    def _loss_grad(self, theta: np.ndarray, X: np.ndarray, y: np.ndarray, d: int
                   ) -> tuple[float, np.ndarray]:
        n = X.shape[0]
        z, acts, masks = self._forward(theta, X, d)
        ws, _ = _unpack(theta, self._shapes(d))
        loss = float(np.mean(np.logaddexp(0.0, z) - y * z))
        penalty = 0.5 * self.alpha / n * sum(float(np.sum(w * w)) for w in ws)
        delta = ((0.5 * (1.0 + np.tanh(0.5 * z))) - y)[:, None] / n
        grads: list[np.ndarray] = []
        for layer in range(len(ws) - 1, -1, -1):
            gw = acts[layer].T @ delta + self.alpha / n * ws[layer]
            gb = delta.sum(axis=0)
            grads = [gw.ravel(), gb, *grads]
            if layer > 0:
                delta = (delta @ ws[layer].T) * masks[layer - 1]
        return loss + penalty, np.concatenate(grads)

    # ----------------------------------------------------------------- fitting

    def fit(self, X: Any, y: Any) -> MonotoneNetwork:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        d = X.shape[1]
        if self.directions.size != d:
            raise ValueError("directions must hold one value per input column")
        rng = np.random.default_rng(self.seed)
        theta = self._init(d, rng)
        rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        theta[-1] = np.log(rate / (1 - rate))
        bounds = self._bounds(d)
        fit_rows = np.arange(y.size)
        val_rows = fit_rows[:0]
        if self.early_stopping and self.hidden and y.size >= 50:
            order = rng.permutation(y.size)
            cut = max(1, round(VALIDATION_FRACTION * y.size))
            val_rows, fit_rows = np.sort(order[:cut]), np.sort(order[cut:])
        Xf, yf = X[fit_rows], y[fit_rows]
        if not val_rows.size:
            res = minimize(self._loss_grad, theta, args=(Xf, yf, d), jac=True,
                           method="L-BFGS-B", bounds=bounds,
                           options={"maxiter": self.max_iter})
            theta = res.x
        else:
            Xv, yv = X[val_rows], y[val_rows]

            def val_loss(t: np.ndarray) -> float:
                z = self._forward(t, Xv, d)[0]
                return float(np.mean(np.logaddexp(0.0, z) - yv * z))

            best, best_loss, done = theta, val_loss(theta), 0
            while done < self.max_iter:
                res = minimize(self._loss_grad, theta, args=(Xf, yf, d), jac=True,
                               method="L-BFGS-B", bounds=bounds,
                               options={"maxiter": CHUNK_ITERATIONS})
                theta, done = res.x, done + CHUNK_ITERATIONS
                current = val_loss(theta)
                if current < best_loss - 1e-6:
                    best, best_loss = theta, current
                elif current > best_loss + 1e-6 or res.nit < CHUNK_ITERATIONS:
                    break
            theta = best
        self._set_plain(theta, d)
        return self

    def _set_plain(self, theta: np.ndarray, d: int) -> None:
        """coefs_ / intercepts_ of the equal plain ReLU network (see the module doc)."""
        ws, bs = _unpack(np.asarray(theta, dtype=np.float64).copy(), self._shapes(d))
        ws = [w.copy() for w in ws]
        bs = [b.copy() for b in bs]
        for layer, concave in enumerate(self._concave()):
            ws[layer][:, concave] *= -1.0
            bs[layer][concave] *= -1.0
            ws[layer + 1][concave, :] *= -1.0
        self.coefs_ = ws
        self.intercepts_ = bs
        self.classes_ = np.array([0, 1])

    # ----------------------------------------------------------------- prediction

    def decision_function(self, X: Any) -> np.ndarray:
        h = np.asarray(X, dtype=np.float64)
        last = len(self.coefs_) - 1
        for i, (w, b) in enumerate(zip(self.coefs_, self.intercepts_, strict=True)):
            h = h @ w + b
            if i < last:
                h = np.maximum(h, 0.0)
        out: np.ndarray = h[:, 0]
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        p = 0.5 * (1.0 + np.tanh(0.5 * self.decision_function(X)))
        return np.column_stack([1.0 - p, p])


# The penalties a `SignedLogistic` chooses from (sklearn's alpha convention: alpha / (2 n)
# times the squared weights on top of the mean log loss), and how many rows choose it.
LINEAR_ALPHAS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
LINEAR_CV_FOLDS = 5
LINEAR_CV_MAX_ROWS = 10_000


def choose_linear_alpha(X: np.ndarray, y: np.ndarray, directions: Sequence[int],
                        seed: int) -> float:
    """The L2 penalty of the signed logistic regression with the best cross-validated log loss
    (on at most LINEAR_CV_MAX_ROWS rows; past that the penalty hardly matters)."""
    from sklearn.model_selection import StratifiedKFold

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if y.size > LINEAR_CV_MAX_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(y.size, LINEAR_CV_MAX_ROWS,
                                                          replace=False))
        X, y = X[rows], y[rows]
    folds = min(LINEAR_CV_FOLDS, int(min(y.sum(), y.size - y.sum())))
    if folds < 2:
        return LINEAR_ALPHAS[len(LINEAR_ALPHAS) // 2]
    losses = np.zeros(len(LINEAR_ALPHAS))
    for tr, va in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
        for i, alpha in enumerate(LINEAR_ALPHAS):
            net = MonotoneNetwork(directions, hidden=(), alpha=alpha, seed=seed).fit(
                X[tr], y[tr])
            z = net.decision_function(X[va])
            losses[i] += float(np.sum(np.logaddexp(0.0, z) - y[va] * z))
    return float(LINEAR_ALPHAS[int(np.argmin(losses))])
