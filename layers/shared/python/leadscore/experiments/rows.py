"""The rows an experiment is judged on: the loop's point-in-time labelled rows.

Each resolved contact contributes the latest snapshot scored before its outcome
(`leadscore.loop.labelling`), with the experiment and variant that answered it. Rows whose
latest pre-outcome snapshot was not scored in the experiment do not count for it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from leadscore.loop.labelling import LabelWindow

#: Experiments are judged on every outcome the tables hold up to now (no rolling window).
EPOCH_DT = "1970-01-01"


def experiment_rows_sql(now: datetime | None = None) -> str:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    window = LabelWindow(window_start_ms=0, cutoff_ms=int(moment.timestamp() * 1000),
                         cutoff_dt=moment.strftime("%Y-%m-%d"), snapshot_since_dt=EPOCH_DT)
    return window.labelled_rows_sql()
