"""Many locations' models in one container: an LRU bounded in bytes.

Each location with a champion of its own (`leadscore.registry.locations`) is served by a
`ModelStore` on that location's pointer (``<store>/locations/<id>/models/champion.json``),
made on the location's first request. The store does what it does for the agency's champion:
verifies every file, refreshes the pointer at most every ``refresh_seconds`` on a background
thread (`leadscore.background`; in the score function no request waits for it), keeps the
current model when a new one is bad. A location without a pointer costs one read per
``refresh_seconds`` and no memory.

The cache holds models up to ``budget_bytes``: a model's size (`counted_bytes`) is the bytes
of its bundle's files, measured when it loads, plus ``loaded_factor`` times its graph's and
explainer's bytes (what the onnxruntime session and the decompressed arrays expand them to)
plus ``overhead_bytes`` per session (bench/location_models.py measures the resident memory
each further model adds, to check this estimate against). When a load takes the
total over the budget, the least recently used locations are dropped (their files in the
download folder too); the location being served is never dropped for itself. Each load is
reported once (``on_load``: location, version, seconds to verify and open, bytes) so the
function can publish the first-load time and the memory per model.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from leadscore.bundle import (
    EXPLAINER_FILE,
    MODEL_FILE,
    location_pointer_key,
    location_root,
    pointer_root,
    version_prefix,
)
from leadscore.identifiers import is_safe_id
from leadscore.scoring.model_store import BundleObjects, ModelStore, _default_loader
from leadscore.settings import DEFAULT_LOCATION_MODEL_BYTES

if TYPE_CHECKING:
    from leadscore.bundle import LoadedModel
    from leadscore.settings import ScoreSettings

logger = logging.getLogger(__name__)

def location_model_uri(model_uri: str, location_id: str, version: str | None = None
                       ) -> str | None:
    """A location's champion pointer beside the agency's (``MODEL_URI``): the same store,
    under ``locations/<id>/``; with ``version``, that stored version of the location (an
    experiment's variant, ``locations/<id>/models/<version>/``). None when ``MODEL_URI`` is a
    fixed bundle (no store)."""
    key = (location_pointer_key(location_id) if version is None
           else f"{location_root(location_id)}/{version_prefix(version)}")
    parsed = urlparse(model_uri.strip())
    if parsed.scheme == "s3":
        root = pointer_root(parsed.path.lstrip("/"))
        if root is None:
            return None
        return f"s3://{parsed.netloc}/{root + '/' if root else ''}{key}"
    if parsed.scheme in ("file", ""):
        path = parsed.path if parsed.scheme == "file" else model_uri.strip()
        root = pointer_root(path)
        if root is None:
            return None
        pointer = f"{root}/{key}"
        return f"file://{pointer}" if parsed.scheme == "file" else pointer
    return None


#: What one more loaded model holds in memory, beyond its files: the onnxruntime session
#: expands the graph and the explainer's arrays are decompressed. bench/location_models.py
#: ("memory" phase, and a loop of loads) measured the resident memory each further model
#: adds: 0.37 MiB for the 30 KB test bundle (26 KB of graph and explainer), 1.33 MiB for a
#: bundle trained on 20,000 leads (216 KB of them), 1.34 MiB for the bank leads' bundle on a
#: team's columns (236 KB): about 0.24 MiB + 5x the graph's and the explainer's bytes. The
#: count takes 0.5 MiB + 5x those bytes + every file's bytes (0.65, 1.85, 2.02 MiB), so it
#: stays above what was measured as bundles grow (it counted 1 MiB + the files before,
#: 1.32 MiB for the 20,000-lead bundle: below what it holds).
SESSION_OVERHEAD_BYTES = 512 * 1024
LOADED_BYTES_FACTOR = 5
#: the files a loaded model keeps expanded in memory (the others are read once, or not at all)
EXPANDED_FILES = (MODEL_FILE, EXPLAINER_FILE)


def bundle_bytes(directory: Path) -> int:
    """What a bundle takes on disk: the bytes of its files."""
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


def counted_bytes(directory: Path, overhead_bytes: int = SESSION_OVERHEAD_BYTES,
                  loaded_factor: int = LOADED_BYTES_FACTOR) -> int:
    """What the cache counts for a loaded bundle: its files, the expanded graph and explainer,
    and a fixed overhead per session."""
    expanded = sum((directory / name).stat().st_size for name in EXPANDED_FILES
                   if (directory / name).is_file())
    return bundle_bytes(directory) + loaded_factor * expanded + overhead_bytes


@dataclass(frozen=True)
class ModelLoad:
    """One model loaded (a first load, or a new champion of the location)."""

    location_id: str
    model_version: str
    seconds: float  # verify every file + open the onnxruntime session
    bytes: int  # `counted_bytes`: files, expanded graph and explainer, overhead


@dataclass
class _Entry:
    store: ModelStore
    folder: Path
    bytes: int = 0
    version: str = ""


class LocationModels:
    """Location id -> its own champion, loaded on first use, LRU within ``budget_bytes``."""

    def __init__(
        self,
        model_uri: str,
        *,
        budget_bytes: int = DEFAULT_LOCATION_MODEL_BYTES,
        cache_dir: Path = Path("/tmp/leadscore-models"),  # noqa: S108 - Lambda's only writable dir  # nosec B108
        refresh_seconds: float = 60.0,
        refresh_wait_seconds: float | None = None,
        first_load_wait_seconds: float | None = None,
        s3: BundleObjects | None = None,
        clock: Callable[[], float] = time.monotonic,
        loader: Callable[[Path], LoadedModel] = _default_loader,
        on_load: Callable[[ModelLoad], None] | None = None,
        max_locations: int = 10_000,
        overhead_bytes: int = SESSION_OVERHEAD_BYTES,
        loaded_factor: int = LOADED_BYTES_FACTOR,
    ) -> None:
        self.model_uri = model_uri
        self.budget_bytes = int(budget_bytes)
        self.cache_dir = cache_dir
        self.refresh_seconds = refresh_seconds
        self.refresh_wait_seconds = refresh_wait_seconds
        self.first_load_wait_seconds = first_load_wait_seconds
        self._s3 = s3
        self._clock = clock
        self._loader = loader
        self._on_load = on_load
        self.max_locations = max_locations
        self.overhead_bytes = overhead_bytes
        self.loaded_factor = loaded_factor
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._total = 0  # the bytes of every cached model (kept, not summed per request)
        self.evictions = 0
        self.loads: list[ModelLoad] = []  # the newest few, for /health-style views and tests

    @classmethod
    def from_settings(cls, settings: ScoreSettings,
                      on_load: Callable[[ModelLoad], None] | None = None,
                      s3: BundleObjects | None = None) -> LocationModels | None:
        """The locations' models of a function (None with LOCATION_MODELS off): beside
        MODEL_URI, within LOCATION_MODEL_BYTES, refreshed as the agency's champion is."""
        if not settings.location_models:
            return None
        return cls(settings.model_uri, budget_bytes=settings.location_model_bytes,
                   cache_dir=Path(settings.model_cache_dir),
                   refresh_seconds=settings.model_refresh_seconds,
                   # many locations' pointer checks would otherwise each hold a request up
                   # to the wait: they run wholly in the background, and a new champion
                   # serves from the first request after its check finished
                   refresh_wait_seconds=0.0,
                   first_load_wait_seconds=settings.model_first_load_wait_seconds,
                   on_load=on_load, s3=s3)

    # -- serving ------------------------------------------------------------------------------

    def get(self, location_id: str) -> LoadedModel | None:
        """The location's own champion, or None (none promoted, not loaded yet, or no store)."""
        entry = self._entry(location_id, location_id, None)
        if entry is None:
            return None
        model = entry.store.current()
        self._evict(keep=(location_id,))
        return model

    def version(self, location_id: str, version: str) -> LoadedModel | None:
        """A stored version of the location (``locations/<id>/models/<version>/``: its
        experiment's challenger or shadow), loaded on first use into the same budget as the
        champions, or None (no store, or not loaded yet); raises `ModelUnavailable` when the
        bundle is missing or fails its checks (the experiment's fallback rule decides)."""
        key = f"{location_id}@{version}"
        entry = self._entry(key, location_id, version)
        if entry is None:
            return None
        model = entry.store.current()
        # the location's champion answers the rest of its leads: never dropped for its variant
        self._evict(keep=(key, location_id))
        return model

    def wait_for_refreshes(self, timeout: float | None = None) -> None:
        """Block until every location's background refresh has finished (tests, benchmarks)."""
        with self._lock:
            stores = [entry.store for entry in self._entries.values()]
        for store in stores:
            store.wait_for_refresh(timeout)

    def _entry(self, key: str, location_id: str, version: str | None) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
        if not is_safe_id(location_id):
            return None  # not an id HighLevel makes: it names no folder of the store
        uri = location_model_uri(self.model_uri, location_id, version)
        if uri is None:
            return None
        folder = self._folder(location_id, version)
        entry = _Entry(store=ModelStore(
            uri, s3=self._s3, cache_dir=folder,
            refresh_seconds=self.refresh_seconds, clock=self._clock,
            loader=lambda path: self._load(key, location_id, path),
            keep_versions=1,  # /tmp is shared by every location
            refresh_wait_seconds=self.refresh_wait_seconds,
            first_load_wait_seconds=self.first_load_wait_seconds,
        ), folder=folder)
        with self._lock:
            entry = self._entries.setdefault(key, entry)
            self._entries.move_to_end(key)
        return entry

    def _folder(self, location_id: str, version: str | None = None) -> Path:
        if version is None:
            return self.cache_dir / "locations" / location_id
        # beside the champions' folders, not inside: dropping one never deletes the other
        return self.cache_dir / "location-versions" / location_id / version

    def _load(self, key: str, location_id: str, path: Path) -> LoadedModel:
        started = time.perf_counter()
        model = self._loader(path)
        load = ModelLoad(location_id, str(model.version), time.perf_counter() - started,
                         counted_bytes(path, self.overhead_bytes, self.loaded_factor))
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._total += load.bytes - entry.bytes
                entry.bytes, entry.version = load.bytes, load.model_version
            self.loads = [*self.loads[-99:], load]
        logger.info("location model loaded", extra={
            "location_id": location_id, "model_version": load.model_version,
            "load_ms": round(load.seconds * 1000, 1), "model_bytes": load.bytes})
        if self._on_load is not None:
            try:
                self._on_load(load)
            except Exception:  # publishing a figure never fails a load
                logger.warning("model load not published", exc_info=True)
        return model

    # -- the budget ---------------------------------------------------------------------------

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return self._total

    def cached(self) -> list[str]:
        """Locations in the cache, least recently used first (an experiment's stored version
        as ``<location>@<version>``)."""
        with self._lock:
            return list(self._entries)

    def _evict(self, keep: tuple[str, ...]) -> None:
        dropped: list[Path] = []
        released: list[ModelStore] = []
        with self._lock:
            if self._total <= self.budget_bytes and len(self._entries) <= self.max_locations:
                return  # the usual request: nothing to drop, nothing walked
            total = self._total
            for location_id in list(self._entries):
                too_many = len(self._entries) > self.max_locations
                if not too_many and total <= self.budget_bytes:
                    break
                entry = self._entries[location_id]
                if location_id in keep or (not too_many and entry.bytes == 0):
                    continue  # dropping a location without a model frees no memory
                entry = self._entries.pop(location_id)
                total -= entry.bytes
                dropped.append(entry.folder)
                released.append(entry.store)
            self._total = total
            self.evictions += len(dropped)
        for store in released:
            # the model's memory now: a churning cache otherwise grew by its dropped models
            # until a cycle collection (bench/location_models.py, eviction phase)
            store.release()
        for folder in dropped:
            # its downloaded files too (/tmp is small)
            shutil.rmtree(folder, ignore_errors=True)
        if dropped:
            logger.info("location models evicted", extra={"evicted": len(dropped)})
