"""The scorer, built once per container and the same way for every path that scores.

`build_scoring` is the one builder: the model store, the answer cache, the `ScoringService`
with every request limit of the settings (MAX_BATCH_SIZE, MAX_LIST_ITEMS, MAX_ERROR_PATHS,
the class thresholds) and the running experiments' routing (the agency's, each location's).
The API (/score, the webhook
route) builds it for the request path: the remote cache tier, and bounded waits for a model
refresh so a slow S3 never holds a request. The write-back and the backfill build it for
queued work: the same limits (a queued webhook is bounded like one on the API), no remote
tier, and a model load that is waited for (a queued message is worth the wait; answering it
with the rules score instead would write that to the contact).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leadscore.adapters.s3 import S3Store
from leadscore.adapters.s3_store import open_store
from leadscore.circuit import CircuitBreaker
from leadscore.experiments.serving import (
    ExperimentScorer,
    experiment_scorer,
    location_experiments,
)
from leadscore.scoring.cache import MemoryLRU, RemoteCache, TieredCache
from leadscore.scoring.location_models import LocationModels, ModelLoad
from leadscore.scoring.model_store import ModelProvider, ModelStore
from leadscore.scoring.scoped import InstallationOf, ScopedScorer
from leadscore.scoring.service import ScoringService
from leadscore.settings import ScoreSettings

if TYPE_CHECKING:
    from leadscore.bundle import LoadedModel


def model_store(uri: str, **options: Any) -> ModelStore:
    """A `ModelStore` over MODEL_URI with S3 access (any `ModelStore` option passes through)."""
    return ModelStore(uri, s3=S3Store(), **options)


@dataclass
class Scoring:
    store: ModelProvider
    cache: TieredCache
    service: ScoringService
    scorer: ScopedScorer  # each location by its model scope; the agency's routed by experiments


def build_scoring(
    settings: ScoreSettings,
    *,
    request_path: bool = True,
    store: ModelProvider | None = None,
    remote_cache: RemoteCache | None = None,
    clock: Callable[[], float] = time.time,
    installation: InstallationOf | None = None,
    on_load: Callable[[ModelLoad], None] | None = None,
) -> Scoring:
    """Everything that answers a lead. Nothing here calls AWS; clients are made on first use."""
    waits = (settings.model_refresh_wait_seconds, settings.model_first_load_wait_seconds)
    refresh_wait, first_load_wait = waits if request_path else (None, None)
    if store is None:
        store = model_store(
            settings.model_uri,
            refresh_seconds=settings.model_refresh_seconds,
            cache_dir=Path(settings.model_cache_dir),
            refresh_wait_seconds=refresh_wait,
            first_load_wait_seconds=first_load_wait,
        )
    if remote_cache is None and request_path and settings.cache_table:
        from leadscore.adapters.dynamodb import DynamoScoreCache

        remote_cache = DynamoScoreCache(settings.cache_table, clock=clock)
    memory = MemoryLRU(settings.memory_cache_size, settings.cache_ttl_seconds, clock=clock,
                       max_bytes=settings.memory_cache_bytes)
    breaker = CircuitBreaker(open_seconds=settings.remote_cache_skip_seconds)
    cache = TieredCache(memory, remote_cache, clock=clock, breaker=breaker)
    service = ScoringService(
        store,
        cache,
        class_thresholds=settings.class_thresholds,
        max_batch_size=settings.max_batch_size,
        max_list_items=settings.max_list_items,
        max_error_paths=settings.max_error_paths,
    )
    routed: ScoringService | ExperimentScorer = experiment_scorer(
        service, settings.model_uri, settings.model_refresh_seconds,
        refresh_wait_seconds=refresh_wait, open_store=open_store, s3=S3Store())
    own = LocationModels.from_settings(settings, on_load=on_load, s3=S3Store())
    # each location's own experiment, read like its champion: the first read waits as the
    # agency's does, later ones run wholly in the background (many locations' reads would
    # otherwise each hold a request up to the wait)
    experiments = None if own is None else location_experiments(
        service, own, settings.model_uri, open_store=open_store,
        refresh_seconds=settings.model_refresh_seconds,
        refresh_wait_seconds=0.0 if request_path else None, first_wait_seconds=refresh_wait)
    # ``installation``: a location's record (whether it pools), for its model scope
    scorer = ScopedScorer(
        service, routed, models=own,
        installation=installation or (lambda _location_id: None), experiments=experiments)
    return Scoring(store, cache, service, scorer)


def queued_scorer(settings: ScoreSettings,
                  installation: InstallationOf | None = None) -> ScopedScorer:
    """The scorer of a function that scores outside the API (queued webhooks, backfill)."""
    return build_scoring(settings, request_path=False, installation=installation).scorer


OwnChampion = Callable[[str], "LoadedModel | None"]


def location_champions(settings: ScoreSettings) -> OwnChampion:
    """A location's own champion by the serving rule's own lookup (its pointer beside
    MODEL_URI's), for work outside the API (monitoring); loaded on first ask, within the
    settings' byte budget."""
    models = LocationModels(settings.model_uri, budget_bytes=settings.location_model_bytes,
                            cache_dir=Path(settings.model_cache_dir),
                            refresh_seconds=settings.model_refresh_seconds, s3=S3Store())
    return models.get
