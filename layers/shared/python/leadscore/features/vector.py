"""A caller's ready-made feature vector (the ``feature_vector`` request form) -> float64[20]."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from leadscore.errors import FieldError, InvalidInput, join_path
from leadscore.features.contract import FEATURE_INDEX, FEATURE_NAMES, N_FEATURES, number_error

# ---- feature vectors given directly ---------------------------------------------------------


def _vector_value_error(value: Any) -> str | None:
    if type(value) is float and 0.0 <= value <= 1.0:  # fast path (NaN fails the comparison)
        return None
    problem = number_error(value)
    if problem is not None:
        return problem
    x = float(value)
    if not 0.0 <= x <= 1.0:
        return "must be between 0 and 1 (every feature is in [0, 1])"
    return None


def parse_feature_vector(value: Any, path: str = "feature_vector") -> np.ndarray:
    """A caller's ready-made vector -> float64 [20].

    Accepts a list of exactly 20 numbers in docs/FEATURES.md order, or an object with exactly the 20
    feature names. Every value must be a finite number in [0, 1]. Raises `InvalidInput` naming
    every problem (``feature_vector[3]``, ``feature_vector.urgency_score``, ...).
    """
    errors: list[FieldError] = []
    out = [0.0] * N_FEATURES
    if isinstance(value, Mapping):
        for name in value:
            if name not in FEATURE_INDEX:
                errors.append(FieldError(join_path(path, str(name)), "unknown feature name"))
        for i, name in enumerate(FEATURE_NAMES):
            item_path = join_path(path, name)
            if name not in value:
                errors.append(FieldError(item_path, "is required"))
                continue
            problem = _vector_value_error(value[name])
            if problem is not None:
                errors.append(FieldError(item_path, problem))
            else:
                out[i] = float(value[name])
    elif isinstance(value, list | tuple | np.ndarray):
        items = list(value.tolist() if isinstance(value, np.ndarray) else value)
        if len(items) != N_FEATURES:
            errors.append(
                FieldError(path, f"must have exactly {N_FEATURES} values, got {len(items)}")
            )
        # Past the 20th item only the length is reported: a 450,000-item list is one error,
        # not 450,000.
        for i, item in enumerate(items[:N_FEATURES]):
            problem = _vector_value_error(item)
            if problem is not None:
                errors.append(FieldError(f"{path}[{i}]", problem))
            else:
                out[i] = float(item)
    else:
        errors.append(
            FieldError(
                path, f"must be a list of {N_FEATURES} numbers or an object of feature names"
            )
        )
    if errors:
        raise InvalidInput(errors)
    return np.array(out, dtype=np.float64)


