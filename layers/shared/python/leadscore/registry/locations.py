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

from typing import Any

from leadscore.bundle import LOCATIONS_PREFIX, location_root
from leadscore.registry.promotion import get_champion
from leadscore.registry.store import ObjectStore


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
