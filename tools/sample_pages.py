"""Pages to look at: the demo bundle's training report, a health page and an experiment report.

The health page comes from a real monitoring run (tools/monitor.py's code) over two weeks of
generated leads scored by the demo bundle through the scoring service, with one feature
shifted in the second week so the drift section has something to show; the experiment page
from the same leads, half answered by the rules. Used by `make screenshots`.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEMO_BUNDLE = ROOT / ".demo" / "bundle"
NOW = datetime(2026, 11, 30, tzinfo=UTC)
LEADS = 1200
SHIFTED = "days_on_market_ratio"


def _score_and_record(store_dir: Path) -> list[Any]:
    """Generated leads scored by the demo bundle (rules for half), as snapshots + outcomes."""
    from generate_leads import generate_leads, request_part
    from leadscore.experiments import results
    from leadscore.loop.records import OUTCOME, day, record_id
    from leadscore.loop.snapshots import build_snapshot
    from leadscore.loop.store_writer import StoreRecordWriter
    from leadscore.registry.store import LocalObjectStore
    from leadscore.scoring.model_store import ModelStore
    from leadscore.scoring.service import ScoringService

    service = ScoringService(ModelStore(f"file://{store_dir}/models/champion.json"))
    writer = StoreRecordWriter(LocalObjectStore(store_dir))
    rng = np.random.default_rng(5)
    rows: list[Any] = []
    records = []
    for i, lead in enumerate(generate_leads(LEADS, 77)):
        features = request_part(lead)
        if i >= LEADS // 2:  # the second week: listings sit far longer than their area's
            listing = features["property_data"]
            listing["days_on_market"] = float(listing.get("days_on_market", 30)) * 3 + 60
        request = {"contact_id": f"c{i:05d}", "features": features}
        use_rules = i % 2 == 0
        answer = service.score(request, explain=False, use="rules" if use_rules else None)
        at = int((NOW - timedelta(days=13) + timedelta(minutes=15 * i)).timestamp() * 1000)
        snapshot = build_snapshot(request, answer, location_id="loc-demo-1" if i % 3 else
                                  "loc-demo-2", source="api", scored_at_ms=at)
        converted = bool(rng.random() < lead["true_probability"])
        outcome_at = at + 3_600_000
        records += [snapshot, {
            "schema": 1, "record_type": OUTCOME,
            "outcome_id": record_id(OUTCOME, snapshot["contact_id"], outcome_at),
            "location_id": snapshot["location_id"], "contact_id": snapshot["contact_id"],
            "opportunity_id": f"o{i:05d}", "event_type": "OpportunityStatusUpdate",
            "status": "won" if converted else "lost", "pipeline_id": "p", "stage_id": "s",
            "converted": int(converted), "occurred_at_ms": outcome_at,
            "received_at_ms": outcome_at, "dt": day(outcome_at), "point_in_time": True}]
        rows.append(results.ResolvedLead("rules" if use_rules else "champion",
                                         float(answer["predicted_score"]),
                                         str(answer["predicted_class"]), converted))
    writer(records)
    return rows


def write_sample_pages(folder: Path) -> dict[str, Path]:
    from leadscore import registry
    from leadscore.experiments import report, results
    from leadscore.monitoring.job import MonitorConfig
    from leadscore.registry.store import LocalObjectStore
    from leadscore.settings import PromoteSettings
    from monitor import monitor_local

    folder.mkdir(parents=True, exist_ok=True)
    pages = {"training_report": folder / "training_report.html"}
    shutil.copyfile(DEMO_BUNDLE / "training_report.html", pages["training_report"])
    with tempfile.TemporaryDirectory() as tmp:
        store_dir = Path(tmp) / "store"
        registry.promote(DEMO_BUNDLE, LocalObjectStore(store_dir), PromoteSettings(),
                         force=True)
        rows = _score_and_record(store_dir)
        monitor_local(store_dir, NOW, MonitorConfig(window_days=14))
        pages["health"] = folder / "health.html"
        shutil.copyfile(store_dir / "monitoring" / "health" / "all.html", pages["health"])
    summary = results.summarise("rules-vs-ensemble", ["rules", "champion"], rows)
    pages["experiment"] = folder / "experiment.html"
    pages["experiment"].write_text(report.render_html(summary, rows))
    return pages
