"""The upload's split into the job's part and the gate's part keeps each lead on one side.

A location's first model is trained on an export of every column its leads carried; its
retraining exports the same leads again in its champion's layout. When a row's side depended
on its bytes, most leads the champion learned from landed in the next candidate's gate part,
where the champion (scored on its own training rows) looked better than it is.
"""

from __future__ import annotations

import io
import json
import random

from leadscore.registry.split import GATE_FRACTION, split_lines


def _csv(header: list[str], rows: list[dict[str, object]]) -> list[bytes]:
    lines = [",".join(header).encode()]
    lines += [",".join(str(r[c]) for c in header).encode() for r in rows]
    return [line + b"\n" for line in lines]


def _leads(n: int) -> list[dict[str, object]]:
    rng = random.Random(5)
    return [{"contact_id": f"c{i:05d}", "scored_at": "2026-11-01T00:00:00.000Z",
             "age": rng.randint(18, 90), "job": rng.choice(["admin", "services", "retired"]),
             "balance": rng.randint(-500, 9000), "pdays": rng.choice([-1, 3, 40]),
             "outcome": rng.choice(["won", "lost"])} for i in range(n)]


def _gate_contacts(lines: list[bytes], *, csv_format: bool, target: str) -> set[str]:
    gate = io.BytesIO()
    split_lines(lines, csv_format=csv_format, write_train=io.BytesIO().write,
                write_gate=gate.write, target=target, positive=("won",), negative=("lost",))
    rows = gate.getvalue().decode().splitlines()
    if csv_format:
        at = rows[0].split(",").index("contact_id")
        return {r.split(",")[at] for r in rows[1:]}
    return {json.loads(r)["contact_id"] for r in rows}


def test_a_lead_is_on_the_same_side_whatever_layout_it_is_exported_in() -> None:
    leads = _leads(2000)
    # the first model's layout: every column, sorted; a retraining's: the champion's schema
    # (fewer columns, in its own order)
    first = _csv(["contact_id", "scored_at", "age", "balance", "job", "pdays", "outcome"], leads)
    retrain = _csv(["contact_id", "scored_at", "job", "age", "outcome"], leads)
    gate_first = _gate_contacts(first, csv_format=True, target="outcome")
    gate_retrain = _gate_contacts(retrain, csv_format=True, target="outcome")
    assert abs(len(gate_first) / len(leads) - GATE_FRACTION) < 0.03
    # the candidate's gate part holds no lead the champion trained on
    trained_by_champion = {str(r["contact_id"]) for r in leads} - gate_first
    assert not gate_retrain & trained_by_champion
    assert gate_retrain == gate_first


def test_every_snapshot_of_one_lead_is_on_one_side() -> None:
    lines = [json.dumps({"contact_id": f"c{i % 300}", "snapshot_id": f"s{i}",
                         "converted": i % 2, "features": {"x": i}}).encode()
             for i in range(1200)]
    gate = _gate_contacts(lines, csv_format=False, target="converted")
    train = io.BytesIO()
    split_lines(lines, csv_format=False, write_train=train.write,
                write_gate=io.BytesIO().write)
    trained = {json.loads(r)["contact_id"] for r in train.getvalue().decode().splitlines()}
    assert gate and trained
    assert not gate & trained


def test_rows_without_a_lead_id_are_still_placed_by_their_bytes() -> None:
    lines = [b"age,outcome\n"] + [f"{i},{'won' if i % 3 else 'lost'}\n".encode()
                                  for i in range(1000)]
    parts = []
    for _ in range(2):
        gate = io.BytesIO()
        result = split_lines(lines + lines[1:], csv_format=True, write_train=io.BytesIO().write,
                             write_gate=gate.write, target="outcome", positive=("won",),
                             negative=("lost",))
        parts.append(gate.getvalue())
        # duplicates of a row stay on one side: the gate part holds each twice
        assert result.gate.rows % 2 == 0 and result.gate.rows > 0
    assert parts[0] == parts[1]
