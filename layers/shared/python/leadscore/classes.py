"""Lead classes from a probability: hot / warm / lukewarm / cold.

A score gets the best class whose threshold it reaches: ``score >= hot`` -> ``"hot"``,
``>= warm`` -> ``"warm"``, ``>= lukewarm`` -> ``"lukewarm"``, else ``"cold"``. Defaults
(docs/API.md): hot 0.80, warm 0.60, lukewarm 0.40. A bundle may carry its own
``class_thresholds``; `validate_thresholds` is the one check for them: exactly the keys
``hot``, ``warm``, ``lukewarm``, finite numbers (not booleans) in [0, 1], with
``hot > warm > lukewarm``. Hot and warm leads are prioritised (`should_prioritize`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from leadscore.errors import FieldError, InvalidInput

CLASSES: Final[tuple[str, ...]] = ("hot", "warm", "lukewarm", "cold")
THRESHOLD_KEYS: Final[tuple[str, ...]] = ("hot", "warm", "lukewarm")
DEFAULT_CLASS_THRESHOLDS: Final[Mapping[str, float]] = {"hot": 0.80, "warm": 0.60, "lukewarm": 0.40}
PRIORITY_CLASSES: Final[frozenset[str]] = frozenset({"hot", "warm"})


def validate_thresholds(obj: Any, path: str = "class_thresholds") -> dict[str, float]:
    """Checked thresholds as a plain dict; raises `InvalidInput` naming every problem."""
    if not isinstance(obj, Mapping):
        raise InvalidInput([FieldError(path, "must be an object")])
    errors: list[FieldError] = []
    out: dict[str, float] = {}
    for key in obj:
        if key not in THRESHOLD_KEYS:
            errors.append(FieldError(f"{path}.{key}", "unknown class (hot, warm, lukewarm)"))
    for key in THRESHOLD_KEYS:
        item_path = f"{path}.{key}"
        if key not in obj:
            errors.append(FieldError(item_path, "is required"))
            continue
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(FieldError(item_path, "must be a number"))
            continue
        x = float(value)
        if not math.isfinite(x) or not 0.0 <= x <= 1.0:
            errors.append(FieldError(item_path, "must be between 0 and 1"))
            continue
        out[key] = x
    if not errors and not out["hot"] > out["warm"] > out["lukewarm"]:
        errors.append(FieldError(path, "must satisfy hot > warm > lukewarm"))
    if errors:
        raise InvalidInput(errors)
    return out


def classify(score: float, thresholds: Mapping[str, float] | None = None) -> str:
    """The class of a probability. `thresholds` are assumed valid (see `validate_thresholds`)."""
    t = DEFAULT_CLASS_THRESHOLDS if thresholds is None else thresholds
    if score >= t["hot"]:
        return "hot"
    if score >= t["warm"]:
        return "warm"
    if score >= t["lukewarm"]:
        return "lukewarm"
    return "cold"


def should_prioritize(cls: str) -> bool:
    """Hot and warm leads go to the front of the queue."""
    return cls in PRIORITY_CLASSES
