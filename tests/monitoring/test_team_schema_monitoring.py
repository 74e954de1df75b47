"""Drift, importance, the health page and the experiment report on a team's own columns: the
snapshots keep raw column values, each run reads them through the champion's schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from leadscore import bundle as bundle_mod
from leadscore.experiments.definition import Experiment
from leadscore.experiments.report import render_text
from leadscore.experiments.rows import experiment_rows_sql, results_for
from leadscore.features import FEATURE_NAMES
from leadscore.loop.local_query import DuckDbQueryRunner
from leadscore.loop.outcomes import OutcomeRuleBook, outcomes_from_event
from leadscore.loop.records import epoch_ms
from leadscore.loop.snapshots import build_snapshot
from leadscore.loop.store_writer import DirectoryRecordWriter
from leadscore.monitoring import job, sources
from leadscore.registry.store import LocalObjectStore
from leadscore.scoring.service import ScoringService

from tests.fixtures.custom_leads import custom_rows

pytestmark = pytest.mark.slow  # the session's custom bundle is trained once

# two days after the generated leads' own day: ages are measured from the day a lead was scored
NOW = datetime(2026, 6, 3, 12, tzinfo=UTC)


class _Provider:
    def __init__(self, model: Any) -> None:
        self.model = model

    def current(self) -> Any:
        return self.model


def _world(root: Path, model: Any, n: int = 160) -> list[dict[str, str]]:
    """n team leads scored by the champion two days ago (half in an experiment's challenger
    arm), resolved a day later; their e-mails and notes ride along in the request."""
    service = ScoringService(_Provider(model))
    scored_ms = epoch_ms((NOW - timedelta(days=2)).timestamp())
    records: list[dict[str, Any]] = []
    rows = custom_rows(n, seed=21)
    for i, row in enumerate(rows):
        fields = {k: v for k, v in row.items() if k != "status"}
        answer = dict(service.score({"contact_id": f"c{i}", "fields": fields}, explain=False))
        answer.update(experiment="team-exp", variant="champion" if i % 2 else "lsm-0000aaaa")
        records.append(build_snapshot({"contact_id": f"c{i}", "fields": fields}, answer,
                                      location_id="loc1", source="webhook",
                                      scored_at_ms=scored_ms + i))
        records += outcomes_from_event(
            {"type": "OpportunityStatusUpdate", "locationId": "loc1", "id": f"o{i}",
             "contactId": f"c{i}", "status": row["status"], "pipelineId": "p",
             "pipelineStageId": ""}, OutcomeRuleBook(),
            occurred_at_ms=scored_ms + 86_400_000, received_at_ms=scored_ms + 86_400_000)
    DirectoryRecordWriter(root)(records)
    return rows


def test_drift_importance_and_the_health_page_read_the_teams_columns(
    custom_bundle: Path, tmp_path: Path
) -> None:
    model = bundle_mod.load_model(custom_bundle)
    assert model.schema is not None
    root = tmp_path / "store"
    _world(root, model)
    runner = DuckDbQueryRunner(root)
    champion = job.champion_from_model(model)
    result = job.run_monitor(
        runner, LocalObjectStore(root), champion, now=NOW, config=job.MonitorConfig(),
        labelled_rows=lambda since, until: sources.resolved_rows(runner, since, until))
    drift = result.drift
    assert drift is not None and drift.rows == 160
    # PSI per model input, named by the schema's columns (not the real-estate features)
    assert set(drift.feature_psi) == set(model.schema.input_names)
    assert not set(drift.feature_psi) & set(FEATURE_NAMES)
    # the window is the training distribution's (same generator): no column alarms
    assert not drift.drifted, drift.feature_psi
    assert result.resolved_rows == 160 and result.calibration is not None
    assert result.calibration["rows"] == 160 and result.calibration["auc"] > 0.6
    assert result.importance_week is not None
    page = result.pages[job.page_key(job.OVERALL)]
    assert "budget" in page and "source=" in page and "list_price" not in page


def test_the_experiment_report_counts_team_leads(custom_bundle: Path, tmp_path: Path) -> None:
    model = bundle_mod.load_model(custom_bundle)
    root = tmp_path / "store"
    rows = _world(root, model)
    experiment = Experiment(name="team-exp", variants=("champion", "lsm-0000aaaa"),
                            allocation=(50, 50), shadow=None, status="running",
                            created_at="2026-05-20T00:00:00Z")
    labelled = DuckDbQueryRunner(root).query(experiment_rows_sql(NOW))
    results, leads = results_for(experiment, labelled)
    assert len(leads) == 160
    won = sum(r["status"] == "won" for r in rows)
    assert sum(v.conversions for v in results.variants) == won
    assert {v.variant: v.leads for v in results.variants} == {"champion": 80,
                                                            "lsm-0000aaaa": 80}
    assert "team-exp" in render_text(results)
