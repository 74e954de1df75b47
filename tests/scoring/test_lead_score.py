"""Real answers against the one LeadScore definition: every key it names, no other, and each
value of the declared type (ensemble explained / unexplained / cached, rules fallback)."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import pytest
from leadscore.scoring.cache import MemoryLRU, TieredCache
from leadscore.scoring.lead_score import LeadScore
from leadscore.scoring.model_store import ModelStore
from leadscore.scoring.service import ScoringService

from tests.features.leads import SEED_REQUEST


def conforms(value: Any, hint: Any) -> bool:
    origin = get_origin(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(conforms(value, arm) for arm in get_args(hint))
    if origin is Literal:
        return value in get_args(hint)
    if origin is list:
        (item,) = get_args(hint)
        return isinstance(value, list) and all(conforms(v, item) for v in value)
    if origin is dict:
        key, item = get_args(hint)
        return isinstance(value, dict) and all(
            conforms(k, key) and conforms(v, item) for k, v in value.items()
        )
    if hint is type(None):
        return value is None
    if hasattr(hint, "__required_keys__"):  # a nested TypedDict
        return isinstance(value, dict) and problems(value, hint) == []
    if hint is float:
        return isinstance(value, float) and not isinstance(value, bool)
    return isinstance(value, hint)


def problems(answer: dict[str, Any], shape: Any = LeadScore) -> list[str]:
    hints = get_type_hints(shape)
    found = [f"missing {key}" for key in shape.__required_keys__ if key not in answer]
    found += [f"unexpected {key}" for key in answer if key not in hints]
    found += [
        f"{key}: {answer[key]!r} is not {hints[key]}"
        for key in answer
        if key in hints and not conforms(answer[key], hints[key])
    ]
    return found


class NoModel:
    def current(self) -> None:
        return None


@pytest.fixture(scope="module")
def service(trained_bundle: Path) -> ScoringService:
    cache = TieredCache(MemoryLRU(64, 3600.0), None)
    return ScoringService(ModelStore(f"file://{trained_bundle}"), cache)


def test_explained_answer_is_a_lead_score(service: ScoringService) -> None:
    answer = service.score({"contact_id": "typed-1", "features": SEED_REQUEST})
    assert answer["explained"] and answer["top_positive_factors"]
    assert problems(dict(answer)) == []


def test_unexplained_and_cached_answers_are_lead_scores(service: ScoringService) -> None:
    request = {"contact_id": "typed-2", "features": SEED_REQUEST}
    first = service.score(request, explain=False)
    again = service.score(request, explain=False)
    assert again["cached"] and not again["explained"]
    assert problems(dict(first)) == [] and problems(dict(again)) == []


def test_rules_answer_is_a_lead_score() -> None:
    rules_only = ScoringService(NoModel())  # type: ignore[arg-type]
    answer = rules_only.score({"contact_id": "typed-3", "features": SEED_REQUEST})
    assert answer["source"] == "rules"
    assert problems(dict(answer)) == []


def test_the_check_catches_a_wrong_answer(service: ScoringService) -> None:
    answer = dict(service.score({"contact_id": "typed-4", "features": SEED_REQUEST}))
    answer["predicted_score"] = "0.5"
    answer["extra"] = 1
    del answer["model_version"]
    assert len(problems(answer)) == 3
