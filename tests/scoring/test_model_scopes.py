"""Model scopes: a location's own champion > the agency's (pooling allowed and the schema
fits) > the rules (real-estate preset only) > none (an honest "unscored"); every answer says
which scope served it (`leadscore.scoring.scopes`, `leadscore.scoring.scoped`)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from leadscore.bundle import LoadedModel, load_model, location_root
from leadscore.columns.schema import Schema
from leadscore.ghl.installations import Installation
from leadscore.scoring import scopes
from leadscore.scoring.model_store import ModelStore
from leadscore.scoring.scoped import ScopedScorer, Unscored
from leadscore.scoring.scopes import LocationProfile, choose_scope
from leadscore.scoring.service import ScoringService

from tests.fixtures.location_store import RECORDED, place_champion, reissued, version_of
from tests.fixtures.scoring import load_event, with_body


def _schema(*columns: str) -> Schema:
    return Schema.from_dict({"format": "leadscore-schema/1", "target": "y", "positive": ["yes"],
                             "columns": [{"name": c, "kind": "numeric"} for c in columns]})


def _model(version: str, schema: Schema | None = None) -> Any:
    return SimpleNamespace(version=version, schema=schema)


PRESET_POOLED = LocationProfile("loc-a", allow_pooling=True)
PRESET_ALONE = LocationProfile("loc-a")
CUSTOM_POOLED = LocationProfile("loc-c", allow_pooling=True, columns=frozenset({"age", "job"}))
CUSTOM_ALONE = LocationProfile("loc-c", columns=frozenset({"age", "job"}))


def test_own_champion_comes_first() -> None:
    own, agency = _model("own"), _model("agency")
    for profile in (PRESET_POOLED, PRESET_ALONE, CUSTOM_POOLED, CUSTOM_ALONE):
        choice = choose_scope(profile, own, agency)
        assert choice.scope == "location" and choice.model is own


def test_agency_only_with_pooling_allowed_and_a_schema_that_fits() -> None:
    estate = _model("agency")  # the real-estate contract
    assert choose_scope(PRESET_POOLED, None, estate).scope == "agency"
    assert choose_scope(PRESET_POOLED, None, estate).model is estate
    # pooling off (the default): the preset falls to the rules, a custom location to none
    assert choose_scope(PRESET_ALONE, None, estate).scope == "rules"
    assert choose_scope(PRESET_ALONE, None, estate).reason == scopes.NO_POOLING
    assert choose_scope(CUSTOM_ALONE, None, _model("a", _schema("age"))).scope == "none"
    # a custom location cannot be read by the real-estate model, nor the preset by a custom one
    assert choose_scope(CUSTOM_POOLED, None, estate).scope == "none"
    assert choose_scope(PRESET_POOLED, None, _model("a", _schema("age"))).scope == "rules"
    # a custom agency model fits when the location carries every column it reads
    assert choose_scope(CUSTOM_POOLED, None, _model("a", _schema("age"))).scope == "agency"
    assert choose_scope(CUSTOM_POOLED, None, _model("a", _schema("age", "job"))).scope == "agency"
    misfit = choose_scope(CUSTOM_POOLED, None, _model("a", _schema("age", "balance")))
    assert misfit.scope == "none" and scopes.SCHEMA_MISFIT in misfit.reason


def test_without_any_model_the_preset_gets_rules_and_others_none() -> None:
    assert choose_scope(PRESET_POOLED, None, None).scope == "rules"
    none = choose_scope(CUSTOM_POOLED, None, None)
    assert none.scope == "none" and none.model is None and scopes.NOT_PRESET in none.reason


def test_profile_from_the_installation_record_defaults_to_no_pooling() -> None:
    assert Installation(location_id="loc-a").allow_pooling is False
    assert LocationProfile.of("loc-a", None) == PRESET_ALONE
    inst = Installation(location_id="loc-c", allow_pooling=True, model_columns=("age", "job"))
    assert LocationProfile.of("loc-c", inst) == CUSTOM_POOLED


def test_the_installation_record_keeps_the_pooling_setting() -> None:
    from leadscore.adapters.installations import installation_to_item, item_to_installation

    inst = Installation(location_id="loc-c", allow_pooling=True, model_columns=("age", "job"))
    assert item_to_installation(installation_to_item(inst)) == inst
    plain = installation_to_item(Installation(location_id="loc-a"))
    assert item_to_installation(plain).allow_pooling is False


# -- the scorer ----------------------------------------------------------------------------------


class _Fixed:
    def __init__(self, model: LoadedModel | None) -> None:
        self.model = model

    def current(self) -> LoadedModel | None:
        return self.model

    def get(self, location_id: str) -> LoadedModel | None:
        return self.model


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedModel, LoadedModel]:
    agency = load_model(RECORDED)
    own = load_model(reissued(tmp_path_factory.mktemp("own") / "bundle", "a location's own"))
    return agency, own


def _request(location_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(load_event("score_request")["body"])
    if location_id is not None:
        body["location_id"] = location_id
    return body


def test_scorer_answers_each_scope(models: tuple[LoadedModel, LoadedModel]) -> None:
    agency, own = models
    service = ScoringService(_Fixed(agency))  # type: ignore[arg-type]
    installs = {"pooled": Installation(location_id="pooled", allow_pooling=True),
                "custom": Installation(location_id="custom", model_columns=("age",))}
    owned = ScopedScorer(service, service, models=_Fixed(own), installation=installs.get)
    answer = owned.score(_request("alone"))
    assert answer["model_scope"] == "location" and answer["model_version"] == own.version

    shared = ScopedScorer(service, service, models=_Fixed(None), installation=installs.get)
    pooled = shared.score(_request("pooled"))
    assert pooled["model_scope"] == "agency" and pooled["model_version"] == agency.version
    alone = shared.score(_request("alone"))
    assert alone["model_scope"] == "rules" and alone["source"] == "rules"
    with pytest.raises(Unscored) as caught:
        shared.score(_request("custom"))
    assert caught.value.answer("c-1") == {"contact_id": "c-1", "scored": False,
                                          "model_scope": "none", "reason": caught.value.reason}
    assert caught.value.answer("x" * 129)["contact_id"] is None  # never echoed unbounded
    # an operator's call names no location: the stack's champion, as always
    assert shared.score(_request())["model_scope"] == "agency"


def test_without_location_models_one_champion_serves_every_location(
        models: tuple[LoadedModel, LoadedModel]) -> None:
    agency, _ = models
    service = ScoringService(_Fixed(agency))  # type: ignore[arg-type]
    stack = ScopedScorer(service, service)
    answer = stack.score(_request("alone"))
    assert answer["model_scope"] == "agency" and answer["model_version"] == agency.version
    rules = ScopedScorer(ScoringService(_Fixed(None)), ScoringService(_Fixed(None)))  # type: ignore[arg-type]
    assert rules.score(_request("alone"))["model_scope"] == "rules"


def test_batch_answers_each_lead_by_its_location(models: tuple[LoadedModel, LoadedModel]) -> None:
    agency, own = models
    service = ScoringService(_Fixed(agency))  # type: ignore[arg-type]
    installs = {"custom": Installation(location_id="custom", model_columns=("age",))}

    class OnlyOwned:
        def get(self, location_id: str) -> LoadedModel | None:
            return own if location_id == "owned" else None

    scorer = ScopedScorer(service, service, models=OnlyOwned(), installation=installs.get)
    leads = [_request("owned"), _request("custom"), {"contact_id": ""}, _request("alone")]
    answer = scorer.score_batch(leads)
    assert [r["model_scope"] for r in answer["results"]] == ["location", "rules"]
    assert [u["index"] for u in answer.get("unscored", [])] == [1]
    assert [e["index"] for e in answer["errors"]] == [2]


# -- the API -------------------------------------------------------------------------------------


@pytest.fixture
def location_store(tmp_path: Path) -> tuple[Path, str, str]:
    store = tmp_path / "store"
    agency = place_champion(store, RECORDED)
    own = place_champion(store, reissued(tmp_path / "own", "loc-a's own"), location_root("loc-a"))
    return store, agency, own


def test_score_route_says_which_scope_answered(
        install: Any, invoke: Any, score_app: Any, location_store: tuple[Path, str, str],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, agency, own = location_store
    published: list[Any] = []
    monkeypatch.setattr(score_app, "_publish_load", published.append)
    pointer = f"file://{store}/models/champion.json"
    install(pointer, location_models=True, model_cache_dir=str(tmp_path / "cache"))
    event = load_event("score_request")
    owned = invoke(with_body(event, _request("loc-a")))
    assert owned.status == 200
    assert owned.body["model_scope"] == "location" and owned.body["model_version"] == own
    # the first load is published once, with its time and size
    assert [(x.location_id, x.model_version) for x in published] == [("loc-a", own)]
    assert published[0].seconds > 0 and published[0].bytes > 0
    # no installation record: pooling is off, the preset gets the rules
    other = invoke(with_body(event, _request("loc-b")))
    assert other.body["model_scope"] == "rules" and other.body["source"] == "rules"
    operator = invoke(with_body(event, _request()))
    assert operator.body["model_scope"] == "agency" and operator.body["model_version"] == agency

    batch = invoke(with_body(load_event("score_batch"),
                             {"leads": [_request("loc-a"), _request("loc-b")]}))
    assert [r["model_scope"] for r in batch.body["results"]] == ["location", "rules"]


def test_a_load_is_published_as_two_metrics(score_app: Any) -> None:
    from leadscore.scoring.location_models import ModelLoad

    score_app.metrics.clear_metrics()
    score_app._publish_load(ModelLoad("loc-a", "lsm-x", 0.0125, 5000))
    metric_set = score_app.metrics.metric_set
    assert metric_set["LocationModelLoad"]["Value"] == [12.5]
    assert metric_set["LocationModelBytes"]["Value"] == [5000.0]
    score_app.metrics.clear_metrics()


def test_score_route_answers_unscored_honestly(
        install: Any, invoke: Any, score_app: Any, location_store: tuple[Path, str, str],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A location on its own columns, without a model and without pooling: 200, not scored,
    and why; nothing model-based invented."""
    store, _, _ = location_store
    custom = Installation(location_id="loc-c", model_columns=("age", "job"))
    monkeypatch.setattr(score_app, "_installation", lambda loc: custom)
    install(f"file://{store}/models/champion.json", location_models=True,
            model_cache_dir=str(tmp_path / "cache"))
    answer = invoke(with_body(load_event("score_request"), _request("loc-c")))
    assert answer.status == 200
    assert answer.body == {"contact_id": "lead_12345", "scored": False, "model_scope": "none",
                           "reason": f"{scopes.NO_POOLING}; {scopes.NOT_PRESET}"}
    batch = invoke(with_body(load_event("score_batch"),
                             {"leads": [_request("loc-c"), _request("loc-a")]}))
    assert batch.status == 200
    assert [u["index"] for u in batch.body["unscored"]] == [0]
    assert [r["model_scope"] for r in batch.body["results"]] == ["location"]


def test_score_route_without_location_models_keeps_one_champion(
        install: Any, invoke: Any, location_store: tuple[Path, str, str]) -> None:
    store, agency, _ = location_store
    install(f"file://{store}/models/champion.json")
    answer = invoke(with_body(load_event("score_request"), _request("loc-a")))
    assert answer.body["model_scope"] == "agency" and answer.body["model_version"] == agency


def test_a_location_store_loads_its_own_pointer(location_store: tuple[Path, str, str]) -> None:
    store, agency, own = location_store
    from leadscore.scoring.location_models import location_model_uri

    uri = location_model_uri(f"file://{store}/models/champion.json", "loc-a")
    assert uri == f"file://{store}/locations/loc-a/models/champion.json"
    model = ModelStore(uri).current()
    assert model is not None and model.version == own != agency
    assert version_of(RECORDED) == agency


def test_the_write_back_and_backfill_scorer_follows_the_same_scopes(
        location_store: tuple[Path, str, str], tmp_path: Path) -> None:
    """Queued webhooks and the backfill score outside the API: the same rule applies there,
    so a location that does not pool is never written the agency's score."""
    from leadscore.settings import ScoreSettings
    from leadscore.wiring.scoring import queued_scorer as scorer_from_settings

    store, agency, own = location_store
    settings = ScoreSettings(model_uri=f"file://{store}/models/champion.json",
                             location_models=True, model_cache_dir=str(tmp_path / "cache"))
    installs = {"pooled": Installation(location_id="pooled", allow_pooling=True)}
    scorer = scorer_from_settings(settings, installation=installs.get)
    assert scorer.score(_request("loc-a"))["model_version"] == own
    assert scorer.score(_request("pooled"))["model_version"] == agency
    alone = scorer.score(_request("alone"))
    assert alone["model_scope"] == "rules" and alone["source"] == "rules"
    # off: the stack's champion for everyone, as before
    off = scorer_from_settings(settings.__class__(model_uri=settings.model_uri,
                                                  model_cache_dir=str(tmp_path / "c2")))
    assert off.score(_request("alone"))["model_scope"] == "agency"


def test_the_webhook_reads_a_location_by_the_columns_of_its_own_model(
        models: tuple[LoadedModel, LoadedModel]) -> None:
    """A location trained on its own columns: its contacts are read as its model reads them,
    not as the agency's real-estate champion would."""
    agency, _ = models
    own = _model("own", _schema("age", "job"))

    class OnlyOwned:
        def get(self, location_id: str) -> Any:
            return own if location_id == "custom" else None

    service = ScoringService(_Fixed(agency))  # type: ignore[arg-type]
    scorer = ScopedScorer(service, service, models=OnlyOwned())
    schema = scorer.schema_for("custom")
    assert schema is not None and schema.column_names == ["age", "job"]
    assert scorer.schema_for("other") is None  # the rules: the real-estate contract
    assert ScopedScorer(service, service).schema_for("custom") is None  # one champion


def test_the_webhook_asks_for_the_columns_of_the_location_it_settled_on(
        ghl_ed25519: Any) -> None:
    from tests.fixtures.fakes import MemoryQueue
    from tests.ghl.test_installed_location import CONTACT_EVENT, deliver

    class Asking:
        def __init__(self) -> None:
            self.asked: list[str] = []

        def schema_for(self, location_id: str) -> Schema | None:
            self.asked.append(location_id)
            return None

        def score(self, request: Any, *, explain: bool = False) -> dict[str, Any]:
            return {"contact_id": request["contact_id"], "predicted_score": 0.5,
                    "predicted_class": "lukewarm", "model_version": "lsm-t",
                    "source": "ensemble", "model_scope": "location"}

    scorer = Asking()
    assert deliver(scorer, ghl_ed25519, MemoryQueue())["status"] == "scored"  # type: ignore[arg-type]
    assert scorer.asked == [CONTACT_EVENT["locationId"]]
