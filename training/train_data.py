"""Training input: read the 20-feature CSV or raw JSON Lines leads, refuse bad data clearly.

Every refusal is a `TrainingRefused` with a one-line message (train.py prints it and exits
non-zero; in SageMaker mode it also becomes /opt/ml/output/failure). The rules
(docs/RETRAINING.md):

- CSV: exactly the 20 docs/FEATURES.md columns + `converted`; `true_probability` (used only for
  reporting, never given to the model) and `contact_id` are allowed; anything else is an
  extra column and refused by name, as are missing feature columns.
- JSON Lines: one scoring request per line: either the sections at the top level
  (`property_data`, `market_data`, ...) or under `features`, plus `converted`; optional
  `contact_id` and `true_probability`. Every line goes through
  `leadscore.features.extract_features`; all invalid lines are reported with their line
  numbers and field paths.
- fewer than 100 rows, a missing target column, fewer than MIN_CONVERSIONS (120)
  conversions or non-conversions (a count, whatever the rate: 2 % of 10,000 leads is plenty),
  NaN or Infinity (column and row count named), text where a number belongs.

CSV files are read by the one CSV reader (`leadscore.columns.csv_reader`: separator and
encoding sniffed, whole multi-line records) and targets by the one label parser
(`leadscore.columns.labels`): rows whose target is unresolved (empty, ``open``, ...) are left
out, counted, and said in the job's output (`Dataset.unresolved_note`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import train_progress as progress
from leadscore.columns.csv_reader import SAVE_AS, WIDTH_HINT, CsvReader, CsvRefused, Record
from leadscore.columns.labels import DEFAULT_RULE, LabelRule
from leadscore.errors import InvalidInput
from leadscore.features import FEATURE_NAMES, extract_features
from leadscore.settings import MIN_CONVERSIONS

TARGET = "converted"
TRUE_PROBABILITY = "true_probability"
CONTACT_ID = "contact_id"
ALLOWED_EXTRA = (TRUE_PROBABILITY, CONTACT_ID)
MIN_ROWS = 100
SECTIONS = ("property_data", "market_data", "psychology_profile", "conversation_data")
INPUT_SUFFIXES = (".csv", ".jsonl")
MAX_LISTED = 10  # how many bad lines/rows a one-line message names before "and N more"


class TrainingRefused(ValueError):
    """The input cannot be trained on; the message is one line, meant for a person."""


@dataclass(frozen=True)
class Dataset:
    """Rows ready for training. `true_probability` is for reporting only."""

    X: np.ndarray  # float64 [n, 20], docs/FEATURES.md order
    y: np.ndarray  # int64 [n], 0/1
    true_probability: np.ndarray | None  # float64 [n] or None
    sources: tuple[str, ...]
    input_format: str  # "csv" or "jsonl"
    unresolved_note: str = ""  # rows left out because their target is unresolved

    @property
    def n_rows(self) -> int:
        return int(self.y.shape[0])

    @property
    def conversion_rate(self) -> float:
        return float(self.y.mean()) if self.n_rows else 0.0

    def fingerprint(self) -> str:
        """sha256 of the rows the model sees (features as float64 + target), in input order."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.X, dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(self.y, dtype="<i8").tobytes())
        return h.hexdigest()


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    more = len(items) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class Labels:
    """The target as the one label parser reads it: 0/1 for resolved rows, which rows those
    are, and the unresolved values (left out of training) with their counts."""

    y: np.ndarray  # int64 [resolved rows]
    keep: np.ndarray  # bool [all rows]
    unresolved: dict[str, int]

    @property
    def n_unresolved(self) -> int:
        return int(sum(self.unresolved.values()))


def parse_target(values: Sequence[Any], rule: LabelRule = DEFAULT_RULE) -> Labels:
    """Every row's label; unresolved rows (empty, ``open``, ...) are left out and counted."""
    labels = [rule.label(v) for v in values]
    keep = np.asarray([v is not None for v in labels], dtype=bool)
    y = np.asarray([v for v in labels if v is not None], dtype=np.int64)
    unresolved = Counter("" if v is None else str(v).strip() for v, lab
                         in zip(values, labels, strict=True) if lab is None)
    return Labels(y, keep, dict(unresolved.most_common()))


def unresolved_note(target: str, labels: Labels, rule: LabelRule = DEFAULT_RULE) -> str:
    """One sentence for the job's output and report ('' when every row is resolved)."""
    if not labels.n_unresolved:
        return ""
    shown = ", ".join(f"{v or 'empty'!s} x{k}" for v, k in list(labels.unresolved.items())[:5])
    more = " ..." if len(labels.unresolved) > 5 else ""
    return (f"left out {labels.n_unresolved} rows whose '{target}' is unresolved "
            f"({shown}{more}); {rule.describe()}")


def check_dataset(ds: Dataset) -> Dataset:
    """Row count and class balance; shared by both input formats."""
    if ds.n_rows < MIN_ROWS:
        left_out = f" ({ds.unresolved_note})" if ds.unresolved_note else ""
        raise TrainingRefused(
            f"Insufficient training data: {ds.n_rows} rows, need at least {MIN_ROWS}{left_out}"
            "; export more leads whose outcome is known"
        )
    converted = int(ds.y.sum())
    if min(converted, ds.n_rows - converted) < MIN_CONVERSIONS:
        raise TrainingRefused(
            f"Too few of one outcome: {converted} conversions and {ds.n_rows - converted} "
            f"non-conversions in {ds.n_rows} rows; need at least {MIN_CONVERSIONS} of each "
            f"(conversion rate {ds.conversion_rate:.1%}); check which target values mean "
            "converted (--positive / --negative) or add leads of the rarer outcome"
        )
    return ds


# --------------------------------------------------------------------------- CSV


def read_csv_records(path: Path) -> tuple[list[str], list[Record]]:
    """Header and data records of a CSV through the one CSV reader (sniffed separator and
    encoding, whole multi-line records); its refusals become one-line `TrainingRefused`."""
    try:
        with path.open("rb") as handle:
            reader = CsvReader(handle, path.name)
            records: list[Record] = []
            for record in reader.records(check_width=False):
                # the raw bytes are for the split's hashing; training keeps only the cells
                records.append(Record(record.line, b"", record.cells))
                if len(records) % progress.ROWS_EVERY == 0:
                    progress.say(f"reading {path.name}: {len(records):,} rows so far "
                                 f"({reader.dialect.describe()})")
        progress.say(f"read {len(records):,} rows of {path.name} ({reader.dialect.describe()})")
        return reader.header, records
    except CsvRefused as exc:
        raise TrainingRefused(str(exc)) from None


def check_widths(path: Path, header: Sequence[str], records: Sequence[Record]) -> None:
    bad = [str(r.line) for r in records if len(r.cells) != len(header)]
    if bad:
        raise TrainingRefused(
            f"{path.name}: {len(bad)} lines do not have {len(header)} fields "
            f"(lines {_listing(bad)}); {WIDTH_HINT}: fix those lines, or {SAVE_AS}")


def read_csv_text(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header (stripped names) and the non-blank rows of a CSV file, as text cells."""
    header, records = read_csv_records(path)
    return header, [r.cells for r in records]


def load_csv(paths: Sequence[Path]) -> Dataset:
    features: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    truths: list[np.ndarray] = []
    notes: list[str] = []
    has_truth = True
    for path in paths:
        header, records = read_csv_records(path)
        rows = [r.cells for r in records]
        if TARGET not in header:
            raise TrainingRefused(f"Target column '{TARGET}' not found; the real-estate "
                                  "contract needs it (for your own columns: --target COLUMN)")
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise TrainingRefused(f"Duplicate columns: {_listing(dupes)}")
        missing = [f for f in FEATURE_NAMES if f not in header]
        extra = [h for h in header if h not in FEATURE_NAMES and h != TARGET
                 and h not in ALLOWED_EXTRA]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing feature columns: {_listing(missing)}")
            if extra:
                parts.append(f"unexpected columns: {_listing(extra)}")
            raise TrainingRefused("; ".join(parts).capitalize())
        check_widths(path, header, records)
        index = {h: i for i, h in enumerate(header)}
        labels = parse_target([r[index[TARGET]] for r in rows])
        notes.append(unresolved_note(TARGET, labels))
        rows = [r for r, k in zip(rows, labels.keep, strict=True) if k]
        lines = [rec.line for rec, k in zip(records, labels.keep, strict=True) if k]
        numeric_cols = [*FEATURE_NAMES] + ([TRUE_PROBABILITY] if TRUE_PROBABILITY in index
                                           else [])
        matrix = np.empty((len(rows), len(numeric_cols)), dtype=np.float64)
        problems: list[str] = []
        for j, col in enumerate(numeric_cols):
            cells = [r[index[col]].strip() for r in rows]
            try:
                matrix[:, j] = np.asarray(cells, dtype=np.float64) if cells else []
            except ValueError:
                bad = [i for i, c in enumerate(cells) if not _is_float(c)]
                problems.append(f"column '{col}' has {len(bad)} non-numeric values "
                                f"(lines {_listing([str(lines[i]) for i in bad])})")
                continue
            n_bad = int((~np.isfinite(matrix[:, j])).sum())
            if n_bad:
                problems.append(f"column '{col}' has NaN/Infinity in {n_bad} rows")
        if problems:
            raise TrainingRefused(f"{path.name}: " + "; ".join(problems))
        targets.append(labels.y)
        features.append(matrix[:, : len(FEATURE_NAMES)])
        if TRUE_PROBABILITY in index:
            truths.append(matrix[:, len(FEATURE_NAMES)])
        else:
            has_truth = False
    X = np.vstack(features) if features else np.empty((0, len(FEATURE_NAMES)))
    y = np.concatenate(targets) if targets else np.empty(0, dtype=np.int64)
    tp = np.concatenate(truths) if has_truth and truths else None
    return check_dataset(Dataset(X, y, tp, tuple(p.name for p in paths), "csv",
                                 "; ".join(n for n in notes if n)))


def _is_float(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- JSON Lines


def request_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The raw `features` object of one JSON Lines record."""
    nested = obj.get("features")
    if isinstance(nested, Mapping):
        return nested
    return {k: v for k, v in obj.items() if k in SECTIONS}


def load_jsonl(paths: Sequence[Path]) -> Dataset:
    features: list[np.ndarray] = []
    targets: list[Any] = []
    truths: list[float] = []
    has_truth = True
    problems: list[str] = []
    multi = len(paths) > 1
    for path in paths:
        with path.open(encoding="utf-8-sig") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                label = f"{path.name}:{lineno}" if multi else f"line {lineno}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    problems.append(f"{label}: not valid JSON")
                    continue
                if not isinstance(obj, dict):
                    problems.append(f"{label}: not a JSON object")
                    continue
                if TARGET not in obj:
                    raise TrainingRefused(f"Target column '{TARGET}' not found ({label})")
                try:
                    extracted = extract_features(request_of(obj))
                except InvalidInput as exc:
                    problems.append(f"{label}: {', '.join(exc.paths)}")
                    continue
                tp = obj.get(TRUE_PROBABILITY)
                if isinstance(tp, int | float) and not isinstance(tp, bool) and math.isfinite(tp):
                    truths.append(float(tp))
                else:
                    has_truth = False
                features.append(np.asarray(extracted.values, dtype=np.float64))
                targets.append(obj[TARGET])
    if problems:
        raise TrainingRefused(
            f"Invalid JSON Lines rows ({len(problems)}): {_listing(problems)}"
        )
    labels = parse_target(targets)
    X = (np.vstack(features)[labels.keep] if features
         else np.empty((0, len(FEATURE_NAMES))))
    y = labels.y
    tp_arr = (np.asarray(truths, dtype=np.float64)[labels.keep] if has_truth and truths
              else None)
    return check_dataset(Dataset(X, y, tp_arr, tuple(p.name for p in paths), "jsonl",
                                 unresolved_note(TARGET, labels)))


# --------------------------------------------------------------------------- entry


def input_files(path: Path) -> list[Path]:
    """A file, or the .csv/.jsonl files of a directory (a SageMaker channel), sorted."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES)
        if not files:
            raise TrainingRefused(f"No .csv or .jsonl training file in {path}")
        return files
    if not path.is_file():
        raise TrainingRefused(f"Training input {path} not found")
    return [path]


def load_dataset(path: Path) -> Dataset:
    files = input_files(path)
    kinds = {p.suffix.lower() for p in files}
    if len(kinds) > 1:
        raise TrainingRefused("Mixed .csv and .jsonl training files; use one format")
    kind = kinds.pop()
    if kind == ".jsonl":
        return load_jsonl(files)
    if kind == ".csv":
        return load_csv(files)
    raise TrainingRefused(f"Unsupported training file {files[0].name}: use .csv or .jsonl")
