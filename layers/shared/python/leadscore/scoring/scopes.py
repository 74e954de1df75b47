"""Which model answers for a location: THE scope rule, in one place.

An agency's sub-accounts are different businesses, so a location can have a champion of its
own (`leadscore.registry.locations`). For a lead of location L, in this order:

1. ``location``: L's own champion, when it has one loaded.
2. ``agency``: the stack's champion (``models/champion.json``, trained on pooled rows), only
   when L allows pooling (`Installation.allow_pooling`, off by default) AND the model's
   schema fits L's fields: the real-estate contract fits a location on the real-estate
   preset; a custom schema fits a location whose columns include every column it reads.
3. ``rules``: the transparent rules score, only for a location on the real-estate preset
   (the rules know no other columns).
4. ``none``: an honest "unscored" answer; nothing is written to HighLevel.

Every answer says which scope served it (``model_scope``). A stack that does not serve
per-location models (``LOCATION_MODELS`` off, the default) keeps its one champion for every
caller: its answers say ``agency`` (the store's champion) or ``rules`` (the fallback).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, Protocol

from leadscore.columns.schema import Schema

if TYPE_CHECKING:
    from leadscore.bundle import LoadedModel


class PoolingRecord(Protocol):
    """What the scope rule reads of a location's installation record
    (`leadscore.ghl.installations.Installation`, a floor above: it is passed in)."""

    @property
    def allow_pooling(self) -> bool: ...

    @property
    def model_columns(self) -> Iterable[str]: ...

Scope = Literal["location", "agency", "rules", "none"]
LOCATION: Final = "location"
AGENCY: Final = "agency"
RULES: Final = "rules"
NONE: Final = "none"
SCOPES: tuple[Scope, ...] = (LOCATION, AGENCY, RULES, NONE)

# Why a scope was skipped or chosen: fixed sentences (they reach answers; no ids, no paths).
NO_POOLING = "the location does not allow pooling, so the agency's model does not score it"
SCHEMA_MISFIT = "the agency's model reads columns this location's leads do not carry"
NO_AGENCY_MODEL = "no agency model is loaded"
NOT_PRESET = "the rules score only the real-estate preset's features"


@dataclass(frozen=True)
class LocationProfile:
    """What the scope rule needs to know about a location."""

    location_id: str = ""
    allow_pooling: bool = False
    #: the columns its leads carry; empty: the real-estate preset (the 20-feature contract)
    columns: frozenset[str] = frozenset()

    @property
    def real_estate_preset(self) -> bool:
        return not self.columns

    @classmethod
    def of(cls, location_id: str, installation: PoolingRecord | None) -> LocationProfile:
        """The profile from the location's installation record (None: the defaults: no
        pooling, the real-estate preset)."""
        if installation is None:
            return cls(location_id)
        return cls(location_id, bool(installation.allow_pooling),
                   frozenset(str(c) for c in installation.model_columns))


@dataclass(frozen=True)
class ScopeChoice:
    scope: Scope
    model: LoadedModel | None  # the model that answers (location, agency); None otherwise
    reason: str = ""  # why the earlier scopes did not answer (empty for `location`)


def model_columns(model: LoadedModel) -> frozenset[str] | None:
    """The columns a model reads; None for the real-estate contract."""
    schema = getattr(model, "schema", None)  # a benchmark's native twin has none
    return frozenset(schema.column_names) if isinstance(schema, Schema) else None


def schema_fits(model: LoadedModel, profile: LocationProfile) -> bool:
    """Can this model read the location's leads?"""
    reads = model_columns(model)
    if reads is None:
        return profile.real_estate_preset
    return not profile.real_estate_preset and reads <= profile.columns


def choose_scope(profile: LocationProfile, own: LoadedModel | None,
                 agency: LoadedModel | None) -> ScopeChoice:
    """THE rule: location > agency (pooling allowed and schema fits) > rules (preset) > none."""
    if own is not None:
        return ScopeChoice(LOCATION, own)
    if agency is None:
        skipped = NO_AGENCY_MODEL
    elif not profile.allow_pooling:
        skipped = NO_POOLING
    elif not schema_fits(agency, profile):
        skipped = SCHEMA_MISFIT
    else:
        return ScopeChoice(AGENCY, agency)
    if profile.real_estate_preset:
        return ScopeChoice(RULES, None, skipped)
    return ScopeChoice(NONE, None, f"{skipped}; {NOT_PRESET}")


def stack_scope(answer_source: str) -> Scope:
    """The scope of an answer of a stack without per-location models: its champion is the
    agency's, the fallback the rules."""
    return RULES if answer_source == "rules" else AGENCY
