"""The leak guard beyond "one column alone predicts too well".

A small generated export (nothing from real data) with three honest columns (one strong),
noise, and what real exports carry besides: a follow-up field filled in "signed" for part of
the converted leads only (its own AUC stays far below the one-column rule's bar), a row
number with gaps (rows filtered out before the export, so no exact running number), a
sync stamp that rises with the row order (skewed decimals, so no id by its spread) and a
random lead reference number (an id whose name does not say so).
"""

from __future__ import annotations

import csv
import math
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from schema_infer import (
    Table,
    fit_schema,
    identifier_like,
    infer_schema,
    judge_drop_losses,
    judge_leaks,
    leak_scores,
    pure_values,
)

HONEST = ("engagement", "budget_fit", "referrals")
AS_OF = date(2026, 6, 1)


def _export(n: int = 1500, seed: int = 3) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    engagement = rng.normal(0, 1, n)
    budget_fit = rng.normal(0, 1, n)
    referrals = rng.poisson(1.5, n)
    z = -1.3 + 1.2 * engagement + 0.8 * budget_fit + 0.35 * (referrals - 1.5)
    won = rng.random(n) < 1.0 / (1.0 + np.exp(-z))
    followup = np.where(won & (rng.random(n) < 0.4), "signed",
                        rng.choice(["none", "call", "email"], n))
    row_number = np.cumsum(rng.integers(1, 4, n))  # rows filtered out before the export
    lead_ref = rng.choice(np.arange(1_000_000, 9_999_999), n, replace=False)
    return {
        "engagement": [f"{v:.3f}" for v in engagement],
        "budget_fit": [f"{v:.3f}" for v in budget_fit],
        "referrals": [str(int(v)) for v in referrals],
        "noise": [f"{v:.2f}" for v in rng.normal(0, 1, n)],
        "followup": [str(v) for v in followup],
        "row_number": [str(int(v)) for v in row_number],
        "lead_ref": [str(int(v)) for v in lead_ref],
        "sync_stamp": [f"{v:.4f}" for v in np.sort(rng.lognormal(3.0, 1.0, n))],
        "won": ["yes" if w else "no" for w in won],
    }


@pytest.fixture(scope="module")
def export() -> Table:
    cols = _export()
    return Table(list(cols), cols, "planted.csv")


def _fitted(table: Table) -> tuple[object, np.ndarray, np.ndarray]:
    y = np.asarray([v == "yes" for v in table.columns["won"]], dtype=np.int64)
    schema = infer_schema(table, "won", ("yes",)).schema
    rows = np.arange(table.n_rows)
    return fit_schema(schema, table, rows, AS_OF), rows, y


def test_the_partial_leak_is_below_the_one_column_bar_but_its_value_is_outcome_pure(
    export: Table,
) -> None:
    fitted, rows, y = _fitted(export)
    aucs = leak_scores(fitted, export, rows, y, seed=1)  # type: ignore[arg-type]
    assert aucs["followup"] < 0.75  # what the one-column rule alone let through
    assert "followup" not in judge_leaks(aucs).leaks
    pure = pure_values(fitted, export, rows, y)  # type: ignore[arg-type]
    assert list(pure) == ["followup"]
    assert "100% converted" in pure["followup"] or "99% converted" in pure["followup"]


def test_row_numbers_and_ids_read_as_numbers_are_identifier_like(export: Table) -> None:
    fitted, rows, _ = _fitted(export)
    found = identifier_like(fitted, export, rows)  # type: ignore[arg-type]
    assert set(found) == {"row_number", "lead_ref", "sync_stamp"}
    assert "row order" in found["sync_stamp"]
    assert "evenly" in found["lead_ref"]


def test_amounts_and_counts_are_not_identifiers() -> None:
    """Whole-number amounts are nearly all distinct too, but skewed, not spread evenly."""
    rng = np.random.default_rng(0)
    cols = {"budget": [f"{v:.0f}" for v in rng.lognormal(12.5, 0.4, 800)],
            "visits": [str(int(v)) for v in rng.poisson(3, 800)],
            "won": ["yes" if v else "no" for v in rng.random(800) < 0.3]}
    table = Table(list(cols), cols, "honest.csv")
    fitted, rows, _ = _fitted(table)
    assert identifier_like(fitted, table, rows) == {}  # type: ignore[arg-type]


def test_a_count_that_is_mostly_zero_does_not_rise_with_the_row_order() -> None:
    """Previous contacts: 0 for nine leads in ten, some of the latest contacted before (the bank
    file's `previous`). Ties broken by position made it "rise with the row order" (rank
    correlation 0.99 there)."""
    rng = np.random.default_rng(2)
    n = 2000
    later = np.arange(n) >= 0.85 * n  # a campaign that re-contacts earlier leads
    previous = np.where(later & (rng.random(n) < 0.6), rng.integers(1, 4, n), 0)
    cols = {"previous": [str(int(v)) for v in previous],
            "won": ["yes" if v else "no" for v in rng.random(n) < 0.1]}
    table = Table(list(cols), cols, "counts.csv")
    fitted, rows, _ = _fitted(table)
    assert identifier_like(fitted, table, rows) == {}  # type: ignore[arg-type]


def test_drop_column_rule_flags_a_column_worth_far_more_than_any_other() -> None:
    assert list(judge_drop_losses({"a": 0.10, "b": 0.02, "c": 0.0})) == ["a"]
    assert judge_drop_losses({"a": 0.05, "b": 0.03}) == {}  # strong, others close behind
    assert judge_drop_losses({"a": 0.015, "b": 0.0}) == {}  # worth too little to matter


def test_a_dominant_but_small_column_of_weak_data_is_not_a_leak() -> None:
    """The bank file played in file order: the month a lead was called is worth 0.062 AUC,
    over 3 times the next column (0.019), because every column is worth little there; the
    ratio alone called it the outcome in another form."""
    losses = {"month": 0.062, "contact": 0.019, "pdays": 0.012, "age": 0.004}
    assert judge_drop_losses(losses) == {}
    assert list(judge_drop_losses({**losses, "month": 0.12})) == ["month"]


def test_a_duration_like_column_is_still_caught_by_its_own_auc() -> None:
    """The same file's call duration (written after the call that decides the outcome): its
    own AUC 0.888 against 0.602 for the next column."""
    aucs = {"duration": 0.888, "month": 0.602, "contact": 0.58, "age": 0.53}
    verdict = judge_leaks(aucs, drop_losses={"duration": 0.15, "month": 0.04})
    assert list(verdict.leaks) == ["duration"]
    assert "alone reaches held-out AUC 0.888" in verdict.leaks["duration"]


def _write(path: Path, cols: dict[str, list[str]]) -> Path:
    names = list(cols)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        writer.writerows(zip(*(cols[n] for n in names), strict=True))
    return path


@pytest.mark.slow
def test_flagged_columns_are_excluded_unless_kept_and_the_report_shows_both_aucs(
    tmp_path: Path,
) -> None:
    from train_custom import CustomOptions, prepare_custom, schema_report_lines

    path = _write(tmp_path / "planted.csv", _export())
    data = prepare_custom(path, CustomOptions(target="won", positive=("yes",), as_of=AS_OF),
                          0.2, 42)
    assert set(data.leak.leaks) == {"followup", "row_number", "lead_ref", "sync_stamp"}
    assert set(HONEST) <= set(data.schema.column_names)
    assert data.leak_auc is not None
    assert data.leak_auc["with"] > data.leak_auc["without"] + 0.02
    assert all(math.isfinite(v) for v in data.leak.drop_losses.values())
    lines = "\n".join(schema_report_lines(data, None, None))
    assert "with the excluded leaks" in lines and "EXCLUDED followup" in lines

    kept = prepare_custom(path, CustomOptions(target="won", positive=("yes",), as_of=AS_OF,
                                              keep=("followup",)), 0.2, 42)
    assert "followup" in kept.schema.column_names and "followup" in kept.leak.kept
    assert set(kept.leak.leaks) == {"row_number", "lead_ref", "sync_stamp"}
