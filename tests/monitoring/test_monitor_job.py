"""One monitoring run over snapshot files with DuckDB, against the session bundle."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from leadscore.bundle import load_model
from leadscore.features import FEATURE_NAMES
from leadscore.loop.local_query import DuckDbQueryRunner
from leadscore.loop.records import SNAPSHOT, day, record_id
from leadscore.loop.store_writer import StoreRecordWriter
from leadscore.monitoring import job
from leadscore.registry.store import LocalObjectStore

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SHIFTED = "days_on_market_ratio"


@pytest.fixture(scope="module")
def champion(trained_bundle: Path) -> job.Champion:
    return job.champion_from_model(load_model(trained_bundle))


def _leads(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    from generate_leads import generate_leads, to_feature_frame

    leads = generate_leads(n, seed)
    frame = to_feature_frame(leads)
    x = np.array([[row[name] for name in FEATURE_NAMES] for row in frame])
    return x, np.array([lead["converted"] for lead in leads], dtype=int)


def _write_snapshots(root: Path, x: np.ndarray, scores: np.ndarray, location: str,
                     start: datetime, *, version: str = "lsm-x", contacts: int = 0) -> None:
    """One snapshot per row, each its own contact (or ``contacts`` contacts in turn)."""
    records = []
    for i, (vector, score) in enumerate(zip(x, scores, strict=True)):
        at = int((start + timedelta(minutes=10 * i)).timestamp() * 1000)
        contact = f"{location}-{i % contacts if contacts else i}"
        records.append({
            "schema": 1, "record_type": SNAPSHOT, "snapshot_id": record_id(location, i, at),
            "location_id": location, "contact_id": contact, "scored_at_ms": at,
            "dt": day(at), "source": "webhook", "point_in_time": True, "model_version": version,
            "predicted_score": float(score), "predicted_class": "cold",
            "features": [float(v) for v in vector], "inputs": "{}"})
    StoreRecordWriter(LocalObjectStore(root))(records)


def _run(root: Path, champion: job.Champion, resolved: list[dict[str, Any]],
         **config: Any) -> tuple[job.MonitorResult, list[int]]:
    exports: list[int] = []

    def request_export() -> bool:
        exports.append(1)
        return True

    result = job.run_monitor(
        DuckDbQueryRunner(root), LocalObjectStore(root), champion, now=NOW,
        config=job.MonitorConfig(**config), labelled_rows=lambda since, until: resolved,
        request_export=request_export)
    return result, exports


def _resolved(x: np.ndarray, y: np.ndarray, scores: np.ndarray, location: str
              ) -> list[dict[str, Any]]:
    return [{"location_id": location, "features": [float(v) for v in row],
             "predicted_score": float(s), "converted": int(c)}
            for row, s, c in zip(x, scores, y, strict=True)]


def test_a_window_like_training_raises_no_alarm(champion: job.Champion, tmp_path: Path) -> None:
    x, y = _leads(101, 600)
    scores = champion.predict(x)
    start = NOW - timedelta(days=5)
    _write_snapshots(tmp_path, x[:300], scores[:300], "locA", start)
    _write_snapshots(tmp_path, x[300:], scores[300:], "locB", start)
    result, exports = _run(tmp_path, champion, _resolved(x, y, scores, "locA"))
    assert result.drift is not None and result.drift.rows == 600
    assert not result.drift.alarm, result.drift.to_record()
    assert sorted(result.pages) == [job.page_key("all"), job.page_key("locA"),
                                    job.page_key("locB")]
    assert (tmp_path / job.page_key("all")).is_file()
    assert result.importance_week == "2026-W49" and exports == []
    latest = json.loads((tmp_path / job.LATEST_KEY).read_text())
    assert latest["drift"]["alarm"] is False and latest["model_version"] == champion.version


def test_a_shifted_feature_alarms_by_name_and_a_second_alarm_asks_for_retraining(
    champion: job.Champion, tmp_path: Path
) -> None:
    x, _ = _leads(102, 600)
    j = FEATURE_NAMES.index(SHIFTED)
    x[:, j] = x[:, j] * 2.5 + 0.5
    scores = champion.predict(x)
    _write_snapshots(tmp_path, x, scores, "locA", NOW - timedelta(days=3))
    result, exports = _run(tmp_path, champion, [], retrain_on_drift=True)
    assert result.drift is not None and result.drift.alarm
    assert result.drift.drifted[0] == SHIFTED
    assert not result.confirmed_drift and exports == []
    page = (tmp_path / job.page_key("all")).read_text()
    assert f"Drift alarm: {SHIFTED}" in page
    again, exports = _run(tmp_path, champion, [], retrain_on_drift=True)
    assert again.confirmed_drift and again.retrain_requested and exports == [1]


def test_snapshots_outside_the_window_are_not_read(champion: job.Champion,
                                                   tmp_path: Path) -> None:
    x, _ = _leads(103, 300)
    _write_snapshots(tmp_path, x, champion.predict(x), "locA", NOW - timedelta(days=30))
    result, _ = _run(tmp_path, champion, [])
    assert result.drift is not None and result.drift.rows == 0
    assert not result.drift.enough_rows and not result.drift.alarm


def test_the_local_command_monitors_a_store_and_exits_3_on_drift(
    trained_bundle: Path, champion: job.Champion, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from leadscore import registry
    from leadscore.settings import PromoteSettings

    from tools import monitor

    assert registry.promote(trained_bundle, LocalObjectStore(tmp_path), PromoteSettings(),
                            force=True).promoted
    x, _ = _leads(104, 400)
    x[:, FEATURE_NAMES.index(SHIFTED)] += 1.0
    _write_snapshots(tmp_path, x, champion.predict(x), "locA", NOW - timedelta(days=2))
    code = monitor.main(["--store", str(tmp_path), "--now", NOW.isoformat()])
    assert code == monitor.DRIFT_EXIT
    record = json.loads(capsys.readouterr().out.split("\nwrote ")[0])
    assert record["drift"]["drifted_features"][0] == SHIFTED
    assert (tmp_path / job.page_key("locA")).is_file()


def test_a_contact_counts_once_and_only_the_champion_s_scores_make_the_score_psi(
    champion: job.Champion, tmp_path: Path
) -> None:
    x, _ = _leads(105, 400)
    start = NOW - timedelta(days=4)
    # 400 snapshots of 100 contacts, answered by the champion...
    _write_snapshots(tmp_path, x, champion.predict(x), "locA", start,
                     version=champion.version, contacts=100)
    # ...and 300 contacts answered by an experiment's rules arm, with far lower scores.
    x_rules, _ = _leads(106, 300)
    _write_snapshots(tmp_path, x_rules, np.full(300, 0.01), "locB", start, version="rules")
    result, _ = _run(tmp_path, champion, [])
    assert result.drift is not None and result.drift.rows == 100 + 300
    assert not result.drift.score_shifted, result.drift.to_record()
    assert result.drift.score_psi < 0.25


def test_the_score_chart_reads_the_leads_the_score_psi_reads(
    champion: job.Champion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart used to plot every snapshot (an experiment's rules arm included) beside a
    PSI of the champion's own: 37 % of leads at >= 0.5 next to "score stable"."""
    pages: list[Any] = []
    real_render = job.render
    monkeypatch.setattr(job, "render", lambda data: pages.append(data) or real_render(data))
    x, _ = _leads(105, 400)
    start = NOW - timedelta(days=4)
    _write_snapshots(tmp_path, x, champion.predict(x), "locA", start,
                     version=champion.version, contacts=100)
    x_rules, _ = _leads(106, 300)
    _write_snapshots(tmp_path, x_rules, np.full(300, 0.987654), "locB", start, version="rules")
    result, _ = _run(tmp_path, champion, [])
    overall = pages[0]
    assert overall.scope == "All locations"
    assert len(overall.window_scores) == 100
    assert not np.any(np.isclose(overall.window_scores, 0.987654))
    page = result.pages[job.page_key(job.OVERALL)]
    assert "read the same 100 leads" in page and "300 other leads" in page


def test_an_empty_page_says_why_and_what_fills_it(champion: job.Champion,
                                                   tmp_path: Path) -> None:
    result, _ = _run(tmp_path, champion, [])
    page = result.pages[job.page_key(job.OVERALL)]
    assert "No lead was scored and none resolved in this window" in page
    assert "HighLevel webhooks" in page
