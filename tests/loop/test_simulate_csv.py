"""The pieces of `make simulate DATA=...` (tools/sim_csv.py) on a few hundred rows: which rows
are past contacts, when the others arrive and resolve (file order), the team's upload, the
baseline fitted on exactly a training part's rows. The full run is not a test."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from tools import sim_csv
from tools.local_sagemaker import _toolkit_args

HEADER = ["age", "job", "duration", "output"]


def _rows(n: int, seed: int = 5) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        age = int(rng.integers(20, 70))
        job = str(rng.choice(["admin.", "retired", "student"]))
        y = rng.random() < (0.6 if job != "admin." and age > 40 else 0.1)
        rows.append([str(age), job, str(int(rng.normal(500 if y else 150, 50))),
                     "yes" if y else "no"])
    return rows


def test_rows_keep_file_order_past_first_then_arrivals_over_the_weeks() -> None:
    rows = _rows(300)
    rows.insert(7, ["33", "admin.", "10"])  # a short row: left out, as training leaves it
    plan = sim_csv.plan_csv(HEADER, rows, target="output", positive=["yes"], weeks=4)
    assert plan.columns == ["age", "job", "duration"]
    assert len(plan.past) == 90 and len(plan.arriving) == 210
    assert [c.row for c in plan.contacts] == list(range(300))  # file order, nothing dropped
    assert all(c.created_week == -1 for c in plan.past)
    arrivals = [c.arrive_at for c in plan.arriving]
    assert arrivals == sorted(arrivals) and arrivals[0] == 0.0
    assert {c.created_week for c in plan.arriving} == {0, 1, 2, 3}
    for c in plan.arriving:  # an outcome follows its arrival, or never comes
        assert c.resolve_at == 0.0 or c.arrive_at + sim_csv.DAY <= c.resolve_at < 4 * sim_csv.WEEK
        assert "output" not in c.values
    truth = [int(r[3] == "yes") for r in rows if len(r) == 4]
    assert [c.converted for c in plan.contacts] == truth

    upload = list(csv.reader(io.StringIO(sim_csv.past_upload(plan).decode())))
    assert upload[0] == HEADER and len(upload) == 91
    assert upload[1:] == [r for r in rows if len(r) == 4][:90]

    seen = set()
    for week in range(4):
        events = sim_csv.week_events(plan, week)
        assert [t for t, _, _ in events] == sorted(t for t, _, _ in events)
        for at, kind, c in events:
            assert week * sim_csv.WEEK <= at < (week + 1) * sim_csv.WEEK
            if kind == "create":
                seen.add(c.contact_id)
            else:  # an update or an outcome never comes before the contact exists
                assert c.contact_id in seen
    with pytest.raises(ValueError, match="no 'converted' column"):
        sim_csv.plan_csv(HEADER, rows, target="converted", positive=["yes"], weeks=4)


@pytest.mark.slow  # fits a LightGBM
def test_the_baseline_is_fitted_on_exactly_the_rows_given_and_the_kept_columns() -> None:
    rows = _rows(400)
    baseline = sim_csv.fit_baseline(HEADER, rows, ["age", "job", "not_in_file"], "output",
                                    ["yes"])
    assert baseline.rows == 400 and baseline.columns == ["age", "job"]
    assert baseline.categories == {"job": ["admin.", "retired", "student"]}
    records = [dict(zip(HEADER, r, strict=True)) for r in _rows(200, seed=6)]
    records[0]["job"] = "never seen"  # scored as missing, not refused
    scores = baseline.scores(records)
    assert scores.shape == (200,) and np.all((scores >= 0) & (scores <= 1))
    from leadscore.metrics import auc

    y = np.array([int(r["output"] == "yes") for r in records])
    assert auc(y, scores) > 0.7


def test_local_training_jobs_pass_list_hyperparameters_as_repeated_flags() -> None:
    args = _toolkit_args({"target": '"output"', "positive": '"yes,ok"', "exclude": '"a, b"',
                          "folds": "3"})
    assert args == ["--target", "output", "--positive", "yes", "--positive", "ok",
                    "--exclude", "a", "--exclude", "b", "--folds", "3"]
