"""Where a monitoring run reads resolved leads: the loop's point-in-time labelled rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from leadscore.features import extract_features
from leadscore.loop.labelling import LabelWindow
from leadscore.loop.snapshots import team_fields
from leadscore.monitoring.job import QueryRunner

#: How far before the window a resolved lead's snapshot may have been taken.
SNAPSHOT_LOOKBACK_DAYS = 60


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _features(row: dict[str, Any]) -> list[float] | None:
    """The scored vector: the row's own, or re-extracted from the stored inputs (rows of
    snapshot tables written before the vector was selected)."""
    features = row.get("features")
    if isinstance(features, list):
        return [float(v) for v in features]
    inputs = row.get("inputs")
    if not isinstance(inputs, str) or team_fields(row) is not None:
        return None  # a team's columns: the run reads them through the champion's schema
    try:
        return [float(v) for v in extract_features(json.loads(inputs)).values]
    except ValueError:
        return None


def resolved_rows(runner: QueryRunner, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Leads whose outcome happened in [since, until], each with the snapshot before it."""
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    window = LabelWindow(
        window_start_ms=_ms(since), cutoff_ms=_ms(until), cutoff_dt=until.strftime("%Y-%m-%d"),
        snapshot_since_dt=(since - timedelta(days=SNAPSHOT_LOOKBACK_DAYS)).strftime("%Y-%m-%d"))
    rows = runner.query(window.labelled_rows_sql())
    for row in rows:
        row["features"] = _features(row)
    return rows
