"""Pooling is a per-location setting, off until the location allows it: `ghlctl pooling`
writes it (and the location's columns) into the installation record the scope rule reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from leadscore.adapters.installations import installations_table
from leadscore.ghl.installations import Installation
from leadscore.scoring.scopes import LocationProfile
from leadscore.settings import InstallSettings

from tests.fixtures.ghl import GhlAws
from tests.fixtures.location_store import RECORDED, place_champion
from tests.fixtures.scoring import load_event, with_body
from tools import ghlctl


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = ghlctl.main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def test_pooling_is_off_until_a_location_allows_it(
        ghl_aws: GhlAws, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("INSTALLATIONS_TABLE", ghl_aws.installations_table)
    monkeypatch.setenv("GHL_TOKEN_KEY_ID", ghl_aws.token_key_id)
    table = installations_table(InstallSettings.from_env())
    for loc in ("loc-a", "loc-b"):
        table.save(Installation(location_id=loc))

    def profile(loc: str) -> LocationProfile:
        return LocationProfile.of(loc, table.installation(loc, fresh=True))

    assert not profile("loc-a").allow_pooling and not profile("loc-b").allow_pooling
    code, answer = run(capsys, "pooling", "--location", "loc-a", "--allow")
    assert code == 0 and answer["allow_pooling"] is True
    assert profile("loc-a").allow_pooling and not profile("loc-b").allow_pooling

    code, answer = run(capsys, "pooling", "--location", "loc-b", "--allow",
                       "--columns", "age, job")
    assert code == 0 and answer["model_columns"] == ["age", "job"]
    assert profile("loc-b").columns == frozenset({"age", "job"})

    code, answer = run(capsys, "pooling", "--location", "loc-a", "--deny")
    assert code == 0 and not profile("loc-a").allow_pooling
    assert profile("loc-b").allow_pooling  # the other location keeps its own setting
    code, _ = run(capsys, "pooling", "--location", "nowhere", "--allow")
    assert code == 1


def test_the_agency_model_scores_a_location_only_after_it_allows_pooling(
        ghl_aws: GhlAws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        install: Any, invoke: Any, tmp_path: Path) -> None:
    """Through /score with per-location models on and the installations table the score
    function reads: a location without a model of its own is answered by the rules until
    `ghlctl pooling --allow`, then by the agency's champion; `--deny` takes it back."""
    monkeypatch.setenv("INSTALLATIONS_TABLE", ghl_aws.installations_table)
    monkeypatch.setenv("GHL_TOKEN_KEY_ID", ghl_aws.token_key_id)
    table = installations_table(InstallSettings.from_env())
    table.save(Installation(location_id="loc-a"))
    store = tmp_path / "store"
    agency = place_champion(store, RECORDED)
    pointer = f"file://{store}/models/champion.json"
    request = {**json.loads(load_event("score_request")["body"]), "location_id": "loc-a"}

    def scope() -> tuple[str, str]:
        # a new container: the score function reads the installation record afresh
        install(pointer, location_models=True, model_cache_dir=str(tmp_path / "cache"),
                installs=InstallSettings.from_env())
        answer = invoke(with_body(load_event("score_request"), request))
        capsys.readouterr()  # the request's metrics line, not ghlctl's answer
        assert answer.status == 200
        return answer.body["model_scope"], answer.body["model_version"]

    # `ghlctl scope` applies the same rule to the same record and champions
    monkeypatch.setenv("MODEL_URI", pointer)
    monkeypatch.setenv("LOCATION_MODELS", "true")
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "ghlctl-cache"))

    def told() -> tuple[str, str | None]:
        code, answer = run(capsys, "scope", "--location", "loc-a")
        assert code == 0 and answer["own_champion"] is None
        return answer["model_scope"], answer["model_version"]

    assert scope() == ("rules", "rules") and told() == ("rules", None)  # default: no pooling
    assert run(capsys, "pooling", "--location", "loc-a", "--allow")[0] == 0
    assert scope() == ("agency", agency) and told() == ("agency", agency)
    assert run(capsys, "pooling", "--location", "loc-a", "--deny")[0] == 0
    assert scope() == ("rules", "rules") and told() == ("rules", None)
