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
- fewer than 100 rows, a missing or non-binary target, fewer than MIN_CONVERSIONS (120)
  conversions or non-conversions (a count, whatever the rate: 2 % of 10,000 leads is plenty),
  NaN or Infinity (column and row count named), text where a number belongs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
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


def _parse_target(values: Sequence[Any], where: Sequence[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=np.int64)
    bad: list[str] = []
    for i, raw in enumerate(values):
        v: float
        if isinstance(raw, bool | int | float):
            v = float(raw)
        elif isinstance(raw, str):
            try:
                v = float(raw.strip())
            except ValueError:
                v = math.nan
        else:
            v = math.nan
        if v == 0.0 or v == 1.0:
            out[i] = int(v)
        else:
            bad.append(where[i])
    if bad:
        raise TrainingRefused(
            f"Target column '{TARGET}' must be binary (0 or 1): {len(bad)} rows are not "
            f"({_listing(bad)})"
        )
    return out


def check_dataset(ds: Dataset) -> Dataset:
    """Row count and class balance; shared by both input formats."""
    if ds.n_rows < MIN_ROWS:
        raise TrainingRefused(
            f"Insufficient training data: {ds.n_rows} rows, need at least {MIN_ROWS}"
        )
    converted = int(ds.y.sum())
    if min(converted, ds.n_rows - converted) < MIN_CONVERSIONS:
        raise TrainingRefused(
            f"Too few of one outcome: {converted} conversions and {ds.n_rows - converted} "
            f"non-conversions in {ds.n_rows} rows; need at least {MIN_CONVERSIONS} of each "
            f"(conversion rate {ds.conversion_rate:.1%})"
        )
    return ds


# --------------------------------------------------------------------------- CSV


def read_csv_text(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header (stripped names) and the non-blank rows of a CSV file, as text cells."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise TrainingRefused(f"{path.name} is empty") from None
        rows = [r for r in reader if any(cell.strip() for cell in r)]
    return header, rows


def load_csv(paths: Sequence[Path]) -> Dataset:
    features: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    truths: list[np.ndarray] = []
    has_truth = True
    for path in paths:
        header, rows = read_csv_text(path)
        if TARGET not in header:
            raise TrainingRefused(f"Target column '{TARGET}' not found")
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
        short = [i + 2 for i, r in enumerate(rows) if len(r) != len(header)]
        if short:
            raise TrainingRefused(
                f"{path.name}: {len(short)} lines do not have {len(header)} fields "
                f"(lines {_listing([str(n) for n in short])})"
            )
        index = {h: i for i, h in enumerate(header)}
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
                                f"(lines {_listing([str(i + 2) for i in bad])})")
                continue
            n_bad = int((~np.isfinite(matrix[:, j])).sum())
            if n_bad:
                problems.append(f"column '{col}' has NaN/Infinity in {n_bad} rows")
        if problems:
            raise TrainingRefused(f"{path.name}: " + "; ".join(problems))
        where = [f"line {i + 2}" for i in range(len(rows))]
        targets.append(_parse_target([r[index[TARGET]] for r in rows], where))
        features.append(matrix[:, : len(FEATURE_NAMES)])
        if TRUE_PROBABILITY in index:
            truths.append(matrix[:, len(FEATURE_NAMES)])
        else:
            has_truth = False
    X = np.vstack(features) if features else np.empty((0, len(FEATURE_NAMES)))
    y = np.concatenate(targets) if targets else np.empty(0, dtype=np.int64)
    tp = np.concatenate(truths) if has_truth and truths else None
    return check_dataset(Dataset(X, y, tp, tuple(p.name for p in paths), "csv"))


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
    where: list[str] = []
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
                where.append(label)
    if problems:
        raise TrainingRefused(
            f"Invalid JSON Lines rows ({len(problems)}): {_listing(problems)}"
        )
    X = np.vstack(features) if features else np.empty((0, len(FEATURE_NAMES)))
    y = _parse_target(targets, where)
    tp_arr = np.asarray(truths, dtype=np.float64) if has_truth and truths else None
    return check_dataset(Dataset(X, y, tp_arr, tuple(p.name for p in paths), "jsonl"))


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
