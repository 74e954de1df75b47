"""A location's own models: the registry's one layout, kept under the location's root.

A sub-account can have its own champion next to the agency's. Rather than a second set of
promotion rules, a location's models live in a *view* of the store rooted at
``locations/<location_id>/`` (`leadscore.bundle.location_root`): `promote`, `rollback`,
`list_versions`, `why_rejected`, the gate's platform-held evaluation set and the model store
all work on that view exactly as on the agency's store, and every key they write is
confined to that location's folder by construction (a key is always the location's root
plus a key of the one layout). The agency's champion (``models/champion.json``) and every
other location's are out of the view's reach.
"""

from __future__ import annotations

import math
from typing import Any

from leadscore.bundle import LOCATIONS_PREFIX, location_root
from leadscore.identifiers import is_safe_id
from leadscore.registry.promotion import get_champion
from leadscore.registry.split import GATE_FRACTION
from leadscore.registry.store import ObjectStore

#: A location's uploads: ``training-data/locations/<location_id>/...`` (under the retrain
#: function's ``training-data/`` trigger, so the ordinary path trains them; the promote
#: function sends the candidate to that location's own registry).
LOCATION_UPLOADS_PREFIX = "training-data/locations/"

#: How a location's first model is labelled. It has no schema yet (the training job infers
#: it), so its export spells the outcome of the contact's won/lost opportunity in one fixed
#: column, and the retrain function trains every location upload without a schema beside it
#: on that column (`first_model_hyperparameters`).
FIRST_MODEL_TARGET = "outcome"
FIRST_MODEL_POSITIVE = ("won",)
FIRST_MODEL_NEGATIVE = ("lost",)
#: the export's own provenance column (when the row was read): never a model input
FIRST_MODEL_EXCLUDE = ("scored_at",)


class PrefixedStore:
    """An `ObjectStore` that is another store's folder: every key is under ``prefix``."""

    def __init__(self, inner: ObjectStore, prefix: str) -> None:
        if not prefix.endswith("/") or prefix.startswith("/"):
            raise ValueError(f"a store prefix ends with '/' and is relative: {prefix!r}")
        self.inner = inner
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"PrefixedStore({self.inner!r}, {self.prefix!r})"

    def _key(self, key: str) -> str:
        return self.prefix + key

    def get_bytes(self, key: str) -> bytes:
        return self.inner.get_bytes(self._key(key))

    def get_tagged(self, key: str) -> tuple[bytes, str]:
        return self.inner.get_tagged(self._key(key))

    def put_bytes(self, key: str, data: bytes,
                  content_type: str = "application/octet-stream") -> None:
        self.inner.put_bytes(self._key(key), data, content_type)

    def replace_if(self, key: str, data: bytes, content_type: str,
                   expected_tag: str | None) -> None:
        self.inner.replace_if(self._key(key), data, content_type, expected_tag)

    def list(self, prefix: str) -> list[str]:
        return [k[len(self.prefix):] for k in self.inner.list(self._key(prefix))
                if k.startswith(self.prefix)]

    def copy(self, source_key: str, dest_key: str) -> None:
        self.inner.copy(self._key(source_key), self._key(dest_key))

    def exists(self, key: str) -> bool:
        return self.inner.exists(self._key(key))


def location_store(store: ObjectStore, location_id: str) -> PrefixedStore:
    """The registry of one location's own models inside the stack's store (ValueError for an
    id that is not one HighLevel makes)."""
    return PrefixedStore(store, location_root(location_id) + "/")


def locations_with_models(store: ObjectStore) -> list[str]:
    """Every location that has (or had) a model of its own in the store."""
    found: set[str] = set()
    for key in store.list(LOCATIONS_PREFIX):
        rest = key[len(LOCATIONS_PREFIX):]
        if "/" in rest:
            found.add(rest.split("/", 1)[0])
    return sorted(found)


def location_champions(store: ObjectStore) -> list[dict[str, Any]]:
    """Each location with models of its own and its champion (None: none promoted yet)."""
    rows: list[dict[str, Any]] = []
    for location_id in locations_with_models(store):
        champion = get_champion(location_store(store, location_id)) or {}
        rows.append({"location_id": location_id, "version": champion.get("version"),
                     "promoted_at": champion.get("promoted_at")})
    return rows


def location_upload_prefix(location_id: str) -> str:
    """``training-data/locations/<location_id>/``: where a location's training rows go."""
    location_root(location_id)  # the id check
    return f"{LOCATION_UPLOADS_PREFIX}{location_id}/"


def location_of_upload(key: str) -> str | None:
    """The location a training upload belongs to (None: the agency's upload)."""
    if not key.startswith(LOCATION_UPLOADS_PREFIX):
        return None
    location_id, sep, rest = key[len(LOCATION_UPLOADS_PREFIX):].partition("/")
    return location_id if sep and rest and is_safe_id(location_id) else None


def first_model_hyperparameters() -> dict[str, str]:
    """The training hyperparameters (JSON-encoded, as the stack's setting holds them) of a
    location upload without a schema beside it: the fixed outcome column, its values, the
    export's provenance column excluded; the schema itself is inferred by the job."""
    import json

    return {"target": json.dumps(FIRST_MODEL_TARGET),
            "positive": json.dumps(",".join(FIRST_MODEL_POSITIVE)),
            "negative": json.dumps(",".join(FIRST_MODEL_NEGATIVE)),
            "exclude": json.dumps(",".join(FIRST_MODEL_EXCLUDE))}


def first_model_needs(min_conversions: int, holdout_fraction: float) -> int:
    """How many conversions (and as many non-conversions) a location's resolved leads need
    before its first model is trained: enough that the part the job trains on still holds
    ``min_conversions`` of each class (the gate's ``min_conversions`` check) after the export
    keeps ``holdout_fraction`` back and the retrain function's split keeps its gate part."""
    kept = (1.0 - holdout_fraction) * (1.0 - GATE_FRACTION)
    return math.ceil(min_conversions / kept) if kept > 0 else min_conversions
