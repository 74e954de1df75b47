"""Scoring under an experiment: each contact is answered by its variant.

`ExperimentScorer` wraps the `ScoringService` of a container. With no running experiment it
is the service itself. With one, a lead's contact id picks its variant
(`definition.assign`) and that variant answers: the champion as usual, the rules score, or a
stored model version loaded like any bundle. The answer carries ``experiment`` and
``variant``, and the answer is what the webhook flow writes back, so the contact's fields
hold the variant's score. A shadow version is scored on every lead (without explanations) and
reported under ``shadow``; it never changes the answer.

If a variant's model cannot be loaded, or cannot read the lead (a variant trained on other
columns than the request carries), the champion answers, with ``variant`` null: such a lead is
not counted for either arm (an experiment must compare what it says it compares). A shadow
that cannot read the lead is left out (``shadow`` null); it never fails the answer.

Every request form the service takes is taken here too: a bundle trained on a team's own
columns (``fields`` requests) is served through the champion pointer and under experiments
alike. `custom_schema` tells the webhook flow which columns to read from a contact: the
champion's, plus the columns of a running experiment's model variants and shadow (so a
candidate trained on new columns is scored on them).

The running experiment is read from the champion's store (`experiments.store`) at most every
``refresh_seconds``; a read that fails keeps the last known state (a failing dependency is
bypassed, not fatal). With ``refresh_wait_seconds`` (the score function) the read runs in the
background and a request waits at most that long for it (`leadscore.background`), so a store
that does not answer never holds a request.

A location with its own champion has its own experiments (`LocationExperiments`): the same
`ExperimentScorer` per location, with the location's champion as the ``champion`` arm, its
record read from the location's folder and its versions from the locations' model cache.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from leadscore.background import BackgroundRefresh
from leadscore.bundle import pointer_root, version_prefix
from leadscore.columns.schema import Schema, reading_schema
from leadscore.errors import InvalidInput
from leadscore.experiments import store as experiment_store
from leadscore.experiments.definition import CHAMPION, RULES, Experiment, assign
from leadscore.scoring.lead_score import BatchAnswer, LeadScore, ShadowScore
from leadscore.scoring.model_store import (
    BundleObjects,
    ModelStore,
    ModelUnavailable,
    parse_model_uri,
)
from leadscore.scoring.service import (
    BatchErrors,
    BatchTooLarge,
    NoModelForFields,
    ScoringService,
    checked_contact_id,
    schema_of,
)

if TYPE_CHECKING:
    from leadscore.bundle import LoadedModel
    from leadscore.registry.store import ObjectStore

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
        first_wait_seconds: float | None = None,
    ) -> None:
        self._store = store
        self._refresh = refresh_seconds
        self._clock = clock
        self._checked_at: float | None = None
        self._experiment: Experiment | None = None
        self._wait = refresh_wait_seconds
        # the first read may wait longer than the later ones (a location's: its first lead
        # sees its experiment, later refreshes hold no request); unset, the same wait
        self._first_wait = refresh_wait_seconds if first_wait_seconds is None \
            else first_wait_seconds
        self._refresher = BackgroundRefresh(self._read, name="experiment-refresh")

    def running(self) -> Experiment | None:
        now = self._clock()
        if self._checked_at is None or now - self._checked_at >= self._refresh:
            wait = self._first_wait if self._checked_at is None else self._wait
            self._checked_at = now
            self._refresher.run(wait)
        return self._experiment

    def _read(self) -> None:
        try:
            self._experiment = experiment_store.running(self._store)
        except Exception as exc:  # any store or record failure keeps the last state
            logger.warning("experiment pointer unreadable, keeping the last state: %s",
                           exc.__class__.__name__)


class StoredVersions:
    """Bundles of stored model versions, each loaded once (``models/<version>/``)."""

    def __init__(self, version_uri: Callable[[str], str], refresh_seconds: int = 3600,
                 s3: BundleObjects | None = None) -> None:
        self._version_uri = version_uri
        self._refresh = refresh_seconds
        self._s3 = s3
        self._stores: dict[str, ModelStore] = {}

    def get(self, version: str) -> LoadedModel | None:
        found = self._stores.get(version)
        if found is None:
            found = ModelStore(self._version_uri(version), refresh_seconds=self._refresh,
                               s3=self._s3)
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
        # Only the contact id picks the arm; the arm's own model validates the rest (its
        # schema decides which form and which columns it reads).
        return self._score_in(experiment, checked_contact_id(request), request, explain)

    def score_with(self, champion: LoadedModel, request: Mapping[str, Any], *,
                   explain: bool = True) -> LeadScore:
        """One lead where ``champion`` (not the service's) is the experiment's ``champion``
        arm and its answer without an experiment: a location's own champion, routed by the
        location's own experiment (`LocationExperiments`)."""
        experiment = self.source.running()
        if experiment is None:
            return self.service.score(request, explain=explain, use=champion)
        return self._score_in(experiment, checked_contact_id(request), request, explain,
                              champion)

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
                results.append(self._score_in(experiment, checked_contact_id(request),
                                              request, explain))
            except InvalidInput as exc:
                errors.add(index, exc)
        return BatchAnswer(results=results, errors=errors.items)

    def _score_in(
        self, experiment: Experiment, contact_id: str, request: Mapping[str, Any], explain: bool,
        champion: LoadedModel | None = None,
    ) -> LeadScore:
        """``champion`` None: the service's own (the container's champion pointer)."""
        variant: str | None = assign(experiment, contact_id)
        result: LeadScore | None = None
        if variant == CHAMPION:
            result = self.service.score(request, explain=explain, use=champion)
        else:
            use: LoadedModel | Literal["rules"] | None = (
                RULES if variant == RULES else self._version(str(variant)))
            if use is not None:
                try:
                    result = self.service.score(request, explain=explain, use=use)
                except (InvalidInput, NoModelForFields):
                    # The arm reads other columns or another form than this lead carries (the
                    # rules read no team's columns): the champion's answer (or its own 400)
                    # stands, and the lead is not counted.
                    logger.info("experiment variant %s cannot read the lead", variant)
            if result is None:
                variant = None
                result = self.service.score(request, explain=explain, use=champion)
        result = result.copy()  # the cached answer stays as it was
        result["experiment"] = experiment.name
        result["variant"] = variant
        if experiment.shadow:
            result["shadow"] = self._shadow(experiment.shadow, request)
        return result

    def custom_schema(self) -> Schema | None:
        """The columns the webhook flow reads into a ``fields`` request: the champion's
        schema, merged with those of a running experiment's model variants and shadow; None
        when the champion scores the real-estate features (or nothing is loaded)."""
        return self.schema_with(self.service.custom_schema())

    def schema_with(self, champion: Schema | None) -> Schema | None:
        """``champion``'s columns merged with a running experiment's models' (None: the
        real-estate contract, which the variants are then read by too)."""
        experiment = self.source.running()
        if champion is None or experiment is None:
            return champion
        others = [schema_of(self._version(v)) for v in experiment.model_versions()]
        return reading_schema(champion, [s for s in others if s is not None])

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
        try:
            shadow = self.service.score(request, explain=False, use=model)
        except InvalidInput:
            return None  # a shadow on other columns never fails the answer it watches
        return ShadowScore(model_version=shadow["model_version"],
                           predicted_score=shadow["predicted_score"],
                           predicted_class=shadow["predicted_class"])


def _store_of(model_uri: str) -> tuple[str, Callable[[str], str]] | None:
    """The store MODEL_URI's champion pointer lives in (a directory or ``s3://bucket/prefix``)
    and the URI of a stored version in it; None for a fixed bundle URI (no store)."""
    try:
        source = parse_model_uri(model_uri)
    except ModelUnavailable:
        return None
    root = pointer_root(source.path) if source.pointer else None
    if root is None:
        return None
    if source.kind == "s3":
        location = f"s3://{source.bucket}/{root}".rstrip("/")

        def version_uri(version: str) -> str:
            prefix = f"{root}/" if root else ""
            return f"s3://{source.bucket}/{prefix}{version_prefix(version)}"
    else:
        location = root or "/"

        def version_uri(version: str) -> str:
            return f"file://{location.rstrip('/')}/{version_prefix(version)}"

    return location, version_uri


def experiment_scorer(
    service: ScoringService, model_uri: str, refresh_seconds: int,
    refresh_wait_seconds: float | None = None, *,
    open_store: Callable[[str], ObjectStore], s3: BundleObjects | None = None,
) -> ScoringService | ExperimentScorer:
    """The container's scorer: experiments apply when MODEL_URI is a champion pointer (the
    experiment lives beside it); a fixed bundle URI means no experiments. `open_store` opens
    the champion's store (its location: a directory or ``s3://bucket/prefix``), `s3` reads
    the variants' bundles (`leadscore.wiring.scoring` gives both)."""
    found = _store_of(model_uri)
    if found is None:
        return service
    location, version_uri = found
    return ExperimentScorer(
        service, StoreExperimentSource(open_store(location), refresh_seconds,
                                       refresh_wait_seconds=refresh_wait_seconds),
        StoredVersions(version_uri, s3=s3))


class LocationVersions(Protocol):
    """A location's stored versions (`leadscore.scoring.location_models.LocationModels`)."""

    def version(self, location_id: str, version: str) -> LoadedModel | None: ...


class _OneLocation:
    def __init__(self, models: LocationVersions, location_id: str) -> None:
        self._models = models
        self._location_id = location_id

    def get(self, version: str) -> LoadedModel | None:
        return self._models.version(self._location_id, version)


class LocationExperiments:
    """Each location's own experiment, on the leads its own champion serves.

    A location's experiment lives under its own root (``locations/<id>/models/experiment.json``,
    what ``modelctl --location ID experiment create`` writes) and names that location's
    champion and its stored versions (``locations/<id>/models/<version>/``), which load into
    the bounded cache of the locations' models (`LocationModels.version`). Each location is
    routed by its own `ExperimentScorer` (the agency's rules, one copy): its own
    `StoreExperimentSource` on its own root, so no location's experiment is ever read for
    another location's leads or the agency's. The record is re-read every
    ``refresh_seconds`` on a background thread: the first read of a location waits at most
    ``first_wait_seconds``, later ones ``refresh_wait_seconds`` (the score function: none), as
    the locations' champions are refreshed. At most ``max_locations`` routers are kept (least
    recently used dropped: a dropped location re-reads its record on its next lead).
    """

    def __init__(
        self, service: ScoringService, models: LocationVersions, root: ObjectStore, *,
        refresh_seconds: float = 60.0, refresh_wait_seconds: float | None = None,
        first_wait_seconds: float | None = None, max_locations: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.models = models
        self.root = root
        self.refresh_seconds = refresh_seconds
        self.refresh_wait_seconds = refresh_wait_seconds
        self.first_wait_seconds = first_wait_seconds
        self.max_locations = max_locations
        self._clock = clock
        self._routers: OrderedDict[str, ExperimentScorer] = OrderedDict()
        self._lock = threading.Lock()

    def router(self, location_id: str) -> ExperimentScorer:
        with self._lock:
            found = self._routers.get(location_id)
            if found is not None:
                self._routers.move_to_end(location_id)
                return found
        # here, not at the top: the registry package (gate, promotion) costs ~0.13 s of a
        # cold start that serves no location's experiment
        from leadscore.registry.locations import location_store

        source = StoreExperimentSource(
            location_store(self.root, location_id), self.refresh_seconds, self._clock,
            refresh_wait_seconds=self.refresh_wait_seconds,
            first_wait_seconds=self.first_wait_seconds)
        made = ExperimentScorer(self.service, source, _OneLocation(self.models, location_id))
        with self._lock:
            found = self._routers.setdefault(location_id, made)
            self._routers.move_to_end(location_id)
            while len(self._routers) > self.max_locations:
                self._routers.popitem(last=False)
        return found

    def score(self, location_id: str, champion: LoadedModel, request: Mapping[str, Any], *,
              explain: bool = True) -> LeadScore:
        """The lead answered by its variant of the location's running experiment (its own
        champion without one)."""
        return self.router(location_id).score_with(champion, request, explain=explain)

    def schema(self, location_id: str, champion: LoadedModel) -> Schema | None:
        """The columns to read for the location: its champion's, merged with its running
        experiment's models'."""
        return self.router(location_id).schema_with(schema_of(champion))


def location_experiments(
    service: ScoringService, models: LocationVersions, model_uri: str, *,
    open_store: Callable[[str], ObjectStore], refresh_seconds: float,
    refresh_wait_seconds: float | None = None, first_wait_seconds: float | None = None,
) -> LocationExperiments | None:
    """The locations' experiments of a container, in MODEL_URI's store (None: a fixed bundle
    URI, no store to hold them)."""
    found = _store_of(model_uri)
    if found is None:
        return None
    return LocationExperiments(service, models, open_store(found[0]),
                               refresh_seconds=refresh_seconds,
                               refresh_wait_seconds=refresh_wait_seconds,
                               first_wait_seconds=first_wait_seconds)
