"""The model registry and retraining: which bundle serves, which were refused, how new ones come.

- `store`: the object-store protocol and the local-directory store (S3: `adapters.s3_store`);
- `gate`: the measuring quality gate (the candidate's graph run on rows it never saw);
- `holdout`: the platform-held evaluation set (the loop's newest resolved leads);
- `split`: an upload split into the job's training part and the gate's part;
- `promotion`: promote, reject, roll back, list, why-rejected over a store;
- `archive`: safe unpacking of a SageMaker ``model.tar.gz``;
- `retraining`: training uploads checked, named and turned into a SageMaker job request.

The names below are the registry's public API (``from leadscore import registry``;
``registry.promote(...)``); modules inside ``leadscore`` import from the owning submodule.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from leadscore.bundle import MODELS_PREFIX, REJECTED_PREFIX
    from leadscore.registry.archive import MAX_ARCHIVE_MEMBERS, extract_bundle_archive
    from leadscore.registry.gate import MAX_PARITY_ABS_DIFF, ClassCounts, EvalRows
    from leadscore.registry.promotion import (
        CHAMPION_KEY,
        MAX_HISTORY,
        NOT_MEASURED,
        Clock,
        PromotionResult,
        get_champion,
        list_versions,
        promote,
        reject,
        rollback,
        verify_candidate,
        why_rejected,
    )
    from leadscore.registry.store import (
        ConcurrentUpdate,
        LocalObjectStore,
        ObjectNotFound,
        ObjectStore,
        RegistryError,
    )

# Submodules load on first use: a function that needs one part of the registry (the scoring
# function reads the object store, never the gate or promotion) does not pay at its cold start
# for importing them all.
_OWNER = {
    "MODELS_PREFIX": "leadscore.bundle",
    "REJECTED_PREFIX": "leadscore.bundle",
    "MAX_ARCHIVE_MEMBERS": "leadscore.registry.archive",
    "extract_bundle_archive": "leadscore.registry.archive",
    "MAX_PARITY_ABS_DIFF": "leadscore.registry.gate",
    "ClassCounts": "leadscore.registry.gate",
    "EvalRows": "leadscore.registry.gate",
    **dict.fromkeys(
        ("CHAMPION_KEY", "MAX_HISTORY", "NOT_MEASURED", "Clock", "PromotionResult",
         "get_champion", "list_versions", "promote", "reject", "rollback", "verify_candidate",
         "why_rejected"),
        "leadscore.registry.promotion",
    ),
    **dict.fromkeys(
        ("ConcurrentUpdate", "LocalObjectStore", "ObjectNotFound", "ObjectStore",
         "RegistryError"),
        "leadscore.registry.store",
    ),
}


def __getattr__(name: str) -> Any:
    owner = _OWNER.get(name)
    if owner is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(owner), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_OWNER])


__all__ = [
    "CHAMPION_KEY",
    "MAX_ARCHIVE_MEMBERS",
    "MAX_HISTORY",
    "MAX_PARITY_ABS_DIFF",
    "MODELS_PREFIX",
    "NOT_MEASURED",
    "REJECTED_PREFIX",
    "ClassCounts",
    "Clock",
    "ConcurrentUpdate",
    "EvalRows",
    "LocalObjectStore",
    "ObjectNotFound",
    "ObjectStore",
    "PromotionResult",
    "RegistryError",
    "extract_bundle_archive",
    "get_champion",
    "list_versions",
    "promote",
    "reject",
    "rollback",
    "verify_candidate",
    "why_rejected",
]
