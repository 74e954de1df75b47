"""The one CSV reader on CRM exports as spreadsheets save them: every quirk reads to the same
table, the same schema and the same model inputs; what cannot be read is refused with its line
and what to do next; the retrain split keeps multi-line records whole."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from leadscore.columns.csv_reader import CsvReader, CsvRefused, sniff
from leadscore.registry.split import split_lines
from schema_infer import infer_schema, read_table
from train_custom import CustomOptions, prepare_custom
from train_data import TrainingRefused

HEADER = ["Contact Id", "First Name", "Email", "Source", "City", "Budget", "Days Since Reply",
          "Pre-approved", "Date Added", "Engagement", "Notes", "Status"]
SOURCES = ["Zillow", "Referral", "Facebook Ad", "Open House", "Website", "Google Ads"]
CITIES = ["Lisboa", "Köln", "São Paulo", "Zürich", "Montréal", "Austin"]
NOTES = ["", "", "Called twice, no answer", 'Wants a "quiet" street; 3 bed',
         "Met at open house.\nFollow up in May.", "Budget firm\r\nNeeds garage, garden; pool",
         "Line one\nLine two\nLine three, with a comma"]


def export_rows(n: int, seed: int = 7) -> list[list[str]]:
    """A contacts export with a won/lost/open status: numbers with decimals, `#N/A` in a
    number column, yes/no, dates, names and emails, multi-line notes."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        budget = rng.uniform(150_000, 900_000)
        reply = rng.choice([0, 1, 2, 3, 5, 8, 13, 21])
        pre = rng.random() < 0.4
        engagement = rng.random()
        source = rng.choice(SOURCES)
        logit = -1.6 + 1.4 * pre - 0.12 * reply + 1.5 * engagement + (source == "Referral")
        won = rng.random() < 1 / (1 + np.exp(-logit))
        status = "open" if rng.random() < 0.05 else ("won" if won else "lost")
        rows.append([
            f"c{i:05d}", rng.choice(["Ana", "Jürgen", "Zoë", "Tom", "Léa"]),
            f"lead{i}@example.com", source, rng.choice(CITIES), f"{budget:.2f}", str(reply),
            "yes" if pre else "no",
            (date(2026, 1, 1) + timedelta(days=rng.randrange(300))).isoformat(),
            "#N/A" if rng.random() < 0.08 else f"{engagement:.3f}",
            rng.choice(NOTES), status])
    return rows


def write_export(path: Path, rows: Sequence[Sequence[str]], *, delimiter: str = ",",
                 encoding: str = "utf-8", bom: bool = False, crlf: bool = False,
                 decimal_comma: bool = False, trailing_empty: bool = False) -> Path:
    out = io.StringIO()
    end = "\r\n" if crlf else "\n"

    def cell(text: str) -> str:
        if decimal_comma and text.replace(".", "", 1).replace("-", "", 1).isdigit() \
                and "." in text:
            text = text.replace(".", ",")
        if any(ch in text for ch in (delimiter, '"', "\n", "\r")):
            return '"' + text.replace('"', '""') + '"'
        return text

    for row in [HEADER, *rows]:
        cells = [cell(c) for c in row] + ([""] if trailing_empty else [])
        out.write(delimiter.join(cells) + end)
    data = out.getvalue().encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


@pytest.fixture(scope="module")
def rows() -> list[list[str]]:
    return export_rows(420)


QUIRKS = {
    "semicolon, BOM, comma decimals, CRLF, trailing empty column":
        {"delimiter": ";", "bom": True, "decimal_comma": True, "crlf": True,
         "trailing_empty": True},
    "tab, Windows-1252": {"delimiter": "\t", "encoding": "cp1252"},
    "comma, Latin-1, CRLF": {"encoding": "latin-1", "crlf": True},
    "semicolon, UTF-8 without BOM, dot decimals": {"delimiter": ";"},
}


@pytest.mark.parametrize("quirk", list(QUIRKS))
def test_every_export_quirk_reads_to_the_same_table(quirk: str, rows: list[list[str]],
                                                    tmp_path: Path) -> None:
    plain = read_table([write_export(tmp_path / "plain.csv", rows)])
    quirky = read_table([write_export(tmp_path / "quirky.csv", rows, **QUIRKS[quirk])])
    assert quirky.header == HEADER
    assert quirky.n_rows == len(rows)
    for name in HEADER:
        assert quirky.columns[name] == plain.columns[name], name
    assert "Köln" in quirky.columns["City"] and "São Paulo" in quirky.columns["City"]
    assert any("\n" in n for n in quirky.columns["Notes"])


def test_the_semicolon_comma_decimal_bom_export_trains_to_the_same_schema(
        rows: list[list[str]], tmp_path: Path) -> None:
    opts = CustomOptions(target="Status", positive=("won",), negative=("lost",),
                         as_of=date(2026, 12, 1))
    plain = prepare_custom(write_export(tmp_path / "plain.csv", rows), opts, 0.2, 42)
    quirky = prepare_custom(write_export(tmp_path / "q.csv", rows, **QUIRKS[
        "semicolon, BOM, comma decimals, CRLF, trailing empty column"]), opts, 0.2, 42)
    assert quirky.schema.to_dict() == plain.schema.to_dict()
    assert np.array_equal(quirky.dataset.X, plain.dataset.X)
    kinds = {c.name: c.kind for c in quirky.schema.columns}
    assert kinds["Budget"] == "numeric" and kinds["Engagement"] == "numeric"
    opened = sum(r[-1] == "open" for r in rows)
    assert opened > 0 and quirky.dataset.n_rows == len(rows) - opened
    assert f"left out {opened} rows whose 'Status' is unresolved" in \
        quirky.dataset.unresolved_note


def test_na_spellings_are_missing_not_categories(rows: list[list[str]], tmp_path: Path) -> None:
    """`#N/A` used to turn a number column into a category."""
    marked = [list(r) for r in rows]
    for k, r in enumerate(marked):
        if k % 9 == 0:
            r[9] = ["#N/A", "N/A", "-", "null"][k % 4]
    table = read_table([write_export(tmp_path / "na.csv", marked, delimiter=";")])
    schema = infer_schema(table, "Status", ["won"]).schema
    assert schema.column("Engagement").kind == "numeric"
    assert schema.is_missing(schema.column("Engagement"), "#N/A")


def test_comma_decimals_are_numbers_not_identifiers(rows: list[list[str]],
                                                    tmp_path: Path) -> None:
    """`1234,56` in a `;` file used to be dropped as an identifier."""
    table = read_table([write_export(tmp_path / "dc.csv", rows, delimiter=";",
                                     decimal_comma=True)])
    inferred = infer_schema(table, "Status", ["won"])
    assert "Budget" not in inferred.dropped
    assert inferred.schema.column("Budget").kind == "numeric"
    assert table.columns["Budget"][0] == rows[0][5]


def test_sniff_names_what_it_found() -> None:
    head = "\ufeffa;b;c\r\n1,5;2;x\r\n2,25;3;y\r\n".encode()
    dialect = sniff(head)
    assert (dialect.delimiter, dialect.encoding, dialect.decimal_comma) == (";", "utf-8", True)
    assert sniff(b"a,b\n1.5,x\n").delimiter == ","
    assert sniff("a\tb\n1\tM\xfcller\n".encode("cp1252")).encoding == "cp1252"


def test_a_2000_record_export_with_multiline_notes_splits_into_2000_rows() -> None:
    """The split used to cut at physical line breaks: quoted notes became extra rows."""
    data = export_rows(2000, seed=3)
    assert sum("\n" in r[10] for r in data) > 300
    buf = io.BytesIO()
    path_text = io.StringIO()
    for row in [HEADER, *data]:
        path_text.write(",".join('"' + c.replace('"', '""') + '"' if any(
            ch in c for ch in ',"\n\r') else c for c in row) + "\r\n")
    buf.write(path_text.getvalue().encode())
    lines = buf.getvalue().splitlines(keepends=True)
    assert len(lines) > 2400  # many more physical lines than records
    train, gate = io.BytesIO(), io.BytesIO()
    result = split_lines(iter(lines), csv_format=True, write_train=train.write,
                         write_gate=gate.write, target="Status", positive=("won",),
                         negative=("lost",))
    assert result.train.rows + result.gate.rows == 2000
    assert 300 < result.gate.rows < 500
    opened = sum(r[-1] == "open" for r in data)
    assert result.train.unlabelled + result.gate.unlabelled == opened
    won = sum(r[-1] == "won" for r in data)
    assert result.train.converted + result.gate.converted == won
    notes: list[str] = []
    for part, n in ((train, result.train.rows), (gate, result.gate.rows)):
        reader = CsvReader(io.BytesIO(part.getvalue()), "part")
        records = list(reader.records())
        assert reader.header == HEADER and len(records) == n
        notes += [r.cells[10] for r in records]
    assert sorted(notes) == sorted(r[10] for r in data)


@pytest.mark.parametrize(("text", "line", "hint"), [
    ('a,b,c\n1,2,3\n4,"oops,6\n7,8,9\n', 3, "never closes"),
    ("a,b,c\n1,2,3\n4,5\n7,8,9\n", 3, "must be quoted"),
    ("a,b,c\n1,2,3\n4,5,6,7\n", 3, "must be quoted"),
    ("a,,c\n1,2,3\n", 1, "has no name"),
])
def test_refusals_name_the_line_and_what_to_do(text: str, line: int, hint: str) -> None:
    with pytest.raises(CsvRefused) as caught:
        reader = CsvReader(io.BytesIO(text.encode()), "leads.csv")
        list(reader.records())
    message = str(caught.value)
    assert f"line {line}" in message and hint in message
    assert "fix" in message or "give it a name" in message
    assert "\n" not in message


def test_utf16_is_refused_with_what_to_do() -> None:
    with pytest.raises(CsvRefused, match=r"UTF-16.*save it again as CSV UTF-8"):
        CsvReader(io.BytesIO("a,b\n1,2\n".encode("utf-16")), "leads.csv")


def test_the_split_refuses_a_quote_that_never_closes_with_its_line() -> None:
    lines = [b"age,output\n", b"31,yes\n", b'40,"no\n', b"41,no\n"]
    with pytest.raises(CsvRefused, match="line 3"):
        split_lines(lines, csv_format=True, write_train=io.BytesIO().write,
                    write_gate=io.BytesIO().write, target="output")


def test_training_refuses_ragged_lines_listing_them(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a;b;y\n1;2;yes\n1;2\n3;4;no\n5\n")
    with pytest.raises(TrainingRefused, match=r"2 lines do not have 3 fields \(lines 3, 5\)"
                       r".*must be quoted"):
        read_table([path])


def test_the_gate_reads_a_semicolon_part_like_training(rows: list[list[str]],
                                                       tmp_path: Path) -> None:
    """The split writes the upload's own bytes; the gate used to read them comma-only."""
    import json

    from leadscore.bundle import SCHEMA_FILE
    from leadscore.features import FEATURE_NAMES
    from leadscore.registry.gate import read_rows, read_rows_for_bundle

    opts = CustomOptions(target="Status", positive=("won",), negative=("lost",),
                         as_of=date(2026, 12, 1))
    plain_path = write_export(tmp_path / "plain.csv", rows)
    fitted = prepare_custom(plain_path, opts, 0.2, 42).schema
    (tmp_path / SCHEMA_FILE).write_text(json.dumps(fitted.to_dict()))
    quirky_path = write_export(tmp_path / "q.csv", rows, **QUIRKS[
        "semicolon, BOM, comma decimals, CRLF, trailing empty column"])
    plain, bad_plain = read_rows_for_bundle(plain_path.read_bytes(), jsonl=False,
                                            bundle_dir=tmp_path, source="plain")
    quirky, bad_quirky = read_rows_for_bundle(quirky_path.read_bytes(), jsonl=False,
                                              bundle_dir=tmp_path, source="quirky")
    opened = sum(r[-1] == "open" for r in rows)
    assert bad_quirky == bad_plain == opened
    assert quirky.records == plain.records and np.array_equal(quirky.y, plain.y)
    assert np.array_equal(fitted.encode_rows(list(quirky.records)),
                          fitted.encode_rows(list(plain.records)))

    header = ";".join([*FEATURE_NAMES, "converted"])
    line = ";".join(["1,5"] * len(FEATURE_NAMES) + ["1"])
    got, bad = read_rows(f"\ufeff{header}\r\n{line}\r\n{line}\r\n".encode(), jsonl=False,
                         source="t")
    assert bad == 0 and got.n == 2 and got.records[0][FEATURE_NAMES[0]] == "1.5"


def test_the_split_streams_record_by_record() -> None:
    """Only the sniffing head is read ahead: the first rows are written long before the end
    (the retrain function has little memory and disk for a large upload)."""
    consumed = 0
    at_first_row: list[int] = []

    def lines() -> Iterator[bytes]:
        nonlocal consumed
        yield b"age;notes;output\r\n"
        for i in range(100_000):
            consumed += 1
            yield f'{20 + i % 50};"call {i}\r\n'.encode()  # a note over two physical lines
            yield f'back";{"yes" if i % 7 == 0 else "no"}\r\n'.encode()

    def write(row: bytes) -> None:
        if row != b"age;notes;output\n" and not at_first_row:
            at_first_row.append(consumed)

    result = split_lines(lines(), csv_format=True, write_train=write, write_gate=write,
                         target="output")
    assert result.train.rows + result.gate.rows == 100_000
    assert at_first_row and at_first_row[0] < 5_000
