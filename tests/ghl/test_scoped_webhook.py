"""The webhook flow and the write-back under model scopes: the location the flow settled on
picks the scope, the answer and the queued message say which scope scored, and a location no
model may score gets nothing written to HighLevel (`leadscore.scoring.scoped.Unscored`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from leadscore.ghl.deadline import Deadline
from leadscore.ghl.messages import parse_message, score_message
from leadscore.ghl.writeback import Outcome, process_record
from leadscore.scoring.scoped import Unscored

from tests.fixtures.fakes import MemoryQueue
from tests.fixtures.ghl import FakeHighLevel, KeyPair, sqs_event
from tests.ghl.test_installed_location import CONTACT_EVENT, Installs, deliver, writeback
from tools.lambda_context import lambda_context

__all__ = ["writeback"]  # the write-back function fixture, shared


class ScopedScorer:
    """Answers with a scope, or refuses the location like the real scoped scorer."""

    def __init__(self, scope: str, *, per_location: bool = True) -> None:
        self.scope = scope
        self.per_location = per_location
        self.requests: list[Mapping[str, Any]] = []

    def score(self, request: Mapping[str, Any], *, explain: bool = False) -> dict[str, Any]:
        self.requests.append(request)
        if self.scope == "none":
            raise Unscored(str(request.get("location_id")), "no model may score it")
        source = "rules" if self.scope == "rules" else "ensemble"
        return {"contact_id": request.get("contact_id"), "predicted_score": 0.5,
                "predicted_class": "lukewarm", "should_prioritize": False,
                "model_version": source if source == "rules" else "lsm-test",
                "source": source, "model_scope": self.scope}


def test_the_webhook_scores_with_its_location_and_says_the_scope(
        ghl_ed25519: KeyPair) -> None:
    scorer, queue = ScopedScorer("location"), MemoryQueue()
    answer = deliver(scorer, ghl_ed25519, queue)  # type: ignore[arg-type]
    assert answer["status"] == "scored" and answer["model_scope"] == "location"
    assert scorer.requests[0]["location_id"] == CONTACT_EVENT["locationId"]
    (message,) = queue.sent
    assert message.model_scope == "location"
    assert parse_message(message.to_json()).model_scope == "location"


def test_an_unscored_location_gets_nothing_written_or_queued(ghl_ed25519: KeyPair) -> None:
    queue = MemoryQueue()
    answer = deliver(ScopedScorer("none"), ghl_ed25519, queue)  # type: ignore[arg-type]
    assert answer["status"] == "unscored" and answer["model_scope"] == "none"
    assert answer["reason"] == "no model may score it" and queue.sent == []


def test_messages_without_a_scope_read_and_write_as_before() -> None:
    plain = score_message({"contact_id": "c", "predicted_score": 0.5,
                           "predicted_class": "lukewarm"}, location_id="L",
                          received_at="2026-02-05T10:00:00.000Z")
    assert plain.model_scope is None and "model_scope" not in plain.to_json()
    assert parse_message(plain.to_json()).model_scope is None


def test_the_write_back_writes_nothing_for_an_unscored_location(
        ghl_ed25519: KeyPair, writeback: Any, fake_highlevel: FakeHighLevel) -> None:
    from leadscore.ghl.messages import webhook_message

    queued = webhook_message({"contact_id": "c-1", "features": {}}, location_id="loc-x",
                             received_at="2026-02-05T10:00:00.000Z")
    refusing = ScopedScorer("none")
    deps = writeback.deps()
    deps.installations, deps.scorer = Installs(), lambda: refusing
    answer = writeback.lambda_handler(sqs_event(queued.to_json()), lambda_context("writeback"))
    assert answer["batchItemFailures"] == []
    assert refusing.requests[0]["location_id"] == "loc-x"
    assert fake_highlevel.requests == []


def test_a_location_the_rules_serve_is_not_queued_to_wait_for_a_model(
        ghl_ed25519: KeyPair) -> None:
    queue = MemoryQueue()
    answer = deliver(ScopedScorer("rules"), ghl_ed25519, queue)  # type: ignore[arg-type]
    assert answer["status"] == "scored" and answer["model_scope"] == "rules"
    assert answer["writeback"] == "not written (rules)" and queue.sent == []
    # one champion for the stack: the rules are a fallback, queued until the model is back
    fallback = deliver(ScopedScorer("rules", per_location=False), ghl_ed25519, queue)  # type: ignore[arg-type]
    assert fallback["status"] == "queued" and [m.kind for m in queue.sent] == ["webhook"]


def test_the_write_back_does_not_wait_for_a_location_the_rules_serve(
        writeback: Any, fake_highlevel: FakeHighLevel) -> None:
    from leadscore.ghl.messages import webhook_message

    queued = webhook_message({"contact_id": "c-1", "features": {}}, location_id="loc-x",
                             received_at="2026-02-05T10:00:00.000Z")
    deps = writeback.deps()
    deps.installations, deps.scorer = Installs(), lambda: ScopedScorer("rules")
    answer = writeback.lambda_handler(sqs_event(queued.to_json()), lambda_context("writeback"))
    assert answer["batchItemFailures"] == [] and fake_highlevel.requests == []
    # finished, not re-queued to wait for a model that is not coming
    result = process_record(queued.to_json(), deps, Deadline(ends_at=time.monotonic() + 60))
    assert result.outcome == Outcome.UNSCORED and fake_highlevel.requests == []
