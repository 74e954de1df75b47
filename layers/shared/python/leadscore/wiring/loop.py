"""The loop's per-container objects from its settings: the recorder (snapshots batched,
outcomes synchronous) and the hooks the webhook flow and the routes call."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from leadscore.loop.hooks import LoopHooks
from leadscore.loop.outcomes import OutcomeRuleBook, OutcomeRulesError
from leadscore.loop.recorder import EngagementStore, LoopRecorder
from leadscore.loop.sink import Sender
from leadscore.settings import LoopSettings, SettingsError

if TYPE_CHECKING:  # types only: the export and the registry are not the scoring path's imports
    from leadscore.loop.backfill import CheckpointStore
    from leadscore.loop.export import QueryRunner
    from leadscore.registry.store import ObjectStore


def loop_settings(env: Mapping[str, str] | None = None) -> LoopSettings:
    """`LoopSettings` from the environment, a bad OUTCOME_RULES refused at start-up."""
    settings = LoopSettings.from_env(env)
    try:
        OutcomeRuleBook.parse(settings.outcome_rules)
    except OutcomeRulesError as exc:
        raise SettingsError(str(exc)) from exc
    return settings


def build_recorder(
    settings: LoopSettings,
    *,
    background: bool = True,
    engagement: EngagementStore | None = None,
    sender: Sender | None = None,
    clock: Callable[[], float] = time.time,
) -> LoopRecorder:
    """From the settings: Firehose in AWS, a directory in local mode, nothing otherwise."""
    if sender is None and settings.record_stream:
        from leadscore.adapters.firehose import FirehoseSender

        sender = FirehoseSender(settings.record_stream)
    elif sender is None and settings.record_dir:
        from leadscore.loop.store_writer import DirectoryRecordWriter

        sender = DirectoryRecordWriter(settings.record_dir)
    if engagement is None and settings.loop_table:
        from leadscore.adapters.loop_tables import DynamoEngagementStore

        engagement = DynamoEngagementStore(settings.loop_table)
    return LoopRecorder(
        sender,
        rules=OutcomeRuleBook.parse(settings.outcome_rules),
        engagement=engagement,
        snapshots_enabled=settings.snapshots_enabled,
        max_age_seconds=settings.snapshot_max_age_seconds,
        background=background,
        clock=clock,
    )


def loop_hooks(settings: LoopSettings, *, clock: Callable[[], float] = time.time,
               background: bool = True) -> LoopHooks | None:
    """The hooks over the container's recorder; None when no record stream is configured."""
    if not settings.records_on:
        return None
    return LoopHooks(build_recorder(settings, clock=clock, background=background))


def query_and_store(settings: LoopSettings) -> tuple[QueryRunner, ObjectStore]:
    """The loop's query engine (Athena in AWS, DuckDB over RECORD_DIR locally) and the store
    its exports and runs are written to (the artifact bucket, or RECORD_DIR)."""
    from leadscore.adapters.loop_query import loop_store, query_runner

    return query_runner(settings), loop_store(settings)


def checkpoints(settings: LoopSettings) -> CheckpointStore:
    """Where a backfill saves its checkpoint after every page (the loop's table)."""
    from leadscore.adapters.loop_tables import DynamoCheckpoints

    return DynamoCheckpoints(settings.loop_table)
