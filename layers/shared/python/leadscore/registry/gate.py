"""The measuring quality gate: the bundle only claims, the gate measures.

A candidate bundle is judged by what its own ``model.onnx`` does under onnxruntime, never by
the figures its manifest states (those are recorded next to the measured ones, for a person
to compare). numpy + onnxruntime only: this runs in the promote Lambda.

Checks, each with a name that appears in the refusal:

Output checks (always; ``--force`` never skips them) on the evaluation rows, the bundle's
reference rows and generated probe leads:
- ``outputs_finite``: every score, base score and interval bound is a finite number.
- ``scores_in_unit_interval``: every score, base score and bound lies in [0, 1].
- ``interval_contains_score``: lo <= score <= hi for every row.
- ``scores_not_constant``: the 5th-95th percentile spread of the scores is at least
  MIN_SCORE_SPREAD (a constant graph would call every lead the same).
- ``parity_recomputed``: the graph reproduces the native models' predictions stored in
  ``parity_reference.npz`` within MAX_PARITY_ABS_DIFF (recomputed here, not read).

Metric checks (on labelled evaluation rows; ``--force`` overrides them, and says so):
- ``auc_lower_bound``: the one-sided 95 % DeLong lower bound of the AUC >= MIN_AUC (on a small
  gate set the bound sits well below the point estimate, so luck cannot pass it).
- ``brier``: Brier score <= MAX_BRIER.
- ``log_loss_beats_base_rate``: log loss below that of the constant observed rate.
- ``champion_paired``: the champion is scored on the same rows; refused when the candidate's
  AUC is more than MAX_AUC_DROP below it AND DeLong's paired test says the drop is not noise
  (one-sided p < 0.05).
- ``min_conversions``: the training rows held >= MIN_CONVERSIONS conversions and as many
  non-conversions.

Calibration (observed rate per predicted-probability bin, calibration-in-the-large) is
measured and recorded, not decisive: a prior shift between uploads moves it legitimately.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from leadscore import metrics as m
from leadscore.bundle import PARITY_REFERENCE_FILE, ModelOutputs
from leadscore.columns.csv_reader import read_bytes
from leadscore.settings import PromoteSettings

MAX_PARITY_ABS_DIFF = 1e-5
INTERVAL_TOLERANCE = 1e-6
MIN_SCORE_SPREAD = 0.01
PROBE_ROWS = 512
PROBE_SEED = 20_170
SIGNIFICANCE = 0.05

OUTPUT_CHECKS = ("outputs_finite", "scores_in_unit_interval", "interval_contains_score",
                 "scores_not_constant", "parity_recomputed")


class ModelUnderTest(Protocol):
    """What the gate needs of a model (leadscore.bundle.LoadedModel is one)."""

    manifest: dict[str, Any]

    def predict(self, x32: np.ndarray) -> ModelOutputs: ...


@dataclass(frozen=True)
class EvalRows:
    """Labelled rows the candidate never trained on (the gate part, or `--eval FILE`)."""

    X: np.ndarray  # [n, d], the bundle's feature order
    y: np.ndarray  # [n] 0/1
    source: str


@dataclass(frozen=True)
class ClassCounts:
    """Conversions and non-conversions in the rows the candidate was trained on."""

    converted: int
    not_converted: int
    source: str  # who counted: "split record evaluation/<job>/split.json" or "manifest (claimed)"


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    forceable: bool = True

    def as_reason(self) -> str:
        return f"{self.name}: {self.detail}"


@dataclass
class GateReport:
    checks: list[Check] = field(default_factory=list)
    measured: dict[str, Any] = field(default_factory=dict)

    def failed(self, *, force: bool = False) -> list[Check]:
        return [c for c in self.checks if not c.passed and not (force and c.forceable)]

    def reasons(self, *, force: bool = False) -> list[str]:
        return [c.as_reason() for c in self.failed(force=force)]

    def overridden(self) -> list[str]:
        """Failed checks that --force is allowed to override."""
        return [c.as_reason() for c in self.checks if not c.passed and c.forceable]

    def summary(self) -> dict[str, Any]:
        return {
            "measured": self.measured,
            "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail}
                       for c in self.checks],
        }


# --------------------------------------------------------------------------- claims


def metric_value(metrics: Mapping[str, Any] | None, *names: str) -> float | None:
    """A finite number a bundle states under one of `names` (recorded, never decisive)."""
    if not metrics:
        return None
    for name in names:
        value = metrics.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(float(value)):
            return float(value)
    return None


def auc_of(metrics: Mapping[str, Any] | None) -> float | None:
    return metric_value(metrics, "auc", "auc_roc", "ensemble_auc_roc")


def brier_of(metrics: Mapping[str, Any] | None) -> float | None:
    return metric_value(metrics, "brier", "brier_score", "ensemble_brier_score")


def parity_of(metrics: Mapping[str, Any] | None) -> float | None:
    return metric_value(metrics, "parity_max_abs_diff", "onnx_parity_max_abs_diff")


# --------------------------------------------------------------------------- rows


def probe_rows(lo: np.ndarray, hi: np.ndarray, n: int = PROBE_ROWS,
               seed: int = PROBE_SEED) -> np.ndarray:
    """Generated leads spread over the box [lo, hi] of each feature, plus its corners' extremes.

    For the 20-feature contract the box is [0, 1] (every feature is clipped there); for other
    schemas it is the range of the bundle's reference rows.
    """
    rng = np.random.default_rng(seed)
    lo64, hi64 = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    X = lo64 + rng.uniform(size=(n, lo64.size)) * (hi64 - lo64)
    return np.vstack([X, lo64, hi64, (lo64 + hi64) / 2]).astype(np.float32)


def load_parity_reference(bundle_dir: Path) -> dict[str, np.ndarray] | None:
    path = Path(bundle_dir) / PARITY_REFERENCE_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {k: np.asarray(data[k]) for k in data.files}


# --------------------------------------------------------------------------- checks


def _outputs(model: ModelUnderTest, X: np.ndarray) -> ModelOutputs | str:
    try:
        return model.predict(np.asarray(X, dtype=np.float32))
    except Exception as exc:  # a graph that cannot run on valid input is refused, not raised
        return f"model.onnx fails on {len(X)} rows: {type(exc).__name__}: {exc}"


def _output_checks(outs: Sequence[tuple[str, ModelOutputs]]) -> list[Check]:
    bad_finite, bad_unit, bad_interval = [], [], []
    for name, o in outs:
        arrays = (("score", o.score), ("base_scores", o.base_scores), ("interval", o.interval))
        for label, a in arrays:
            a64 = np.asarray(a, dtype=np.float64)
            n_bad = int(np.sum(~np.isfinite(a64)))
            if n_bad:
                bad_finite.append(f"{n_bad} non-finite {label} values on {name}")
            finite = a64[np.isfinite(a64)]
            n_out = int(np.sum((finite < 0.0) | (finite > 1.0)))
            if n_out:
                bad_unit.append(f"{n_out} {label} values outside [0, 1] on {name}")
        s = np.asarray(o.score, dtype=np.float64)
        lo = np.asarray(o.interval, dtype=np.float64)[:, 0]
        hi = np.asarray(o.interval, dtype=np.float64)[:, 1]
        with np.errstate(invalid="ignore"):
            outside = ~((lo <= s + INTERVAL_TOLERANCE) & (s <= hi + INTERVAL_TOLERANCE))
        if int(outside.sum()):
            bad_interval.append(f"{int(outside.sum())} of {s.size} rows on {name}")
    return [
        Check("outputs_finite", not bad_finite,
              "; ".join(bad_finite) if bad_finite else "every output is a finite number",
              forceable=False),
        Check("scores_in_unit_interval", not bad_unit,
              "; ".join(bad_unit) if bad_unit else "every output lies in [0, 1]",
              forceable=False),
        Check("interval_contains_score", not bad_interval,
              ("the interval does not contain the score for " + "; ".join(bad_interval))
              if bad_interval else "lo <= score <= hi on every row", forceable=False),
    ]


def _spread_check(scores: np.ndarray) -> Check:
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    spread = float(np.percentile(s, 95) - np.percentile(s, 5)) if s.size else 0.0
    return Check(
        "scores_not_constant", spread >= MIN_SCORE_SPREAD,
        f"5th-95th percentile spread of the scores {spread:.4f} "
        f"({'>=' if spread >= MIN_SCORE_SPREAD else '<'} {MIN_SCORE_SPREAD})",
        forceable=False,
    )


def _parity_check(model: ModelUnderTest, reference: Mapping[str, np.ndarray] | None) -> Check:
    if reference is None or "features" not in reference or "score" not in reference:
        return Check("parity_recomputed", False,
                     f"the bundle holds no reference predictions ({PARITY_REFERENCE_FILE}) "
                     "to recompute parity from", forceable=False)
    got = _outputs(model, reference["features"])
    if isinstance(got, str):
        return Check("parity_recomputed", False, got, forceable=False)
    want = np.asarray(reference["score"], dtype=np.float64).reshape(-1)
    have = np.asarray(got.score, dtype=np.float64).reshape(-1)
    if want.shape != have.shape:
        return Check("parity_recomputed", False,
                     f"{want.size} reference predictions for {have.size} reference rows",
                     forceable=False)
    gap = float(np.max(np.abs(have - want))) if want.size else math.inf
    ok = math.isfinite(gap) and gap <= MAX_PARITY_ABS_DIFF
    return Check("parity_recomputed", ok,
                 f"max |onnx - native| on {want.size} reference rows {gap:.3g} "
                 f"({'<=' if ok else 'not <='} {MAX_PARITY_ABS_DIFF:g})", forceable=False)


def _calibration(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    bins = m.calibration_bins(y, p)
    total = sum(b["n"] for b in bins) or 1
    ece = sum(b["n"] * abs(b["mean_predicted"] - b["observed_rate"]) for b in bins) / total
    return {"bins": bins, "expected_calibration_error": float(ece),
            "mean_predicted": float(np.mean(p)), "observed_rate": float(np.mean(y))}


def _metric_checks(y: np.ndarray, score: np.ndarray, settings: PromoteSettings,
                   measured: dict[str, Any]) -> list[Check]:
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    measured.update({"gate_rows": int(y.size), "gate_converted": n_pos})
    if n_pos < 2 or n_neg < 2:
        return [Check("auc_lower_bound", False,
                      f"the evaluation rows hold {n_pos} conversions and {n_neg} "
                      "non-conversions: too few to measure an AUC")]
    auc, var = m.delong(y, score)
    lower = m.auc_lower_bound(y, score, 0.95)
    brier = m.brier(y, score)
    loss = m.log_loss(y, score)
    rate = n_pos / y.size
    base_loss = m.log_loss(y, np.full(y.size, rate))
    measured.update({
        "auc": auc, "auc_se": math.sqrt(var) if math.isfinite(var) else None,
        "auc_lower_bound_95": lower, "brier": brier, "log_loss": loss,
        "base_rate_log_loss": base_loss, "calibration": _calibration(y, score),
    })
    return [
        Check("auc_lower_bound", math.isfinite(lower) and lower >= settings.min_auc,
              f"AUC {auc:.4f} on {y.size} rows ({n_pos} conversions), one-sided 95 % lower "
              f"bound {lower:.4f} {'>=' if lower >= settings.min_auc else '<'} MIN_AUC "
              f"{settings.min_auc:.2f}"),
        Check("brier", brier <= settings.max_brier,
              f"Brier {brier:.4f} {'<=' if brier <= settings.max_brier else '>'} MAX_BRIER "
              f"{settings.max_brier:.2f}"),
        Check("log_loss_beats_base_rate", loss < base_loss,
              f"log loss {loss:.4f} vs {base_loss:.4f} for the constant rate {rate:.3f}"),
    ]


def _champion_check(y: np.ndarray, score: np.ndarray, champion: ModelUnderTest, X: np.ndarray,
                    settings: PromoteSettings, measured: dict[str, Any]) -> Check:
    got = _outputs(champion, X)
    if isinstance(got, str):
        measured["champion"] = {"comparable": False, "why": got}
        return Check("champion_paired", True, f"champion not comparable on these rows ({got})")
    champ = np.asarray(got.score, dtype=np.float64)
    if not np.all(np.isfinite(champ)):
        measured["champion"] = {"comparable": False, "why": "champion gives non-finite scores"}
        return Check("champion_paired", True, "champion gives non-finite scores: not compared")
    cmp = m.delong_paired(y, score, champ)
    one_sided = cmp.p_value / 2 if cmp.diff < 0 else 1 - cmp.p_value / 2
    measured["champion"] = {
        "comparable": True, "version": champion.manifest.get("model_version"),
        "auc": cmp.auc_b, "brier": m.brier(y, champ), "auc_diff": cmp.diff, "se": cmp.se,
        "z": cmp.z, "p_value_two_sided": cmp.p_value, "p_value_worse": one_sided,
        "test": "DeLong paired (same rows)",
    }
    worse = -cmp.diff > settings.max_auc_drop and one_sided < SIGNIFICANCE
    return Check(
        "champion_paired", not worse,
        f"AUC {cmp.auc_a:.4f} vs champion {cmp.auc_b:.4f} on the same {y.size} rows "
        f"(diff {cmp.diff:+.4f}, DeLong se {cmp.se:.4f}, one-sided p {one_sided:.3g}; refused "
        f"only when more than MAX_AUC_DROP {settings.max_auc_drop:.2f} worse and p < "
        f"{SIGNIFICANCE})",
    )


def _counts_check(counts: ClassCounts | None, settings: PromoteSettings) -> Check:
    need = settings.min_conversions
    if counts is None:
        return Check("min_conversions", False,
                     "the number of conversions the candidate was trained on is unknown")
    ok = counts.converted >= need and counts.not_converted >= need
    return Check("min_conversions", ok,
                 f"trained on {counts.converted} conversions and {counts.not_converted} "
                 f"non-conversions ({counts.source}); MIN_CONVERSIONS is {need} of each")


def measure(
    candidate: ModelUnderTest,
    bundle_dir: Path,
    settings: PromoteSettings,
    *,
    rows: EvalRows | None = None,
    champion: ModelUnderTest | None = None,
    counts: ClassCounts | None = None,
) -> GateReport:
    """Run every check on the candidate; nothing here trusts the manifest's figures."""
    report = GateReport()
    measured = report.measured
    reference = load_parity_reference(bundle_dir)
    n_features = len(candidate.manifest.get("feature_names") or []) or 20
    if reference is not None and "features" in reference and reference["features"].ndim == 2:
        ref_x = np.asarray(reference["features"], dtype=np.float64)
        lo, hi = np.minimum(ref_x.min(axis=0), 0.0), np.maximum(ref_x.max(axis=0), 1.0)
    else:
        lo, hi = np.zeros(n_features), np.ones(n_features)
    probes = probe_rows(lo, hi)
    runs: list[tuple[str, np.ndarray]] = [("probe leads", probes)]
    if rows is not None:
        runs.insert(0, ("evaluation rows", rows.X))
    outs: list[tuple[str, ModelOutputs]] = []
    errors: list[str] = []
    for name, X in runs:
        got = _outputs(candidate, X)
        if isinstance(got, str):
            errors.append(got)
        else:
            outs.append((name, got))
    if errors:
        report.checks.append(Check("outputs_finite", False, "; ".join(errors), forceable=False))
    report.checks += _output_checks(outs)
    probe_out = next((o for n, o in outs if n == "probe leads"), None)
    eval_out = next((o for n, o in outs if n == "evaluation rows"), None)
    spread_on = eval_out.score if eval_out is not None else (
        probe_out.score if probe_out is not None else np.zeros(0))
    report.checks.append(_spread_check(spread_on))
    report.checks.append(_parity_check(candidate, reference))
    measured["probe_rows"] = int(probes.shape[0])

    if rows is None:
        measured["metrics"] = "not measured: no evaluation rows"
    elif eval_out is not None:
        measured["evaluation_source"] = rows.source
        y = np.asarray(rows.y).astype(np.int64).reshape(-1)
        score = np.asarray(eval_out.score, dtype=np.float64)
        if np.all(np.isfinite(score)):
            report.checks += _metric_checks(y, score, settings, measured)
            if champion is not None and "auc" in measured:
                report.checks.append(_champion_check(y, score, champion, rows.X, settings,
                                                     measured))
    report.checks.append(_counts_check(counts, settings))
    if counts is not None:
        measured["training_class_counts"] = {"converted": counts.converted,
                                             "not_converted": counts.not_converted,
                                             "source": counts.source}
    return report


def claimed_counts(manifest: Mapping[str, Any]) -> ClassCounts | None:
    """The training class counts as the bundle states them (used only without a split record)."""
    training = manifest.get("training")
    raw = training.get("class_counts") if isinstance(training, Mapping) else None
    if not isinstance(raw, Mapping):
        return None
    try:
        return ClassCounts(int(raw["converted"]), int(raw["not_converted"]),
                           "as the bundle's manifest states it; no split record")
    except (KeyError, TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- reading rows


def read_rows(data: bytes, *, jsonl: bool, feature_names: Sequence[str], source: str
              ) -> tuple[EvalRows, int]:
    """(rows, number of unreadable rows) of a training-format file: the gate part, --eval FILE.

    CSV: a header naming every feature and `converted`; JSON Lines: raw leads (sections at the
    top level or under `features`) with `converted`, through the one feature extractor.
    Unreadable rows (a bad number, a label other than 0/1) are skipped and counted, never fatal:
    the gate must not crash on data the training job would have refused anyway.
    """
    from leadscore.columns.labels import DEFAULT_RULE

    _label = DEFAULT_RULE.label

    names = list(feature_names)
    X: list[list[float]] = []
    y: list[int] = []
    bad = 0
    text = data.decode("utf-8-sig", errors="replace")
    if jsonl:
        from leadscore.errors import InvalidInput
        from leadscore.features import SECTIONS, extract_features

        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                label = _label(record.get("converted")) if isinstance(record, dict) else None
                nested = record.get("features") if isinstance(record, dict) else None
                raw = nested if isinstance(nested, dict) else {
                    k: v for k, v in record.items() if k in SECTIONS}
                values = extract_features(raw).values
            except (ValueError, InvalidInput, AttributeError, TypeError):
                bad += 1
                continue
            if label is None:
                bad += 1
                continue
            X.append([float(v) for v in values])
            y.append(label)
    else:
        header, reader = read_bytes(data, source)  # the one CSV reader, as training reads
        missing = [n for n in [*names, "converted"] if n not in header]
        if missing:
            raise ValueError(f"{source}: columns missing: {', '.join(missing[:5])}")
        index = [header.index(n) for n in names]
        target = header.index("converted")
        for cells in reader:
            if not cells or not any(c.strip() for c in cells):
                continue
            try:
                row = [float(cells[i]) for i in index]
                label = _label(cells[target])
            except (IndexError, ValueError):
                bad += 1
                continue
            if label is None or not all(math.isfinite(v) for v in row):
                bad += 1
                continue
            X.append(row)
            y.append(label)
    rows = EvalRows(np.asarray(X, dtype=np.float32).reshape(-1, len(names)),
                    np.asarray(y, dtype=np.int64), source)
    return rows, bad


def read_rows_for_bundle(data: bytes, *, jsonl: bool, bundle_dir: Path, source: str
                         ) -> tuple[EvalRows, int]:
    """`read_rows` for the bundle's own inputs: the real-estate features, or, when the bundle
    carries a team's column schema (schema.json), that schema's target and transform."""
    from leadscore.bundle import MANIFEST_FILE, SCHEMA_FILE

    schema_path = Path(bundle_dir) / SCHEMA_FILE
    if not schema_path.is_file():
        names = json.loads((Path(bundle_dir) / MANIFEST_FILE).read_text()).get("feature_names")
        from leadscore.features import FEATURE_NAMES

        return read_rows(data, jsonl=jsonl, feature_names=list(names or FEATURE_NAMES),
                         source=source)
    from leadscore.columns.schema import load_schema
    from leadscore.errors import InvalidInput

    schema = load_schema(json.loads(schema_path.read_text()))
    if jsonl:
        records = [json.loads(line) for line in data.decode("utf-8-sig", errors="replace")
                   .splitlines() if line.strip()]
        rows = [r for r in records if isinstance(r, dict)]
    else:
        header, cells = read_bytes(data, source)
        rows = [dict(zip(header, c, strict=True)) for c in cells if len(c) == len(header)]
        ragged = len(cells) - len(rows)
    rule = schema.label_rule()
    X: list[np.ndarray] = []
    y: list[int] = []
    bad = 0 if jsonl else ragged
    for row in rows:
        label = rule.label(row.get(schema.target))
        if label is None:
            bad += 1
            continue
        try:
            X.append(schema.encode_rows([row])[0])
        except (InvalidInput, ValueError):
            bad += 1
            continue
        y.append(label)
    matrix = (np.vstack(X).astype(np.float32) if X
              else np.zeros((0, schema.n_inputs), dtype=np.float32))
    return EvalRows(matrix, np.asarray(y, dtype=np.int64), source), bad
