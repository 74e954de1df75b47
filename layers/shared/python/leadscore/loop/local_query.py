"""DuckDB standing in for Athena (local mode and tests): the same SQL over the same files.

The ``snapshots`` and ``outcomes`` views read the JSON Lines files of the storage layout
(``loop/<kind>s/dt=.../location_id=.../*.jsonl[.gz]``) under a local directory, with the
column types the Glue tables declare (template.yaml). DuckDB is a development dependency
(requirements/dev.txt); it is imported only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leadscore.loop.records import OUTCOME, SNAPSHOT, table_prefix

#: Column name -> type, the same as the Glue tables (template.yaml, SnapshotsTable /
#: OutcomesTable); `dt` is a partition column there and a plain column here.
SNAPSHOT_COLUMNS: dict[str, str] = {
    "schema": "INTEGER",
    "snapshot_id": "VARCHAR",
    "location_id": "VARCHAR",
    "contact_id": "VARCHAR",
    "scored_at_ms": "BIGINT",
    "dt": "VARCHAR",
    "source": "VARCHAR",
    "point_in_time": "BOOLEAN",
    "model_version": "VARCHAR",
    "predicted_score": "DOUBLE",
    "predicted_class": "VARCHAR",
    "features": "DOUBLE[]",
    "inputs": "VARCHAR",
    "experiment": "VARCHAR",
    "variant": "VARCHAR",
    "shadow_version": "VARCHAR",
    "shadow_score": "DOUBLE",
}
OUTCOME_COLUMNS: dict[str, str] = {
    "schema": "INTEGER",
    "outcome_id": "VARCHAR",
    "location_id": "VARCHAR",
    "contact_id": "VARCHAR",
    "opportunity_id": "VARCHAR",
    "event_type": "VARCHAR",
    "status": "VARCHAR",
    "pipeline_id": "VARCHAR",
    "stage_id": "VARCHAR",
    "converted": "INTEGER",
    "occurred_at_ms": "BIGINT",
    "received_at_ms": "BIGINT",
    "dt": "VARCHAR",
    "point_in_time": "BOOLEAN",
}


def _struct(columns: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{k}': '{v}'" for k, v in columns.items()) + "}"


def _files(root: Path, record_type: str) -> list[str]:
    base = root / table_prefix(record_type)
    if not base.is_dir():
        return []
    return sorted(
        str(p) for p in base.rglob("*") if p.is_file() and p.name.endswith((".jsonl", ".jsonl.gz"))
    )


class DuckDbQueryRunner:
    """``query(sql) -> list of row dicts`` over a directory laid out like the bucket."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _connect(self) -> Any:
        import duckdb

        con = duckdb.connect(database=":memory:")
        con.execute("SET threads TO 1")  # a shared machine; these tables are small locally
        for record_type, view, columns in (
            (SNAPSHOT, "snapshots", SNAPSHOT_COLUMNS),
            (OUTCOME, "outcomes", OUTCOME_COLUMNS),
        ):
            files = _files(self.root, record_type)
            if files:
                # Only our constant names and types are formatted in; the file list is a
                # bound parameter.
                con.execute(
                    f"CREATE TABLE {view} AS SELECT * FROM read_json($files, "  # noqa: S608  # nosec B608
                    f"format='newline_delimited', columns={_struct(columns)})",
                    {"files": files},
                )
            else:
                cols = ", ".join(f"{k} {v}" for k, v in columns.items())
                con.execute(f"CREATE TABLE {view} ({cols})")
        return con

    def query(self, sql: str) -> list[dict[str, Any]]:
        con = self._connect()
        try:
            cursor = con.execute(sql)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            con.close()
