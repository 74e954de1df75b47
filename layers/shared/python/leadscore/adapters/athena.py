"""Athena runs the labelling SQL over the Glue tables of the snapshots and outcomes.

``query(sql)`` starts the execution in the stack's work group (which fixes the result
location and its encryption), waits for it (bounded) and converts the answer to row dicts
with the column types Athena reports.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from leadscore.adapters import client


class AthenaQueryFailed(RuntimeError):
    pass


def _convert(value: str | None, athena_type: str) -> Any:
    if value is None:
        return None
    kind = athena_type.lower()
    if kind in ("bigint", "integer", "int", "smallint", "tinyint"):
        return int(value)
    if kind in ("double", "float", "real", "decimal"):
        return float(value)
    if kind == "boolean":
        return value.lower() == "true"
    if kind.startswith("array"):
        # Athena renders array<double> as "[0.1, 0.2]": numbers in JSON's own syntax.
        return json.loads(value)
    return value


class AthenaQueryRunner:
    def __init__(
        self,
        work_group: str,
        database: str,
        *,
        athena_client: Any | None = None,
        poll_seconds: float = 1.0,
        timeout_seconds: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.work_group = work_group
        self.database = database
        self._client = athena_client
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self._sleep = sleep
        self._clock = clock

    @property
    def athena(self) -> Any:
        if self._client is None:
            self._client = client("athena")
        return self._client

    def query(self, sql: str) -> list[dict[str, Any]]:
        started = self.athena.start_query_execution(
            QueryString=sql,
            QueryExecutionContext={"Database": self.database},
            WorkGroup=self.work_group,
        )
        execution_id = started["QueryExecutionId"]
        deadline = self._clock() + self.timeout_seconds
        while True:
            status = self.athena.get_query_execution(QueryExecutionId=execution_id)
            state = status["QueryExecution"]["Status"]["State"]
            if state == "SUCCEEDED":
                break
            if state in ("FAILED", "CANCELLED"):
                reason = status["QueryExecution"]["Status"].get("StateChangeReason", state)
                raise AthenaQueryFailed(f"Athena query {execution_id} {state}: {reason}")
            if self._clock() > deadline:
                self.athena.stop_query_execution(QueryExecutionId=execution_id)
                raise AthenaQueryFailed(f"Athena query {execution_id} timed out")
            self._sleep(self.poll_seconds)
        return self._rows(execution_id)

    def _rows(self, execution_id: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        names: list[str] = []
        types: list[str] = []
        first_page = True
        paginator = self.athena.get_paginator("get_query_results")
        for page in paginator.paginate(QueryExecutionId=execution_id):
            result = page["ResultSet"]
            if not names:
                info = result["ResultSetMetadata"]["ColumnInfo"]
                names = [c["Name"] for c in info]
                types = [c["Type"] for c in info]
            data = result.get("Rows", [])
            if first_page and data:
                data = data[1:]  # the header row of the first page
            first_page = False
            for row in data:
                cells = [c.get("VarCharValue") for c in row["Data"]]
                rows.append(
                    {n: _convert(v, t) for n, v, t in zip(names, cells, types, strict=True)}
                )
        return rows
