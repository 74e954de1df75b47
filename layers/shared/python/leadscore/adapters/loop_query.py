"""The loop's query engine and store from its settings: Athena + the artifact bucket in AWS,
DuckDB + ``RECORD_DIR`` in local mode. Used by every function that reads the loop's tables."""

from __future__ import annotations

from leadscore.loop.export import QueryRunner
from leadscore.registry.store import LocalObjectStore, ObjectStore
from leadscore.settings import LoopSettings


def query_runner(settings: LoopSettings) -> QueryRunner:
    if settings.athena_work_group:
        from leadscore.adapters.athena import AthenaQueryRunner

        return AthenaQueryRunner(settings.athena_work_group, settings.glue_database)
    if settings.record_dir:
        from leadscore.loop.local_query import DuckDbQueryRunner

        return DuckDbQueryRunner(settings.record_dir)
    raise RuntimeError("the loop's tables need ATHENA_WORK_GROUP (AWS) or RECORD_DIR (local)")


def loop_store(settings: LoopSettings) -> ObjectStore:
    if settings.artifact_bucket:
        from leadscore.adapters.s3_store import S3ObjectStore

        return S3ObjectStore(settings.artifact_bucket)
    return LocalObjectStore(settings.record_dir)
