"""The measuring quality gate: the bundle only claims, the gate measures.

A candidate bundle is judged by what its own ``model.onnx`` does under onnxruntime, never by
the figures its manifest states (those are recorded next to the measured ones, for a person
to compare). numpy + onnxruntime only: this runs in the promote Lambda.

Evaluation rows are RAW (`EvalRows`: the values as exported, before any schema). Every model
reads them through its own inputs (`encode`: the 20-feature contract, or the bundle's
``schema.json``), so a champion and a candidate are compared on the same leads whether their
schemas agree or not. Rows either model cannot read are left out for both. Two sets can be
given: the upload's own gate part (or ``modelctl promote --eval FILE``) and the platform-held
evaluation set (``registry/holdout.py``: the loop's most recent resolved leads, which no
candidate trains on); every check below runs on each set the candidate can read, and a
candidate must pass on all of them (a biased upload looks fine on its own gate part only).

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

Absolute checks (on labelled rows; what a first model, without a champion, is judged by;
``--force`` overrides them, and says so):
- ``auc_lower_bound``: the one-sided 95 % DeLong lower bound of the AUC >= MIN_AUC. A first
  model is judged against what would otherwise answer for its leads: where something else
  scores them (the rules on the real-estate features, an agency model beside a location's
  first model) MIN_AUC stays the bar; where nothing does (a team's own columns with no
  champion: the answer would be "unscored" and every lead waits), the bar is better than
  chance, the lower bound above CHANCE_AUC (``nothing_else_scores``). Its successors keep
  that bar while the champion reads a team's columns: refused, they leave that champion
  answering, and the comparison with it (below) is what guards the leads. A weak but real signal
  (a telemarketing file whose best default model reaches 0.55-0.62 AUC per week) then serves
  instead of nothing; every other check below is unchanged.
- ``brier``: Brier score <= MAX_BRIER.
- ``log_loss_beats_base_rate``: log loss below that of the constant observed rate.
- ``min_conversions``: the training rows held >= MIN_CONVERSIONS conversions and as many
  non-conversions.

The decision against a champion (one rule, with uncertainty): on the same rows, for each
metric, the candidate's LOSS against the champion (champion minus candidate for AUC and
precision, candidate minus champion for Brier and calibration error) has a one-sided upper
confidence bound at GATE_CONFIDENCE, and that bound must stay within the metric's margin:
- ``champion_auc``: DeLong's paired standard error; margin MAX_AUC_DROP.
- ``champion_brier``: the paired per-lead differences' standard error; margin MAX_BRIER_LOSS.
- ``champion_calibration``: expected calibration error (equal-count groups), paired bootstrap;
  margin MAX_ECE_LOSS.
- ``champion_top_precision``: conversions among the top TOP_FRACTION of leads by score (not the
  hot class, whose threshold a candidate sets itself), paired bootstrap; margin
  MAX_TOP_PRECISION_LOSS.
A small gate set gives wide bounds, so it refuses rather than lets noise through, with one
exception: where the Brier or calibration bound's own width (upper bound minus the measured
loss) is wider than the margin, even a candidate measured exactly as good as the champion
fails it on these rows, so that margin is not judged there; the candidate must instead be
measured at least as good as the champion on the metric (loss at most zero) and not shown
worse. An agency resolving a few hundred leads a week never had rows enough for the Brier
margin (its bound was 0.0030-0.0046 wide on 480-965 rows, so fitting 0.002 takes ~2,200-2,500),
and the rule refused every retrained candidate, better ones included. The AUC's margin is
judged on any number of rows.

With two evaluation sets (the gate part and the platform-held set) the decision is taken on
all their rows together (a row both hold counts once): both are rows the candidate never
trained on, and a decision on the union has the power neither has alone (an agency resolving
~440 leads a week holds 210-740 rows in each, where an equal candidate's AUC bound alone is
wider than its margin). Each set alone still guards against what only it can show (a biased
or leaky upload looks fine on its own gate part): a candidate the set shows WORSE than the
champion on a metric (the one-sided lower bound of its loss above zero) is refused there.
Top precision's margin is judged only when the top group holds at least
``top_precision_min_leads`` leads: the count at which an equal candidate's binomial bound at
the worst-case rate (0.5) fits the margin, (z / margin)^2 / 4 (271 at the defaults). Below it
the bound is wider than the margin whatever the models, so the check refuses only a candidate
it shows worse (lower bound above zero); the AUC bounds the ranking on every row, and the
record says so. A champion
that cannot be loaded, or cannot read the rows at all (``champion_comparable``), refuses too;
a promotion that changes what callers must send (``schema_change``) needs its own explicit
permission (``allow_schema_change``; ``modelctl promote --allow-schema-change``) and is then
judged by the absolute checks where the champion cannot read the rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Protocol

import numpy as np

from leadscore import metrics as m
from leadscore.bundle import PARITY_MAX_ABS_DIFF, PARITY_REFERENCE_FILE, ModelOutputs
from leadscore.columns.csv_reader import CsvRefused, read_bytes
from leadscore.columns.labels import DEFAULT_RULE, LabelRule
from leadscore.columns.schema import Schema
from leadscore.settings import PromoteSettings

MAX_PARITY_ABS_DIFF = PARITY_MAX_ABS_DIFF  # the bundle contract's limit, as training's
INTERVAL_TOLERANCE = 1e-6
MIN_SCORE_SPREAD = 0.01
PROBE_ROWS = 512
PROBE_SEED = 20_170
# Resamples of the paired bootstrap (calibration, top precision): the 95th percentile of 400
# resamples moves by about a tenth of the bound's own width between seeds.
BOOTSTRAP_RESAMPLES = 400
BOOTSTRAP_SEED = 20_291
TARGET = "converted"
#: The AUC of a model that ranks no better than a coin: a first model where nothing else
#: scores the leads must have its lower bound above it (module docstring).
CHANCE_AUC = 0.5

OUTPUT_CHECKS = ("outputs_finite", "scores_in_unit_interval", "interval_contains_score",
                 "scores_not_constant", "parity_recomputed")
CHAMPION_CHECKS = ("champion_auc", "champion_brier", "champion_calibration",
                   "champion_top_precision")


class ModelUnderTest(Protocol):
    """What the gate needs of a model (leadscore.bundle.LoadedModel is one)."""

    manifest: dict[str, Any]

    def predict(self, x32: np.ndarray) -> ModelOutputs: ...


@dataclass(frozen=True)
class EvalRows:
    """Labelled RAW rows no candidate trained on: the gate part, `--eval FILE`, the
    platform-held set. Each record holds the values as exported (CSV cells by column name, or
    one JSON object: a raw lead, or a team's columns at the top level or under ``fields``);
    every model reads them through its own schema (`encode`)."""

    records: tuple[Mapping[str, Any], ...]
    y: np.ndarray  # [n] 0/1
    source: str
    columns: frozenset[str]  # the columns the rows carry (CSV header, JSON keys)

    @property
    def n(self) -> int:
        return len(self.records)

    @classmethod
    def from_matrix(cls, X: np.ndarray, y: np.ndarray, source: str,
                    names: Sequence[str] | None = None) -> EvalRows:
        """Rows of numbers in a known column order (the 20 features unless `names`)."""
        if names is None:
            from leadscore.features import FEATURE_NAMES

            names = FEATURE_NAMES
        cols = list(names)
        records = tuple(dict(zip(cols, (float(v) for v in row), strict=True))
                        for row in np.asarray(X, dtype=np.float64))
        return cls(records, np.asarray(y, dtype=np.int64).reshape(-1), source,
                   frozenset(cols))


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
    on: str = ""  # which evaluation set ("" for checks that use no labelled rows)

    def as_reason(self) -> str:
        where = f" [{self.on}]" if self.on else ""
        return f"{self.name}{where}: {self.detail}"


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
            "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail,
                        **({"on": c.on} if c.on else {})} for c in self.checks],
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


# --------------------------------------------------------------------------- absolute checks


def _calibration(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    return {"bins": m.calibration_bins(y, p),
            "expected_calibration_error": m.expected_calibration_error(y, p),
            "mean_predicted": float(np.mean(p)), "observed_rate": float(np.mean(y))}


def _auc_check(auc: float, lower: float, y: np.ndarray, settings: PromoteSettings,
               on: str, chance_bar: bool) -> Check:
    n_pos = int(y.sum())
    if chance_bar:
        passed = math.isfinite(lower) and lower > CHANCE_AUC
        bar = (f"{'>' if passed else '<='} chance {CHANCE_AUC:.2f} (nothing but this line "
               "of models scores these leads)")
    else:
        passed = math.isfinite(lower) and lower >= settings.min_auc
        bar = f"{'>=' if passed else '<'} MIN_AUC {settings.min_auc:.2f}"
    return Check("auc_lower_bound", passed,
                 f"AUC {auc:.4f} on {y.size} rows ({n_pos} conversions), one-sided 95 % lower "
                 f"bound {lower:.4f} {bar}", on=on)


def _metric_checks(y: np.ndarray, score: np.ndarray, settings: PromoteSettings,
                   measured: dict[str, Any], on: str, chance_bar: bool = False) -> list[Check]:
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    measured.update({"gate_rows": int(y.size), "gate_converted": n_pos})
    if n_pos < 2 or n_neg < 2:
        return [Check("auc_lower_bound", False,
                      f"the evaluation rows hold {n_pos} conversions and {n_neg} "
                      "non-conversions: too few to measure an AUC", on=on)]
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
        f"precision_top_{_pct(settings.top_fraction)}": m.precision_at_top(
            y, score, settings.top_fraction),
    })
    return [
        _auc_check(auc, lower, y, settings, on, chance_bar),
        Check("brier", brier <= settings.max_brier,
              f"Brier {brier:.4f} {'<=' if brier <= settings.max_brier else '>'} MAX_BRIER "
              f"{settings.max_brier:.2f}", on=on),
        Check("log_loss_beats_base_rate", loss < base_loss,
              f"log loss {loss:.4f} vs {base_loss:.4f} for the constant rate {rate:.3f}",
              on=on),
    ]


def _pct(fraction: float) -> str:
    return f"{fraction * 100:g}pct"


# --------------------------------------------------------------------------- the champion


def compare_with_champion(y: np.ndarray, candidate: np.ndarray, champion: np.ndarray,
                          settings: PromoteSettings) -> dict[str, dict[str, Any]]:
    """The decision rule's statistics on one set of rows, per metric: both values, the
    candidate's loss, its one-sided upper confidence bound, the margin, passed.

    Losses are oriented so that positive means the candidate is worse. AUC and Brier have
    closed-form paired standard errors (normal bound); calibration error and top precision
    take the same paired bootstrap resamples (percentile bound).
    """
    z = NormalDist().inv_cdf(settings.gate_confidence)
    out: dict[str, dict[str, Any]] = {}

    auc = m.delong_paired(y, candidate, champion)
    out["auc"] = _bounded(auc.auc_a, auc.auc_b, -auc.diff, -auc.diff + z * auc.se,
                          settings.max_auc_drop, "DeLong paired", auc.se,
                          -auc.diff - z * auc.se)
    brier = m.brier_paired(y, candidate, champion)
    out["brier"] = _bounded(brier.brier_a, brier.brier_b, brier.diff,
                            brier.diff + z * brier.se, settings.max_brier_loss,
                            "paired differences of squared errors", brier.se,
                            brier.diff - z * brier.se)

    def top(labels: np.ndarray, s: np.ndarray) -> float:
        return m.precision_at_top(labels, s, settings.top_fraction)

    q = settings.gate_confidence * 100
    for name, stat, sign, margin in (
        ("calibration_error", m.expected_calibration_error, 1.0, settings.max_ece_loss),
        (f"precision_top_{_pct(settings.top_fraction)}", top, -1.0,
         settings.max_top_precision_loss),
    ):
        a, b = stat(y, candidate), stat(y, champion)
        diffs = sign * m.paired_bootstrap(y, candidate, champion, stat,
                                          resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
        out[name] = _bounded(a, b, sign * (a - b), float(np.percentile(diffs, q)), margin,
                             f"paired bootstrap, {BOOTSTRAP_RESAMPLES} resamples",
                             float(np.std(diffs, ddof=1)),
                             float(np.percentile(diffs, 100 - q)))
    top_name = f"precision_top_{_pct(settings.top_fraction)}"
    for name in ("brier", "calibration_error"):  # the AUC's margin decides on every row
        _undecided_margin(out[name])
    in_top = max(1, round(settings.top_fraction * y.size))
    need = top_precision_min_leads(settings)
    if in_top < need:
        # Its upper bound is wider than the margin for any pair of models here: it can
        # still show the candidate worse (the lower bound above zero), never that it is not.
        judged = out[top_name]
        worse = math.isfinite(judged["lower_bound"]) and judged["lower_bound"] > 0
        judged.update(
            passed=not worse, judged=False,
            not_judged=f"the top group holds {in_top} leads, fewer than the {need} at which an "
            "equal candidate's bound fits the margin; refused only when shown worse (lower "
            f"bound {judged['lower_bound']:+.4f} {'> 0' if worse else '<= 0'})")
    return out


def _bounded(candidate: float, champion: float, loss: float, upper: float, margin: float,
             method: str, se: float, lower: float) -> dict[str, Any]:
    ok = math.isfinite(upper) and upper <= margin
    return {"candidate": candidate, "champion": champion, "loss": loss, "upper_bound": upper,
            "lower_bound": lower, "margin": margin, "passed": ok, "method": method, "se": se}


def _undecided_margin(judged: dict[str, Any]) -> None:
    """A margin these rows cannot decide: the bound's own width (upper bound minus the
    measured loss) is wider than the margin, so even a candidate measured exactly as good as
    the champion would be refused, whatever the two models are. On an agency's few hundred
    evaluation rows per week the Brier and calibration bounds are that wide (the Brier bound
    measured 0.0030-0.0046 wide on 480-965 rows: fitting 0.002 takes ~2,200-2,500), and the
    rule refused every retrained candidate, the better ones included, so the first model
    served for good. There the candidate must be measured at least as good as the champion
    on the same rows (loss at most zero), and is refused as well when shown worse (the lower
    bound above zero); where the margin can be decided, it decides."""
    if not (math.isfinite(judged["upper_bound"]) and math.isfinite(judged["loss"])):
        return
    width = judged["upper_bound"] - judged["loss"]
    if width <= judged["margin"]:
        return
    worse = math.isfinite(judged["lower_bound"]) and judged["lower_bound"] > 0
    no_worse = judged["loss"] <= 0 and not worse
    judged.update(
        passed=no_worse, judged=False,
        not_judged=f"the bound is {width:.4f} wide on these rows, wider than the margin "
        f"{judged['margin']:g}: refused unless measured at least as good as the champion "
        f"(loss {judged['loss']:+.4f} {'<= 0' if judged['loss'] <= 0 else '> 0'}) and not "
        f"shown worse (lower bound {judged['lower_bound']:+.4f})")


def top_precision_min_leads(settings: PromoteSettings) -> int:
    """Leads the top group must hold before top precision is judged: where an equal
    candidate's one-sided binomial bound at the worst-case rate 0.5 fits the margin."""
    z = NormalDist().inv_cdf(settings.gate_confidence)
    return math.ceil(0.25 * (z / settings.max_top_precision_loss) ** 2)


_RULE_NAMES = {"auc": ("champion_auc", "AUC", "MAX_AUC_DROP"),
               "brier": ("champion_brier", "Brier", "MAX_BRIER_LOSS"),
               "calibration_error": ("champion_calibration", "calibration error (ECE)",
                                     "MAX_ECE_LOSS")}


def _rule_names(key: str, settings: PromoteSettings) -> tuple[str, str, str]:
    """(check name, metric label, margin setting) of a compared metric; any other key is the
    top-precision metric."""
    return _RULE_NAMES.get(key, (
        "champion_top_precision",
        f"precision in the top {settings.top_fraction * 100:g} %", "MAX_TOP_PRECISION_LOSS"))


def _decision_checks(stats: Mapping[str, Mapping[str, Any]], n: int, settings: PromoteSettings,
                     on: str) -> list[Check]:
    checks: list[Check] = []
    level = f"{settings.gate_confidence * 100:g} %"
    for key, s in stats.items():
        name, label, margin_name = _rule_names(key, settings)
        if s.get("judged", True) is False:
            checks.append(Check(name, bool(s["passed"]),
                                f"{label} {s['candidate']:.4f} vs champion "
                                f"{s['champion']:.4f}, margin not judged: {s['not_judged']}",
                                on=on))
            continue
        checks.append(Check(
            name, bool(s["passed"]),
            f"{label} {s['candidate']:.4f} vs champion {s['champion']:.4f} on the same {n} "
            f"rows: loss {s['loss']:+.4f}, upper {level} bound {s['upper_bound']:+.4f} "
            f"{'<=' if s['passed'] else 'not <='} {margin_name} {s['margin']:g} "
            f"({s['method']})", on=on))
    return checks


def _guard_checks(stats: Mapping[str, Mapping[str, Any]], n: int, settings: PromoteSettings,
                  on: str) -> list[Check]:
    """One set of several: refused only where this set shows the candidate worse (the lower
    bound of its loss above zero); the margin decision is taken on all the sets together."""
    checks: list[Check] = []
    level = f"{settings.gate_confidence * 100:g} %"
    for key, s in stats.items():
        name, label, _ = _rule_names(key, settings)
        worse = math.isfinite(s["lower_bound"]) and s["lower_bound"] > 0
        checks.append(Check(
            name, not worse,
            f"{label} {s['candidate']:.4f} vs champion {s['champion']:.4f} on the same {n} "
            f"rows of this set: loss {s['loss']:+.4f}, lower {level} bound "
            f"{s['lower_bound']:+.4f} {'> 0: shown worse here' if worse else '<= 0'} "
            f"({s['method']})", on=on))
    return checks


# --------------------------------------------------------------------------- schemas


def _form(model: ModelUnderTest) -> Schema | None:
    return getattr(model, "schema", None)


def schema_change(champion: ModelUnderTest, candidate: ModelUnderTest) -> str | None:
    """What callers would have to change if `candidate` replaced `champion` (None: nothing):
    who is answered 400 afterwards. A custom schema that only adds or drops columns changes
    nothing for callers (unknown fields are ignored, absent ones are missing values)."""
    old, new = _form(champion), _form(candidate)
    if old is None and new is None:
        return None
    if old is None and new is not None:
        return ("the champion scores the real-estate features; the candidate scores a team's "
                "columns: every caller sending `features` or `feature_vector` (/score, "
                "/score/batch, HighLevel webhooks mapped to the real-estate features) will be "
                "answered 400 and must send `fields` with the columns "
                + ", ".join(new.column_names))
    if old is not None and new is None:
        return ("the champion scores a team's columns; the candidate scores the real-estate "
                "features: every caller sending `fields` (" + ", ".join(old.column_names)
                + ") will be answered 400 and must send `features` or `feature_vector`")
    assert old is not None and new is not None
    stricter = []
    for col in new.columns:
        before = next((c for c in old.columns if c.name == col.name), None)
        if before is not None and before.kind != col.kind and col.kind != "categorical":
            stricter.append(f"{col.name} ({before.kind} -> {col.kind})")
    target = (f"the target changes from {old.target!r} to {new.target!r}; "
              if (old.target, tuple(old.positive)) != (new.target, tuple(new.positive)) else "")
    if not stricter:
        return target.rstrip("; ") or None
    return (target + "callers sending values of the old kind in "
            + ", ".join(stricter) + " will be answered 400")


# --------------------------------------------------------------------------- measure


def _set_label(rows: EvalRows, name: str) -> str:
    return f"{name}: {rows.source}"


def measure(
    candidate: ModelUnderTest,
    bundle_dir: Path,
    settings: PromoteSettings,
    *,
    rows: EvalRows | None = None,
    holdout: EvalRows | None = None,
    champion: ModelUnderTest | str | None = None,
    counts: ClassCounts | None = None,
    allow_schema_change: bool = False,
    nothing_else_scores: bool = False,
) -> GateReport:
    """Run every check on the candidate; nothing here trusts the manifest's figures.

    `rows`: the upload's gate part (or `--eval FILE`); `holdout`: the platform-held set;
    `champion`: the serving model, or a sentence saying why it could not be loaded.
    `nothing_else_scores`: no other model or rule would answer for these leads, only this
    line of team-schema models (none yet, or a champion judged by the same bar), so the AUC
    bar is chance instead of MIN_AUC (module docstring); the caller decides
    (`registry.promote`).
    """
    report = GateReport()
    measured = report.measured
    chance_bar = nothing_else_scores
    measured["auc_bar"] = (f"lower bound above chance {CHANCE_AUC:.2f}: nothing but this "
                           "line of models scores the leads" if chance_bar
                           else f"lower bound at least MIN_AUC {settings.min_auc:.2f}")
    reference = load_parity_reference(bundle_dir)
    n_features = len(candidate.manifest.get("feature_names") or []) or 20
    if reference is not None and "features" in reference and reference["features"].ndim == 2:
        ref_x = np.asarray(reference["features"], dtype=np.float64)
        lo, hi = np.minimum(ref_x.min(axis=0), 0.0), np.maximum(ref_x.max(axis=0), 1.0)
    else:
        lo, hi = np.zeros(n_features), np.ones(n_features)
    probes = probe_rows(lo, hi)
    measured["probe_rows"] = int(probes.shape[0])

    change = None
    if champion is not None and not isinstance(champion, str):
        change = schema_change(champion, candidate)
        if change:
            measured["schema_change"] = change
            report.checks.append(Check(
                "schema_change", allow_schema_change,
                change + ("" if allow_schema_change else
                          "; promote it only on purpose: modelctl promote "
                          "--allow-schema-change"), forceable=False))
    if isinstance(champion, str):
        report.checks.append(Check("champion_comparable", False, champion))

    sets = [(name, r) for name, r in (("gate rows", rows), ("platform-held", holdout))
            if r is not None]
    outs: list[tuple[str, ModelOutputs]] = []
    errors: list[str] = []
    got = _outputs(candidate, probes)
    if isinstance(got, str):
        errors.append(got)
    else:
        outs.append(("probe leads", got))
    spread_on: np.ndarray | None = None
    evaluated: dict[str, Any] = {}
    several = len(sets) > 1 and champion is not None and not isinstance(champion, str)
    pooled: list[_Scored] = []
    pooled_names: list[str] = []
    for name, eval_rows in sets:
        label = _set_label(eval_rows, name)
        info: dict[str, Any] = {"source": eval_rows.source, "rows": eval_rows.n}
        evaluated[name] = info
        encoded = encode(candidate, eval_rows)
        if isinstance(encoded, str):
            info["not_measured"] = f"the candidate cannot read these rows: {encoded}"
            if name == "gate rows":
                report.checks.append(Check("candidate_reads_rows", False, encoded, on=label))
            continue
        X, ok = encoded
        info["unreadable_rows"] = int((~ok).sum())
        out = _outputs(candidate, X[ok])
        if isinstance(out, str):
            errors.append(out)
            continue
        outs.append((f"{name} rows", out))
        score = np.asarray(out.score, dtype=np.float64)
        y = eval_rows.y[ok]
        if spread_on is None:
            spread_on = score
        if not np.all(np.isfinite(score)):
            continue
        set_measured: dict[str, Any] = {}
        report.checks += _metric_checks(y, score, settings, set_measured, label, chance_bar)
        info["candidate"] = set_measured
        if name == "gate rows" or "auc" not in measured:
            measured.update(set_measured)
            measured["evaluation_source"] = eval_rows.source
        if champion is None or isinstance(champion, str) or "auc" not in set_measured:
            continue
        before = len(pooled)
        report.checks += _champion_checks(eval_rows, ok, score, champion, settings, info,
                                          label, allow_schema_change and bool(change),
                                          pooled if several else None)
        if len(pooled) > before:
            pooled_names.append(name)
    if pooled:
        report.checks += _pooled_checks(pooled, pooled_names, settings, measured)
    if errors:
        report.checks.append(Check("outputs_finite", False, "; ".join(errors), forceable=False))
    report.checks += _output_checks(outs)
    report.checks.append(_spread_check(
        spread_on if spread_on is not None else
        (outs[0][1].score if outs else np.zeros(0))))
    report.checks.append(_parity_check(candidate, reference))
    if evaluated:
        measured["evaluation_sets"] = evaluated
    else:
        measured["metrics"] = "not measured: no evaluation rows"
    if champion is not None and not isinstance(champion, str):
        measured["decision_rule"] = (
            f"on the same rows, the one-sided {settings.gate_confidence * 100:g} % upper bound "
            "of the candidate's loss against the champion within the margin, for AUC, Brier, "
            f"calibration error and precision in the top {settings.top_fraction * 100:g} % "
            f"(judged from {top_precision_min_leads(settings)} leads in the top group), on "
            "all the evaluation sets together; on each set alone, the candidate not shown "
            "worse (the lower bound of its loss at most zero)")
    report.checks.append(_counts_check(counts, settings))
    if counts is not None:
        measured["training_class_counts"] = {"converted": counts.converted,
                                             "not_converted": counts.not_converted,
                                             "source": counts.source}
    return report


def _champion_checks(rows: EvalRows, ok: np.ndarray, score: np.ndarray,
                     champion: ModelUnderTest, settings: PromoteSettings, info: dict[str, Any],
                     label: str, schema_change_allowed: bool,
                     pooled: list[_Scored] | None = None) -> list[Check]:
    """The comparison on one set: the decision itself when it is the only set (`pooled`
    None), else the set's guard, its scored rows added to `pooled` for the joint decision."""
    encoded = encode(champion, rows)
    if isinstance(encoded, str):
        why = f"the champion cannot read these rows: {encoded}"
        info["champion"] = {"comparable": False, "why": why}
        if schema_change_allowed:  # said and allowed: judged by the absolute checks here
            return [Check("champion_comparable", True,
                          why + "; the schema change was allowed, so the absolute checks "
                          "decide on these rows", on=label)]
        return [Check("champion_comparable", False, why, on=label)]
    X_h, ok_h = encoded
    both = ok & ok_h
    got = _outputs(champion, X_h[both])
    if isinstance(got, str):
        info["champion"] = {"comparable": False, "why": got}
        return [Check("champion_comparable", False, got, on=label)]
    champ = np.asarray(got.score, dtype=np.float64)
    cand = score[both[ok]]
    y = rows.y[both]
    if not np.all(np.isfinite(champ)):
        info["champion"] = {"comparable": False, "why": "the champion gives non-finite scores"}
        return [Check("champion_comparable", False, "the champion gives non-finite scores",
                      on=label)]
    n_pos = int(y.sum())
    if n_pos < 2 or y.size - n_pos < 2:
        return [Check("champion_comparable", False,
                      f"{y.size} rows both models read hold {n_pos} conversions: too few to "
                      "compare", on=label)]
    stats = compare_with_champion(y, cand, champ, settings)
    info["champion"] = {"comparable": True, "version": champion.manifest.get("model_version"),
                        "same_rows": int(y.size), "converted": n_pos,
                        "confidence": settings.gate_confidence, "metrics": stats}
    if pooled is None:
        return _decision_checks(stats, int(y.size), settings, label)
    records = [r for r, keep in zip(rows.records, both, strict=True) if keep]
    pooled.append((records, y, cand, champ))
    return _guard_checks(stats, int(y.size), settings, label)


_Scored = tuple[list[Mapping[str, Any]], np.ndarray, np.ndarray, np.ndarray]


def _pooled_checks(parts: Sequence[_Scored], names: Sequence[str], settings: PromoteSettings,
                   measured: dict[str, Any]) -> list[Check]:
    """The decision on every row of every set both models read; a row two sets hold (an
    operator's --eval file that repeats the platform-held set) counts once."""
    seen: set[str] = set()
    ys: list[np.ndarray] = []
    cands: list[np.ndarray] = []
    champs: list[np.ndarray] = []
    for records, y, cand, champ in parts:
        keep = np.ones(y.size, dtype=bool)
        for i, record in enumerate(records):
            key = json.dumps(record, sort_keys=True, default=str)
            keep[i] = key not in seen
            seen.add(key)
        ys.append(y[keep])
        cands.append(cand[keep])
        champs.append(champ[keep])
    y, cand, champ = np.concatenate(ys), np.concatenate(cands), np.concatenate(champs)
    label = "every evaluation row: " + " + ".join(names)
    stats = compare_with_champion(y, cand, champ, settings)
    measured["champion_decision"] = {"on": list(names), "same_rows": int(y.size),
                                     "converted": int(y.sum()),
                                     "confidence": settings.gate_confidence, "metrics": stats}
    return _decision_checks(stats, int(y.size), settings, label)


def _counts_check(counts: ClassCounts | None, settings: PromoteSettings) -> Check:
    need = settings.min_conversions
    if counts is None:
        return Check("min_conversions", False,
                     "the number of conversions the candidate was trained on is unknown")
    ok = counts.converted >= need and counts.not_converted >= need
    return Check("min_conversions", ok,
                 f"trained on {counts.converted} conversions and {counts.not_converted} "
                 f"non-conversions ({counts.source}); MIN_CONVERSIONS is {need} of each")


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


def label_rule(manifest: Mapping[str, Any]) -> tuple[str, LabelRule]:
    """(target column, how its values read as converted) the bundle was trained to predict:
    the one label parser, so the gate counts a row converted exactly when training did."""
    schema = manifest.get("schema")
    if isinstance(schema, Mapping) and schema.get("target"):
        return str(schema["target"]), LabelRule.of(
            (str(p) for p in schema.get("positive") or ()),
            (str(n) for n in schema.get("negative") or ()))
    return TARGET, DEFAULT_RULE


def read_rows(data: bytes, *, jsonl: bool, source: str, target: str = TARGET,
              rule: LabelRule = DEFAULT_RULE) -> tuple[EvalRows, int]:
    """(raw rows, number of unusable rows) of a training-format file: the gate part,
    `--eval FILE`, the platform-held set. Only the target is read here; each model reads the
    rest through its own schema (`encode`). Rows without a usable label are skipped and
    counted, never fatal: the gate must not crash on data the training job would have refused.
    """
    text = data.decode("utf-8-sig", errors="replace")
    records: list[Mapping[str, Any]] = []
    y: list[int] = []
    columns: set[str] = set()
    bad = 0
    if jsonl:
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if not isinstance(record, dict):
                bad += 1
                continue
            label = rule.label(record.get(target))
            if label is None:
                bad += 1
                continue
            columns.update(record)
            nested = record.get("fields")
            if isinstance(nested, Mapping):
                columns.update(str(k) for k in nested)
            records.append(record)
            y.append(label)
    else:
        try:
            header, table = read_bytes(data, source)  # the one CSV reader, as training reads
        except CsvRefused as exc:
            raise ValueError(str(exc)) from None
        if target not in header:
            raise ValueError(f"{source}: no {target!r} column")
        columns.update(header)
        at = header.index(target)
        for cells in table:
            label = rule.label(cells[at]) if at < len(cells) else None
            if label is None or len(cells) != len(header):
                bad += 1
                continue
            records.append(dict(zip(header, cells, strict=True)))
            y.append(label)
    return EvalRows(tuple(records), np.asarray(y, dtype=np.int64), source,
                    frozenset(columns)), bad


def read_rows_for_bundle(data: bytes, *, jsonl: bool, bundle_dir: Path, source: str
                         ) -> tuple[EvalRows, int]:
    """`read_rows` labelled the way the bundle in `bundle_dir` was trained: its schema.json's
    target and label rule when it carries a team's schema, else the real-estate `converted`."""
    from leadscore.bundle import SCHEMA_FILE, read_schema

    if (Path(bundle_dir) / SCHEMA_FILE).is_file():
        schema = read_schema(bundle_dir)
        return read_rows(data, jsonl=jsonl, source=source, target=schema.target,
                         rule=schema.label_rule())
    return read_rows(data, jsonl=jsonl, source=source)


def encode(model: ModelUnderTest, rows: EvalRows) -> tuple[np.ndarray, np.ndarray] | str:
    """The model's inputs for the raw rows through its own schema: (X float32 [n, d], readable
    [n] bool), or a sentence saying why the model cannot read these rows at all."""
    schema = _form(model)
    if schema is None:
        return _encode_features(rows)
    return _encode_columns(schema, rows)


def _encode_features(rows: EvalRows) -> tuple[np.ndarray, np.ndarray] | str:
    from leadscore.errors import InvalidInput
    from leadscore.features import FEATURE_NAMES, SECTIONS, extract_features

    names = list(FEATURE_NAMES)
    X = np.zeros((rows.n, len(names)), dtype=np.float32)
    ok = np.zeros(rows.n, dtype=bool)
    flat = all(n in rows.columns for n in names)
    if not flat and not rows.columns & {"features", *SECTIONS}:
        missing = [n for n in names if n not in rows.columns]
        return (f"the rows carry neither the 20 feature columns (missing "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}) nor raw leads")
    for i, record in enumerate(rows.records):
        try:
            if flat:
                values = np.array([float(record[n]) for n in names], dtype=np.float64)
            else:
                nested = record.get("features")
                raw = nested if isinstance(nested, Mapping) else {
                    k: v for k, v in record.items() if k in SECTIONS}
                values = extract_features(raw).values
        except (KeyError, TypeError, ValueError, InvalidInput):
            continue
        if np.all(np.isfinite(values)):
            X[i], ok[i] = values, True
    return X, ok


def _encode_columns(schema: Schema, rows: EvalRows) -> tuple[np.ndarray, np.ndarray] | str:
    from leadscore.errors import InvalidInput

    missing = [c for c in schema.column_names if c not in rows.columns]
    if missing:
        return (f"the rows lack the bundle's columns {', '.join(missing[:5])}"
                f"{' ...' if len(missing) > 5 else ''}")
    fields = [r["fields"] if isinstance(r.get("fields"), Mapping) else r for r in rows.records]
    try:
        return (schema.encode_rows(fields).astype(np.float32),
                np.ones(rows.n, dtype=bool))
    except InvalidInput:
        pass  # some rows hold unreadable values: read one by one, leave those out
    X = np.zeros((rows.n, schema.n_inputs), dtype=np.float32)
    ok = np.zeros(rows.n, dtype=bool)
    for i, one in enumerate(fields):
        try:
            X[i] = schema.encode_rows([one])[0]
            ok[i] = True
        except InvalidInput:
            continue
    return X, ok
