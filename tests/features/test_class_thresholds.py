"""Classes that mean something at any base rate, and one precedence for their thresholds.

Thresholds are chosen from held-out scores (`classes.choose_thresholds`); on other rows of the
same kind of data the classes hold: rates fall from hot to cold, hot <= 20 % of leads, cold
>= 30 % of leads and < half of the conversions. The fixed 0.8 / 0.6 / 0.4 fail that at low
base rates (shown too). Which thresholds apply: a location's, else the stack's, else the
bundle's, else the defaults, on the immediate webhook, the queued write-back and the backfill.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from leadscore import classes
from leadscore.classes import (
    DEFAULT_CLASS_THRESHOLDS,
    bundle_thresholds,
    choose_thresholds,
    class_table,
    effective_thresholds,
    thresholds_change,
    with_location_class,
)
from leadscore.ghl.installations import Installation, InstalledLocation


def _scored(base_rate: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A model's scores with an AUC of about 0.75-0.77 at the given base rate (measured)."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(0, 1.1, n)
    offset = np.log(base_rate / (1 - base_rate)) - 0.5
    truth = 1 / (1 + np.exp(-(offset + signal)))
    y = (rng.random(n) < truth).astype(int)
    score = 1 / (1 + np.exp(-(offset + signal + rng.normal(0, 0.3, n))))
    return score, y


def _holds(table: list[dict[str, Any]]) -> bool:
    by = {c["class"]: c for c in table}
    rates = [by[c]["conversion_rate"] for c in classes.CLASSES]
    return (all(a > b for a, b in itertools.pairwise(rates))
            and by["hot"]["share_of_leads"] <= 0.20
            and by["cold"]["share_of_leads"] >= 0.30
            and by["cold"]["share_of_conversions"] < 0.5)


@pytest.mark.parametrize("base_rate", [0.05, 0.11, 0.155, 0.385, 0.7])
def test_chosen_thresholds_give_meaningful_classes_at_any_base_rate(base_rate: float) -> None:
    held_out, _y_held = _scored(base_rate, 4000, 1)
    chosen = choose_thresholds(held_out)
    assert chosen is not None
    fresh, y_fresh = _scored(base_rate, 20000, 2)
    assert _holds(class_table(y_fresh.tolist(), fresh.tolist(), chosen))


@pytest.mark.parametrize("base_rate", [0.11, 0.155])
def test_the_fixed_defaults_do_not_at_low_base_rates(base_rate: float) -> None:
    fresh, y_fresh = _scored(base_rate, 20000, 2)
    assert not _holds(class_table(y_fresh.tolist(), fresh.tolist(), DEFAULT_CLASS_THRESHOLDS))


def test_ties_and_tiny_sets() -> None:
    assert choose_thresholds([0.3] * 50) is None  # too few rows: the defaults stay
    tied = np.r_[np.full(500, 0.2), np.linspace(0.3, 0.9, 500)]
    chosen = choose_thresholds(tied)
    assert chosen is not None and chosen["hot"] > chosen["warm"] > chosen["lukewarm"]
    table = class_table([0] * tied.size, tied.tolist(), chosen)
    assert table[0]["share_of_leads"] <= 0.10 + 1e-9


def test_precedence_is_location_then_stack_then_bundle_then_defaults() -> None:
    loc = {"hot": 0.5, "warm": 0.4, "lukewarm": 0.3}
    stack = {"hot": 0.6, "warm": 0.5, "lukewarm": 0.4}
    bundle = {"hot": 0.7, "warm": 0.6, "lukewarm": 0.5}
    assert effective_thresholds(location=loc, stack=stack, bundle=bundle) == loc
    assert effective_thresholds(stack=stack, bundle=bundle) == stack
    assert effective_thresholds(bundle=bundle) == bundle
    assert effective_thresholds() == DEFAULT_CLASS_THRESHOLDS


def test_an_older_bundle_without_thresholds_keeps_the_defaults() -> None:
    assert bundle_thresholds({"model_version": "lsm-old"}) is None
    assert bundle_thresholds({"class_thresholds": {"hot": 2}}) is None
    assert effective_thresholds(bundle=bundle_thresholds({})) == DEFAULT_CLASS_THRESHOLDS


def test_a_promotion_that_moves_thresholds_is_named() -> None:
    new = {"class_thresholds": {"hot": 0.3, "warm": 0.2, "lukewarm": 0.1}}
    assert thresholds_change(None, new) is None
    moved = thresholds_change({"version": "lsm-old"}, new)
    assert moved == {"from": dict(DEFAULT_CLASS_THRESHOLDS), "to": new["class_thresholds"]}
    assert thresholds_change({"class_thresholds": new["class_thresholds"]}, new) is None


LOCATION = {"hot": 0.45, "warm": 0.3, "lukewarm": 0.1}


class _Scorer:
    def score(self, request: Mapping[str, Any], *, explain: bool = False) -> dict[str, Any]:
        return {"contact_id": request.get("contact_id", "c1"), "predicted_score": 0.5,
                "predicted_class": "lukewarm", "should_prioritize": False,
                "model_version": "lsm-test", "source": "ensemble"}


def test_the_queued_write_back_applies_the_location_s_thresholds() -> None:
    from leadscore.ghl import messages, writeback

    message = messages.webhook_message({"contact_id": "c1", "features": {}},
                                       location_id="loc1", received_at="2026-02-05T10:00:00Z")
    deps = SimpleNamespace(scorer=_Scorer, clock=lambda: 1.0,
                           settings=SimpleNamespace(model_retry_seconds=60))
    installation = Installation("loc1", class_thresholds=LOCATION)
    scored = writeback._score(message, deps, installation)  # type: ignore[arg-type]
    assert scored.predicted_class == "hot"
    plain = writeback._score(message, deps, Installation("loc1"))  # type: ignore[arg-type]
    assert plain.predicted_class == "lukewarm"


def test_the_backfill_applies_the_location_s_thresholds() -> None:
    from leadscore.loop.backfill_job import ContactStep
    from leadscore.loop.recorder import LoopRecorder

    queued: list[Any] = []
    step = ContactStep(
        scorer=_Scorer,  # type: ignore[arg-type]
        recorder=LoopRecorder(None),
        queue=SimpleNamespace(send=queued.append),  # type: ignore[arg-type]
        location_for=lambda location_id: InstalledLocation(Installation(
            location_id, field_map={"fld1": "property_appeal_score"},
            class_thresholds=LOCATION if location_id == "loc1" else None)),
    )
    contact = {"id": "c1", "customFields": [{"id": "fld1", "value": 70}]}
    step("loc1", contact)
    step("loc2", {**contact, "id": "c2"})
    step.end_page("loc1")
    assert [(m.contact_id, m.predicted_class) for m in queued] == [("c1", "hot"),
                                                                    ("c2", "lukewarm")]


def test_with_location_class_leaves_the_probability_alone() -> None:
    score = _Scorer().score({})
    again = with_location_class(score, LOCATION)
    assert again["predicted_score"] == 0.5 and again["should_prioritize"] is True
    assert with_location_class(score, None) is score
