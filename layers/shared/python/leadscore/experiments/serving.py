"""Scoring under an experiment: each contact is answered by its variant.

`ExperimentScorer` wraps the `ScoringService` of a container. With no running experiment it
is the service itself. With one, a lead's contact id picks its variant
(`definition.assign`) and that variant answers: the champion as usual, the rules score, or a
stored model version loaded like any bundle. The answer carries ``experiment`` and
``variant``, and the answer is what the webhook flow writes back, so the contact's fields
hold the variant's score. A shadow version is scored on every lead (without explanations) and
reported under ``shadow``; it never changes the answer.

If a variant's model cannot be loaded the champion answers, with ``variant`` null: such a
lead is not counted for either arm (an experiment must compare what it says it compares).

The running experiment is read from the champion's store (`experiments.store`) at most every
``refresh_seconds``; a read that fails keeps the last known state (a failing dependency is
bypassed, not fatal). With ``refresh_wait_seconds`` (the score function) the read runs in the
background and a request waits at most that long for it (`leadscore.background`), so a store
that does not answer never holds a request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from leadscore.background import BackgroundRefresh
from leadscore.bundle import pointer_root, version_prefix
from leadscore.errors import InvalidInput
from leadscore.experiments import store as experiment_store
from leadscore.experiments.definition import CHAMPION, RULES, Experiment, assign
from leadscore.scoring.lead_score import BatchAnswer, LeadScore, ShadowScore
from leadscore.scoring.location_models import LocationModels
from leadscore.scoring.model_store import ModelStore, ModelUnavailable, parse_model_uri
from leadscore.scoring.scoped import InstallationOf, ScopedScorer
from leadscore.scoring.service import (
    BatchErrors,
    BatchTooLarge,
    ScoringService,
    parse_request,
)

if TYPE_CHECKING:
    from leadscore.bundle import LoadedModel
    from leadscore.registry.store import ObjectStore
    from leadscore.settings import ScoreSettings

logger = logging.getLogger(__name__)



class ExperimentSource(Protocol):
    def running(self) -> Experiment | None: ...


class VariantModels(Protocol):
    def get(self, version: str) -> LoadedModel | None: ...


class StoreExperimentSource:
    """The running experiment of a store, re-read at most every ``refresh_seconds``."""

    def __init__(
        self, store: ObjectStore, refresh_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        refresh_wait_seconds: float | None = None,
    ) -> None:
        self._store = store
        self._refresh = refresh_seconds
        self._clock = clock
        self._checked_at: float | None = None
        self._experiment: Experiment | None = None
        self._wait = refresh_wait_seconds
        self._refresher = BackgroundRefresh(self._read, name="experiment-refresh")

    def running(self) -> Experiment | None:
        now = self._clock()
        if self._checked_at is None or now - self._checked_at >= self._refresh:
            self._checked_at = now
            self._refresher.run(self._wait)
        return self._experiment

    def _read(self) -> None:
        try:
            self._experiment = experiment_store.running(self._store)
        except Exception as exc:  # any store or record failure keeps the last state
            logger.warning("experiment pointer unreadable, keeping the last state: %s",
                           exc.__class__.__name__)


class StoredVersions:
    """Bundles of stored model versions, each loaded once (``models/<version>/``)."""

    def __init__(self, version_uri: Callable[[str], str], refresh_seconds: int = 3600) -> None:
        self._version_uri = version_uri
        self._refresh = refresh_seconds
        self._stores: dict[str, ModelStore] = {}

    def get(self, version: str) -> LoadedModel | None:
        found = self._stores.get(version)
        if found is None:
            found = ModelStore(self._version_uri(version), refresh_seconds=self._refresh)
            self._stores[version] = found
        return found.current()


class ExperimentScorer:
    """A `Scorer` that routes each contact to its experiment variant."""

    def __init__(
        self, service: ScoringService, source: ExperimentSource, models: VariantModels
    ) -> None:
        self.service = service
        self.source = source
        self.models = models

    def score(self, request: Mapping[str, Any], *, explain: bool = True) -> LeadScore:
        experiment = self.source.running()
        if experiment is None:
            return self.service.score(request, explain=explain)
        contact_id = parse_request(request, self.service.max_list_items).contact_id
        return self._score_in(experiment, contact_id, request, explain)

    def score_batch(self, leads: Sequence[Any], *, explain: bool = True) -> BatchAnswer:
        experiment = self.source.running()
        if experiment is None:
            return self.service.score_batch(leads, explain=explain)
        # Variants differ per lead: score one by one (one ONNX call each) while it runs.
        if len(leads) > self.service.max_batch_size:
            raise BatchTooLarge(len(leads), self.service.max_batch_size)
        results: list[LeadScore] = []
        errors = BatchErrors(self.service.max_error_paths)  # bounded like the service's own
        for index, request in enumerate(leads):
            try:
                contact_id = parse_request(request, self.service.max_list_items).contact_id
                results.append(self._score_in(experiment, contact_id, request, explain))
            except InvalidInput as exc:
                errors.add(index, exc)
        return BatchAnswer(results=results, errors=errors.items)

    def _score_in(
        self, experiment: Experiment, contact_id: str, request: Mapping[str, Any], explain: bool
    ) -> LeadScore:
        variant: str | None = assign(experiment, contact_id)
        if variant == CHAMPION:
            result = self.service.score(request, explain=explain)
        elif variant == RULES:
            result = self.service.score(request, explain=explain, use=RULES)
        else:
            model = self._version(str(variant))
            if model is None:
                variant = None
                result = self.service.score(request, explain=explain)
            else:
                result = self.service.score(request, explain=explain, use=model)
        result = result.copy()  # the cached answer stays as it was
        result["experiment"] = experiment.name
        result["variant"] = variant
        if experiment.shadow:
            result["shadow"] = self._shadow(experiment.shadow, request)
        return result

    def _version(self, version: str) -> LoadedModel | None:
        try:
            return self.models.get(version)
        except ModelUnavailable as exc:
            logger.warning("experiment variant %s unavailable: %s", version, exc)
            return None

    def _shadow(self, version: str, request: Mapping[str, Any]) -> ShadowScore | None:
        model = self._version(version)
        if model is None:
            return None
        shadow = self.service.score(request, explain=False, use=model)
        return ShadowScore(model_version=shadow["model_version"],
                           predicted_score=shadow["predicted_score"],
                           predicted_class=shadow["predicted_class"])


def experiment_scorer(
    service: ScoringService, model_uri: str, refresh_seconds: int,
    refresh_wait_seconds: float | None = None,
) -> ScoringService | ExperimentScorer:
    """The container's scorer: experiments apply when MODEL_URI is a champion pointer (the
    experiment lives beside it); a fixed bundle URI means no experiments."""
    from leadscore.adapters.s3_store import open_store

    try:
        source = parse_model_uri(model_uri)
    except ModelUnavailable:
        return service
    root = pointer_root(source.path) if source.pointer else None
    if root is None:
        return service
    if source.kind == "s3":
        location = f"s3://{source.bucket}/{root}".rstrip("/")

        def version_uri(version: str) -> str:
            prefix = f"{root}/" if root else ""
            return f"s3://{source.bucket}/{prefix}{version_prefix(version)}"
    else:
        location = root or "/"

        def version_uri(version: str) -> str:
            return f"file://{location.rstrip('/')}/{version_prefix(version)}"

    return ExperimentScorer(
        service, StoreExperimentSource(open_store(location), refresh_seconds,
                                       refresh_wait_seconds=refresh_wait_seconds),
        StoredVersions(version_uri))


def scorer_from_settings(settings: ScoreSettings,
                         installation: InstallationOf | None = None) -> ScopedScorer:
    """The scorer of a function that scores outside the API (queued webhooks, backfill): the
    champion from MODEL_URI, the configured class thresholds, experiments applied, and each
    location by its model scope (``installation``: the location's record, for pooling)."""
    service = ScoringService(
        ModelStore(settings.model_uri, refresh_seconds=settings.model_refresh_seconds,
                   cache_dir=Path(settings.model_cache_dir)),
        class_thresholds=settings.class_thresholds,
    )
    routed = experiment_scorer(service, settings.model_uri, settings.model_refresh_seconds)
    return ScopedScorer(service, routed, models=LocationModels.from_settings(settings),
                        installation=installation or (lambda location_id: None))
