"""Record builders for the loop tests: real snapshots / outcomes from the real builders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leadscore.features import FEATURE_NAMES
from leadscore.loop.outcomes import OutcomeRuleBook, outcomes_from_event
from leadscore.loop.snapshots import build_snapshot
from leadscore.loop.store_writer import DirectoryRecordWriter, StoreRecordWriter
from leadscore.registry import LocalObjectStore

T0 = 1_790_000_000_000  # 2026-09-21, epoch ms
HOUR = 3_600_000
DAY = 24 * HOUR


def lead_request(contact_id: str, commitment: float = 60.0) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "features": {
            "property_data": {"list_price": 500000, "condition": "good"},
            "psychology_profile": {"psychological_commitment_score": commitment},
        },
    }


def snapshot(
    contact_id: str,
    at_ms: int,
    *,
    location_id: str = "loc1",
    commitment: float = 60.0,
    point_in_time: bool = True,
    source: str = "webhook",
) -> dict[str, Any]:
    result = {
        "contact_id": contact_id,
        "predicted_score": 0.5,
        "predicted_class": "warm",
        "model_version": "lsm-test",
        "feature_values": {name: 0.5 for name in FEATURE_NAMES},
    }
    return build_snapshot(
        lead_request(contact_id, commitment),
        result,
        location_id=location_id,
        source=source,
        scored_at_ms=at_ms,
        point_in_time=point_in_time,
    )


def status_event(
    contact_id: str, status: str, *, location_id: str = "loc1", opportunity_id: str = "opp1"
) -> dict[str, Any]:
    return {
        "type": "OpportunityStatusUpdate",
        "locationId": location_id,
        "id": opportunity_id,
        "contactId": contact_id,
        "status": status,
        "pipelineId": "p1",
        "pipelineStageId": "",
    }


def outcome(
    contact_id: str,
    status: str,
    occurred_ms: int,
    received_ms: int | None = None,
    *,
    location_id: str = "loc1",
    opportunity_id: str = "opp1",
    rules: OutcomeRuleBook | None = None,
) -> dict[str, Any]:
    records = outcomes_from_event(
        status_event(contact_id, status, location_id=location_id, opportunity_id=opportunity_id),
        rules or OutcomeRuleBook(),
        occurred_at_ms=occurred_ms,
        received_at_ms=occurred_ms if received_ms is None else received_ms,
    )
    assert len(records) == 1
    return records[0]


def write_records(root: Path, records: list[dict[str, Any]]) -> LocalObjectStore:
    """Half through the object-store writer (one object per batch, as Firehose delivers),
    half through local mode's appending writer: DuckDB must read both."""
    store = LocalObjectStore(root)
    half = len(records) // 2
    StoreRecordWriter(store)(records[:half])
    DirectoryRecordWriter(root)(records[half:])
    return store
