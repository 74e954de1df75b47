"""An experiment: which scorers compete, how traffic is split, and who gets which.

A variant is ``rules`` (the transparent rules score), ``champion`` (whatever model the
champion pointer names when the lead is scored) or a stored model version (``lsm-…``).
Allocation is in whole percent and adds up to 100. ``shadow`` optionally names a model
version scored on every lead and recorded, never answered.

``metric`` is the experiment's primary metric, declared when it is created and never changed
afterwards: ``brier`` (default) judges the probability each variant answers, which is what the
CRM shows as the score and what the classes cut (a proper scoring rule: it rewards ranking and
calibration alike); ``auc`` judges the ranking alone (who to call first). Both are always
reported; only the declared one names a winner.

Assignment hashes the experiment's name with the contact id (SHA-256, first 8 bytes, into
10,000 buckets), so a contact keeps its variant across containers, restarts and time, and two
experiments split contacts independently. The record is plain JSON; `parse_experiment` is the
one check for it (the command line, the store and the scoring side all go through it).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from leadscore.errors import FieldError, InvalidInput

RULES: Final = "rules"
CHAMPION: Final = "champion"
BUCKETS: Final = 10_000
MAX_VARIANTS: Final = 4

Status = Literal["running", "stopped"]
Metric = Literal["brier", "auc"]
METRICS: Final[tuple[Metric, ...]] = ("brier", "auc")
DEFAULT_METRIC: Final[Metric] = "brier"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_VERSION_RE = re.compile(r"^lsm-[0-9a-f]{8,64}$")


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    variants: tuple[str, ...]
    allocation: tuple[int, ...]
    shadow: str | None
    status: Status
    created_at: str
    stopped_at: str | None = None
    winner: str | None = None
    metric: Metric = DEFAULT_METRIC

    @property
    def running(self) -> bool:
        return self.status == "running"

    def model_versions(self) -> list[str]:
        """Stored model versions the scoring side must load (variants and shadow)."""
        named = [v for v in self.variants if _VERSION_RE.match(v)]
        if self.shadow:
            named.append(self.shadow)
        return sorted(set(named))

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["variants"] = list(self.variants)
        record["allocation"] = list(self.allocation)
        return record


def _variant_error(variant: Any) -> str | None:
    if not isinstance(variant, str):
        return "must be a string"
    if variant in (RULES, CHAMPION) or _VERSION_RE.match(variant):
        return None
    return "must be 'rules', 'champion' or a model version (lsm-…)"


def _check_variants(variants: Any, errors: list[FieldError]) -> tuple[str, ...]:
    if not isinstance(variants, Sequence) or isinstance(variants, str):
        errors.append(FieldError("variants", "must be a list"))
        return ()
    if not 2 <= len(variants) <= MAX_VARIANTS:
        errors.append(FieldError("variants", f"must name 2 to {MAX_VARIANTS} variants"))
    for i, variant in enumerate(variants[:MAX_VARIANTS + 1]):
        message = _variant_error(variant)
        if message:
            errors.append(FieldError(f"variants[{i}]", message))
    if len(set(map(str, variants))) != len(variants):
        errors.append(FieldError("variants", "must not repeat a variant"))
    return tuple(str(v) for v in variants)


def _check_allocation(allocation: Any, count: int, errors: list[FieldError]) -> tuple[int, ...]:
    if not isinstance(allocation, Sequence) or isinstance(allocation, str):
        errors.append(FieldError("allocation", "must be a list of percentages"))
        return ()
    shares: list[int] = []
    for i, share in enumerate(allocation[:MAX_VARIANTS + 1]):
        if isinstance(share, bool) or not isinstance(share, int) or not 0 <= share <= 100:
            errors.append(FieldError(f"allocation[{i}]", "must be a whole percentage 0-100"))
        else:
            shares.append(share)
    if len(allocation) != count:
        errors.append(FieldError("allocation", f"must have one share per variant ({count})"))
    elif len(shares) == count and sum(shares) != 100:
        errors.append(FieldError("allocation", f"must add up to 100 (got {sum(shares)})"))
    return tuple(shares)


def parse_experiment(record: Any) -> Experiment:
    """A checked experiment; raises `InvalidInput` naming every problem."""
    if not isinstance(record, Mapping):
        raise InvalidInput([FieldError("", "must be a JSON object")])
    errors: list[FieldError] = []
    name = record.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        errors.append(FieldError("name", "must be 1-64 letters, digits, '.', '_' or '-'"))
    variants = _check_variants(record.get("variants"), errors)
    allocation = _check_allocation(record.get("allocation"), len(variants), errors)
    shadow = record.get("shadow")
    if shadow is not None and not (isinstance(shadow, str) and _VERSION_RE.match(shadow)):
        errors.append(FieldError("shadow", "must be a model version (lsm-…)"))
    status = record.get("status", "running")
    if status not in ("running", "stopped"):
        errors.append(FieldError("status", "must be 'running' or 'stopped'"))
    winner = record.get("winner")
    if winner is not None and winner not in variants:
        errors.append(FieldError("winner", "must be one of the variants"))
    metric = record.get("metric", DEFAULT_METRIC)
    if metric not in METRICS:
        errors.append(FieldError("metric", f"must be one of {', '.join(METRICS)}"))
    created_at = record.get("created_at")
    if not isinstance(created_at, str):
        errors.append(FieldError("created_at", "is required"))
    if errors:
        raise InvalidInput(errors)
    stopped_at = record.get("stopped_at")
    return Experiment(
        name=str(name), variants=variants, allocation=allocation, shadow=shadow,
        status=status, created_at=str(created_at),
        stopped_at=stopped_at if isinstance(stopped_at, str) else None, winner=winner,
        metric=metric,
    )


def bucket(experiment_name: str, contact_id: str) -> int:
    digest = hashlib.sha256(f"{experiment_name}\x00{contact_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def assign(experiment: Experiment, contact_id: str) -> str:
    """The contact's variant: the same answer for the same (experiment, contact), always."""
    point = bucket(experiment.name, contact_id)
    upper = 0
    for variant, share in zip(experiment.variants, experiment.allocation, strict=True):
        upper += share * BUCKETS // 100
        if point < upper:
            return variant
    return experiment.variants[-1]
