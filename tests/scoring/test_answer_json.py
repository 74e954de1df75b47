"""A lead score is written as JSON once per request, and always as json.dumps writes it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from leadscore.scoring import answer_json


def _answer() -> dict[str, Any]:
    return {"contact_id": "lead_1", "predicted_score": 0.1234567, "cached": False,
            "missing_fields": ["market_data.comparables"], "base_scores": {"xgboost": 0.2},
            "confidence_interval": [0.1, float("nan")], "reason": "Ünïcode \u2028 text"}


def _expected(answer: Any) -> str:
    return json.dumps(answer, separators=(",", ":"))


def test_the_remembered_answer_and_its_extensions_are_written_as_json_dumps_writes_them() -> None:
    fresh = _answer()
    assert answer_json.remember(fresh) == _expected(fresh)
    assert answer_json.dumps(fresh) == _expected(fresh)
    extended = {**fresh, "model_scope": "agency", "variant": None}
    assert answer_json.dumps(extended) == _expected(extended)


@pytest.mark.parametrize("change", ["replaced", "reordered", "shorter", "edited_after"])
def test_anything_but_an_extension_is_written_in_full(change: str) -> None:
    fresh = _answer()
    answer_json.remember(fresh)
    other = dict(fresh)
    if change == "replaced":  # a value replaced by another object: written again
        other["missing_fields"] = [*fresh["missing_fields"], "x"]
    elif change == "reordered":
        other = dict(reversed(list(fresh.items())))
    elif change == "shorter":
        other.pop("reason")
    else:  # the remembered answer itself changed after it was written
        fresh["cached"] = True
        other = {**fresh, "model_scope": "agency"}
    assert answer_json.dumps(other) == _expected(other)


def test_a_score_request_writes_its_answer_once(monkeypatch: pytest.MonkeyPatch,
                                                install: Any, invoke: Any) -> None:
    from pathlib import Path

    from tests.fixtures.scoring import load_event

    recorded = Path(__file__).resolve().parent / "default_contract" / "bundle"
    install(f"file://{recorded}")
    written: list[Any] = []
    real = answer_json._ENCODER

    class Counting:
        def encode(self, value: Any) -> str:
            written.append(value)
            return real.encode(value)

    monkeypatch.setattr(answer_json, "_ENCODER", Counting())
    answer = invoke(load_event("score_request_noexplain"))
    assert answer.status == 200 and answer.body["cached"] is False
    full = [v for v in written if isinstance(v, dict) and "predicted_score" in v]
    assert len(full) == 1, "the answer was written as JSON more than once"
    assert answer.body == json.loads(_expected(answer.body))
