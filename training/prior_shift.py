"""The stacker's intercept moved to the newest training rows' conversion rate (a prior shift).

A team's conversion rate moves with time (a season, a campaign, a change of offer) while what
makes one lead likelier than another moves much less. A model fitted on all the training rows
predicts their average rate, so after a shift every score is off by the same odds ratio: the
ranking holds, the probabilities do not, and the gate's log-loss check on the newest leads
(the platform-held set) refuses it. The loop's labelled export says when each row was scored
(``scored_at``), so the job can see the shift on its own rows:

- the *newest* rows are the latest NEWEST_SHARE of the training rows by ``scored_at`` (at
  least MIN_NEWEST_ROWS; rows without a time count as the oldest). They are training rows:
  the job's held-out split, the gate's part and the platform-held set are never read here.
- each newest row's logit is its out-of-fold one (the fold model that did not train on it,
  combined by the served stacker), so the rate it predicts is not flattered by having seen
  the row.
- when the newest rows' conversions differ from what those logits predict by more than
  SHIFT_Z standard errors (the sum of p(1-p)), the intercept moves by the one logit shift
  that makes the predicted rate equal the observed one; otherwise nothing changes (noise in a
  few hundred rows is not a shift). A file with no ``scored_at`` is left as it was.

The shift is a constant added to every lead's logit, so the order of leads, the AUC and the
interval's width are unchanged; the bundle's graph and parity reference carry the moved
intercept (it is applied before export). The job's metrics record what was measured
(``prior_shift``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

NEWEST_SHARE = 0.2
MIN_NEWEST_ROWS = 200
MIN_NEWEST_MINORITY = 10
SHIFT_Z = 1.96
MAX_SHIFT = 3.0  # logits: a larger gap is not a prior shift but a different population


@dataclass(frozen=True)
class PriorShift:
    applied: bool
    shift: float  # added to the stacker's intercept (logits)
    newest_rows: int
    newest_rate: float | None
    predicted_rate: float | None
    z: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"applied": self.applied, "intercept_shift": self.shift,
                "newest_rows": self.newest_rows, "newest_rate": self.newest_rate,
                "predicted_rate_out_of_fold": self.predicted_rate, "z": self.z,
                "reason": self.reason}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0))), dtype=np.float64)


def newest_rows(times: Sequence[str], share: float = NEWEST_SHARE,
                min_rows: int = MIN_NEWEST_ROWS) -> np.ndarray:
    """Indices of the latest `share` of the rows by their ISO time (empty cells oldest)."""
    n = len(times)
    take = min(n, max(min_rows, math.ceil(share * n)))
    # ISO-8601 times in one format sort as text; a stable sort keeps file order among equals
    order = np.argsort(np.array([t or "" for t in times], dtype=object), kind="stable")
    return np.sort(order[n - take:])


def logit_shift(z: np.ndarray, rate: float) -> float:
    """The constant d with mean(sigmoid(z + d)) == rate (0 < rate < 1), by bisection: the
    mean is increasing in d."""
    lo, hi = -MAX_SHIFT * 4, MAX_SHIFT * 4
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if float(np.mean(_sigmoid(z + mid))) < rate:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def measure_shift(z_oof: np.ndarray, y: np.ndarray, times: Sequence[str] | None
                  ) -> PriorShift:
    """What the newest training rows say about the intercept (module docstring)."""
    if times is None:
        return PriorShift(False, 0.0, 0, None, None, None,
                          "the rows carry no scored_at: no order in time to read")
    idx = newest_rows(times)
    if idx.size >= y.size:
        return PriorShift(False, 0.0, int(idx.size), None, None, None,
                          f"fewer than {MIN_NEWEST_ROWS / NEWEST_SHARE:.0f} training rows")
    yn = np.asarray(y, dtype=np.float64)[idx]
    p = _sigmoid(np.asarray(z_oof, dtype=np.float64)[idx])
    rate, predicted = float(yn.mean()), float(p.mean())
    minority = int(min(yn.sum(), yn.size - yn.sum()))
    sd = math.sqrt(float(np.sum(p * (1.0 - p))))
    z = (float(yn.sum()) - float(p.sum())) / sd if sd > 0 else 0.0
    base = (int(idx.size), rate, predicted, z)
    if minority < MIN_NEWEST_MINORITY:
        return PriorShift(False, 0.0, *base, f"the newest rows hold {minority} of the rarer "
                          f"outcome (< {MIN_NEWEST_MINORITY})")
    if abs(z) <= SHIFT_Z:
        return PriorShift(False, 0.0, *base, f"the newest rows' rate is within {SHIFT_Z} "
                          "standard errors of what the model predicts for them")
    shift = logit_shift(np.asarray(z_oof, dtype=np.float64)[idx], rate)
    if abs(shift) > MAX_SHIFT:
        return PriorShift(False, 0.0, *base, f"a shift of {shift:+.2f} logits is beyond "
                          f"{MAX_SHIFT:g}: not a change of rate but of population")
    return PriorShift(True, shift, *base, f"the newest {idx.size} rows convert at "
                      f"{rate:.3f} where the model predicts {predicted:.3f} (z {z:+.1f})")


def recalibrate(ens: Any, y: np.ndarray, times: Sequence[str] | None) -> tuple[Any, PriorShift]:
    """The ensemble with its intercept moved (a copy), and what was measured. `y` and `times`
    are the training rows the ensemble was fitted on, in its order."""
    z_oof = ens.intercept + np.asarray(ens.oof_logits, dtype=np.float64) @ np.asarray(
        ens.weights, dtype=np.float64)
    found = measure_shift(z_oof, y, times)
    if not found.applied:
        return ens, found
    return replace(ens, intercept=float(ens.intercept) + found.shift), found
