"""Per-location promotion: a location's models live under its own root of the one layout
(`leadscore.registry.locations`); promoting, rolling back or listing for one location never
reads or changes the agency's champion nor another location's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from leadscore import registry
from leadscore.bundle import CHAMPION_POINTER_KEY, location_pointer_key
from leadscore.registry.locations import PrefixedStore, location_store, locations_with_models
from leadscore.registry.store import LocalObjectStore
from leadscore.settings import PromoteSettings

from tools import modelctl

from .conftest import BundleFactory

SETTINGS = PromoteSettings()


def _snapshot(store: LocalObjectStore, key: str) -> bytes | None:
    return store.get_bytes(key) if store.exists(key) else None


def test_a_location_promotion_changes_only_its_own_champion(
        make_bundle: BundleFactory, local_store: LocalObjectStore) -> None:
    agency = registry.promote(make_bundle(seed=1), local_store, SETTINGS, force=True)
    a_first = registry.promote(make_bundle(seed=2), location_store(local_store, "loc-a"),
                               SETTINGS, force=True)
    assert agency.promoted and a_first.promoted
    before = {key: _snapshot(local_store, key) for key in
              (CHAMPION_POINTER_KEY, location_pointer_key("loc-a"))}
    assert all(before.values())

    b = registry.promote(make_bundle(seed=3), location_store(local_store, "loc-b"),
                         SETTINGS, force=True)
    assert b.promoted
    for key, raw in before.items():
        assert _snapshot(local_store, key) == raw, key  # untouched, byte for byte
    pointers = {loc: json.loads(local_store.get_bytes(location_pointer_key(loc)))["version"]
                for loc in ("loc-a", "loc-b")}
    assert pointers == {"loc-a": a_first.version, "loc-b": b.version}
    assert registry.get_champion(local_store)["version"] == agency.version  # type: ignore[index]
    assert locations_with_models(local_store) == ["loc-a", "loc-b"]

    # a rollback of loc-b goes nowhere near loc-a or the agency
    registry.promote(make_bundle(seed=4), location_store(local_store, "loc-b"), SETTINGS,
                     force=True)
    restored = registry.rollback(location_store(local_store, "loc-b"))
    assert restored["version"] == b.version
    for key, raw in before.items():
        assert _snapshot(local_store, key) == raw, key
    # the agency's listing shows only its own versions
    assert [r["version"] for r in registry.list_versions(local_store)] == [agency.version]


def test_every_key_of_a_location_view_stays_in_its_folder(tmp_path: Path) -> None:
    inner = LocalObjectStore(tmp_path / "store")
    view = location_store(inner, "loc-a")
    view.put_bytes("models/x.json", b"{}")
    assert inner.exists("locations/loc-a/models/x.json") and view.list("models/") == [
        "models/x.json"]
    with pytest.raises(ValueError):
        location_store(inner, "../loc-b")
    with pytest.raises(ValueError):
        PrefixedStore(inner, "no-slash")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = modelctl.main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def test_modelctl_location_commands(capsys: pytest.CaptureFixture[str],
                                    make_bundle: BundleFactory, tmp_path: Path) -> None:
    store = f"file://{tmp_path / 'store'}"
    code, agency = _run(capsys, "--store", store, "promote", str(make_bundle(seed=1)),
                        "--force")
    assert code == 0 and agency["status"] == "promoted"
    code, own = _run(capsys, "--store", store, "--location", "loc-a", "promote",
                     str(make_bundle(seed=2)), "--force")
    assert code == 0 and own["status"] == "promoted"
    code, listing = _run(capsys, "--store", store, "--location", "loc-a", "list")
    assert code == 0 and [(r["version"], r["status"]) for r in listing] == [
        (own["version"], "champion")]
    code, champion = _run(capsys, "--store", store, "show-champion")
    assert code == 0 and champion["version"] == agency["version"]
    # nothing to roll back to for loc-a: refused, and the agency's champion is not touched
    code, _ = _run(capsys, "--store", store, "--location", "loc-a", "rollback")
    assert code == 1
    code, champion = _run(capsys, "--store", store, "show-champion")
    assert champion["version"] == agency["version"]
    # a location nobody promoted has no champion
    code, _ = _run(capsys, "--store", store, "--location", "loc-b", "show-champion")
    assert code == 1
    assert modelctl.main(["--store", store, "--location", "../x", "list"]) == 2
    code, locations = _run(capsys, "--store", store, "locations")
    assert code == 0 and locations == [{"location_id": "loc-a", "version": own["version"],
                                        "promoted_at": locations[0]["promoted_at"]}]
