"""The point-in-time labelling query: one SQL text that Athena (Trino) and DuckDB both run.

Tables (ARCHITECTURE.md "Closing the loop"): ``snapshots`` and ``outcomes``, one row per
record, partition column ``dt`` ('YYYY-MM-DD'). In AWS they are Glue tables over the
Firehose output (partition projection on ``dt``); locally DuckDB views over the same files
(``leadscore.loop.local_query``).

The rule, per (location, contact):

1. Collapse repeated deliveries of one state: per (opportunity, converted) keep the first
   time it happened (``MIN(occurred_at_ms)``) and was learned (``MIN(received_at_ms)``).
   Only outcomes received up to the export's cutoff count.
2. The contact's outcome is the latest state by ``occurred_at_ms`` (ties: received, then
   opportunity id), whatever order the deliveries arrived in. A re-opened deal
   (``converted`` NULL) is no outcome.
3. It labels the latest snapshot scored strictly **before** it happened. Snapshots scored
   after the outcome are never used, so no input recorded after an outcome can leak into
   its row. Backfill imports (``point_in_time = false`` on both sides) are excluded unless
   ``include_backfilled``; then the import's snapshot (taken after the fact) labels it.

Only features of the SQL dialects both engines share: CTEs, ``ROW_NUMBER() OVER``,
``MIN``/``BOOL_AND``/``COUNT`` aggregates, string comparison of ``dt``. Parameters are
rendered as checked literals (ints, 'YYYY-MM-DD' dates, TRUE/FALSE), never free text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

LABELLED_ROWS_SQL = """
WITH outcome_states AS (
    SELECT location_id, contact_id, opportunity_id, converted,
           MIN(occurred_at_ms) AS occurred_at_ms,
           MIN(received_at_ms) AS received_at_ms,
           BOOL_AND(point_in_time) AS point_in_time
    FROM outcomes
    WHERE dt <= '{cutoff_dt}' AND received_at_ms <= {cutoff_ms}
    GROUP BY location_id, contact_id, opportunity_id, converted
),
ranked_outcomes AS (
    SELECT location_id, contact_id, converted, occurred_at_ms, received_at_ms, point_in_time,
           ROW_NUMBER() OVER (
               PARTITION BY location_id, contact_id
               ORDER BY occurred_at_ms DESC, received_at_ms DESC, opportunity_id DESC
           ) AS outcome_rank
    FROM outcome_states
),
final_outcomes AS (
    SELECT location_id, contact_id, converted, occurred_at_ms, received_at_ms, point_in_time
    FROM ranked_outcomes
    WHERE outcome_rank = 1
      AND converted IS NOT NULL
      AND occurred_at_ms >= {window_start_ms}
      AND (point_in_time OR {include_backfilled})
),
candidates AS (
    SELECT s.location_id, s.contact_id, s.snapshot_id, s.scored_at_ms, s.model_version,
           s.predicted_score, s.inputs, s.point_in_time AS snapshot_point_in_time,
           s.features, s.predicted_class, s.experiment, s.variant,
           o.converted, o.occurred_at_ms AS outcome_at_ms,
           o.received_at_ms AS outcome_received_at_ms,
           ROW_NUMBER() OVER (
               PARTITION BY s.location_id, s.contact_id
               ORDER BY s.scored_at_ms DESC, s.snapshot_id DESC
           ) AS snapshot_rank
    FROM snapshots s
    JOIN final_outcomes o
      ON s.location_id = o.location_id AND s.contact_id = o.contact_id
    WHERE s.dt >= '{snapshot_since_dt}' AND s.dt <= '{cutoff_dt}'
      AND s.inputs IS NOT NULL
      AND s.scored_at_ms <= {cutoff_ms}
      AND (
          (s.point_in_time AND o.point_in_time AND s.scored_at_ms < o.occurred_at_ms)
          OR ({include_backfilled} AND NOT s.point_in_time AND NOT o.point_in_time)
      )
)
SELECT location_id, contact_id, snapshot_id, scored_at_ms, model_version, predicted_score,
       inputs, snapshot_point_in_time, converted, outcome_at_ms, outcome_received_at_ms,
       features, predicted_class, experiment, variant
FROM candidates
WHERE snapshot_rank = 1
ORDER BY location_id, contact_id
"""

NEW_OUTCOMES_SQL = """
SELECT COUNT(DISTINCT outcome_id) AS new_outcomes
FROM outcomes
WHERE dt >= '{since_dt}' AND dt <= '{cutoff_dt}'
  AND received_at_ms > {since_ms} AND received_at_ms <= {cutoff_ms}
  AND converted IS NOT NULL
  AND point_in_time
"""

#: The columns LABELLED_ROWS_SQL answers, in order.
LABELLED_COLUMNS = (
    "location_id",
    "contact_id",
    "snapshot_id",
    "scored_at_ms",
    "model_version",
    "predicted_score",
    "inputs",
    "snapshot_point_in_time",
    "converted",
    "outcome_at_ms",
    "outcome_received_at_ms",
    "features",
    "predicted_class",
    "experiment",
    "variant",
)


def _date(value: str) -> str:
    if not _DATE.match(value):
        raise ValueError(f"not a YYYY-MM-DD date: {value!r}")
    return value


def _int(value: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"not an integer: {value!r}")
    return str(value)


@dataclass(frozen=True)
class LabelWindow:
    """What one export reads: outcomes that happened in [window_start, cutoff] and were
    received by the cutoff; snapshots from ``snapshot_since_dt`` on (partition pruning)."""

    window_start_ms: int
    cutoff_ms: int
    cutoff_dt: str
    snapshot_since_dt: str
    include_backfilled: bool = False

    def labelled_rows_sql(self) -> str:
        return LABELLED_ROWS_SQL.format(
            window_start_ms=_int(self.window_start_ms),
            cutoff_ms=_int(self.cutoff_ms),
            cutoff_dt=_date(self.cutoff_dt),
            snapshot_since_dt=_date(self.snapshot_since_dt),
            include_backfilled="TRUE" if self.include_backfilled else "FALSE",
        )


def new_outcomes_sql(since_ms: int, since_dt: str, cutoff_ms: int, cutoff_dt: str) -> str:
    """How many point-in-time terminal outcomes were received in (since, cutoff]."""
    return NEW_OUTCOMES_SQL.format(
        since_ms=_int(since_ms),
        since_dt=_date(since_dt),
        cutoff_ms=_int(cutoff_ms),
        cutoff_dt=_date(cutoff_dt),
    )
