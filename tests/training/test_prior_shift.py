"""The stacker's intercept moved to the newest training rows' rate (training/prior_shift.py):
numbers generated here, no model fitted."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from prior_shift import measure_shift, newest_rows, recalibrate


def _rows(n: int, late_rate: float | None, seed: int = 0
          ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Logits of a model fitted on all rows; the first 80 % convert as it predicts (about
    6 %), the newest 20 % at `late_rate` (None: as predicted too). Rows out of time order, so
    the order is read from the times."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-2.8, 0.6, n)
    p = 1.0 / (1.0 + np.exp(-z))
    day = np.arange(n) * 10 // n  # ten "days", the last two the newest 20 %
    late = day >= 8
    late_p = p if late_rate is None else late_rate
    y = np.where(late, rng.random(n) < late_p, rng.random(n) < p).astype(np.int64)
    times = [f"2026-11-{10 + int(d):02d}T09:00:00.000Z" for d in day]
    perm = rng.permutation(n)
    return z[perm], y[perm], [times[i] for i in perm]


def test_the_newest_rows_are_read_from_the_times_not_the_file_order() -> None:
    times = ["2026-11-03T00:00:00.000Z", "", "2026-11-01T00:00:00.000Z",
             "2026-11-02T00:00:00.000Z"]
    assert list(newest_rows(times, share=0.5, min_rows=1)) == [0, 3]


def test_a_higher_rate_in_the_newest_rows_moves_the_intercept_to_it() -> None:
    z, y, times = _rows(4000, late_rate=0.18)
    found = measure_shift(z, y, times)
    assert found.applied and found.shift > 0.5, found
    newest = newest_rows(times)
    p = 1.0 / (1.0 + np.exp(-(z[newest] + found.shift)))
    assert abs(float(p.mean()) - y[newest].mean()) < 1e-6
    assert found.newest_rows == 800 and found.z is not None and found.z > 1.96


def test_no_shift_no_change() -> None:
    z, y, times = _rows(4000, late_rate=None)  # the newest convert as the model predicts
    found = measure_shift(z, y, times)
    assert not found.applied and found.shift == 0.0
    assert "within" in found.reason
    assert not measure_shift(z, y, None).applied  # a file without scored_at


@dataclass
class _Ensemble:
    intercept: float
    weights: np.ndarray
    oof_logits: np.ndarray


def test_recalibrate_moves_only_the_intercept_of_a_copy() -> None:
    z, y, times = _rows(4000, late_rate=0.18, seed=1)
    parts = np.column_stack([z, np.zeros_like(z)])
    ens = _Ensemble(intercept=0.0, weights=np.array([1.0, 0.0]), oof_logits=parts)
    moved, found = recalibrate(ens, y, times)
    assert found.applied and moved is not ens and ens.intercept == 0.0
    assert moved.intercept == found.shift and moved.weights is ens.weights
