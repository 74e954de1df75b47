"""Scoring by model scope: each location answered by the scope `scoring.scopes` chooses.

`ScopedScorer` wraps a container's scorer (the `ScoringService`, routed by a running
experiment when there is one). The location of a lead is the ``location_id`` given to
`score` or, failing that, the request's own ``location_id`` key (the webhook flow and the
write-back put the location they settled on there).

- Without per-location models (``models`` None), or for a lead of no location (an operator's
  call), the wrapped scorer answers as it always did; the answer says ``agency`` (the
  store's champion) or ``rules`` (the fallback).
- With them, `scopes.choose_scope` decides: the location's own champion answers through the
  same service (same parsing, cache, explanations; the cache key holds the model version),
  routed by the location's own running experiment when there is one (``experiments``: its
  champion and its stored versions as arms; the answer carries ``experiment`` and
  ``variant`` and says ``location``, or ``rules`` for a rules arm),
  the agency's champion through the wrapped scorer (so an experiment on it still applies),
  the rules through the service's rules score, and ``none`` raises `Unscored`: the route
  answers an honest "unscored", the webhook writes nothing to HighLevel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from leadscore.columns.schema import Schema as SchemaType
from leadscore.errors import InvalidInput
from leadscore.identifiers import is_safe_id
from leadscore.scoring import scopes
from leadscore.scoring.lead_score import BatchAnswer, LeadScore
from leadscore.scoring.scopes import PoolingRecord
from leadscore.scoring.service import (
    MAX_CONTACT_ID_LENGTH,
    BatchErrors,
    BatchTooLarge,
    ScoringService,
    scorer_schema,
)

if TYPE_CHECKING:
    from leadscore.bundle import LoadedModel
    from leadscore.columns.schema import Schema


class Unscored(Exception):
    """No scope can score this location's leads (``model_scope`` ``none``)."""

    def __init__(self, location_id: str, reason: str) -> None:
        super().__init__(reason)
        self.location_id = location_id
        self.reason = reason

    def answer(self, contact_id: Any) -> dict[str, Any]:
        """The honest answer: not scored, and why (no model figures are invented)."""
        # the request was not parsed (no model reads it): echo only an id that could be one
        echoed = (contact_id if isinstance(contact_id, str)
                  and 0 < len(contact_id) <= MAX_CONTACT_ID_LENGTH else None)
        return {"contact_id": echoed,
                "scored": False, "model_scope": scopes.NONE, "reason": self.reason}


class Inner(Protocol):
    """The wrapped scorer (`ScoringService` or `ExperimentScorer`)."""

    def score(self, request: Mapping[str, Any], *, explain: bool = True) -> LeadScore: ...

    def score_batch(self, leads: Sequence[Any], *, explain: bool = True) -> BatchAnswer: ...


class OwnModels(Protocol):
    def get(self, location_id: str) -> LoadedModel | None: ...


class OwnExperiments(Protocol):
    """Each location's own experiment (`leadscore.experiments.serving.LocationExperiments`)."""

    def score(self, location_id: str, champion: LoadedModel, request: Mapping[str, Any], *,
              explain: bool = True) -> LeadScore: ...

    def schema(self, location_id: str, champion: LoadedModel) -> Schema | None: ...


InstallationOf = Callable[[str], "PoolingRecord | None"]


def _no_installation(location_id: str) -> PoolingRecord | None:
    return None


def request_location(request: Any) -> str:
    """The request's own ``location_id`` when it is one HighLevel makes, else ''."""
    value = request.get("location_id") if isinstance(request, Mapping) else None
    return value if isinstance(value, str) and is_safe_id(value) else ""


class ScopedScorer:
    def __init__(self, service: ScoringService, inner: Inner, *,
                 models: OwnModels | None = None,
                 installation: InstallationOf = _no_installation,
                 experiments: OwnExperiments | None = None) -> None:
        self.service = service
        self.inner = inner
        self.models = models
        self.experiments = experiments
        self.installation = installation

    @property
    def per_location(self) -> bool:
        return self.models is not None

    def scope_for(self, location_id: str) -> scopes.ScopeChoice:
        """THE decision for a location (`scopes.choose_scope`) with what is loaded now."""
        assert self.models is not None
        try:
            installation = self.installation(location_id)
        except Exception:
            # the installations table not answering: the safe defaults (no pooling), never
            # another location's model
            installation = None
        profile = scopes.LocationProfile.of(location_id, installation)
        return scopes.choose_scope(profile, self.models.get(location_id),
                                   self.service.provider.current())

    def score(self, request: Mapping[str, Any], *, explain: bool = True,
              location_id: str | None = None) -> LeadScore:
        """One lead score with its ``model_scope``; raises `InvalidInput`, `Unscored` (and
        `NoModelForFields` as the service does)."""
        location = request_location(request) if location_id is None else location_id
        if not self.per_location or not location:
            answer = self.inner.score(request, explain=explain).copy()  # the cached one stays
            answer["model_scope"] = scopes.stack_scope(answer["source"])
            return answer
        choice = self.scope_for(location)
        if choice.scope == scopes.NONE:
            raise Unscored(location, choice.reason)
        if choice.scope == scopes.AGENCY:
            answer = self.inner.score(request, explain=explain)
        elif choice.scope == scopes.LOCATION and choice.model is not None \
                and self.experiments is not None:
            # the location's own experiment, never the agency's: its champion is one arm
            answer = self.experiments.score(location, choice.model, request, explain=explain)
        elif choice.scope == scopes.LOCATION:
            answer = self.service.score(request, explain=explain, use=choice.model)
        else:
            answer = self.service.score(request, explain=explain, use="rules")
        answer = answer.copy()  # the cached answer stays as it was
        # a model answering NaN for a lead is answered by the rules (the service's rule)
        answer["model_scope"] = scopes.RULES if answer["source"] == "rules" else choice.scope
        return answer

    def score_batch(self, leads: Sequence[Any], *, explain: bool = True,
                    location_ids: Sequence[str] | None = None) -> BatchAnswer:
        """As the service's batch, with ``model_scope`` on each result. With per-location
        models each lead is answered by its own location's scope (one model call per lead);
        leads no scope can score are listed under ``unscored`` by index."""
        locations = (list(location_ids) if location_ids is not None
                     else [request_location(lead) for lead in leads])
        if not self.per_location or not any(locations):
            answer = self.inner.score_batch(leads, explain=explain)
            # copies: the cached answers stay as they were
            answer["results"] = [{**result, "model_scope": scopes.stack_scope(result["source"])}
                                 for result in answer["results"]]
            return answer
        if len(leads) > self.service.max_batch_size:
            raise BatchTooLarge(len(leads), self.service.max_batch_size)
        errors = BatchErrors(self.service.max_error_paths)
        results: list[LeadScore] = []
        unscored: list[dict[str, Any]] = []
        for index, (lead, location) in enumerate(zip(leads, locations, strict=True)):
            try:
                results.append(self.score(lead, explain=explain, location_id=location))
            except InvalidInput as exc:
                errors.add(index, exc)
            except Unscored as exc:
                contact = lead.get("contact_id") if isinstance(lead, Mapping) else None
                unscored.append({"index": index, **exc.answer(contact)})
        answer = BatchAnswer(results=results, errors=errors.items)
        if unscored:
            answer["unscored"] = unscored
        return answer

    def custom_schema(self) -> Schema | None:
        """The agency's columns (what the webhook reads a contact's fields as): the
        champion's, with those of a running experiment's variants and shadow."""
        return scorer_schema(self.inner)

    def schema_for(self, location_id: str) -> Schema | None:
        """The columns of the model that scores this location's leads (None: the real-estate
        contract, or no model): the webhook reads a contact's fields as that model does."""
        if not self.per_location or not location_id:
            return self.custom_schema()
        choice = self.scope_for(location_id)
        if choice.scope == scopes.LOCATION and choice.model is not None \
                and self.experiments is not None:
            return self.experiments.schema(location_id, choice.model)
        schema = getattr(choice.model, "schema", None)
        return schema if isinstance(schema, SchemaType) else None
