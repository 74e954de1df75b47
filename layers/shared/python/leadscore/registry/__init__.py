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
