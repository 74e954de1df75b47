"""Experiments on the scoring path, driven through the score handler with events/ files."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from leadscore import registry
from leadscore.experiments import store as experiment_store
from leadscore.registry.store import LocalObjectStore
from leadscore.settings import PromoteSettings

from tests.fixtures.scoring import bundle_version, load_event, with_body

CONTACTS = [f"contact-{i:04d}" for i in range(60)]


@pytest.fixture
def champion_store(trained_bundle: Path, second_bundle: Path, tmp_path: Path) -> Path:
    """A local store whose champion is the session bundle, with the second bundle stored."""
    root = tmp_path / "store"
    local = LocalObjectStore(root)
    result = registry.promote(trained_bundle, local, PromoteSettings(), force=True)
    assert result.promoted
    version = bundle_version(second_bundle)
    shutil.copytree(second_bundle, root / "models" / version)
    return root


def _request(contact_id: str) -> dict[str, Any]:
    body = load_event("score_request")
    request = json.loads(body["body"])
    request["contact_id"] = contact_id
    return with_body(body, request)


def _score_all(invoke: Any, contacts: list[str]) -> dict[str, dict[str, Any]]:
    answers = {}
    for contact in contacts:
        answer = invoke(_request(contact))
        assert answer.status == 200, answer.body
        answers[contact] = answer.body
    return answers


def test_without_an_experiment_answers_carry_none(
    champion_store: Path, install: Any, invoke: Any
) -> None:
    install(f"file://{champion_store}/models/champion.json")
    body = invoke(_request("c-1")).body
    assert "experiment" not in body and body["source"] == "ensemble"


def test_each_contact_is_answered_by_its_variant(
    champion_store: Path, install: Any, invoke: Any
) -> None:
    experiment_store.create(LocalObjectStore(champion_store), "rules-vs-model",
                            ["rules", "champion"], [50, 50])
    install(f"file://{champion_store}/models/champion.json")
    answers = _score_all(invoke, CONTACTS)
    arms = Counter(a["variant"] for a in answers.values())
    assert set(arms) == {"rules", "champion"} and min(arms.values()) >= 15
    for answer in answers.values():
        assert answer["experiment"] == "rules-vs-model"
        assert answer["source"] == ("rules" if answer["variant"] == "rules" else "ensemble")

    # Another container (a cold start) gives every contact the same variant.
    install(f"file://{champion_store}/models/champion.json")
    again = _score_all(invoke, CONTACTS)
    assert {c: a["variant"] for c, a in again.items()} == \
        {c: a["variant"] for c, a in answers.items()}


def test_a_version_variant_and_a_shadow_are_scored_by_their_bundle(
    champion_store: Path, second_bundle: Path, install: Any, invoke: Any
) -> None:
    challenger = bundle_version(second_bundle)
    local = LocalObjectStore(champion_store)
    experiment_store.create(local, "challenger", ["champion", challenger], [50, 50],
                            shadow=challenger)
    install(f"file://{champion_store}/models/champion.json")
    answers = _score_all(invoke, CONTACTS[:30])
    by_variant = Counter(a["variant"] for a in answers.values())
    assert by_variant[challenger] > 0 and by_variant["champion"] > 0
    for answer in answers.values():
        expected = challenger if answer["variant"] == challenger else None
        if expected:
            assert answer["model_version"] == challenger
        else:
            assert answer["model_version"] != challenger
        assert answer["shadow"]["model_version"] == challenger
        # The shadow never changes the answer: same graph, so the same score here.
        assert answer["shadow"]["predicted_score"] == pytest.approx(answer["predicted_score"])


def test_stopping_the_experiment_restores_plain_answers(
    champion_store: Path, install: Any, invoke: Any
) -> None:
    local = LocalObjectStore(champion_store)
    experiment_store.create(local, "short", ["rules", "champion"], [50, 50])
    install(f"file://{champion_store}/models/champion.json", model_refresh_seconds=0)
    assert "variant" in invoke(_request("c-2")).body
    experiment_store.stop(local, "short")
    assert "variant" not in invoke(_request("c-2")).body


def test_a_missing_variant_bundle_falls_back_to_the_champion_uncounted(
    champion_store: Path, second_bundle: Path, install: Any, invoke: Any
) -> None:
    challenger = bundle_version(second_bundle)
    local = LocalObjectStore(champion_store)
    experiment_store.create(local, "broken", ["champion", challenger], [0, 100])
    shutil.rmtree(champion_store / "models" / challenger)
    install(f"file://{champion_store}/models/champion.json")
    body = invoke(_request("c-3")).body
    assert body["variant"] is None and body["experiment"] == "broken"
    assert body["source"] == "ensemble" and body["model_version"] != challenger
