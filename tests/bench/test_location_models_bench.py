"""bench/location_models.py still runs end to end (three locations, a few requests): every
answer from the location's own model, every location on its new champion after the refresh
phase, the figures it reports present."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


@pytest.mark.slow  # drives the score function through ~30 requests and 9 model loads
def test_the_location_models_bench_runs(tmp_path: Path) -> None:
    from bench import location_models

    saved = dict(os.environ)
    try:
        out = tmp_path / "bench.json"
        assert location_models.main(["--locations", "3", "--rounds", "1", "--requests", "2",
                                     "--evict-models", "1", "--evict-rounds", "1",
                                     "--out", str(out)]) == 0
    finally:
        os.environ.clear()
        os.environ.update(saved)
        from functions.score import app

        app.set_container(None)
    results = json.loads(out.read_text())
    one, rotation, eviction, refresh, memory = results["phases"]
    assert one["answers_not_from_agency_scope"] == 0
    assert rotation["answers_not_from_location_scope"] == 0
    assert rotation["cached_models"] == 3 and rotation["model_load_ms"]["count"] == 3
    assert eviction["cached_models"] == 1 and eviction["evictions"] == 2
    assert memory["counted_bytes_per_model_mb"] > 0 and memory["peak_rss_mb"] > 0
    # every location moved to its new champion; none answered by anything else
    assert refresh["locations_on_new_model"] == 3 and refresh["answers_by_neither"] == 0
    assert rotation["peak_rss_within_setting"] and rotation["process_cpu_seconds"] > 0
