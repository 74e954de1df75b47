"""Every refusal of the training job: one line, non-zero exit, the reason named.

Refusals happen before any fitting, so these tests are fast.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import train
from generate_leads import generate_leads

REPO = Path(__file__).resolve().parents[2]


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open() as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, list(reader)


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _refused(capsys: pytest.CaptureFixture[str], path: Path, out: Path) -> str:
    code = train.main(["--input", str(path), "--output", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert "\n" not in err, "a refusal is one line"
    assert not (out / "model.onnx").exists()
    return err


def test_too_few_rows(small_training_csv: Path, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    header, rows = _rows(small_training_csv)
    path = _write(tmp_path / "few.csv", header, rows[:99])
    err = _refused(capsys, path, tmp_path / "out")
    assert "Insufficient training data: 99 rows, need at least 100" in err


def test_missing_target(small_training_csv: Path, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    header, rows = _rows(small_training_csv)
    i = header.index("converted")
    path = _write(tmp_path / "nt.csv", header[:i] + header[i + 1:],
                  [r[:i] + r[i + 1:] for r in rows])
    assert "Target column 'converted' not found" in _refused(capsys, path, tmp_path / "o")


def test_unresolved_targets_are_left_out_and_counted(small_training_csv: Path,
                                                      tmp_path: Path) -> None:
    """`2`, `open` and empty are unresolved (left out, counted); `yes` and `1.00` convert."""
    from train_data import load_dataset

    header, rows = _rows(small_training_csv)
    i = header.index("converted")
    before = sum(1 for r in rows if float(r[i]) == 1.0)
    rows[4][i], rows[9][i], rows[11][i] = "2", "open", ""
    rows[20][i], rows[21][i] = "yes", "1.00"
    expected = before + sum(1 for k in (20, 21) if float(_rows(small_training_csv)[1][k][i]) == 0)
    expected -= sum(1 for k in (4, 9, 11) if float(_rows(small_training_csv)[1][k][i]) == 1)
    ds = load_dataset(_write(tmp_path / "nb.csv", header, rows))
    assert ds.n_rows == len(rows) - 3
    assert int(ds.y.sum()) == expected
    assert "left out 3 rows whose 'converted' is unresolved" in ds.unresolved_note
    assert "2 x1" in ds.unresolved_note and "open x1" in ds.unresolved_note


def test_an_unresolved_target_everywhere_is_refused(small_training_csv: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    header, rows = _rows(small_training_csv)
    i = header.index("converted")
    for r in rows:
        r[i] = "won" if r[i] == "1" else "lost"
    err = _refused(capsys, _write(tmp_path / "wl.csv", header, rows), tmp_path / "o")
    assert "Insufficient training data: 0 rows" in err and "unresolved" in err


@pytest.mark.parametrize("positives", [3, 119, 1381, 1490])
def test_too_few_of_one_outcome_is_refused_by_count(
    small_training_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], positives: int
) -> None:
    """Enough data is a count of each outcome (MIN_CONVERSIONS, 120), not a rate."""
    header, rows = _rows(small_training_csv)
    i = header.index("converted")
    for k, r in enumerate(rows):
        r[i] = "1" if k < positives else "0"
    err = _refused(capsys, _write(tmp_path / "rate.csv", header, rows), tmp_path / "o")
    assert "Too few of one outcome" in err and "at least 120 of each" in err


def test_missing_feature_columns_are_named(small_training_csv: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    header, rows = _rows(small_training_csv)
    drop = {header.index("urgency_score"), header.index("comp_market_time")}
    path = _write(tmp_path / "mf.csv", [h for k, h in enumerate(header) if k not in drop],
                  [[c for k, c in enumerate(r) if k not in drop] for r in rows])
    err = _refused(capsys, path, tmp_path / "o")
    assert "issing feature columns: urgency_score, comp_market_time" in err


def test_extra_columns_are_named(small_training_csv: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    header, rows = _rows(small_training_csv)
    path = _write(tmp_path / "ex.csv", [*header, "lead_source"], [[*r, "zillow"] for r in rows])
    err = _refused(capsys, path, tmp_path / "o")
    assert "nexpected columns: lead_source" in err


@pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity"])
def test_nan_and_infinity_name_the_column_and_row_count(
    small_training_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    header, rows = _rows(small_training_csv)
    i = header.index("absorption_rate")
    for k in (3, 50, 700):
        rows[k][i] = bad
    err = _refused(capsys, _write(tmp_path / "nan.csv", header, rows), tmp_path / "o")
    assert "column 'absorption_rate' has NaN/Infinity in 3 rows" in err


def test_text_in_a_feature_column(small_training_csv: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    header, rows = _rows(small_training_csv)
    rows[0][header.index("seasonal_factor")] = "summer"
    err = _refused(capsys, _write(tmp_path / "txt.csv", header, rows), tmp_path / "o")
    assert "column 'seasonal_factor' has 1 non-numeric values (lines 2)" in err


def test_invalid_jsonl_rows_name_lines_and_paths(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    leads: list[Any] = generate_leads(150, seed=11)
    leads[2]["property_data"]["list_price"] = -5
    leads[7]["market_data"]["comparables"] = [{"sale_price": "lots"}]
    lines = [json.dumps(lead) for lead in leads]
    lines[10] = "{not json"
    path = tmp_path / "leads.jsonl"
    path.write_text("\n".join(lines) + "\n")
    err = _refused(capsys, path, tmp_path / "o")
    assert "Invalid JSON Lines rows (3)" in err
    assert "line 3: property_data.list_price" in err
    assert "line 8: market_data.comparables[0].sale_price" in err
    assert "line 11: not valid JSON" in err


def test_jsonl_missing_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    leads: list[Any] = generate_leads(150, seed=11)
    del leads[4]["converted"]
    path = tmp_path / "leads.jsonl"
    path.write_text("".join(json.dumps(lead) + "\n" for lead in leads))
    assert "Target column 'converted' not found" in _refused(capsys, path, tmp_path / "o")


def test_unknown_hyperparameter_is_refused(small_training_csv: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = train.main(["--input", str(small_training_csv), "--output", str(tmp_path / "o"),
                       "--hp", "n_trees=5"])
    assert code != 0
    assert "Unknown hyperparameter 'n_trees'" in capsys.readouterr().err


@pytest.mark.slow
def test_refusal_from_a_real_process(small_training_csv: Path, tmp_path: Path) -> None:
    header, rows = _rows(small_training_csv)
    path = _write(tmp_path / "few.csv", header, rows[:10])
    proc = subprocess.run(
        [sys.executable, str(REPO / "training" / "train.py"), "--input", str(path),
         "--output", str(tmp_path / "out")],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "error: Insufficient training data: 10 rows, need at least 100; export more leads "
        "whose outcome is known"
    ]


def test_output_with_foreign_files_is_refused_and_left_alone(
    small_training_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    err = _refused(capsys, small_training_csv, out)
    assert "holds other files (notes.txt)" in err
    assert (out / "notes.txt").read_text() == "mine"
