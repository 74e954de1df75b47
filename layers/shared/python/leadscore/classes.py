"""Lead classes from a probability: hot / warm / lukewarm / cold.

A score gets the best class whose threshold it reaches: ``score >= hot`` -> ``"hot"``,
``>= warm`` -> ``"warm"``, ``>= lukewarm`` -> ``"lukewarm"``, else ``"cold"``. Defaults
(docs/API.md): hot 0.80, warm 0.60, lukewarm 0.40. `validate_thresholds` is the one check
for thresholds: exactly the keys ``hot``, ``warm``, ``lukewarm``, finite numbers (not
booleans) in [0, 1], with ``hot > warm > lukewarm``. Hot and warm leads are prioritised
(`should_prioritize`).

Fixed thresholds mean something at one base rate only (at 11 % converted, 0.8/0.6/0.4 put
95 % of leads in "cold"), so training chooses each bundle's thresholds from its held-out
scores (`choose_thresholds`: hot the top ``CLASS_SHARES["hot"]`` of leads, and so on) and the
manifest carries them. Which thresholds apply is decided in one place, `effective_thresholds`:
a location's own override, else the stack's ``CLASS_THRESHOLDS`` setting, else the bundle's,
else the defaults; `with_location_class` applies a location's override to a score on every
path that writes to HighLevel (immediate webhook, queued write-back, backfill).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar, cast

from leadscore.errors import FieldError, InvalidInput

_Score = TypeVar("_Score", bound=Mapping[str, Any])

CLASSES: Final[tuple[str, ...]] = ("hot", "warm", "lukewarm", "cold")
THRESHOLD_KEYS: Final[tuple[str, ...]] = ("hot", "warm", "lukewarm")
DEFAULT_CLASS_THRESHOLDS: Final[Mapping[str, float]] = {"hot": 0.80, "warm": 0.60, "lukewarm": 0.40}
PRIORITY_CLASSES: Final[frozenset[str]] = frozenset({"hot", "warm"})
#: The share of held-out leads each class holds when training chooses the thresholds.
CLASS_SHARES: Final[Mapping[str, float]] = {"hot": 0.10, "warm": 0.20, "lukewarm": 0.30,
                                             "cold": 0.40}
#: Fewer held-out rows than this and the thresholds stay the defaults (quantiles of a few
#: dozen scores move with every row).
MIN_ROWS_TO_CHOOSE: Final[int] = 100
THRESHOLDS_METHOD: Final[str] = (
    "chosen at training from the held-out scores: hot = the top "
    f"{CLASS_SHARES['hot']:.0%} of leads, warm the next {CLASS_SHARES['warm']:.0%}, "
    f"lukewarm the next {CLASS_SHARES['lukewarm']:.0%}, cold the remaining "
    f"{CLASS_SHARES['cold']:.0%} (ties stay together, in the lower class)")


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


def _threshold_for_top(sorted_scores: Any, share: float) -> float:
    """The lowest threshold that puts at most ``share`` of the scores at or above it."""
    import numpy as np

    s = np.asarray(sorted_scores, dtype=np.float64)
    n = s.size
    k = math.floor(share * n + 1e-9)
    if k <= 0:
        return float(np.nextafter(s[-1], np.inf))
    v = s[n - k]
    if (n - int(np.searchsorted(s, v, side="left"))) > k:  # ties would exceed the share
        above = s[s > v]
        v = above[0] if above.size else np.nextafter(s[-1], np.inf)
    return float(v)


def choose_thresholds(scores: Sequence[float]) -> dict[str, float] | None:
    """Thresholds from held-out scores by `CLASS_SHARES`; None when there are too few rows
    (the bundle then keeps the defaults)."""
    import numpy as np

    s = np.sort(np.asarray(scores, dtype=np.float64))
    if s.size < MIN_ROWS_TO_CHOOSE or not np.all(np.isfinite(s)):
        return None
    out: dict[str, float] = {}
    top = 0.0
    previous = math.inf
    for key in THRESHOLD_KEYS:
        top += CLASS_SHARES[key]
        value = min(max(_threshold_for_top(s, top), 0.0), 1.0)
        if value >= previous:  # strictly decreasing, as validate_thresholds requires
            value = float(np.nextafter(previous, -np.inf))
        out[key] = previous = value
    try:
        return validate_thresholds(out)
    except InvalidInput:
        return None


def class_table(y: Sequence[int], scores: Sequence[float],
                thresholds: Mapping[str, float]) -> list[dict[str, Any]]:
    """Per class: its lowest score, leads, share of leads, conversions, share of conversions
    and conversion rate on labelled rows (the report's table)."""
    labels = [classify(float(p), thresholds) for p in scores]
    ys = [int(v) for v in y]
    n, total = len(ys), sum(ys)
    out = []
    for c in CLASSES:
        idx = [i for i, lab in enumerate(labels) if lab == c]
        converted = sum(ys[i] for i in idx)
        out.append({"class": c, "min_score": float(thresholds.get(c, 0.0)), "rows": len(idx),
                    "share_of_leads": len(idx) / n if n else None,
                    "conversions": converted,
                    "share_of_conversions": converted / total if total else None,
                    "conversion_rate": converted / len(idx) if idx else None})
    return out


def bundle_thresholds(manifest: Mapping[str, Any] | None) -> dict[str, float] | None:
    """A manifest's own ``class_thresholds`` when valid; None for an older bundle without
    them (or with unusable ones): it keeps the defaults."""
    raw = manifest.get("class_thresholds") if isinstance(manifest, Mapping) else None
    if raw is None:
        return None
    try:
        return validate_thresholds(raw)
    except InvalidInput:
        return None


def effective_thresholds(*, location: Mapping[str, float] | None = None,
                         stack: Mapping[str, float] | None = None,
                         bundle: Mapping[str, float] | None = None) -> Mapping[str, float]:
    """THE precedence: a location's override, else the stack's setting, else the bundle's,
    else the defaults."""
    for chosen in (location, stack, bundle):
        if chosen:
            return chosen
    return DEFAULT_CLASS_THRESHOLDS


def with_location_class(score: _Score, location: Mapping[str, float] | None) -> _Score:
    """A lead score re-classed by a location's own thresholds (the probability is unchanged);
    the score as it is when the location has none (its class already follows the stack's
    setting, the bundle's thresholds or the defaults)."""
    if not location or score.get("predicted_score") is None:
        return score
    thresholds = effective_thresholds(location=location)
    cls = classify(float(score["predicted_score"]), thresholds)
    return cast(_Score, {**score, "predicted_class": cls,
                         "should_prioritize": should_prioritize(cls)})


def thresholds_change(previous: Mapping[str, Any] | None, manifest: Mapping[str, Any]
                      ) -> dict[str, Any] | None:
    """``{"from", "to"}`` when promoting ``manifest`` moves the class thresholds away from
    the ``previous`` champion record's (a record without them had the defaults); None when
    they stay (or there was no champion)."""
    if previous is None:
        return None
    new = dict(bundle_thresholds(manifest) or DEFAULT_CLASS_THRESHOLDS)
    old_raw = previous.get("class_thresholds")
    old = dict(bundle_thresholds({"class_thresholds": old_raw}) or DEFAULT_CLASS_THRESHOLDS)
    if all(math.isclose(old[k], new[k], abs_tol=1e-9) for k in THRESHOLD_KEYS):
        return None
    return {"from": old, "to": new}
