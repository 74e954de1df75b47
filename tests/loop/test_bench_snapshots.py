"""bench/snapshots.py runs (small): both arms answer, every snapshot goes out through
PutRecordBatch in batches, and the request thread's added work is a put of microseconds."""

from __future__ import annotations

import json
from pathlib import Path

from bench import snapshots


def test_the_snapshot_bench_measures_both_arms(trained_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "snapshots.json"
    snapshots.main(["--bundle", str(trained_bundle), "--n", "60", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["requests_per_arm"] == 60
    assert result["p50_ms_off"] > 0 and result["p50_ms_on"] > 0
    assert result["snapshots_sent"] == result["snapshots_accepted"] >= 60 + 100
    assert result["snapshots_dropped"] == 0
    assert (
        result["put_record_batch_calls"] < result["snapshots_sent"] / 10
    )  # batched, not per request
    assert result["records_through_put_record_batch"] >= result["snapshots_sent"]
    assert result["request_thread_put_p50_us"] < 100
