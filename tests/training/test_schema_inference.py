"""Schema inference on a plain export, the schema file, and the leak guard."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from leadscore.columns.schema import Schema, SchemaError
from leadscore.errors import InvalidInput
from schema_infer import (
    Table,
    fit_schema,
    infer_schema,
    judge_leaks,
    leak_scores,
    read_table,
    target_vector,
)
from train_data import TrainingRefused

from tests.fixtures.custom_leads import AS_OF, custom_rows, write_custom_csv


def _table(columns: dict[str, list[str]]) -> Table:
    return Table(list(columns), columns, "test.csv")


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Table:
    path = write_custom_csv(tmp_path_factory.mktemp("inference") / "export.csv", 600, 3)
    return read_table([path])


def test_kinds_missing_tokens_and_drops_on_a_mixed_export(export: Table) -> None:
    y, positive = target_vector(export, "status", ["won"])
    inferred = infer_schema(export, "status", positive)
    kinds = {c.name: c.kind for c in inferred.schema.columns}
    assert kinds == {
        "source": "categorical", "stage": "categorical", "budget": "numeric",
        "days_since_reply": "numeric", "preapproved": "boolean", "created": "date",
        "outcome_call_minutes": "numeric",
    }
    # 999 = "never replied": a sentinel, read as missing
    assert inferred.schema.column("days_since_reply").missing == ("999",)
    assert inferred.schema.column("budget").missing == ()
    assert inferred.dropped["contact_id"].startswith("identifier")
    assert inferred.dropped["email"].startswith("identifier")
    assert inferred.dropped["notes"].startswith(("free text", "identifier"))
    assert inferred.dropped["tenant"].startswith("constant")
    assert y.sum() > 0 and positive == ("won",)


def test_missing_tokens_empty_unknown_select_and_sentinel_become_missing() -> None:
    n = 200
    rng = np.random.default_rng(0)
    budget = [str(int(v)) for v in rng.integers(1000, 9000, n)]
    budget[:10] = [""] * 5 + ["unknown"] * 3 + ["UNKNOWN", " "]
    stage = [["New", "Won"][i % 2] for i in range(n)]
    stage[:7] = ["Select"] * 7
    days = [str(int(v)) for v in rng.integers(0, 30, n)]
    days[:40] = ["999"] * 40
    table = _table({"budget": budget, "stage": stage, "days": days,
                    "y": ["1" if i % 3 == 0 else "0" for i in range(n)]})
    schema = infer_schema(table, "y", ["1"]).schema
    assert [c.kind for c in schema.columns] == ["numeric", "categorical", "numeric"]
    fitted = fit_schema(schema, table, np.arange(n), AS_OF)
    assert set(fitted.column("stage").categories) == {"New", "Won"}  # "Select" is no level
    for name in ("budget", "stage", "days"):
        assert fitted.column(name).missing_indicator, name
    budget_fill = float(np.median([int(b) for b in budget[10:]]))
    assert fitted.column("budget").fill == pytest.approx(budget_fill)
    x = fitted.encode_fields({"budget": "unknown", "stage": "select", "days": 999})
    names = fitted.input_names
    assert x.missing == ["budget", "stage", "days"]
    assert x.values[names.index("budget:missing")] == 1.0
    assert x.values[names.index("budget")] == pytest.approx(budget_fill)
    assert x.values[names.index("days:missing")] == 1.0
    assert x.values[names.index("stage=New")] == 0.0 and x.values[names.index("stage=Won")] == 0


def test_a_common_value_is_no_sentinel_and_booleans_need_both_values() -> None:
    n = 100
    table = _table({
        "score": [str(990 + i % 10) for i in range(n)],  # 999 is an ordinary value here
        "flag": ["yes"] * n,  # constant: dropped
        "opt_in": ["true" if i % 2 else "false" for i in range(n)],
        "y": ["won" if i % 4 == 0 else "lost" for i in range(n)],
    })
    inferred = infer_schema(table, "y", ["won"])
    assert inferred.schema.column("score").missing == ()
    assert inferred.schema.column("opt_in").kind == "boolean"
    assert "flag" in inferred.dropped


def test_a_column_seen_only_as_0_and_1_still_reads_a_later_2() -> None:
    # a retraining that reuses the first schema refused its whole file when a count that had
    # only been 0 or 1 reached 2 (a 0/1 column was inferred as a yes/no one)
    n = 100
    table = _table({
        "houses_owned": [str(i % 2) for i in range(n)],
        "y": ["won" if i % 4 == 0 else "lost" for i in range(n)],
    })
    schema = infer_schema(table, "y", ["won"]).schema
    column = schema.column("houses_owned")
    assert column.kind == "numeric"
    assert schema.read_value(column, "2") == (2.0, None)
    assert schema.read_value(column, 1) == (1.0, None)


def test_rare_and_unseen_categories_go_to_other() -> None:
    n = 400
    levels = ["A"] * 200 + ["B"] * 150 + ["C"] * 45 + ["rare1", "rare2", "rare3", "rare4", "r5"]
    table = _table({"src": levels, "y": [str(i % 2) for i in range(n)]})
    fitted = fit_schema(infer_schema(table, "y", ["1"]).schema, table, np.arange(n), AS_OF)
    assert fitted.column("src").categories == ("A", "B", "C")
    enc = fitted.encode_fields({"src": "rare1"})
    assert enc.values[fitted.input_names.index("src=other")] == 1.0
    assert enc.unseen == [{"column": "src", "value": "rare1"}]
    enc = fitted.encode_fields({"src": "b"})  # case-insensitive match
    assert enc.values[fitted.input_names.index("src=B")] == 1.0 and enc.unseen == []


def test_column_encoding_equals_row_encoding(export: Table) -> None:
    """The training transform (column-wise, memoised) gives the serving transform's numbers."""
    schema = infer_schema(export, "status", ["won"]).schema
    rows = np.arange(export.n_rows)
    fitted = fit_schema(schema, export, rows, AS_OF)
    cols = {n: export.columns[n] for n in fitted.column_names}
    X = fitted.encode_columns(cols, export.n_rows, AS_OF)
    for r in range(0, export.n_rows, 7):
        row = {n: export.columns[n][r] for n in fitted.column_names}
        assert np.array_equal(fitted.encode_fields(row, today=AS_OF).values, X[r])


def test_bad_values_name_every_field_path(export: Table) -> None:
    fitted = fit_schema(infer_schema(export, "status", ["won"]).schema, export,
                        np.arange(export.n_rows), AS_OF)
    with pytest.raises(InvalidInput) as caught:
        fitted.encode_fields({"budget": "lots", "preapproved": "maybe", "created": "yesterday",
                              "source": {"nested": 1}, "stage": "New"})
    assert sorted(caught.value.paths) == ["fields.budget", "fields.created", "fields.preapproved",
                                          "fields.source"]
    with pytest.raises(InvalidInput) as caught:
        fitted.encode_fields(["not", "an", "object"])
    assert caught.value.paths == ["fields"]


def test_dates_are_ages_in_days(export: Table) -> None:
    fitted = fit_schema(infer_schema(export, "status", ["won"]).schema, export,
                        np.arange(export.n_rows), AS_OF)
    at = fitted.input_names.index("created")
    iso = fitted.encode_fields({"created": "2026-05-22"}, today=AS_OF).values[at]
    stamp = fitted.encode_fields({"created": "2026-05-22T23:10:00Z"}, today=AS_OF).values[at]
    epoch_ms = fitted.encode_fields({"created": 1779408000000}, today=AS_OF).values[at]
    assert iso == stamp == epoch_ms == 10.0
    assert fitted.column("created").as_of == AS_OF.isoformat()


def test_schema_file_round_trip_and_refusals(export: Table) -> None:
    fitted = fit_schema(infer_schema(export, "status", ["won"]).schema, export,
                        np.arange(export.n_rows), AS_OF)
    again = Schema.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert again.input_names == fitted.input_names
    assert again.to_dict() == fitted.to_dict()
    bad = fitted.to_dict()
    bad["columns"][0]["kind"] = "text"
    with pytest.raises(SchemaError, match="kind must be one of"):
        Schema.from_dict(bad)
    bad = fitted.to_dict()
    bad["columns"][0]["colour"] = "red"
    with pytest.raises(SchemaError, match="unknown keys: colour"):
        Schema.from_dict(bad)
    bad = fitted.to_dict()
    bad["columns"].append(dict(bad["columns"][0]))
    with pytest.raises(SchemaError, match="twice"):
        Schema.from_dict(bad)


def test_one_hot_groups_sum_back_to_their_column(export: Table) -> None:
    fitted = fit_schema(infer_schema(export, "status", ["won"]).schema, export,
                        np.arange(export.n_rows), AS_OF)
    per_input = np.arange(fitted.n_inputs, dtype=np.float64)
    grouped = fitted.group_contributions(per_input)
    assert list(grouped) == fitted.column_names
    assert sum(grouped.values()) == pytest.approx(per_input.sum())
    src = [i for i, n in enumerate(fitted.input_names) if n.startswith("source=")]
    assert grouped["source"] == pytest.approx(per_input[src].sum())


# --------------------------------------------------------------------------- leaks


def test_the_leak_is_found_and_named(export: Table) -> None:
    y, positive = target_vector(export, "status", ["won"])
    rows = np.arange(export.n_rows)
    fitted = fit_schema(infer_schema(export, "status", positive).schema, export, rows, AS_OF)
    aucs = leak_scores(fitted, export, rows, y, seed=1)
    verdict = judge_leaks(aucs)
    assert list(verdict.leaks) == ["outcome_call_minutes"]
    assert aucs["outcome_call_minutes"] >= 0.9
    assert "held-out AUC" in verdict.leaks["outcome_call_minutes"]
    kept = judge_leaks(aucs, keep=["outcome_call_minutes"])
    assert kept.leaks == {} and list(kept.kept) == ["outcome_call_minutes"]


def test_far_above_the_others_is_a_leak_below_090_too() -> None:
    aucs = {"a": 0.81, "b": 0.66, "c": 0.60}  # the bank data's duration / month / contact
    assert list(judge_leaks(aucs).leaks) == ["a"]
    assert judge_leaks({"a": 0.74, "b": 0.55}).leaks == {}  # strong but not past 0.75
    assert judge_leaks({"a": 0.80, "b": 0.72}).leaks == {}  # strong, others close behind


def test_no_leak_in_an_honest_export() -> None:
    rows = custom_rows(600, 5)
    for r in rows:
        del r["outcome_call_minutes"]
    n = len(rows)
    table = _table({k: [r[k] for r in rows] for k in rows[0]})
    y, positive = target_vector(table, "status", ["won"])
    fitted = fit_schema(infer_schema(table, "status", positive).schema, table, np.arange(n),
                        AS_OF)
    assert judge_leaks(leak_scores(fitted, table, np.arange(n), y, seed=1)).leaks == {}


# --------------------------------------------------------------------------- refusals


def test_unknown_target_and_no_positives_are_one_line_refusals(export: Table) -> None:
    with pytest.raises(TrainingRefused, match="Target column 'converted' not found") as caught:
        target_vector(export, "converted", ["yes"])
    assert "\n" not in str(caught.value)
    with pytest.raises(TrainingRefused, match="No positive rows") as caught:
        target_vector(export, "status", ["yes"])
    assert "values seen: lost, won" in str(caught.value)
    with pytest.raises(TrainingRefused, match="--positive"):
        target_vector(export, "stage", [])


def test_a_schema_that_does_not_match_the_file_is_refused(export: Table) -> None:
    schema = Schema.from_dict({"columns": [{"name": "source", "kind": "numeric"}]})
    with pytest.raises(TrainingRefused, match="does not match the file: column 'source'"):
        fit_schema(schema, export, np.arange(export.n_rows), date(2026, 6, 1))


def test_read_table_refuses_ragged_lines(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b,y\n1,2,yes\n1,2\n3,4,no\n")
    with pytest.raises(TrainingRefused, match=r"1 lines do not have 3 fields \(lines 3\)"):
        read_table([path])


def test_a_column_whose_only_values_are_in_the_held_out_rows_is_dropped_not_refused(
    tmp_path: Path,
) -> None:
    """``pdays`` of a season's leads: 999 ("never contacted") in all but one row, and that
    row fell in the job's held-out split. Nothing can be fitted on it: the column is left out
    with its reason, the job trains on the others."""
    from train_custom import CustomOptions, prepare_custom, split_rows

    rng = np.random.default_rng(4)
    n = 800
    won = rng.random(n) < 0.4
    y = won.astype(np.int64)
    _, test_idx = split_rows(y, 0.1, 42)
    pdays = ["999"] * n
    pdays[int(test_idx[0])] = "6"
    cols = {name: [f"{v + lift * w:.3f}" for v, w in zip(rng.normal(0, 1, n), won,
                                                           strict=True)]
            for name, lift in (("engagement", 0.7), ("budget_fit", 0.6))}
    cols.update({"pdays": pdays, "won": ["yes" if w else "no" for w in won]})
    path = tmp_path / "season.csv"
    path.write_text("\n".join([",".join(cols), *(",".join(r) for r in zip(*cols.values(),
                                                                          strict=True))]))
    data = prepare_custom(path, CustomOptions(target="won", positive=("yes",),
                                              as_of=date(2026, 6, 1)), 0.1, 42)
    assert set(data.schema.column_names) == {"engagement", "budget_fit"}
    assert "no value in the training rows" in data.schema.exclude["pdays"]
