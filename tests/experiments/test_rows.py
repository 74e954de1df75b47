"""An experiment's arms from the loop's tables: snapshots carry the arm, SQL keeps it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from leadscore.adapters.athena import _convert
from leadscore.experiments.definition import parse_experiment
from leadscore.experiments.rows import experiment_rows_sql, results_for
from leadscore.features import FEATURE_NAMES
from leadscore.loop.local_query import DuckDbQueryRunner
from leadscore.loop.snapshots import build_snapshot

from tests.loop.helpers import HOUR, T0, lead_request, outcome, write_records

EXPERIMENT = parse_experiment({"name": "ab", "variants": ["rules", "champion"],
                               "allocation": [50, 50], "created_at": "2026-09-01T00:00:00Z"})


def _answer(contact_id: str, variant: str | None, score: float) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "contact_id": contact_id, "predicted_score": score,
        "predicted_class": "hot" if score >= 0.8 else "cold",
        "model_version": "rules" if variant == "rules" else "lsm-test",
        "feature_values": {name: 0.5 for name in FEATURE_NAMES},
        "experiment": "ab" if variant else None, "variant": variant,
    }
    if variant == "champion":
        answer["shadow"] = {"model_version": "lsm-shadow", "predicted_score": 0.42,
                            "predicted_class": "lukewarm"}
    return answer


def test_snapshots_keep_the_arm_and_the_shadow() -> None:
    record = build_snapshot(lead_request("c1"), _answer("c1", "champion", 0.9),
                            location_id="loc1", source="webhook", scored_at_ms=T0)
    assert (record["experiment"], record["variant"]) == ("ab", "champion")
    assert (record["shadow_version"], record["shadow_score"]) == ("lsm-shadow", 0.42)
    plain = build_snapshot(lead_request("c2"), _answer("c2", None, 0.3), location_id="loc1",
                           source="api", scored_at_ms=T0)
    assert plain["experiment"] is None and plain["shadow_score"] is None


def test_the_labelled_rows_carry_the_arm_that_answered(tmp_path: Path) -> None:
    records = []
    for i, (variant, score, won) in enumerate([("rules", 0.2, True), ("champion", 0.9, True),
                                               ("champion", 0.1, False), (None, 0.5, True)]):
        contact = f"c{i}"
        records.append(build_snapshot(lead_request(contact), _answer(contact, variant, score),
                                      location_id="loc1", source="webhook",
                                      scored_at_ms=T0 + i * HOUR))
        records.append(outcome(contact, "won" if won else "lost", T0 + (i + 5) * HOUR))
    write_records(tmp_path, records)
    now = datetime.fromtimestamp((T0 + 48 * HOUR) / 1000, tz=UTC)
    rows = DuckDbQueryRunner(tmp_path).query(experiment_rows_sql(now))
    assert {r["contact_id"]: r["variant"] for r in rows} == \
        {"c0": "rules", "c1": "champion", "c2": "champion", "c3": None}
    assert all(len(r["features"]) == len(FEATURE_NAMES) for r in rows)
    summary, leads = results_for(EXPERIMENT, rows)
    assert sorted((lead.variant, lead.converted) for lead in leads) == \
        [("champion", False), ("champion", True), ("rules", True)]
    assert {v.variant: v.leads for v in summary.variants} == {"rules": 1, "champion": 2}


def test_athena_arrays_become_lists() -> None:
    assert _convert("[0.25, 1.0, -3.5]", "array") == [0.25, 1.0, -3.5]
    assert _convert(None, "array") is None
