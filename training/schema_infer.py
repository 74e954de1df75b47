"""From a plain export to a fitted column schema: read, infer, fit, guard against leaks.

Training side only (numpy; no pandas). Every refusal is a one-line ``TrainingRefused``.

Inference (``infer_schema``), per column of the file other than the target:

- *missing*: the schema's missing tokens (``""``, ``unknown``, ``select``, ...) and, for a
  numeric column, a **sentinel**: one of 999, 9999, 99999, -1, -999, -9999 that is the
  column's maximum (or minimum), appears in at least 1 % of the rows and lies more than twice
  as far out as any other value (``pdays = 999`` meaning "never contacted").
- *dropped*: constant columns (at most one distinct value), identifiers (a name such as
  ``id``, ``*_id``, ``email``, ``phone``, ``name``; or a text column whose values are
  nearly all distinct) and free text (a text column with more than 50 distinct values
  averaging over 30 characters). Each drop is named with its reason.
- *kinds*: boolean (only yes/no, true/false, y/n, t/f after missing tokens), date (every
  value an ISO date or date-time), numeric (every value a number, 0/1 included: a column seen
  only as 0 and 1 is often a count that has not yet reached 2, and a boolean kind would refuse
  the 2 when a retraining reuses the schema), else categorical.
- *high-cardinality categories*: levels seen in fewer than ``max(20, 0.5 %)`` training rows,
  or beyond the 30 most frequent, are bucketed into ``other`` (``fit_schema``).

Leak guard (``leak_scores`` / ``guard_leaks``): each column's own held-out AUC, measured
with a one-column model fitted on an inner split of the *training* rows only (the job's
held-out split is never used for a decision): the positive rate per level (categorical,
boolean, missing) or per quantile bin (numeric, date: 20 bins on the inner training part)
scores the inner held-out part. A column is a leak when that AUC is >= 0.90, or when it is
>= 0.75 and its lift over chance (AUC - 0.5) is at least 1.5 times the next best column's:
a field that alone nearly decides the outcome is usually written after it (a call's
duration, a "closed" stage). Leaks are excluded unless the job is told ``--keep COLUMN``.

Partial leaks hide below that bar (a field filled in for some leads only after they
converted: its own AUC can be 0.65), so three more checks run on the training rows
(``suspect_columns``), each flagged column excluded the same way unless ``--keep``:

- *outcome-pure values* (``pure_values``): a value, a value range (one of 20 quantile bins) or
  the mere presence of a value, held by at least max(20, 1 %) of the rows, under which the
  rarer outcome happens in >= 95 % of them. An honest field shifts the odds; a field only
  converted leads carry was written after the outcome.
- *drop-column test* (``drop_column_losses``): a small LightGBM on every column, fitted on the
  inner split, loses this much AUC on the inner held-out part without the column. A column
  is flagged when it is worth >= 0.10 AUC and at least 3 times the runner-up column: any
  honest column is the yardstick, and a field worth far more than every other one is usually
  the outcome itself in another form. The absolute size is what keeps the rule honest on weak
  data: where every column is worth little, a legitimate field known before the outcome (the
  month a bank called, worth 0.06 AUC against 0.02 for the next column) dominates by ratio
  alone; the outcome in another form takes the model much further (a call's duration is
  caught earlier still, by its own AUC).
- *identifier-like numbers* (``identifier_like``): whole numbers with >= 95 % distinct
  values (ids, row numbers read as numbers) or numbers that rise or fall with the row order
  (rank correlation >= 0.98: a row number, an id or a timestamp handed out in order; the
  file's order says when a lead was exported, not whether it converts).

What the flagged columns were worth is reported: the held-out AUC of the same small LightGBM
with and without them (train_custom).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from leadscore.columns.labels import LabelRule
from leadscore.columns.schema import (
    DEFAULT_MISSING_TOKENS,
    EXPORT_TIME_COLUMN,
    FALSE_TOKENS,
    PROVENANCE_REASON,
    TRUE_TOKENS,
    ColumnSpec,
    Schema,
    SchemaError,
    _number,
    parse_date,
)
from leadscore.errors import InvalidInput
from scipy.stats import rankdata
from train_data import (
    MAX_LISTED,
    TrainingRefused,
    check_widths,
    parse_target,
    read_csv_records,
    unresolved_note,
)

SENTINELS = (999.0, 9999.0, 99999.0, -1.0, -999.0, -9999.0)
SENTINEL_MIN_SHARE = 0.01
MIN_LEVEL_ROWS = 20
MIN_LEVEL_SHARE = 0.005
MAX_LEVELS = 30
ID_NAME = re.compile(r"(^|_)(id|uuid|guid|email|e-mail|phone|mobile|name|first_?name|"
                     r"last_?name|full_?name|address)$|^(id|contactid|contact_id)$", re.I)
ID_DISTINCT_SHARE = 0.9
FREE_TEXT_MIN_DISTINCT = 50
FREE_TEXT_MIN_LENGTH = 30
LEAK_AUC = 0.90
LEAK_MIN_AUC = 0.75
LEAK_LIFT_RATIO = 1.5
LEAK_BINS = 20
LEAK_INNER_SHARE = 0.25
PURE_RATE = 0.95
PURE_MIN_ROWS = 20
PURE_MIN_SHARE = 0.01
DROP_MIN_LOSS = 0.02
DROP_LEAK_LOSS = 0.10  # the absolute size a dominant column must also have (module docstring)
DROP_RATIO = 3.0
DROP_MAX_ROWS = 50_000
ID_NUMBER_DISTINCT = 0.95
ROW_ORDER_RHO = 0.98
ID_MIN_ROWS = 20
ID_FLATNESS = 0.1


@dataclass(frozen=True)
class Table:
    """A CSV as text cells, column by column."""

    header: list[str]
    columns: dict[str, list[str]]
    source: str

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def rows(self, names: Sequence[str], index: Sequence[int] | np.ndarray
             ) -> list[dict[str, str]]:
        cols = [(n, self.columns[n]) for n in names]
        return [{n: c[int(i)] for n, c in cols} for i in index]


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    more = len(items) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def read_table(paths: Sequence[Path]) -> Table:
    """Read one or more CSV files with the same header as text cells (the one CSV reader:
    separator and encoding sniffed, trailing empty columns dropped, comma decimals read)."""
    header: list[str] | None = None
    columns: dict[str, list[str]] = {}
    for path in paths:
        if path.suffix.lower() != ".csv":
            raise TrainingRefused(f"A custom schema trains from .csv files, got {path.name}")
        head, records = read_csv_records(path)
        dupes = sorted({h for h in head if head.count(h) > 1})
        if dupes:
            raise TrainingRefused(f"{path.name}: duplicate columns: {_listing(dupes)}; "
                                  "rename one of each in the header line")
        if header is None:
            header = head
            columns = {h: [] for h in head}
        elif head != header:
            raise TrainingRefused(f"{path.name} has other columns than {paths[0].name}; "
                                  "export every file with the same columns")
        check_widths(path, head, records)
        for record in records:
            for h, cell in zip(head, record.cells, strict=True):
                columns[h].append(cell)
    assert header is not None
    return Table(header, columns, ", ".join(p.name for p in paths))


# --------------------------------------------------------------------------- target


def drop_unresolved(table: Table, target: str, positive: Sequence[str],
                    negative: Sequence[str] = ()) -> tuple[Table, str]:
    """The table without the rows whose target is unresolved (the one label parser), and a
    sentence saying how many were left out ('' when none)."""
    if target not in table.columns:
        raise TrainingRefused(f"Target column '{target}' not found; the file has: "
                              f"{_listing(table.header)}")
    rule = LabelRule.of(positive, negative)
    labels = parse_target(table.columns[target], rule)
    if not labels.n_unresolved:
        return table, ""
    if not positive and not labels.y.size:
        seen = sorted({c.strip().lower() for c in table.columns[target]})
        raise TrainingRefused(f"Say which values of '{target}' mean converted "
                              f"(--positive VALUE, and --negative VALUE for the ones that do "
                              f"not); values seen: {_listing(seen)}")
    keep = np.flatnonzero(labels.keep)
    columns = {h: [c[int(i)] for i in keep] for h, c in table.columns.items()}
    return Table(table.header, columns, table.source), unresolved_note(target, labels, rule)


def target_vector(table: Table, target: str, positive: Sequence[str],
                  negative: Sequence[str] = ()) -> tuple[np.ndarray, tuple[str, ...]]:
    """y (0/1) and the positive values used, by the one label parser. Refuses unknown
    targets, unresolved rows (``drop_unresolved`` leaves them out first), no positives."""
    if target not in table.columns:
        raise TrainingRefused(f"Target column '{target}' not found; the file has: "
                              f"{_listing(table.header)}")
    cells = [c.strip() for c in table.columns[target]]
    seen = Counter(c.lower() for c in cells)
    rule = LabelRule.of(positive, negative)
    labels = parse_target(cells, rule)
    if labels.n_unresolved:
        if not positive:
            raise TrainingRefused(f"Say which values of '{target}' mean converted "
                                  f"(--positive VALUE); values seen: {_listing(sorted(seen))}")
        blank = [str(i + 2) for i, k in enumerate(labels.keep) if not k]
        raise TrainingRefused(f"Target column '{target}' is unresolved in {len(blank)} rows "
                              f"(lines {_listing(blank)}); {rule.describe()}")
    y = labels.y
    wanted = rule.positive or ("1", "true", "yes")
    if not y.any():
        raise TrainingRefused(f"No positive rows: no value of '{target}' is "
                              f"{' or '.join(wanted)}; values seen: "
                              f"{_listing(sorted(seen))}; name the converted value with "
                              "--positive VALUE")
    if y.all():
        raise TrainingRefused(f"Every row of '{target}' is positive ({' or '.join(wanted)})"
                              "; the model needs both outcomes")
    return y, rule.positive


# --------------------------------------------------------------------------- inference


@dataclass(frozen=True)
class Inferred:
    schema: Schema
    dropped: dict[str, str]  # column -> reason (identifier, free text, constant, excluded)


def _sentinel(numbers: list[float]) -> float | None:
    if not numbers:
        return None
    arr = np.asarray(numbers)
    for s in SENTINELS:
        share = float(np.mean(arr == s))
        if share < SENTINEL_MIN_SHARE or share == 1.0:
            continue
        rest = arr[arr != s]
        lo, hi = float(rest.min()), float(rest.max())
        span = max(hi - lo, 1.0)
        if s > hi and s - hi > 2 * span:
            return s
        if s < lo and lo - s > 2 * span and s < 0:
            return s
    return None


def column_kind(values: list[str]) -> tuple[str, list[str]]:
    """The kind of the non-missing values and the column's extra missing tokens."""
    lowered = {v.strip().lower() for v in values}
    if lowered and lowered <= (TRUE_TOKENS | FALSE_TOKENS) and lowered & TRUE_TOKENS \
            and lowered & FALSE_TOKENS and not lowered <= {"1", "0"}:
        return "boolean", []
    numbers = [_number(v) for v in values]
    if values and all(n is not None for n in numbers):
        sentinel = _sentinel([float(n) for n in numbers if n is not None])
        extra = [f"{sentinel:g}"] if sentinel is not None else []
        return "numeric", extra
    if values and all(parse_date(v) is not None for v in values):
        return "date", []
    return "categorical", []


def infer_schema(table: Table, target: str, positive: Sequence[str],
                 exclude: Sequence[str] = ()) -> Inferred:
    """Infer a schema from the file (kinds, missing tokens, what to drop)."""
    tokens = set(DEFAULT_MISSING_TOKENS)
    unknown = [e for e in exclude if e not in table.columns]
    if unknown:
        raise TrainingRefused(f"--exclude names columns not in the file: {_listing(unknown)}")
    dropped: dict[str, str] = {e: "excluded by --exclude" for e in exclude}
    columns: list[ColumnSpec] = []
    n = table.n_rows
    for name in table.header:
        if name == target or name in dropped:
            continue
        if name == EXPORT_TIME_COLUMN:
            dropped[name] = PROVENANCE_REASON
            continue
        present = [v.strip() for v in table.columns[name] if v.strip().lower() not in tokens]
        distinct = Counter(present)
        if len(distinct) <= 1:
            dropped[name] = "constant (at most one distinct value)"
            continue
        if ID_NAME.search(name):
            dropped[name] = "identifier (by its name)"
            continue
        kind, extra = column_kind(list(distinct))
        if kind == "categorical":
            share = len(distinct) / max(len(present), 1)
            mean_len = sum(len(v) * k for v, k in distinct.items()) / max(len(present), 1)
            if share >= ID_DISTINCT_SHARE and len(present) >= 20:
                dropped[name] = f"identifier ({share:.0%} of its values are distinct)"
                continue
            if len(distinct) > FREE_TEXT_MIN_DISTINCT and mean_len > FREE_TEXT_MIN_LENGTH:
                dropped[name] = (f"free text ({len(distinct)} distinct values, "
                                 f"{mean_len:.0f} characters on average)")
                continue
        if kind == "numeric" and len(distinct) == n and n >= 20:
            numbers = sorted(float(_number(v) or 0) for v in distinct)
            if all(x.is_integer() for x in numbers) and numbers[-1] - numbers[0] == n - 1:
                dropped[name] = "identifier (a running number)"
                continue
        columns.append(ColumnSpec(name=name, kind=kind, missing=tuple(extra)))
    if not columns:
        raise TrainingRefused("No usable column left after dropping identifiers, free text "
                              "and constant columns")
    schema = Schema(columns=tuple(columns), target=target, positive=tuple(positive),
                    exclude=dict(dropped))
    return Inferred(schema, dropped)


def check_schema_against(schema: Schema, table: Table) -> None:
    """A hand-written schema must name columns of the file (one-line refusal otherwise)."""
    absent = [c.name for c in schema.columns if c.name not in table.columns]
    if absent:
        raise TrainingRefused(f"The schema does not match the file: columns not in "
                              f"{table.source}: {_listing(absent)}")


# --------------------------------------------------------------------------- fitting


def row_days(table: Table) -> list[date | None] | None:
    """Each row's own reference day for its dates, when the file is the loop's labelled export:
    the day it was scored (``scored_at``). Serving aged the lead's dates from that day when it
    scored it; measured from the day of the retraining instead, a lead scored weeks earlier
    would look weeks older in training than any lead ever looks when served. None for any
    other file (its dates are aged from the schema's ``as_of``)."""
    cells = table.columns.get(EXPORT_TIME_COLUMN)
    return None if cells is None else [parse_date(c) for c in cells]


def read_column(schema: Schema, col: ColumnSpec, cells: Sequence[str], rows: np.ndarray,
                days: Sequence[date | None] | None = None
                ) -> tuple[list[float | str | None], list[str]]:
    """The column's values as read for `rows` and the file lines that do not fit its kind.
    Each distinct cell is read once (per reference day, for a date: `row_days`)."""
    memo: dict[tuple[str, date | None], tuple[float | str | None, str | None]] = {}
    values: list[float | str | None] = []
    bad: list[str] = []
    dated = col.kind == "date" and days is not None
    for i in rows:
        cell = cells[int(i)]
        day = days[int(i)] if dated and days is not None else None
        got = memo.get((cell, day))
        if got is None:
            got = memo[(cell, day)] = schema.read_value(col, cell, day)
        if got[1] is not None:
            bad.append(str(int(i) + 2))
        values.append(got[0])
    return values, bad


def empty_columns(schema: Schema, table: Table, rows: np.ndarray) -> dict[str, str]:
    """Inferred columns with no value in the training rows ({column: reason}): a column read
    on the whole file can have its only values in the job's held-out rows (``pdays`` is 999,
    "never contacted", in all but a few leads of a season), and nothing can be fitted on it."""
    empty: dict[str, str] = {}
    days = row_days(table) if any(c.kind == "date" for c in schema.columns) else None
    for col in schema.columns:
        read, bad = read_column(schema, col, table.columns[col.name], rows, days)
        if not bad and all(v is None for v in read):
            empty[col.name] = ("constant (no value in the training rows: missing or its "
                               "sentinel in every one)")
    return empty


def fit_schema(schema: Schema, table: Table, rows: np.ndarray, today: date) -> Schema:
    """Fill categories, fills, indicators and ``as_of`` from the training rows only.

    Raises TrainingRefused when a cell does not fit its column's kind (a schema that does
    not match the file)."""
    fitted: list[ColumnSpec] = []
    problems: list[str] = []
    days = row_days(table) if any(c.kind == "date" for c in schema.columns) else None
    for col in schema.columns:
        col = replace(col, as_of=col.as_of or (today.isoformat() if col.kind == "date" else ""))
        read, bad = read_column(schema, col, table.columns[col.name], rows, days)
        if bad:
            problems.append(f"column '{col.name}' ({col.kind}) has {len(bad)} values that are "
                            f"not {col.kind} (lines {_listing(bad)})")
            continue
        n_missing = sum(v is None for v in read)
        present = [v for v in read if v is not None]
        if not present:
            problems.append(f"column '{col.name}' has no value in the training rows")
            continue
        indicator = n_missing > 0
        if col.kind == "categorical":
            counts = Counter(str(v).lower() for v in present)
            spelled: dict[str, str] = {}
            for v in present:
                spelled.setdefault(str(v).lower(), str(v))
            floor = max(MIN_LEVEL_ROWS, math.ceil(MIN_LEVEL_SHARE * len(rows)))
            kept = [lvl for lvl, k in sorted(counts.items(), key=lambda t: (-t[1], t[0]))
                    if k >= floor and lvl != "other"][:MAX_LEVELS]
            categories = tuple(spelled[lvl] for lvl in kept)
            fitted.append(replace(col, categories=categories, missing_indicator=indicator,
                                  fill=None))
        else:
            nums = np.asarray(present, dtype=np.float64)
            fill = float(np.median(nums))
            if col.kind == "boolean":
                fill = float(np.mean(nums) >= 0.5)
            fitted.append(replace(col, fill=fill, missing_indicator=indicator))
    if problems:
        raise TrainingRefused("The schema does not match the file: " + "; ".join(problems))
    return schema.with_columns(fitted)


def encode(schema: Schema, table: Table, rows: np.ndarray, today: date) -> np.ndarray:
    """float64 [len(rows), N] from the file's cells through the serving transform."""
    try:
        cols = {n: [table.columns[n][int(i)] for i in rows] for n in schema.column_names}
        days = row_days(table) if any(c.kind == "date" for c in schema.columns) else None
        return schema.encode_columns(cols, len(rows), today,
                                     None if days is None else [days[int(i)] for i in rows])
    except InvalidInput as exc:
        first = exc.errors[0]
        raise TrainingRefused(f"The schema does not match the file: {first.path} "
                              f"{first.message} ({len(exc.errors)} problems)") from exc


# --------------------------------------------------------------------------- leak guard


def _rank_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney AUC with midranks for ties."""
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, dtype=np.float64)
    sorted_s = s[order]
    boundaries = np.flatnonzero(np.diff(sorted_s)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [s.size]])
    for a, b in zip(starts, ends, strict=True):
        ranks[order[a:b]] = (a + b + 1) / 2.0
    pos = int(y.sum())
    neg = y.size - pos
    if pos == 0 or neg == 0:
        return float("nan")
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def _one_column_scores(keys_fit: np.ndarray, y_fit: np.ndarray, keys_eval: np.ndarray
                       ) -> np.ndarray:
    """Positive rate per key on the fit part (smoothed towards the prior) for the eval keys."""
    prior = float(y_fit.mean())
    uniq, inv = np.unique(keys_fit, return_inverse=True)
    pos = np.bincount(inv, weights=y_fit, minlength=uniq.size)
    cnt = np.bincount(inv, minlength=uniq.size).astype(np.float64)
    rate = (pos + 10.0 * prior) / (cnt + 10.0)
    idx = np.searchsorted(uniq, keys_eval)
    idx = np.clip(idx, 0, uniq.size - 1)
    found = uniq[idx] == keys_eval
    out: np.ndarray = np.where(found, rate[idx], prior)
    return out


def _column_keys(schema: Schema, col: ColumnSpec, table: Table, rows: np.ndarray,
                 edges: np.ndarray | None) -> np.ndarray:
    """An integer key per row: the level (categorical/boolean) or quantile bin; -1 missing."""
    values, _ = read_column(schema, col, table.columns[col.name], rows,
                            row_days(table) if col.kind == "date" else None)
    if col.kind == "categorical":
        levels = {c.lower(): j for j, c in enumerate(col.categories)}
        return np.asarray([-1 if v is None else levels.get(str(v).lower(), len(levels))
                           for v in values], dtype=np.int64)
    nums = np.asarray([math.nan if v is None else float(v) for v in values])
    keys = np.full(nums.size, -1, dtype=np.int64)
    ok = ~np.isnan(nums)
    if edges is None:
        keys[ok] = nums[ok].astype(np.int64) if col.kind == "boolean" else 0
    else:
        keys[ok] = np.searchsorted(edges, nums[ok], side="right")
    return keys


def _inner_split(y_train: np.ndarray, seed: int) -> np.ndarray:
    """A stratified LEAK_INNER_SHARE of the training rows (True) to measure on."""
    rng = np.random.default_rng(seed)
    inner = np.zeros(y_train.size, dtype=bool)
    for label in (0, 1):  # stratified
        idx = np.flatnonzero(y_train == label)
        take = rng.choice(idx, size=max(1, round(LEAK_INNER_SHARE * idx.size)),
                          replace=False)
        inner[take] = True
    return inner


def _quantile_edges(schema: Schema, col: ColumnSpec, table: Table, rows: np.ndarray
                    ) -> np.ndarray | None:
    if col.kind not in ("numeric", "date"):
        return None
    vals, _ = read_column(schema, col, table.columns[col.name], rows,
                            row_days(table) if col.kind == "date" else None)
    nums = np.asarray([float(v) for v in vals if v is not None])
    qs = np.quantile(nums, np.linspace(0, 1, LEAK_BINS + 1)[1:-1]) if nums.size else []
    return np.unique(np.asarray(qs, dtype=np.float64))


def leak_scores(schema: Schema, table: Table, train_rows: np.ndarray, y_train: np.ndarray,
                seed: int) -> dict[str, float]:
    """Each column's own AUC on an inner held-out part of the training rows."""
    inner = _inner_split(y_train, seed)
    fit_rows, eval_rows = train_rows[~inner], train_rows[inner]
    y_fit, y_eval = y_train[~inner], y_train[inner]
    out: dict[str, float] = {}
    for col in schema.columns:
        edges = _quantile_edges(schema, col, table, fit_rows)
        k_fit = _column_keys(schema, col, table, fit_rows, edges)
        k_eval = _column_keys(schema, col, table, eval_rows, edges)
        auc = _rank_auc(y_eval, _one_column_scores(k_fit, y_fit.astype(np.float64), k_eval))
        out[col.name] = auc if math.isfinite(auc) else 0.5
    return out


def pure_values(schema: Schema, table: Table, train_rows: np.ndarray, y_train: np.ndarray
                ) -> dict[str, str]:
    """Columns with a value (level, quantile bin, or presence) under which the rarer outcome
    is near certain for a sizeable share of the rows (module docstring)."""
    y = np.asarray(y_train, dtype=np.int64)
    rare = 1 if y.mean() <= 0.5 else 0
    n = y.size
    floor = max(PURE_MIN_ROWS, math.ceil(PURE_MIN_SHARE * n))
    word = "converted" if rare == 1 else "did not convert"
    out: dict[str, str] = {}
    for col in schema.columns:
        edges = _quantile_edges(schema, col, table, train_rows)
        keys = _column_keys(schema, col, table, train_rows, edges)
        present = (keys >= 0).astype(np.int64)
        for kind, k in (("value", keys), ("presence", present)):
            uniq, inv = np.unique(k, return_inverse=True)
            cnt = np.bincount(inv, minlength=uniq.size)
            hit = np.bincount(inv, weights=(y == rare), minlength=uniq.size)
            rate = hit / np.maximum(cnt, 1)
            pure = np.flatnonzero((cnt >= floor) & (rate >= PURE_RATE))
            if not pure.size:
                continue
            j = int(pure[np.argmax(cnt[pure])])
            if kind == "presence":
                what = "having any value" if uniq[j] == 1 else "having no value"
            elif uniq[j] < 0:
                what = "a missing value"
            else:
                what = "one value" if edges is None else "one value range"
            out[col.name] = (f"partial leak: {cnt[j] / n:.1%} of the training rows have "
                             f"{what} under which {rate[j]:.0%} {word}; a value only such "
                             "leads carry is usually written after the outcome")
            break
    return out


def small_model_auc(X_fit: np.ndarray, y_fit: np.ndarray, X_eval: np.ndarray,
                    y_eval: np.ndarray, seed: int) -> float:
    """AUC of the leak guard's small LightGBM (100 trees of 15 leaves, one thread: it runs
    once per column) fitted on one part and measured on the other."""
    import lightgbm as lgbm

    if X_fit.shape[1] == 0:
        return 0.5
    model = lgbm.LGBMClassifier(n_estimators=100, learning_rate=0.1, num_leaves=15,
                                min_child_samples=20, random_state=seed, n_jobs=1, verbose=-1)
    model.fit(np.asarray(X_fit, dtype=np.float32), y_fit)
    auc = _rank_auc(np.asarray(y_eval), model.predict_proba(
        np.asarray(X_eval, dtype=np.float32))[:, 1])
    return auc if math.isfinite(auc) else 0.5


def drop_column_losses(schema: Schema, table: Table, train_rows: np.ndarray,
                       y_train: np.ndarray, today: date, seed: int
                       ) -> tuple[float, dict[str, float]]:
    """(AUC with every column, {column: AUC lost without it}) of a small LightGBM fitted on
    the inner split of the training rows and measured on its held-out part."""
    y = np.asarray(y_train, dtype=np.int64)
    rows = np.arange(y.size)
    if y.size > DROP_MAX_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(y.size, DROP_MAX_ROWS, replace=False))
    inner = _inner_split(y[rows], seed)
    X = encode(schema, table, train_rows[rows], today).astype(np.float32)
    yr = y[rows]

    def auc_without(skip: slice | None) -> float:
        cols = np.ones(X.shape[1], dtype=bool)
        if skip is not None:
            cols[skip] = False
        return small_model_auc(X[~inner][:, cols], yr[~inner], X[inner][:, cols], yr[inner],
                               seed)

    full = auc_without(None)
    losses: dict[str, float] = {}
    at = 0
    for col in schema.columns:
        losses[col.name] = full - auc_without(slice(at, at + col.width))
        at += col.width
    return full, losses


def judge_drop_losses(losses: Mapping[str, float]) -> dict[str, str]:
    """Columns worth far more than any other one (module docstring)."""
    out: dict[str, str] = {}
    for name, loss in losses.items():
        others = [v for n, v in losses.items() if n != name]
        runner_up = max(others) if others else 0.0
        if loss >= DROP_LEAK_LOSS and loss >= DROP_RATIO * max(runner_up, DROP_MIN_LOSS / 4):
            out[name] = (f"leak: without it the model loses {loss:.3f} AUC, over "
                         f"{DROP_RATIO:g} times what any other column is worth (next "
                         f"{runner_up:.3f}); such a field is usually the outcome in another "
                         "form")
    return out


def _flat(nums: np.ndarray) -> float:
    """Kolmogorov distance between the values and an even spread over [min, max]: ids and
    row numbers are even (a sequence with gaps), amounts and counts are not (skewed, bell)."""
    v = np.sort(nums)
    span = float(v[-1] - v[0])
    if span <= 0:
        return 1.0
    cdf = (v - v[0]) / span
    k = np.arange(1, v.size + 1) / v.size
    return float(max(np.max(np.abs(k - cdf)), np.max(np.abs(k - 1.0 / v.size - cdf))))


def identifier_like(schema: Schema, table: Table, train_rows: np.ndarray) -> dict[str, str]:
    """Numeric columns that look like ids or row numbers (module docstring)."""
    out: dict[str, str] = {}
    for col in schema.columns:
        if col.kind != "numeric":
            continue
        values, _ = read_column(schema, col, table.columns[col.name], train_rows)
        at = np.asarray([i for i, v in enumerate(values) if v is not None], dtype=np.float64)
        nums = np.asarray([float(v) for v in values if v is not None], dtype=np.float64)
        if nums.size < ID_MIN_ROWS:
            continue
        distinct = np.unique(nums).size / nums.size
        if distinct >= ID_NUMBER_DISTINCT and bool(np.all(nums == np.round(nums))) \
                and _flat(nums) <= ID_FLATNESS:
            out[col.name] = (f"identifier-like: whole numbers, {distinct:.0%} of them "
                             "distinct and spread evenly over their range (an id or a row "
                             "number read as a number)")
            continue
        # tied values share their average rank: ranks that broke ties by position made a count
        # that is mostly 0 (previous contacts) rise with the row order by construction
        rank_v = rankdata(nums, method="average")
        rho = float(np.corrcoef(rank_v, at)[0, 1]) if np.std(rank_v) > 0 else 0.0
        if abs(rho) >= ROW_ORDER_RHO:
            out[col.name] = (f"identifier-like: {'rises' if rho > 0 else 'falls'} with the "
                             f"row order (rank correlation {rho:+.3f}): a row number, or an "
                             "id or time handed out in order")
    return out


def suspect_columns(schema: Schema, table: Table, train_rows: np.ndarray,
                    y_train: np.ndarray, today: date, seed: int,
                    already: Sequence[str] = ()) -> tuple[dict[str, str], float,
                                                          dict[str, float]]:
    """Every partial-leak and identifier check (module docstring): ({column: reason}, the
    drop-column test's AUC, {column: AUC lost without it}).

    The drop-column test runs without the columns flagged before it (`already`: the own-AUC
    rule's leaks; then the identifiers and outcome-pure columns): a second copy of the
    outcome would make each copy look worthless, as the other one stands in for it."""
    found = identifier_like(schema, table, train_rows)
    for name, why in pure_values(schema, table, train_rows, y_train).items():
        found.setdefault(name, why)
    rest = [c for c in schema.columns if c.name not in found and c.name not in already]
    if len(rest) < 2:
        return found, math.nan, {}
    full, losses = drop_column_losses(schema.with_columns(rest), table, train_rows, y_train,
                                      today, seed)
    for name, why in judge_drop_losses(losses).items():
        found.setdefault(name, why)
    return found, full, losses


@dataclass(frozen=True)
class LeakVerdict:
    aucs: dict[str, float]
    leaks: dict[str, str]  # excluded column -> reason
    kept: dict[str, str]  # leak-like column kept by --keep -> reason
    # the drop-column test: AUC lost without each column (empty when it did not run)
    drop_losses: dict[str, float] = field(default_factory=dict)


def judge_leaks(aucs: Mapping[str, float], keep: Sequence[str] = (),
                suspects: Mapping[str, str] | None = None,
                drop_losses: Mapping[str, float] | None = None) -> LeakVerdict:
    """Which columns are leaks (see the module docstring for the rule); `suspects` are the
    partial-leak and identifier findings (``suspect_columns``), excluded the same way."""
    leaks: dict[str, str] = {}
    kept: dict[str, str] = {}
    lifts = {n: abs(a - 0.5) + 0.5 for n, a in aucs.items()}
    for name, auc in lifts.items():
        others = [a for n, a in lifts.items() if n != name]
        runner_up = max(others) if others else 0.5
        reason = ""
        if auc >= LEAK_AUC:
            reason = (f"leak: the column alone reaches held-out AUC {auc:.3f} "
                      f"(>= {LEAK_AUC:.2f}); such a field is usually filled in after the outcome")
        elif auc >= LEAK_MIN_AUC and (auc - 0.5) >= LEAK_LIFT_RATIO * max(runner_up - 0.5, 1e-9):
            reason = (f"leak: the column alone reaches held-out AUC {auc:.3f}, far above every "
                      f"other column (next best {runner_up:.3f}); such a field is usually "
                      "filled in after the outcome")
        reason = reason or (suspects or {}).get(name, "")
        if reason:
            (kept if name in keep else leaks)[name] = reason
    for name, reason in (suspects or {}).items():  # columns the own-AUC pass did not score
        if name not in aucs:
            (kept if name in keep else leaks)[name] = reason
    return LeakVerdict(dict(aucs), leaks, kept, dict(drop_losses or {}))


def load_schema_file(path: Path) -> Schema:
    import json

    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrainingRefused(f"Schema {path.name} is not readable JSON: {exc}") from exc
    try:
        return Schema.from_dict(raw)
    except SchemaError as exc:
        raise TrainingRefused(f"Schema {path.name}: {exc}") from exc
