"""Pooling is a per-location setting, off until the location allows it: `ghlctl pooling`
writes it (and the location's columns) into the installation record the scope rule reads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from leadscore.adapters.installations import installations_table
from leadscore.ghl.installations import Installation
from leadscore.scoring.scopes import LocationProfile
from leadscore.settings import InstallSettings

from tests.fixtures.ghl import GhlAws
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
