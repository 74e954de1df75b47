"""Request and response models of the scoring API, for its OpenAPI document only.

The Lambda never imports this module (pydantic is not in the runtime layer, and validating
bodies with models would cost latency on every request): `leadscore.scoring` and
`leadscore.features` stay the one copy of every rule, and the handler answers plain dicts.
These models describe those dicts; `tools/openapi.py` attaches them to the resolver's routes
and `tests/reliability` checks real answers against the generated schema (schemathesis) so the
description cannot drift from the behaviour.
"""

from __future__ import annotations

from typing import Literal

from leadscore.settings import ScoreSettings
from pydantic import BaseModel, ConfigDict, Field

#: The documented limits are the settings' defaults (one copy); a deployment may change them.
LIMITS = ScoreSettings()
LIST_LIMIT = (f"at most MAX_LIST_ITEMS ({LIMITS.max_list_items} by default) items; more is a "
              "400 naming the limit")

# -- requests ---------------------------------------------------------------------------------


class _Open(BaseModel):
    """Unknown keys are ignored by the extractor, so the schema allows them."""

    model_config = ConfigDict(extra="allow")


class Location(_Open):
    school_rating: float | None = Field(None, ge=0, le=10)
    walkability_score: float | None = Field(None, ge=0, le=100)


class PriceDrop(_Open):
    percentage: float | None = Field(None, ge=0)


class Comparable(_Open):
    sale_price: float | None = Field(None, ge=0)
    days_on_market: float | None = Field(None, ge=0)


Condition = Literal["excellent", "move_in_ready", "good", "fair", "needs_work", "fixer_upper",
                    "poor"]


class PropertyData(_Open):
    list_price: float | None = Field(None, ge=0)
    estimated_market_value: float | None = Field(None, ge=0, description="0 = not known")
    price_drops: list[PriceDrop] | None = Field(
        None, max_length=LIMITS.max_list_items, description=LIST_LIMIT)
    days_on_market: float | None = Field(None, ge=0)
    beds: float | None = Field(None, ge=0)
    baths: float | None = Field(None, ge=0)
    sqft: float | None = Field(None, ge=0)
    condition: Condition | None = Field(
        None, description="compared case-insensitively; an unknown value takes the default"
    )
    location: Location | None = None


class MarketData(_Open):
    estimated_value: float | None = Field(None, ge=0, description="0 = not known")
    average_days_on_market: float | None = Field(None, ge=0)
    inventory_level: float | None = Field(None, ge=0, description="months of inventory")
    absorption_rate: float | None = Field(None, ge=0)
    price_trend_pct: float | None = Field(None, description="year over year, %")
    current_month: int | None = Field(None, description="0 = January; outside 0-11 = unknown")
    comparables: list[Comparable] | None = Field(
        None, max_length=LIMITS.max_list_items,
        description="the comparable sales of a CMA (a real one uses a few dozen); " + LIST_LIMIT)


class PsychologyProfile(_Open):
    psychological_commitment_score: float | None = Field(None, ge=0, le=100)
    urgency_level: Literal["low", "medium", "high", "critical"] | None = None
    motivation_type: Literal["upsizing", "downsizing", "relocation", "financial", "divorce",
                             "estate", "investment"] | None = None
    negotiation_flexibility: float | None = Field(None, ge=0, le=1)


class ConversationData(_Open):
    message_count: int | None = Field(None, ge=0)
    avg_response_time_seconds: float | None = Field(None, ge=0)


class LeadFeatures(_Open):
    """docs/FEATURES.md "Raw fields": absent sections and fields take documented defaults."""

    property_data: PropertyData | None = None
    market_data: MarketData | None = None
    psychology_profile: PsychologyProfile | None = None
    conversation_data: ConversationData | None = None


ContactId = Field(min_length=1, max_length=128, pattern=r"\S",
                  description="the CRM contact id (not only blanks)")


class ScoreByFeatures(_Open):
    contact_id: str = ContactId
    features: LeadFeatures


class ScoreByVector(_Open):
    contact_id: str = ContactId
    feature_vector: list[float] | dict[str, float] = Field(
        description="20 numbers in docs/FEATURES.md order, or {feature name: number}"
    )


FieldValue = str | float | bool | None


class ScoreByFields(_Open):
    """For a bundle trained on a team's own columns (docs/SCHEMA.md): the raw values by
    column name, validated against the bundle's schema.json."""

    contact_id: str = ContactId
    fields: dict[str, FieldValue] = Field(
        description="{column: value} as exported: numbers or numeric text, yes/no, dates "
        "(YYYY-MM-DD, ISO date-time, epoch ms), category text; null or a missing token "
        "(\"\", unknown, Select, the column's sentinel) = missing; columns the schema does not "
        "use are ignored. Only a custom-schema bundle takes this form (400 otherwise)."
    )


ScoreRequest = ScoreByFeatures | ScoreByVector | ScoreByFields


class BatchRequest(BaseModel):
    leads: list[ScoreByFeatures | ScoreByVector | ScoreByFields] = Field(
        max_length=LIMITS.max_batch_size,
        description=f"up to MAX_BATCH_SIZE ({LIMITS.max_batch_size} by default) scoring "
                    "requests; more is a 413 naming the limit",
    )


class GhlWebhook(_Open):
    """A HighLevel webhook (docs/GHL_SETUP.md): a signed marketplace ContactCreate/ContactUpdate
    event (header x-ghl-signature, or the legacy x-wh-signature) or a workflow webhook carrying
    the x-leadscore-secret header."""

    type: str | None = None
    locationId: str | None = None  # HighLevel's own field names
    id: str | None = None
    contact_id: str | None = None
    webhookId: str | None = None
    timestamp: str | None = None
    customFields: list[dict[str, object]] | None = None
    customData: dict[str, object] | None = None


# -- responses --------------------------------------------------------------------------------


class FieldErrorModel(BaseModel):
    path: str = Field(description="e.g. property_data.list_price or [3].feature_vector[2]")
    message: str


class Limit(BaseModel):
    name: str = Field(description="the setting, e.g. MAX_BODY_BYTES")
    value: int


class ErrorResponse(_Open):
    """Every 4xx/5xx answer: JSON with a clear `error`, never a stack trace."""

    error: str
    errors: list[FieldErrorModel] | None = Field(
        None, description=f"the offending paths (400), the first MAX_ERROR_PATHS "
                          f"({LIMITS.max_error_paths} by default)")
    error_count: int | None = Field(None, description="how many errors there were in all")
    errors_truncated: bool | None = Field(None, description="true when not all are listed")
    limit: Limit | None = Field(None, description="the limit a 413 ran into")


class Factor(BaseModel):
    feature: str
    value: float | str | None = Field(description="a number; for a custom schema also a "
                                      "category's text or null (missing)")
    contribution: float
    reason: str


class UnseenCategory(BaseModel):
    column: str
    value: str


class BaseScores(BaseModel):
    xgboost: float
    lightgbm: float
    neural_network: float


class ShadowScore(BaseModel):
    model_version: str
    predicted_score: float = Field(ge=0, le=1)
    predicted_class: Literal["hot", "warm", "lukewarm", "cold"]


class LeadScore(_Open):
    contact_id: str
    predicted_score: float = Field(ge=0, le=1)
    confidence_interval: list[float] | None = Field(
        description="95 % interval [lo, hi]; null from the rules fallback")
    predicted_class: Literal["hot", "warm", "lukewarm", "cold"]
    model_agreement: float | None = Field(ge=0, le=1)
    feature_contributions: dict[str, float] = Field(
        description="signed, probability units; {} when not explained")
    prediction_timestamp: str
    model_version: str
    cached: bool
    base_scores: BaseScores | None
    baseline_score: float | None
    top_positive_factors: list[Factor]
    top_negative_factors: list[Factor]
    missing_fields: list[str]
    composite_score: float | None = Field(
        ge=0, le=100, description="the rules score; null for a custom schema (the rules know "
        "only the real-estate features)")
    ml_score: float = Field(ge=0, le=100)
    should_prioritize: bool
    feature_values: dict[str, float | str | None] = Field(
        description="the 20 values the model saw; for a custom schema each column's value as "
        "read (number, category text, or null when missing)")
    source: Literal["ensemble", "rules"]
    explained: bool
    unseen_categories: list[UnseenCategory] | None = Field(
        None, description="custom schema only: category values never seen in training, "
        "scored as \"other\"")
    experiment: str | None = Field(
        default=None, description="the running experiment (absent when none runs)")
    variant: str | None = Field(
        default=None, description="the arm that answered: rules, champion or a model "
                                  "version; null when that arm's model could not be loaded")
    shadow: ShadowScore | None = Field(
        default=None, description="the experiment's shadow version's score (never answered)")
    model_scope: Literal["location", "agency", "rules"] = Field(
        description="which model answered: the location's own champion, the agency's "
                    "(the stack's champion), or the rules")


class Unscored(BaseModel):
    """No model may score this location's leads (per-location models): nothing is invented,
    nothing is written to HighLevel."""

    contact_id: str | None
    scored: Literal[False]
    model_scope: Literal["none"]
    reason: str


class UnscoredLead(Unscored):
    index: int


class BatchError(BaseModel):
    index: int
    errors: list[FieldErrorModel] = Field(
        description="this lead's first MAX_ERROR_PATHS paths; a batch lists at most 100 x "
                    "MAX_ERROR_PATHS in all")
    error_count: int
    errors_truncated: bool | None = None


class BatchResponse(BaseModel):
    results: list[LeadScore]
    errors: list[BatchError]
    unscored: list[UnscoredLead] | None = Field(
        default=None, description="leads of locations no model may score (absent when none)")


class HealthOk(BaseModel):
    loaded: Literal[True]
    model_version: str


class HealthDown(_Open):
    loaded: Literal[False]
    reason: str | None
    fallback: Literal["rules"]


class ModelInfo(_Open):
    """The manifest, metrics and feature importance of the served bundle."""

    model_version: str
    loaded: Literal[True]


class OAuthInstalled(_Open):
    status: Literal["installed"]
    locations: list[str]


class ModelDown(_Open):
    error: str
    loaded: Literal[False]
    reason: str | None


class WebhookAck(_Open):
    status: Literal["scored", "queued", "ignored", "duplicate", "parked", "installed",
                    "uninstalled", "unscored"]
    contact_id: str | None = None
    reason: str | None = None


class WebhookRetry(_Open):
    """429 with Retry-After: the delivery could not even be parked; HighLevel retries it."""

    error: str
    contact_id: str | None = None
