"""HighLevel's side of a container: the installations, the webhook flow's dependencies, the
write-back's, and the HighLevel client a backfill pages with.

`installations` is the one builder of a stack's installations (the installations table, then
the stack's own location from its parameters; None when neither is configured). The webhook
route, the write-back and the backfill all start from it; what each does for a location that
has no installation is its own rule, written beside its builder below.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from leadscore.adapters import installations as install_adapters
from leadscore.ghl.delivery import dedupe_ttl_seconds
from leadscore.ghl.installations import ChainedInstallations, Installations
from leadscore.ghl.lifecycle import Lifecycle
from leadscore.ghl.parking import ParkedStore
from leadscore.ghl.webhook import ContactEraser, GhlDeps, LoopEvents, Queue, ReplayGuard
from leadscore.ghl.writeback import WritebackDeps
from leadscore.loop.backfill_job import SearchApi
from leadscore.scoring.service import Scorer
from leadscore.settings import InstallSettings, ScoreSettings, WritebackSettings


def installations(
    settings: InstallSettings,
    *,
    table: install_adapters.DynamoInstallations | None = None,
    clock: Callable[[], float] = time.time,
) -> ChainedInstallations | None:
    """The stack's installations: the table, then the single location of the stack's
    parameters. None when neither is configured."""
    return install_adapters.installations_from_settings(settings, table=table, clock=clock)


def build_lifecycle(settings: ScoreSettings, table: Any, *,
                    clock: Callable[[], float] = time.time) -> Lifecycle:
    """Installs against the table: an agency's setup runs in the background function, never
    inside the 29 s request that received the install."""
    lifecycle: Lifecycle = install_adapters.build_lifecycle(
        settings.installs, table, app_id=settings.installs.app_id or settings.ghl_app_id,
        clock=clock)
    return lifecycle


def ghl_deps(
    settings: ScoreSettings,
    scorer: Callable[[], Scorer],
    *,
    replay_guard: ReplayGuard | None = None,
    queue: Queue | None = None,
    installs: Installations | None = None,
    lifecycle: Lifecycle | None = None,
    parked: ParkedStore | None = None,
    count: Callable[[str], None] = lambda _name: None,
    clock: Callable[[], float] = time.time,
    loop: LoopEvents | None = None,
    eraser: ContactEraser | None = None,
    memory_forget: Callable[[str], int] | None = None,
    sender: Any = None,
) -> GhlDeps:
    """The webhook flow's dependencies. Whatever is not given is built from the settings
    (DynamoDB / SQS / S3 / KMS, boto3 clients made on first use). A location with no
    installation: without any installations configured every location is accepted (local
    runs); with them, the flow refuses it."""
    if replay_guard is None and settings.webhook_dedup_table:
        from leadscore.adapters.ghl_state import DynamoReplayGuard

        replay_guard = DynamoReplayGuard(
            settings.webhook_dedup_table, clock=clock,
            ttl_seconds=dedupe_ttl_seconds(settings.ghl_max_delivery_age_seconds))
    if queue is None and settings.writeback_queue_url:
        from leadscore.adapters.writeback_queue import SqsWritebackQueue

        queue = SqsWritebackQueue(settings.writeback_queue_url, record=True)
    if installs is None and settings.installs.configured:
        table = None
        if settings.installs.installations_table:
            table = install_adapters.installations_table(settings.installs, clock=clock)
            if lifecycle is None:
                lifecycle = build_lifecycle(settings, table, clock=clock)
        installs = installations(settings.installs, table=table, clock=clock)
    if parked is None and settings.parked_bucket:
        from leadscore.adapters.ghl_parked import S3ParkedStore

        parked = S3ParkedStore(settings.parked_bucket, record=True)
    elif parked is None:
        # Local runs (make serve / demo) have no bucket: parked deliveries stay in this
        # process's memory. The stack always sets PARKED_BUCKET.
        from leadscore.ghl.parking import MemoryParkedStore

        parked = MemoryParkedStore()
    from leadscore.adapters.secrets import workflow_secret

    digests = None
    if settings.webhook_dedup_table:
        from leadscore.adapters.ghl_state import DynamoInputDigests

        digests = DynamoInputDigests(settings.webhook_dedup_table, clock=clock)
        if eraser is None:
            from leadscore.adapters.purge import DynamoItems
            from leadscore.loop.deletion import Eraser

            # ContactDelete: keyed deletes (request-path client) and a deletion record
            eraser = Eraser(DynamoItems(settings.webhook_dedup_table, fast=True),
                            sender=sender, memory_forget=memory_forget, parked=parked,
                            clock=clock)
    buckets = None
    if settings.location_rate_per_second > 0:
        from leadscore.throttle import LocationBuckets

        buckets = LocationBuckets(settings.location_rate_per_second, settings.location_burst)
    return GhlDeps(settings=settings, scorer=scorer, replay_guard=replay_guard, queue=queue,
                   installations=installs, lifecycle=lifecycle, parked=parked,
                   count=count, clock=clock, loop=loop, digests=digests, eraser=eraser,
                   buckets=buckets,
                   workflow_secret=workflow_secret(settings.ghl_webhook_secret_arn,
                                                   settings.ghl_webhook_secret))


def writeback_deps(settings: WritebackSettings, scorer: Callable[[], Scorer]) -> WritebackDeps:
    """The write-back's dependencies. A location with no installation is written with the
    stack's field ids and its token secret (one PIT, or a map of them)."""
    from leadscore.adapters.ghl_api import ApiSender, location_token_reader
    from leadscore.adapters.ghl_budget import DynamoLocationBudget
    from leadscore.adapters.ghl_state import DynamoWritebackState
    from leadscore.adapters.writeback_queue import SqsRequeue
    from leadscore.ghl.stack_installation import StackInstallations

    found: Any = installations(settings.installs) if settings.installs.configured else None
    if found is None:
        found = StackInstallations(
            settings.ghl_score_field_id,
            settings.ghl_class_field_id,
            location_token_reader(settings.ghl_token_secret_arn),
        )
    return WritebackDeps(
        settings=settings,
        installations=found,
        states=DynamoWritebackState(settings.writeback_state_table),
        budget=DynamoLocationBudget(settings.writeback_state_table, share=settings.budget_share,
                                    daily_probe_seconds=settings.daily_limit_probe_seconds),
        requeue=SqsRequeue(settings.writeback_queue_url, settings.writeback_dlq_url),
        api=ApiSender(settings.ghl_api_base),
        scorer=scorer,
    )


def search_api(settings: WritebackSettings, found: Installations | None,
               location_id: str) -> SearchApi:
    """The HighLevel client a backfill pages a location with: its installation's token, or
    (no installations configured) the stack's token secret."""
    from leadscore.adapters.ghl_api import GhlApiClient, refresh_secret, secret_token_provider

    if found is not None:
        installed = found

        def refreshed() -> None:
            installed.access_token(location_id, refresh=True)

        return GhlApiClient(
            settings.ghl_api_base,
            lambda: str(installed.access_token(location_id)),
            timeout_seconds=settings.http_timeout_seconds,
            max_wait_seconds=settings.max_rate_limit_wait_seconds,
            on_unauthorized=refreshed,
        )
    return GhlApiClient(
        settings.ghl_api_base,
        secret_token_provider(settings.ghl_token_secret_arn),
        timeout_seconds=settings.http_timeout_seconds,
        max_wait_seconds=settings.max_rate_limit_wait_seconds,
        on_unauthorized=lambda: refresh_secret(settings.ghl_token_secret_arn),
    )


def install_lifecycle(settings: ScoreSettings) -> Lifecycle:
    """Installs against the stack's installations table (the background setup job)."""
    return build_lifecycle(settings, install_adapters.installations_table(settings.installs))


def writeback_queue(settings: ScoreSettings) -> Queue | None:
    """The write-back queue a backfill hands its scores to; None when none is configured."""
    if not settings.writeback_queue_url:
        return None
    from leadscore.adapters.writeback_queue import SqsWritebackQueue

    return SqsWritebackQueue(settings.writeback_queue_url)
