"""The training job on a team's own columns: raw export -> fitted schema -> model inputs.

``prepare_custom`` does everything that differs from the real-estate default before the
ensemble is fitted; train.py then runs the same fit / export / report code on the encoded
rows (``leadscore.columns.schema`` is the transform both training and serving use):

1. read the CSV files as text (``schema_infer.read_table``);
2. the target and its positive values (one-line refusals: unknown target, no positives);
3. the schema: ``--schema FILE`` (every column must be in the file) or inferred;
4. the stratified held-out split (the same call, seed and size as the default job);
5. fit the schema on the training rows only (levels, fills, missing indicators);
6. the leak guard on an inner split of the training rows (``schema_infer``'s rules: a column
   that alone predicts too well, outcome-pure values, the drop-column test, identifier-like
   numbers); leaks are dropped and named unless ``--keep``, and the held-out AUC of the leak
   guard's small LightGBM with and without them is measured for the report;
7. encode every row through ``Schema.encode_columns``.

Also here: the reference model the report compares against (a LightGBM with default
parameters on the same split and the same inputs) and the schema's section of the report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from leadscore.columns.labels import LabelRule
from leadscore.columns.schema import ColumnSpec, Schema
from schema_infer import (
    LeakVerdict,
    Table,
    check_schema_against,
    column_kind,
    drop_unresolved,
    empty_columns,
    encode,
    fit_schema,
    infer_schema,
    judge_leaks,
    leak_scores,
    load_schema_file,
    read_table,
    small_model_auc,
    suspect_columns,
    target_vector,
)
from train_data import Dataset, TrainingRefused, check_dataset, input_files


@dataclass(frozen=True)
class CustomOptions:
    """The job's custom-schema flags (``--target`` or ``--schema`` switch them on)."""

    target: str = ""
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    schema_path: Path | None = None
    as_of: date | None = None

    @property
    def active(self) -> bool:
        return bool(self.target) or self.schema_path is not None


@dataclass
class CustomData:
    dataset: Dataset
    schema: Schema  # fitted, leaks removed
    train_idx: np.ndarray
    test_idx: np.ndarray
    inferred: bool
    dropped: dict[str, str]  # column -> reason (identifiers, free text, constant, --exclude)
    leak: LeakVerdict
    baseline: np.ndarray  # float32 [N]: the typical lead, encoded
    baseline_columns: dict[str, Any]  # column -> typical value as read
    as_of: date = field(default_factory=lambda: datetime.now(UTC).date())
    table: Table | None = None  # the rows as read (resolved targets only), for the report
    # held-out AUC of the leak guard's small LightGBM with and without the excluded leaks
    # ({"with": ..., "without": ...}; None when nothing was excluded)
    leak_auc: dict[str, float] | None = None


def split_rows(y: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The stratified held-out split (the default job's call)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(y.size)
    try:
        tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=y)
    except ValueError as exc:
        raise TrainingRefused(f"Cannot split the data: {exc}") from exc
    return np.sort(tr), np.sort(te)


def _resolve_schema(opts: CustomOptions, table: Table) -> tuple[Schema, str, tuple[str, ...],
                                                                 bool, dict[str, str]]:
    if opts.schema_path is not None:
        given = load_schema_file(opts.schema_path)
        target = opts.target or given.target
        if not target:
            raise TrainingRefused("Name the target: --target COLUMN or 'target' in the schema")
        positive = opts.positive or given.positive
        if not opts.negative and given.negative:
            opts = replace(opts, negative=given.negative)
        check_schema_against(given, table)
        dropped = {**dict(given.exclude), **{e: "excluded by --exclude" for e in opts.exclude}}
        columns = [c for c in given.columns if c.name not in opts.exclude]
        if target in {c.name for c in columns}:
            raise TrainingRefused(f"The schema uses the target '{target}' as a model column")
        return given.with_columns(columns), target, tuple(positive), False, dropped
    inferred = infer_schema(table, opts.target, opts.positive, opts.exclude)
    return inferred.schema, opts.target, opts.positive, True, dict(inferred.dropped)


def _typical(schema: Schema, X_train: np.ndarray) -> dict[str, Any]:
    """The typical lead: per column missing when most training rows miss it, else the median
    (numeric/date), the more common value (boolean) or the most frequent level."""
    typical: dict[str, Any] = {}
    at = 0
    for col in schema.columns:
        block = X_train[:, at: at + col.width]
        missing_share = float(block[:, -1].mean()) if col.missing_indicator else 0.0
        if missing_share > 0.5:
            typical[col.name] = None
        elif col.kind == "categorical":
            counts = block[:, : len(col.categories) + 1].sum(axis=0)
            j = int(np.argmax(counts))
            typical[col.name] = col.categories[j] if j < len(col.categories) else "other"
        else:
            typical[col.name] = col.fill
        at += col.width
    return typical


def prepare_custom(input_path: Path, opts: CustomOptions, test_size: float, seed: int
                   ) -> CustomData:
    as_of = opts.as_of or datetime.now(UTC).date()
    table = read_table(input_files(input_path))
    if opts.schema_path is not None and not opts.negative:
        opts = replace(opts, negative=load_schema_file(opts.schema_path).negative)
    table, note = drop_unresolved(table, opts.target or _schema_target(opts), opts.positive
                                  or _schema_positive(opts), opts.negative)
    schema, target, positive, inferred, dropped = _resolve_schema(opts, table)
    y, positive = target_vector(table, target, positive, opts.negative)
    check_dataset(Dataset(np.zeros((y.size, 0)), y, None, (table.source,), "csv", note))
    names = {c.name for c in schema.columns}
    unknown_keep = [k for k in opts.keep if k not in names]
    if unknown_keep:
        raise TrainingRefused(f"--keep names columns the model does not use: "
                              f"{', '.join(unknown_keep)}")
    schema = Schema(columns=schema.columns, target=target, positive=positive,
                    exclude=dropped, missing_tokens=schema.missing_tokens,
                    negative=LabelRule.of(positive, opts.negative).negative)

    train_idx, test_idx = split_rows(y, test_size, seed)
    empty = empty_columns(schema, table, train_idx) if inferred else {}
    if empty:  # a schema file is the team's decision: a column of it is never dropped here
        dropped = {**dropped, **empty}
        schema = Schema(columns=tuple(c for c in schema.columns if c.name not in empty),
                        target=target, positive=positive, exclude=dropped,
                        missing_tokens=schema.missing_tokens, negative=schema.negative)
    fitted = fit_schema(schema, table, train_idx, as_of)
    aucs = leak_scores(fitted, table, train_idx, y[train_idx], seed)
    first = judge_leaks(aucs)
    suspects, _, losses = suspect_columns(fitted, table, train_idx, y[train_idx], as_of, seed,
                                          already=list(first.leaks))
    # A schema file is the team's own decision (hand-edited, or the served model's schema that
    # stack retraining reproduces): its columns are kept like --keep, so a retraining on new
    # rows cannot drop a column the served model reads because a noisy check flagged it; the
    # guard still judges every column the schema does not name.
    keep = (*opts.keep, *(c.name for c in schema.columns)) if opts.schema_path else opts.keep
    verdict = judge_leaks(aucs, keep, suspects, losses)
    leak_auc = None
    if verdict.leaks:
        X_all = encode(fitted, table, np.arange(y.size), as_of)
        kept_columns = [c for c in fitted.columns if c.name not in verdict.leaks]
        if not kept_columns:
            raise TrainingRefused("Every column looks like a leak: "
                                  + "; ".join(f"{k}: {v}" for k, v in verdict.leaks.items()))
        fitted = Schema(columns=tuple(kept_columns), target=target, positive=positive,
                        exclude={**dropped, **verdict.leaks},
                        missing_tokens=fitted.missing_tokens, negative=fitted.negative)
    X = encode(fitted, table, np.arange(y.size), as_of)
    if verdict.leaks:
        leak_auc = {
            "with": small_model_auc(X_all[train_idx], y[train_idx], X_all[test_idx],
                                    y[test_idx], seed),
            "without": small_model_auc(X[train_idx], y[train_idx], X[test_idx], y[test_idx],
                                       seed)}
    typical = _typical(fitted, X[train_idx])
    baseline = fitted.encode_fields(typical, "baseline", as_of).values.astype(np.float32)
    for col in fitted.columns:  # dates: the baseline is an age, not a date to re-read
        if col.kind == "date" and typical[col.name] is not None:
            at = fitted.input_names.index(col.name)
            baseline[at] = np.float32(col.fill if col.fill is not None else 0.0)
    dataset = check_dataset(Dataset(X, y, None, tuple(p.name for p in input_files(input_path)),
                                    "csv", note))
    return CustomData(dataset=dataset, schema=fitted, train_idx=train_idx, test_idx=test_idx,
                      inferred=inferred, dropped=dropped, leak=verdict, baseline=baseline,
                      baseline_columns=typical, as_of=as_of, table=table,
                      leak_auc=leak_auc)


def _schema_target(opts: CustomOptions) -> str:
    if opts.schema_path is None:
        return opts.target
    target = load_schema_file(opts.schema_path).target
    if not target:
        raise TrainingRefused("Name the target: --target COLUMN or 'target' in the schema")
    return target


def _schema_positive(opts: CustomOptions) -> tuple[str, ...]:
    return load_schema_file(opts.schema_path).positive if opts.schema_path else ()


def reference_lightgbm_auc(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
                           y_test: np.ndarray, seed: int) -> float:
    """Held-out AUC of a LightGBM with default parameters (only the seed fixed and logging
    off) on the same split and inputs: the bar the ensemble is reported against."""
    import lightgbm as lgbm
    from sklearn.metrics import roc_auc_score

    model = lgbm.LGBMClassifier(random_state=seed, verbose=-1)
    model.fit(X_train.astype(np.float32), y_train)
    return float(roc_auc_score(y_test, model.predict_proba(X_test.astype(np.float32))[:, 1]))


def schema_report_lines(data: CustomData, ensemble_auc: float | None,
                        reference_auc: float | None,
                        excluded_aucs: Mapping[str, float | None] | None = None) -> list[str]:
    """The report's "Columns" section: schema, drops, leaks with their reason, the bar."""
    lines = ["Columns (custom schema"
             + (", inferred from the file" if data.inferred else ", from the given file")
             + f"; target '{data.schema.target}': {data.schema.label_rule().describe()})"]
    aucs = data.leak.aucs
    for col in data.schema.columns:
        extra = ""
        if col.kind == "categorical":
            extra = f", {len(col.categories)} levels + other"
        if col.missing_indicator:
            extra += ", missing indicator"
        if col.missing:
            extra += f", missing tokens {list(col.missing)}"
        auc = aucs.get(col.name)
        own = f"  own AUC {auc:.3f}" if auc is not None else ""
        lines.append(f"  {col.name:<28}{col.kind:<12}{extra.lstrip(', ')}{own}")
    for name, reason in data.leak.leaks.items():
        lines.append(f"  EXCLUDED {name}: {reason} (--keep {name} to use it)")
    for name, reason in data.leak.kept.items():
        lines.append(f"  KEPT by --keep or the schema file {name}: {reason}")
    if data.leak_auc is not None:
        lines.append(f"Held-out AUC of the leak guard's small LightGBM with the excluded leaks "
                     f"{data.leak_auc['with']:.4f}, without them {data.leak_auc['without']:.4f}"
                     " (the model is trained without them)")
    for name, reason in data.dropped.items():
        own = (excluded_aucs or {}).get(name)
        lines.append(f"  dropped {name}: {reason}"
                     + (f" (own AUC {own:.3f})" if own is not None else ""))
    if ensemble_auc is not None and reference_auc is not None:
        verdict = "at least" if ensemble_auc >= reference_auc else "BELOW"
        lines.append(f"Held-out AUC: ensemble {ensemble_auc:.4f} vs LightGBM with default "
                     f"parameters {reference_auc:.4f} on the same split and inputs "
                     f"(ensemble {verdict} the reference)")
    return lines


def _handling(col: ColumnSpec) -> str:
    parts = []
    if col.kind == "categorical":
        parts.append(f"{len(col.categories)} levels + other")
    elif col.fill is not None:
        parts.append(f"missing -> {col.fill:g}")
    if col.missing_indicator:
        parts.append("missing indicator")
    if col.missing:
        parts.append(f"missing tokens {', '.join(col.missing)}")
    return "; ".join(parts)


def excluded_column_aucs(data: CustomData, seed: int) -> dict[str, float | None]:
    """Each excluded or dropped column's own AUC, measured as the leak guard measures a kept
    one (on an inner split of the training rows), so a team sees what it gave up."""
    out: dict[str, float | None] = {n: data.leak.aucs.get(n) for n in data.leak.leaks}
    table = data.table
    y_train = data.dataset.y[data.train_idx]
    for name in data.dropped:
        if name in out:
            continue
        out[name] = None
        if table is None or name not in table.columns:
            continue
        present = {v.strip() for v in table.columns[name] if v.strip()}
        kind = column_kind(sorted(present))[0] if present else "categorical"
        spec = Schema(columns=(ColumnSpec(name=name, kind=kind),))
        try:
            fitted = fit_schema(spec, table, data.train_idx, data.as_of)
            out[name] = leak_scores(fitted, table, data.train_idx, y_train, seed)[name]
        except TrainingRefused:
            continue  # no value in the training rows: nothing to measure
    return out


def columns_section(data: CustomData, seed: int) -> dict[str, Any]:
    """The report's Columns section as data (the HTML page and ensemble_metrics.json)."""
    aucs = data.leak.aucs
    kept = [{"column": c.name, "kind": c.kind, "handling": _handling(c),
             "direction": c.direction, "own_auc": aucs.get(c.name),
             "kept_by": "--keep or the schema" if c.name in data.leak.kept else ""}
            for c in data.schema.columns]
    excluded_aucs = excluded_column_aucs(data, seed)
    reasons = {**data.dropped, **data.leak.leaks}
    excluded = [{"column": n, "reason": r, "own_auc": excluded_aucs.get(n)}
                for n, r in reasons.items()]
    return {
        "target": data.schema.target,
        "label_rule": data.schema.label_rule().describe(),
        "inferred": data.inferred,
        "kept": kept,
        "excluded": excluded,
        "leak_auc": data.leak_auc,
        "drop_column_losses": data.leak.drop_losses,
        "unseen_categories": (
            "a category never seen in training is scored as its column's 'other' level "
            "(with the rare levels bucketed at training) and named in the answer's "
            "unseen_categories"),
    }


def print_schema(input_path: Path, opts: CustomOptions, out: Any) -> None:
    """``--print-schema``: the inferred (not yet fitted) schema as JSON, for editing."""
    table = read_table(input_files(input_path))
    table, _ = drop_unresolved(table, opts.target or _schema_target(opts),
                               opts.positive or _schema_positive(opts), opts.negative)
    schema, target, positive, _, dropped = _resolve_schema(opts, table)
    _, positive = target_vector(table, target, positive, opts.negative)
    doc = Schema(columns=schema.columns, target=target, positive=positive, exclude=dropped,
                 missing_tokens=schema.missing_tokens,
                 negative=LabelRule.of(positive, opts.negative).negative).to_dict()
    out.write(json.dumps(doc, indent=2) + "\n")


def column_specs(schema: Schema) -> Sequence[ColumnSpec]:
    return schema.columns


def manifest_fields(data: CustomData) -> Mapping[str, Any]:
    """What a custom bundle's manifest says about its columns (schema.json holds the rest)."""
    return {
        "schema": {"kind": "custom", "target": data.schema.target,
                   "positive": list(data.schema.positive),
                   **({"negative": list(data.schema.negative)} if data.schema.negative
                      else {}),
                   "columns": data.schema.column_names,
                   "excluded": dict(data.schema.exclude),
                   "as_of": data.as_of.isoformat()},
        "baseline_columns": data.baseline_columns,
    }
