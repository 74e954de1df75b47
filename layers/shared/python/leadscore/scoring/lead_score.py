"""The lead score: the one shape every scorer answers with and every consumer reads.

`ScoringService` builds it, the score routes return it as JSON, the webhook flow and the
write-back read it, experiments add their keys to it. docs/API.md describes each field for
users; `tests/scoring/test_lead_score.py` checks real answers against this definition.
(No `from __future__ import annotations` here: the TypedDicts must see `NotRequired`
at run time for that check.)
"""

from typing import Any, Literal, NotRequired, TypedDict


class Factor(TypedDict):
    """One of the top factors of a score, with a reason a salesperson can read."""

    feature: str
    value: Any  # a number for the real-estate contract; a custom column's value as given
    contribution: float
    reason: str


class Explanation(TypedDict):
    """Signed contributions (probability units) and the top factors; empty when not explained."""

    feature_contributions: dict[str, float]
    top_positive_factors: list[Factor]
    top_negative_factors: list[Factor]
    explained: bool


def not_explained() -> Explanation:
    """The explanation fields of an answer without contributions (``?explain=false``, rules)."""
    return Explanation(
        feature_contributions={}, top_positive_factors=[], top_negative_factors=[], explained=False
    )


class ShadowScore(TypedDict):
    """What a shadow model would have answered (experiments)."""

    model_version: str
    predicted_score: float
    predicted_class: str


class LeadScore(TypedDict):
    contact_id: str
    predicted_score: float  # 0-1
    predicted_class: str  # hot | warm | lukewarm | cold
    ml_score: float  # 100 x predicted_score, 1 decimal
    should_prioritize: bool
    composite_score: float | None  # the rules score, 0-100; None for a custom column schema
    missing_fields: list[str]
    feature_values: dict[str, Any]  # the 20 numbers, or a custom schema's columns as given
    prediction_timestamp: str  # ISO-8601 UTC
    cached: bool
    confidence_interval: list[float] | None  # [lo, hi]; None for the rules fallback
    model_agreement: float | None
    base_scores: dict[str, float] | None
    baseline_score: float | None
    model_version: str  # "lsm-..." or "rules"
    source: Literal["ensemble", "rules"]
    feature_contributions: dict[str, float]
    top_positive_factors: list[Factor]
    top_negative_factors: list[Factor]
    explained: bool
    # a custom column schema: categories the model never saw (leadscore.columns)
    unseen_categories: NotRequired[list[dict[str, Any]]]
    # under an experiment (leadscore.experiments.serving)
    experiment: NotRequired[str]
    variant: NotRequired[str | None]
    shadow: NotRequired[ShadowScore | None]
    # which model scope answered (leadscore.scoring.scopes): location, agency, rules
    model_scope: NotRequired[str]


class BatchAnswer(TypedDict):
    results: list[LeadScore]
    # {"index", "errors": [{"path", "message"}], "error_count", ...}: see service.BatchErrors
    errors: list[dict[str, Any]]
    # leads no model scope can score: {"index", "contact_id", "scored": false, "model_scope":
    # "none", "reason"} (leadscore.scoring.scoped)
    unscored: NotRequired[list[dict[str, Any]]]


def goes_to_the_crm(answer: "LeadScore") -> bool:
    """Is this answer what we write onto the contact? The model's answers, and the rules' when
    an experiment chose the rules for this contact; never the rules *fallback* (a stand-in for
    an API caller while no model is loaded: the write waits for the model instead)."""
    return answer.get("source") == "ensemble" or answer.get("variant") == "rules"
