"""An experiment's rules arm is written to the CRM; the rules fallback waits for the model."""

from __future__ import annotations

from typing import Any

import pytest
from leadscore.ghl import writeback
from leadscore.ghl.messages import webhook_message
from leadscore.scoring.lead_score import goes_to_the_crm


def _answer(source: str, variant: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"contact_id": "c1", "predicted_score": 0.31,
                              "predicted_class": "cold", "model_version": "rules",
                              "source": source}
    if variant is not None:
        answer |= {"experiment": "ab", "variant": variant}
    return answer


@pytest.mark.parametrize("answer, written", [
    (_answer("ensemble"), True),
    (_answer("ensemble", "champion"), True),
    (_answer("rules", "rules"), True),  # the arm the experiment chose: the team acts on it
    (_answer("rules"), False),  # the fallback while no model is loaded
])
def test_which_answers_go_to_the_crm(answer: dict[str, Any], written: bool) -> None:
    assert goes_to_the_crm(answer) is written  # type: ignore[arg-type]


class _Scorer:
    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer

    def score(self, request: Any, *, explain: bool = True) -> Any:
        return self.answer


def _deps(answer: dict[str, Any]) -> writeback.WritebackDeps:
    from leadscore.settings import WritebackSettings

    return writeback.WritebackDeps(  # only the settings and the scorer are used by _score
        settings=WritebackSettings(), installations=None, states=None,  # type: ignore[arg-type]
        budget=None, requeue=None, api=None,  # type: ignore[arg-type]
        scorer=lambda: _Scorer(answer), clock=lambda: 1_800_000_000.0)


def test_a_queued_webhook_answered_by_the_rules_arm_is_written_not_delayed() -> None:
    """Before: every rules answer was "model unavailable", so a rules-arm contact's write
    waited for a model that was already there, forever."""
    message = webhook_message({"contact_id": "c1", "features": {}}, location_id="loc1",
                              received_at="2026-11-30T10:00:00Z")
    scored = writeback._score(message, _deps(_answer("rules", "rules")))
    assert scored.predicted_score == pytest.approx(0.31)
    with pytest.raises(writeback._Wait):
        writeback._score(message, _deps(_answer("rules")))
