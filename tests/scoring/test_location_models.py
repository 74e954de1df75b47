"""Many locations' models in one container: loaded on first use, an LRU bounded in bytes,
each load reported with its time and size (`leadscore.scoring.location_models`)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from leadscore.bundle import (
    EXPLAINER_FILE,
    MODEL_FILE,
    LoadedModel,
    load_model,
    location_root,
    version_prefix,
)
from leadscore.scoring.location_models import (
    LOADED_BYTES_FACTOR,
    SESSION_OVERHEAD_BYTES,
    LocationModels,
    ModelLoad,
    bundle_bytes,
    counted_bytes,
    location_model_uri,
)
from leadscore.settings import (
    DEFAULT_LOCATION_MODEL_BYTES,
    LOCATION_MODELS_MEMORY_SHARE,
    ScoreSettings,
    location_model_budget,
)

from tests.fixtures.fakes import FakeClock
from tests.fixtures.location_store import RECORDED, place_champion, reissued
from tests.fixtures.scoring import load_event, with_body

LOCATIONS = ("loc-1", "loc-2", "loc-3", "loc-4")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("store")
    place_champion(root, RECORDED)
    versions = {}
    for loc in LOCATIONS:
        own = reissued(tmp_path_factory.mktemp(loc) / "bundle", loc)
        versions[loc] = place_champion(root, own, location_root(loc))
    return root, versions


def _models(root: Path, budget: int, tmp_path: Path, **kwargs: object) -> LocationModels:
    kwargs.setdefault("overhead_bytes", 0)  # sizes are the files' bytes alone here
    kwargs.setdefault("loaded_factor", 0)
    return LocationModels(f"file://{root}/models/champion.json", budget_bytes=budget,
                          cache_dir=tmp_path / "cache", **kwargs)  # type: ignore[arg-type]


def test_each_location_gets_its_own_champion(store: tuple[Path, dict[str, str]],
                                             tmp_path: Path) -> None:
    root, versions = store
    models = _models(root, 10**9, tmp_path)
    for loc in LOCATIONS:
        model = models.get(loc)
        assert model is not None and model.version == versions[loc]
    assert models.get("loc-without-a-model") is None
    assert models.get("../loc-1") is None and models.get("") is None  # never a path
    assert models.get("loc-1") is models.get("loc-1")  # loaded once


def test_the_cache_stays_within_its_bytes_least_recently_used_first(
        store: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, versions = store
    size = bundle_bytes(RECORDED)
    loads: list[ModelLoad] = []
    models = _models(root, int(2.5 * size), tmp_path, on_load=loads.append)
    models.get("loc-1")
    models.get("loc-2")
    assert models.cached() == ["loc-1", "loc-2"] and models.evictions == 0
    models.get("loc-3")  # three do not fit: the least recently used goes
    assert models.cached() == ["loc-2", "loc-3"] and models.total_bytes <= 2.5 * size
    models.get("loc-2")  # used again: now loc-3 is the oldest
    models.get("loc-4")
    assert models.cached() == ["loc-2", "loc-4"] and models.evictions == 2
    # every load reported once, with its measured size and time
    assert [(x.location_id, x.model_version) for x in loads] == [
        (loc, versions[loc]) for loc in ("loc-1", "loc-2", "loc-3", "loc-4")]
    placed = {loc: bundle_bytes(root / location_root(loc) / version_prefix(versions[loc]))
              for loc in LOCATIONS}
    assert [x.bytes for x in loads] == [placed[x.location_id] for x in loads]
    assert all(size < x.bytes < 1.01 * size and x.seconds > 0 for x in loads)
    # an evicted location comes back on its next request
    model = models.get("loc-1")
    assert model is not None and model.version == versions["loc-1"]
    assert len(loads) == 5


def test_a_model_larger_than_the_budget_still_serves_its_location(
        store: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, _ = store
    models = _models(root, 1, tmp_path)
    assert models.get("loc-1") is not None
    assert models.get("loc-2") is not None and models.cached() == ["loc-2"]


def test_locations_without_a_model_cost_no_bytes_and_are_not_evicted_for_bytes(
        store: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, _ = store
    models = _models(root, int(1.5 * bundle_bytes(RECORDED)), tmp_path)
    assert models.get("empty") is None
    models.get("loc-1")
    models.get("loc-2")
    assert models.cached() == ["empty", "loc-2"]


def test_a_new_champion_is_picked_up_after_the_refresh_period(tmp_path: Path) -> None:
    root = tmp_path / "store"
    versions = {loc: place_champion(root, reissued(tmp_path / loc, loc), location_root(loc))
                for loc in ("loc-1", "loc-2")}
    clock = FakeClock()
    models = _models(root, 10**9, tmp_path, clock=clock, refresh_seconds=60)
    first = models.get("loc-1")
    assert first is not None and first.version == versions["loc-1"]
    new = place_champion(root, reissued(tmp_path / "new", "loc-1 again"), location_root("loc-1"))
    clock.advance(30)
    assert models.get("loc-1") is first  # not yet due
    clock.advance(31)
    newer = models.get("loc-1")
    assert newer is not None and newer.version == new
    other = models.get("loc-2")
    assert other is not None and other.version == versions["loc-2"]


def test_each_model_counts_its_files_its_expanded_graph_and_the_session_overhead(
        store: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, versions = store
    loads: list[ModelLoad] = []
    models = _models(root, 10**9, tmp_path, overhead_bytes=1000, loaded_factor=5,
                     on_load=loads.append)
    models.get("loc-1")
    placed = root / location_root("loc-1") / version_prefix(versions["loc-1"])
    expanded = sum((placed / name).stat().st_size for name in (MODEL_FILE, EXPLAINER_FILE))
    assert expanded > 0
    assert loads[0].bytes == bundle_bytes(placed) + 5 * expanded + 1000 == models.total_bytes
    assert counted_bytes(placed, 1000, 5) == loads[0].bytes
    # the defaults: what a loaded model was measured to hold, and more
    assert counted_bytes(placed) == (bundle_bytes(placed) + LOADED_BYTES_FACTOR * expanded
                                     + SESSION_OVERHEAD_BYTES)


def test_location_pointer_uris() -> None:
    assert location_model_uri("s3://b/models/champion.json", "L") == (
        "s3://b/locations/L/models/champion.json")
    assert location_model_uri("s3://b/team/models/champion.json", "L") == (
        "s3://b/team/locations/L/models/champion.json")
    assert location_model_uri("file:///srv/s/models/champion.json", "L") == (
        "file:///srv/s/locations/L/models/champion.json")
    assert location_model_uri("file:///srv/bundle", "L") is None  # a fixed bundle: no store
    assert location_model_uri("s3://b/models/lsm-1/", "L") is None


def test_the_budget_is_a_share_of_the_function_memory() -> None:
    assert location_model_budget({}) == DEFAULT_LOCATION_MODEL_BYTES
    assert location_model_budget({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024"}) == int(
        1024 * 1024 * 1024 * LOCATION_MODELS_MEMORY_SHARE)
    assert location_model_budget({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
                                  "LOCATION_MODEL_BYTES": "5000"}) == 5000
    settings = ScoreSettings.from_env({"LOCATION_MODELS": "true",
                                       "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048"})
    assert settings.location_models and settings.location_model_bytes == int(
        2048 * 1024 * 1024 * LOCATION_MODELS_MEMORY_SHARE)
    assert ScoreSettings.from_env({}).location_models is False


def test_in_the_score_function_no_request_waits_for_a_location_refresh(tmp_path: Path) -> None:
    root = tmp_path / "store"
    place_champion(root, reissued(tmp_path / "own", "loc-1"), location_root("loc-1"))
    settings = ScoreSettings(model_uri=f"file://{root}/models/champion.json",
                             location_models=True, model_cache_dir=str(tmp_path / "cache"))
    models = LocationModels.from_settings(settings)
    assert models is not None and models.refresh_wait_seconds == 0.0
    assert models.get("loc-1") is not None  # the first load is still waited for
    assert LocationModels.from_settings(ScoreSettings()) is None


def test_a_request_is_answered_by_the_old_model_while_the_new_one_loads(
        install: Any, invoke: Any, tmp_path: Path) -> None:
    """A champion refreshed in the score function holds no request: the new bundle loads on a
    background thread (held here until released) while /score answers with the old model."""
    root = tmp_path / "store"
    place_champion(root, RECORDED)
    old = place_champion(root, reissued(tmp_path / "old", "loc-1"), location_root("loc-1"))
    uri = f"file://{root}/models/champion.json"
    container = install(uri, location_models=True, model_cache_dir=str(tmp_path / "cache"))
    loading, release = threading.Event(), threading.Event()
    request_threads: list[str] = []  # a new model loaded by the thread answering a request

    def held_loader(path: Path) -> LoadedModel:
        model = load_model(path)
        if model.version != old:
            if threading.current_thread() is threading.main_thread():
                request_threads.append(model.version)
            loading.set()
            release.wait(30)
        return model

    clock = FakeClock()
    container.scorer.models = LocationModels(
        uri, cache_dir=tmp_path / "cache", clock=clock, refresh_seconds=60,
        refresh_wait_seconds=0.0, loader=held_loader)  # as LocationModels.from_settings
    event = load_event("score_request")
    body = {**json.loads(event["body"]), "location_id": "loc-1"}

    def served() -> str:
        answer = invoke(with_body(event, body))
        assert answer.status == 200 and answer.body["model_scope"] == "location"
        return str(answer.body["model_version"])

    assert served() == old
    new = place_champion(root, reissued(tmp_path / "new", "loc-1 again"), location_root("loc-1"))
    clock.advance(61)
    try:
        assert served() == old  # this request found the check due and started it
        assert loading.wait(10)  # the new bundle is loading now, and stays loading
        assert [served() for _ in range(3)] == [old] * 3
    finally:
        release.set()
    container.scorer.models.wait_for_refreshes(10)
    assert served() == new and request_threads == []


def test_an_evicted_model_is_freed_at_once_not_at_the_next_cycle_collection(
        store: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """A store and its background refresh refer to each other: without a release, a dropped
    model stayed in memory until the interpreter's cycle collector ran, and a churning cache
    grew with its dropped models."""
    import gc
    import weakref

    root, _ = store
    models = _models(root, int(1.5 * bundle_bytes(RECORDED)), tmp_path)
    first = models.get("loc-1")
    assert first is not None
    gone = weakref.ref(first)
    del first
    gc.disable()
    try:
        models.get("loc-2")  # loc-1 is dropped for its bytes
        assert models.cached() == ["loc-2"]
        assert gone() is None
    finally:
        gc.enable()
