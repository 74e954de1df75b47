"""A location's own experiment: its leads are routed between its champion and its stored
versions, read from its own root; no other location's answers and not the agency's change
(`leadscore.experiments.serving.LocationExperiments`, `leadscore.scoring.scoped`)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from leadscore import bundle
from leadscore.bundle import location_root
from leadscore.columns.schema import Schema
from leadscore.experiments import store as experiment_store
from leadscore.experiments.serving import LocationExperiments
from leadscore.ghl.installations import Installation
from leadscore.registry.locations import location_store
from leadscore.registry.store import LocalObjectStore
from leadscore.scoring.service import ScoringService
from leadscore.settings import ScoreSettings
from leadscore.wiring.scoring import queued_scorer

from tests.fixtures.location_store import RECORDED, place_champion, reissued, version_of
from tests.fixtures.scoring import load_event

CONTACTS = [f"contact-{i:03d}" for i in range(40)]


def _request(contact_id: str, location_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(load_event("score_request")["body"])
    body["contact_id"] = contact_id
    if location_id is not None:
        body["location_id"] = location_id
    return body


def _store_version(root: Path, bundle_dir: Path, under: str = "") -> str:
    """A version stored (not promoted) under a root: what an experiment's challenger is."""
    version = version_of(bundle_dir)
    base = root / under if under else root
    shutil.copytree(bundle_dir, base / bundle.version_prefix(version))
    return version


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, str]:
    """The agency's champion; loc-a and loc-b each with their own; loc-a's challenger and an
    agency version stored beside them."""
    root = tmp_path / "store"
    return {
        "root": str(root),
        "agency": place_champion(root, RECORDED),
        "a": place_champion(root, reissued(tmp_path / "a", "loc-a's own"), location_root("loc-a")),
        "b": place_champion(root, reissued(tmp_path / "b", "loc-b's own"), location_root("loc-b")),
        "challenger": _store_version(root, reissued(tmp_path / "c", "loc-a's challenger"),
                                     location_root("loc-a")),
        "agency_challenger": _store_version(root, reissued(tmp_path / "d", "agency's next")),
    }


def _scorer(stores: dict[str, str], tmp_path: Path) -> Any:
    settings = ScoreSettings(model_uri=f"file://{stores['root']}/models/champion.json",
                             location_models=True, model_cache_dir=str(tmp_path / "cache"))
    pooled = {"pooled": Installation(location_id="pooled", allow_pooling=True)}
    return queued_scorer(settings, installation=pooled.get)


def test_a_location_experiment_routes_only_that_locations_leads(
        stores: dict[str, str], tmp_path: Path) -> None:
    root = LocalObjectStore(Path(stores["root"]))
    experiment_store.create(location_store(root, "loc-a"), "a-next",
                            ["champion", stores["challenger"]], [50, 50])
    scorer = _scorer(stores, tmp_path)

    seen: Counter[tuple[str | None, str]] = Counter()
    for contact in CONTACTS:
        answer = scorer.score(_request(contact, "loc-a"), explain=False)
        assert answer["experiment"] == "a-next" and answer["model_scope"] == "location"
        expected = {"champion": stores["a"], stores["challenger"]: stores["challenger"]}
        assert answer["model_version"] == expected[answer["variant"]]
        seen[(answer["variant"], answer["model_version"])] += 1
    assert set(seen) == {("champion", stores["a"]),
                         (stores["challenger"], stores["challenger"])}
    # the challenger loaded into the locations' bounded cache, beside loc-a's champion
    assert f"loc-a@{stores['challenger']}" in scorer.models.cached()

    # another location with its own champion, a pooled location on the agency's, and an
    # operator's call: no experiment in any answer, each by its own model
    for contact in CONTACTS[:10]:
        other = scorer.score(_request(contact, "loc-b"), explain=False)
        assert "experiment" not in other and other["model_version"] == stores["b"]
        assert other["model_scope"] == "location"
        agency = scorer.score(_request(contact, "pooled"), explain=False)
        assert "experiment" not in agency and agency["model_version"] == stores["agency"]
        assert agency["model_scope"] == "agency"
        operator = scorer.score(_request(contact, None), explain=False)
        assert "experiment" not in operator and operator["model_version"] == stores["agency"]

    # a batch routes each lead by its own location's experiment too
    batch = scorer.score_batch([_request(CONTACTS[0], "loc-a"), _request(CONTACTS[0], "loc-b")],
                               explain=False)
    assert [r.get("experiment") for r in batch["results"]] == ["a-next", None]


def test_the_agencys_experiment_never_routes_a_location_with_its_own_champion(
        stores: dict[str, str], tmp_path: Path) -> None:
    root = LocalObjectStore(Path(stores["root"]))
    experiment_store.create(root, "agency-next", ["champion", stores["agency_challenger"]],
                            [0, 100])
    scorer = _scorer(stores, tmp_path)
    agency = scorer.score(_request("c-1", "pooled"), explain=False)
    assert agency["experiment"] == "agency-next"
    assert agency["model_version"] == stores["agency_challenger"]
    own = scorer.score(_request("c-1", "loc-a"), explain=False)
    assert "experiment" not in own and own["model_version"] == stores["a"]


def test_a_missing_challenger_falls_back_to_the_locations_champion_uncounted(
        stores: dict[str, str], tmp_path: Path) -> None:
    root = LocalObjectStore(Path(stores["root"]))
    experiment_store.create(location_store(root, "loc-a"), "a-gone",
                            ["champion", stores["challenger"]], [0, 100])
    shutil.rmtree(Path(stores["root"]) / location_root("loc-a")
                  / bundle.version_prefix(stores["challenger"]))
    answer = _scorer(stores, tmp_path).score(_request("c-1", "loc-a"), explain=False)
    assert answer["experiment"] == "a-gone" and answer["variant"] is None
    assert answer["model_version"] == stores["a"] and answer["model_scope"] == "location"


def test_stopping_a_location_experiment_restores_its_champion(
        stores: dict[str, str], tmp_path: Path) -> None:
    root = LocalObjectStore(Path(stores["root"]))
    own = location_store(root, "loc-a")
    experiment_store.create(own, "a-short", ["champion", stores["challenger"]], [0, 100])
    now = [0.0]
    service = ScoringService(SimpleNamespace(current=lambda: None))  # type: ignore[arg-type]

    class Versions:
        def version(self, location_id: str, version: str) -> Any:
            return SimpleNamespace(version=version, schema=None)

    routed = LocationExperiments(service, Versions(), root, refresh_seconds=60,
                                 clock=lambda: now[0])
    assert routed.router("loc-a").source.running() is not None
    experiment_store.stop(own, "a-short")
    assert routed.router("loc-a").source.running() is not None  # not re-read yet
    now[0] = 61.0
    assert routed.router("loc-a").source.running() is None
    assert routed.router("loc-b").source.running() is None  # never loc-a's record


def _schema(*columns: str) -> Schema:
    return Schema.from_dict({"format": "leadscore-schema/1", "target": "y", "positive": ["yes"],
                             "columns": [{"name": c, "kind": "numeric"} for c in columns]})


def test_the_webhook_reads_the_columns_of_a_locations_challenger_too(tmp_path: Path) -> None:
    """A challenger trained on a new column gets it from the contact: the location's reading
    schema merges its experiment's models' columns, as the agency's does."""
    root = LocalObjectStore(tmp_path / "store")
    own = location_store(root, "loc-c")
    version = "lsm-" + "c" * 16
    own.put_bytes(bundle.version_prefix(version) + bundle.MANIFEST_FILE, b"{}", "application/json")
    experiment_store.create(own, "c-next", ["champion", version], [50, 50])

    class Versions:
        def version(self, location_id: str, asked: str) -> Any:
            assert (location_id, asked) == ("loc-c", version)
            return SimpleNamespace(version=asked, schema=_schema("age", "balance"))

    service = ScoringService(SimpleNamespace(current=lambda: None))  # type: ignore[arg-type]
    routed = LocationExperiments(service, Versions(), root)
    champion: Any = SimpleNamespace(version="lsm-own", schema=_schema("age", "job"))
    schema = routed.schema("loc-c", champion)
    assert schema is not None and schema.column_names == ["age", "job", "balance"]
    assert routed.schema("loc-d", champion) is champion.schema  # no experiment there


def test_the_score_route_serves_a_locations_experiment(
        stores: dict[str, str], install: Any, invoke: Any, tmp_path: Path) -> None:
    """The score function's wiring: the location's record is read on its first lead (within
    the refresh wait, here generous so a loaded machine cannot miss it), then in the
    background."""
    from tests.fixtures.scoring import with_body

    root = LocalObjectStore(Path(stores["root"]))
    experiment_store.create(location_store(root, "loc-a"), "a-api",
                            ["champion", stores["challenger"]], [0, 100])
    install(f"file://{stores['root']}/models/champion.json", location_models=True,
            model_cache_dir=str(tmp_path / "cache"), model_refresh_wait_seconds=5.0)
    event = load_event("score_request")
    own = invoke(with_body(event, _request("c-1", "loc-a")))
    assert own.status == 200, own.body
    assert (own.body["experiment"], own.body["variant"], own.body["model_scope"]) == \
        ("a-api", stores["challenger"], "location")
    assert own.body["model_version"] == stores["challenger"]
    other = invoke(with_body(event, _request("c-1", "loc-b")))
    assert "experiment" not in other.body and other.body["model_version"] == stores["b"]
