"""The point-in-time labelling SQL, run by DuckDB over files in the Firehose layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from leadscore.loop.labelling import LABELLED_COLUMNS, LabelWindow
from leadscore.loop.local_query import DuckDbQueryRunner
from leadscore.loop.records import day

from tests.loop.helpers import DAY, HOUR, T0, outcome, snapshot, write_records

CUTOFF = T0 + 30 * DAY


def window(cutoff: int = CUTOFF, include_backfilled: bool = False) -> LabelWindow:
    return LabelWindow(
        window_start_ms=T0 - 60 * DAY,
        cutoff_ms=cutoff,
        cutoff_dt=day(cutoff),
        snapshot_since_dt=day(T0 - 400 * DAY),
        include_backfilled=include_backfilled,
    )


def run(tmp_path: Path, records: list[dict[str, Any]], w: LabelWindow | None = None) -> list[dict]:
    write_records(tmp_path, records)
    return DuckDbQueryRunner(tmp_path).query((w or window()).labelled_rows_sql())


def by_contact(rows: list[dict]) -> dict[str, dict]:
    return {r["contact_id"]: r for r in rows}


def test_labels_the_latest_snapshot_strictly_before_the_outcome(tmp_path: Path) -> None:
    before = snapshot("c1", T0 + 1 * HOUR, commitment=10)
    latest_before = snapshot("c1", T0 + 3 * HOUR, commitment=30)
    at_outcome = snapshot("c1", T0 + 4 * HOUR, commitment=40)  # same millisecond: excluded
    after = snapshot("c1", T0 + 6 * HOUR, commitment=90)  # e.g. re-scored after winning
    rows = run(
        tmp_path, [before, latest_before, at_outcome, after, outcome("c1", "won", T0 + 4 * HOUR)]
    )
    assert len(rows) == 1
    row = rows[0]
    assert tuple(row) == LABELLED_COLUMNS
    assert row["snapshot_id"] == latest_before["snapshot_id"]
    assert row["converted"] == 1
    assert row["scored_at_ms"] < row["outcome_at_ms"]


def test_a_late_delivery_still_labels_by_when_it_happened(tmp_path: Path) -> None:
    early = snapshot("c1", T0 + 1 * HOUR)
    later = snapshot(
        "c1", T0 + 5 * DAY
    )  # scored before the late outcome arrived, after it happened
    late_lost = outcome("c1", "lost", T0 + 2 * DAY, received_ms=T0 + 9 * DAY)
    rows = run(tmp_path, [early, later, late_lost])
    assert [r["snapshot_id"] for r in rows] == [early["snapshot_id"]]
    assert rows[0]["converted"] == 0


@pytest.mark.parametrize("lost_arrives_last", [True, False])
def test_out_of_order_updates_the_latest_occurrence_wins(
    tmp_path: Path, lost_arrives_last: bool
) -> None:
    s1 = snapshot("c1", T0 + 1 * HOUR)
    s2 = snapshot("c1", T0 + 2 * DAY)
    lost = outcome(
        "c1", "lost", T0 + 1 * DAY, received_ms=T0 + (9 if lost_arrives_last else 3) * DAY
    )
    won = outcome("c1", "won", T0 + 3 * DAY, received_ms=T0 + 5 * DAY)
    rows = run(tmp_path, [s1, s2, lost, won])
    assert len(rows) == 1
    assert rows[0]["converted"] == 1
    assert rows[0]["snapshot_id"] == s2["snapshot_id"]
    assert rows[0]["outcome_at_ms"] == T0 + 3 * DAY


def test_a_reopened_deal_is_no_outcome(tmp_path: Path) -> None:
    rows = run(
        tmp_path,
        [
            snapshot("c1", T0),
            outcome("c1", "won", T0 + DAY),
            outcome("c1", "open", T0 + 2 * DAY),
        ],
    )
    assert rows == []


def test_retried_deliveries_give_one_row_at_the_first_time(tmp_path: Path) -> None:
    s = snapshot("c1", T0)
    first = outcome("c1", "won", T0 + DAY, received_ms=T0 + DAY)
    again = outcome("c1", "won", T0 + DAY, received_ms=T0 + DAY + HOUR)  # HighLevel retry
    tag_later = outcome("c1", "won", T0 + 3 * DAY)  # the same state reported again later
    rows = run(tmp_path, [s, first, again, tag_later])
    assert len(rows) == 1
    assert rows[0]["outcome_at_ms"] == T0 + DAY


def test_no_snapshot_before_the_outcome_no_row(tmp_path: Path) -> None:
    rows = run(tmp_path, [snapshot("c1", T0 + 2 * DAY), outcome("c1", "won", T0 + DAY)])
    assert rows == []


def test_outcomes_received_after_the_cutoff_are_not_seen(tmp_path: Path) -> None:
    records = [
        snapshot("c1", T0),
        outcome("c1", "won", T0 + DAY, received_ms=CUTOFF + HOUR),
        snapshot("c2", T0),
        outcome("c2", "lost", T0 + DAY, received_ms=CUTOFF - HOUR),
    ]
    assert [r["contact_id"] for r in run(tmp_path, records)] == ["c2"]


def test_contacts_and_locations_are_kept_apart(tmp_path: Path) -> None:
    records = [
        snapshot("c1", T0, location_id="loc1", commitment=11),
        snapshot("c1", T0 + HOUR, location_id="loc2", commitment=22),
        outcome("c1", "won", T0 + DAY, location_id="loc2"),
    ]
    rows = run(tmp_path, records)
    assert [(r["location_id"], r["snapshot_id"]) for r in rows] == [
        ("loc2", records[1]["snapshot_id"])
    ]


def test_backfilled_history_only_when_asked(tmp_path: Path) -> None:
    from leadscore.loop.outcomes import OutcomeRuleBook, outcomes_from_opportunities

    imported = outcomes_from_opportunities(
        "loc1",
        [{"id": "o9", "contactId": "c9", "status": "won"}],
        OutcomeRuleBook(),
        received_at_ms=T0 + 10 * DAY,
        occurred_at_ms_of=lambda opp: T0 - 30 * DAY,
    )
    current_fields = snapshot("c9", T0 + 10 * DAY, point_in_time=False, source="backfill")
    records = [current_fields, *imported]
    assert run(tmp_path, records) == []
    rows = DuckDbQueryRunner(tmp_path).query(window(include_backfilled=True).labelled_rows_sql())
    assert [r["snapshot_id"] for r in rows] == [current_fields["snapshot_id"]]
    assert rows[0]["snapshot_point_in_time"] is False


def test_empty_tables_answer_no_rows(tmp_path: Path) -> None:
    assert DuckDbQueryRunner(tmp_path).query(window().labelled_rows_sql()) == []


def test_parameters_are_checked_literals() -> None:
    with pytest.raises(ValueError):
        LabelWindow(0, 1, "2026-01-01'; DROP TABLE x; --", "2026-01-01").labelled_rows_sql()


# ---------------------------------------------------------------- against a reference


def reference(records: list[dict[str, Any]], cutoff: int) -> dict[tuple[str, str], str]:
    """The rule written plainly in Python: what the SQL must answer."""
    outcomes = [
        r for r in records if r["record_type"] == "outcome" and r["received_at_ms"] <= cutoff
    ]
    first: dict[tuple, dict] = {}
    for o in outcomes:
        key = (o["location_id"], o["contact_id"], o["opportunity_id"], o["converted"])
        cur = first.setdefault(key, {"occ": o["occurred_at_ms"], "rec": o["received_at_ms"]})
        cur["occ"] = min(cur["occ"], o["occurred_at_ms"])
        cur["rec"] = min(cur["rec"], o["received_at_ms"])
    latest: dict[tuple[str, str], tuple] = {}
    for (loc, contact, opp, conv), t in first.items():
        rank = (t["occ"], t["rec"], opp)
        if (loc, contact) not in latest or rank > latest[(loc, contact)][0]:
            latest[(loc, contact)] = (rank, conv)
    answer = {}
    for key, ((occ, _, _), conv) in latest.items():
        if conv is None:
            continue
        before = [
            s
            for s in records
            if s["record_type"] == "snapshot"
            and (s["location_id"], s["contact_id"]) == key
            and s["scored_at_ms"] < occ
            and s["scored_at_ms"] <= cutoff
        ]
        if before:
            best = max(before, key=lambda s: (s["scored_at_ms"], s["snapshot_id"]))
            answer[key] = best["snapshot_id"]
    return answer


events = st.lists(
    st.tuples(
        st.sampled_from(["c1", "c2", "c3"]),
        st.sampled_from(["snap", "won", "lost", "open"]),
        st.integers(0, 20),  # occurred / scored, hours
        st.integers(0, 30),  # delivery delay, hours
        st.sampled_from(["o1", "o2"]),
    ),
    max_size=25,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=events)
def test_sql_matches_the_rule_for_any_order_of_events(tmp_path_factory: Any, events: list) -> None:
    root = tmp_path_factory.mktemp("pit")
    cutoff = T0 + 30 * HOUR
    records = []
    for contact, kind, at, delay, opp in events:
        if kind == "snap":
            records.append(snapshot(contact, T0 + at * HOUR, commitment=at))
        else:
            records.append(
                outcome(contact, kind, T0 + at * HOUR, T0 + (at + delay) * HOUR, opportunity_id=opp)
            )
    rows = run(root, records, window(cutoff))
    got = {(r["location_id"], r["contact_id"]): r["snapshot_id"] for r in rows}
    assert got == reference(records, cutoff)
    assert all(r["scored_at_ms"] < r["outcome_at_ms"] for r in rows)
