"""The training job: leads in, a model bundle a person can trust out (docs/RETRAINING.md).

CLI mode (the original's flags kept)::

    python training/train.py --input leads.csv|leads.jsonl --output DIR \\
        [--test-size 0.2] [--random-seed 42] [--skip-validation] \\
        [--hp xgb_n_estimators=300 --hp folds=3 ...] [--xgb_n_estimators 300 ...]

A team's own columns (train_custom.py, leadscore.columns.schema; docs/SCHEMA.md)::

    python training/train.py --input export.csv --output DIR --target COLUMN \\
        [--positive VALUE ...] [--negative VALUE ...] [--exclude COLUMN ...] \\
        [--keep COLUMN ...] [--schema FILE] [--as-of YYYY-MM-DD]
    python training/train.py --input export.csv --target COLUMN --print-schema > schema.json

Without ``--target``/``--schema`` the input is the real-estate 20-feature contract.

SageMaker mode (no ``--input``): the ``training`` channel (``SM_CHANNEL_TRAINING``, default
``/opt/ml/input/data/training``; every .csv or .jsonl file in it), hyperparameters from
``/opt/ml/input/config/hyperparameters.json`` (JSON-encoded strings; ``sagemaker_*`` keys are
ignored; ``test-size``, ``random-seed`` and ``skip-validation`` are the job's own flags; every
other key is an ensemble hyperparameter, unknown keys are refused), the bundle goes to
``SM_MODEL_DIR`` (``/opt/ml/model``), a failure's reason to ``/opt/ml/output/failure`` and
the exit code is non-zero. The SageMaker toolkit also passes the hyperparameters as
``--name value`` arguments: every ensemble hyperparameter is an accepted flag, so they parse.
``LEADSCORE_OPT_ML_ROOT`` moves /opt/ml (tests); see ``leadscore.settings.TrainingSettings``.

Steps: load + refuse bad input (train_data.py) -> stratified held-out split -> fit the
stacked ensemble on the training split only (lead_ensemble.ensemble) -> one ONNX graph +
explainer, parity on the held-out split (lead_ensemble.export; a gap beyond
bundle.PARITY_MAX_ABS_DIFF fails the job) ->
held-out metrics, importance, reports (train_report.py) -> manifest.json (leadscore.bundle)
-> validation.

``--skip-validation`` skips only the post-training validation: re-opening the finished
bundle through ``leadscore.bundle.load_model`` (manifest, sha256s, feature names) and
checking that onnxruntime alone reproduces the reported held-out scores and gives sane
outputs (scores in [0, 1], lo <= score <= hi). It NEVER skips input refusals, the held-out
metrics or the ONNX parity check.

Baseline for contributions: the per-feature median of the training split's rows, as
float32 (a typical lead of this data; medians are robust to skewed features).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Idle OpenMP threads must sleep, not spin: with the default (active) wait policy, XGBoost and
# LightGBM fits on a 2-core machine shared with other work took 5-10x longer (200k rows:
# 45 s instead of 7 s for one XGBoost fit, measured). Set before any OpenMP runtime loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import train_progress as progress
from leadscore import bundle
from leadscore.classes import (
    DEFAULT_CLASS_THRESHOLDS,
    MIN_ROWS_TO_CHOOSE,
    THRESHOLDS_METHOD,
    choose_thresholds,
    class_table,
)
from leadscore.features import FEATURE_NAMES
from leadscore.settings import TrainingSettings
from train_custom import CustomData, CustomOptions
from train_data import Dataset, TrainingRefused, load_dataset

if TYPE_CHECKING:
    from lead_ensemble.ensemble import FittedEnsemble
    from train_report import ImportanceRow

# xgboost, lightgbm, scikit-learn, onnx and matplotlib are imported only once the input has
# been accepted (in `run_training`), so a refusal answers in a fraction of a second.

JOB_KEYS = {"test-size": "test_size", "test_size": "test_size",
            "random-seed": "random_seed", "random_seed": "random_seed",
            "skip-validation": "skip_validation", "skip_validation": "skip_validation",
            # a team's own columns (SageMaker passes them as hyperparameters too;
            # lists are comma-separated there)
            "target": "target", "positive": "positive", "negative": "negative",
            "exclude": "exclude", "keep": "keep",
            "as-of": "as_of", "as_of": "as_of",
            # the team schema file in the channel: read from --schema (SageMaker passes every
            # hyperparameter on the command line too), never a model hyperparameter
            "schema": "schema"}
IMPORTANCE_REPEATS = 3
IMPORTANCE_MAX_ROWS = 2000
VALIDATION_TOLERANCE = bundle.PARITY_MAX_ABS_DIFF
BASELINE_METHOD = "per-feature median of the training split, float32"
LIBRARIES = ("numpy", "scikit-learn", "xgboost", "lightgbm", "onnx", "onnxruntime",
             "skl2onnx", "onnxmltools", "matplotlib")


class TrainingFailed(RuntimeError):
    """The job ran but its result cannot be trusted (validation); one-line message."""


@dataclass
class JobConfig:
    input_path: Path
    output_dir: Path
    test_size: float = 0.2
    random_seed: int = 42
    skip_validation: bool = False
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    sagemaker: bool = False
    custom: CustomOptions = field(default_factory=CustomOptions)
    print_schema: bool = False


# --------------------------------------------------------------------------- arguments


def _bool(value: Any) -> bool:
    text = str(value).strip().lower().strip('"')
    if text in ("", "1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise TrainingRefused(f"skip-validation must be true or false, got {value!r}")


def _decode(value: Any) -> Any:
    """SageMaker JSON-encodes hyperparameter values; plain CLI text stays as it is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py",
        allow_abbrev=False,  # unknown --names are hyperparameters, never abbreviations
        description="Train the stacked lead-scoring ensemble and write a model bundle.",
        epilog="Any other --name value (or --name=value) is an ensemble hyperparameter "
        "(lead_ensemble.ensemble.Hyperparameters), as SageMaker passes them.",
    )
    parser.add_argument("--input", type=Path, help="leads .csv or .jsonl (or a directory)")
    parser.add_argument("--output", type=Path, help="bundle directory")
    parser.add_argument("--test-size", "--test_size", dest="test_size", default=None)
    parser.add_argument("--random-seed", "--random_seed", dest="random_seed", default=None)
    parser.add_argument("--skip-validation", "--skip_validation", dest="skip_validation",
                        nargs="?", const="true", default=None,
                        help="skip the post-training bundle re-load check (never parity)")
    parser.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                        help="ensemble hyperparameter override (repeatable)")
    custom = parser.add_argument_group(
        "a team's own columns", "train on any export: --target switches from the real-estate "
        "20-feature contract to a schema inferred from the file (or --schema FILE)")
    custom.add_argument("--target", help="the outcome column")
    custom.add_argument("--positive", action="append", default=None, metavar="VALUE",
                        help="a target value that means converted (repeatable; "
                        "case-insensitive; default: 1, true and yes are converted, 0, false and no "
                        "not, anything else is left out)")
    custom.add_argument("--negative", action="append", default=None, metavar="VALUE",
                        help="a target value that means not converted (repeatable; with "
                        "--positive: values in neither list are unresolved and left out; "
                        "default: every other non-empty value)")
    custom.add_argument("--exclude", action="append", default=None, metavar="COLUMN",
                        help="a column the model must not use (repeatable)")
    custom.add_argument("--keep", action="append", default=None, metavar="COLUMN",
                        help="use a column the leak guard would exclude (repeatable)")
    custom.add_argument("--schema", type=Path, help="a schema file (JSON) instead of inference")
    custom.add_argument("--as-of", dest="as_of", default=None, metavar="YYYY-MM-DD",
                        help="the day date columns' ages are measured from (default today)")
    custom.add_argument("--print-schema", action="store_true",
                        help="print the inferred schema as JSON for editing, then stop")
    return parser


def _names(value: Any) -> tuple[str, ...]:
    """A list flag: repeated CLI values, or one comma-separated SageMaker string."""
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(v).strip() for v in value)
    return tuple(p.strip() for p in str(value).split(",") if p.strip())


def _custom_options(args: argparse.Namespace, job: Mapping[str, Any]) -> CustomOptions:
    from datetime import date

    as_of_text = args.as_of or job.get("as_of")
    as_of = None
    if as_of_text:
        try:
            as_of = date.fromisoformat(str(as_of_text))
        except ValueError as exc:
            raise TrainingRefused(f"--as-of must be YYYY-MM-DD, got {as_of_text!r}") from exc
    return CustomOptions(
        target=str(args.target or job.get("target") or ""),
        positive=tuple(args.positive) if args.positive is not None
        else _names(job.get("positive")),
        negative=tuple(args.negative) if args.negative is not None
        else _names(job.get("negative")),
        exclude=tuple(args.exclude) if args.exclude is not None else _names(job.get("exclude")),
        keep=tuple(args.keep) if args.keep is not None else _names(job.get("keep")),
        schema_path=args.schema,
        as_of=as_of,
    )


def _read_sagemaker_hyperparameters(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TrainingRefused(f"{path.name} is not valid JSON") from exc
    if not isinstance(raw, dict):
        raise TrainingRefused(f"{path.name} must hold a JSON object")
    return {str(k): _decode(v) for k, v in raw.items() if not str(k).startswith("sagemaker_")}


def _extra_hyperparameters(extras: Sequence[str]) -> dict[str, Any]:
    """`--name value` / `--name=value` pairs left over by argparse (SageMaker style)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(extras):
        token = extras[i]
        if not token.startswith("--") or len(token) <= 2:
            raise TrainingRefused(f"Unexpected argument {token!r}")
        name, sep, value = token[2:].partition("=")
        if not sep:
            if i + 1 >= len(extras) or extras[i + 1].startswith("--"):
                raise TrainingRefused(f"Hyperparameter --{name} needs a value")
            value = extras[i + 1]
            i += 1
        out[name.replace("-", "_")] = _decode(value)
        i += 1
    return out


def config_from_args(argv: Sequence[str] | None, settings: TrainingSettings) -> JobConfig:
    args, extras = build_parser().parse_known_args(argv)
    sagemaker = args.input is None
    merged: dict[str, Any] = {}
    if sagemaker:
        merged.update(_read_sagemaker_hyperparameters(Path(settings.hyperparameters_path)))
    for item in args.hp:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TrainingRefused(f"--hp expects KEY=VALUE, got {item!r}")
        merged[key.strip()] = _decode(value.strip())
    merged.update(_extra_hyperparameters(extras))
    for name in ("test_size", "random_seed", "skip_validation"):
        value = getattr(args, name)
        if value is not None:
            merged[name] = value

    job: dict[str, Any] = {}
    hp: dict[str, Any] = {}
    for key, value in merged.items():
        if key in JOB_KEYS:
            job[JOB_KEYS[key]] = value
        else:
            hp[key] = value
    try:
        test_size = float(job.get("test_size", 0.2))
        random_seed = int(float(job.get("random_seed", 42)))
    except (TypeError, ValueError) as exc:
        raise TrainingRefused("test-size must be a number and random-seed an integer") from exc
    if not 0.05 <= test_size <= 0.5:
        raise TrainingRefused(f"test-size must be between 0.05 and 0.5, got {test_size}")
    hp.setdefault("seed", random_seed)

    if sagemaker:
        input_path = Path(settings.channel_training)
        output_dir = args.output or Path(settings.model_dir)
    else:
        if args.output is None and args.print_schema:
            args.output = Path(".")  # --print-schema writes no bundle
        if args.output is None:
            raise TrainingRefused("--output is required with --input")
        input_path, output_dir = args.input, args.output
    custom = _custom_options(args, job)
    if sagemaker and custom.schema_path is not None and not custom.schema_path.is_absolute():
        # The retrain function puts a team's schema into the training channel, beside the
        # rows: a relative --schema names a file there.
        custom = replace(custom, schema_path=input_path / custom.schema_path)
    return JobConfig(
        input_path=input_path,
        output_dir=output_dir,
        test_size=test_size,
        random_seed=random_seed,
        skip_validation=_bool(job["skip_validation"]) if "skip_validation" in job else False,
        hyperparameters=hp,
        sagemaker=sagemaker,
        custom=custom,
        print_schema=bool(args.print_schema),
    )


# --------------------------------------------------------------------------- the job


def _library_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


BUNDLE_FILES = frozenset({
    bundle.MODEL_FILE, bundle.MANIFEST_FILE, bundle.METRICS_FILE, bundle.IMPORTANCE_JSON,
    bundle.IMPORTANCE_TXT, bundle.REPORT_TXT, bundle.REPORT_HTML, bundle.EXPLAINER_FILE,
    bundle.SCHEMA_FILE, bundle.PARITY_REFERENCE_FILE, bundle.REFERENCE_FILE,
})


def check_output_dir(output_dir: Path) -> None:
    """The output must be new, empty or an earlier bundle: never delete a user's files."""
    if output_dir.exists() and not output_dir.is_dir():
        raise TrainingRefused(f"Output {output_dir} exists and is not a directory")
    if not output_dir.is_dir():
        return
    foreign = sorted(p.name for p in output_dir.iterdir()
                     if p.name not in BUNDLE_FILES and not p.name.startswith(".staging-"))
    if foreign:
        raise TrainingRefused(
            f"Output directory {output_dir} holds other files ({', '.join(foreign[:5])}"
            f"{', ...' if len(foreign) > 5 else ''}); use a new or empty directory"
        )


def _prepare_output(output_dir: Path) -> Path:
    """A fresh staging directory inside the output (the bundle must hold only its files)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = output_dir / f".staging-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    return staging


def _publish(staging: Path, output_dir: Path) -> None:
    """Replace the output directory's files with the staged bundle."""
    for old in output_dir.iterdir():
        if old.is_file() and old.name in BUNDLE_FILES:
            old.unlink()
    for new in staging.iterdir():
        new.replace(output_dir / new.name)
    staging.rmdir()


def _gain_vector(scores: Mapping[str, Any], names: Sequence[str], prefix: str = "f"
                 ) -> np.ndarray:
    v = np.zeros(len(names), dtype=np.float64)
    for key, value in scores.items():
        name = str(key)
        if name in names:
            v[list(names).index(name)] = float(value)
        elif name.startswith(prefix) and name[len(prefix):].isdigit():
            v[int(name[len(prefix):])] = float(value)
    return v


def feature_importance(
    ens: FittedEnsemble, X_eval: np.ndarray, y_eval: np.ndarray, seed: int,
    names: Sequence[str] = FEATURE_NAMES,
) -> list[ImportanceRow]:
    """See train_report's docstring for the method; cheap: one batched call per model."""
    from lead_ensemble.ensemble import sigmoid
    from train_report import importance_rows, permutation_auc_drops

    xgb_gain = _gain_vector(ens.xgb.get_booster().get_score(importance_type="total_gain"),
                            names)
    lgb_gain = np.asarray(ens.lgb.booster_.feature_importance(importance_type="gain"),
                          dtype=np.float64)
    rng = np.random.default_rng(seed)
    if X_eval.shape[0] > IMPORTANCE_MAX_ROWS:
        idx = np.sort(rng.choice(X_eval.shape[0], IMPORTANCE_MAX_ROWS, replace=False))
        X_eval, y_eval = X_eval[idx], y_eval[idx]
    mlp = ens.mlp_pipeline

    def nn_predict(X: np.ndarray) -> np.ndarray:
        X32 = X.astype(np.float32).astype(np.float64)
        return np.asarray(mlp.predict_proba(X32)[:, 1], dtype=np.float64)

    def ens_predict(X: np.ndarray) -> np.ndarray:
        return np.asarray(sigmoid(ens.combine(ens.served.logits(X))), dtype=np.float64)

    drops = permutation_auc_drops({"nn": nn_predict, "ensemble": ens_predict}, X_eval, y_eval,
                                  n_repeats=IMPORTANCE_REPEATS, seed=seed)
    return importance_rows(xgb_gain, lgb_gain, drops["nn"], drops["ensemble"], names)


def _interval_method(export: Mapping[str, Any], ensemble_module: Any) -> str:
    """The interval's method, as the ensemble code states it (one copy of the text)."""
    text = export.get("interval_method") or getattr(ensemble_module, "INTERVAL_METHOD", "")
    if not text:  # fall back to the "Confidence interval" section of the module docstring
        doc = ensemble_module.__doc__ or ""
        _, _, rest = doc.partition("Confidence interval\n-------------------\n")
        text = rest.strip()
    return " ".join(str(text).split())


def _verdict(ens: FittedEnsemble, metrics: Mapping[str, Any]) -> str:
    """What is knowable about the ensemble's quality, in two or three sentences.

    Whether stacking helped is decided on out-of-fold data (the held-out split is too small to
    tell a 1 % difference from noise); how far the model is from the best possible one is only
    knowable when the data carries the true probability (generated leads).
    """
    oof = ens.oof_metrics
    best_name = min((n for n in ens.part_names if n in oof), key=lambda n: oof[n]["log_loss"])
    best_loss = oof[best_name]["log_loss"]
    stack_loss = oof["stacker"]["log_loss"]
    if ens.combiner == "stacker":
        chosen = (f"Stacking helped on out-of-fold training data: the stacker's log loss "
                  f"{stack_loss:.4f} beat the best base model ({best_name}, {best_loss:.4f}), "
                  "so the stacker is served.")
    else:
        chosen = (f"Stacking did not help on out-of-fold training data (stacker log loss "
                  f"{stack_loss:.4f}, {best_name} {best_loss:.4f}), so "
                  f"{ens.combiner.split(':', 1)[1]} alone is served.")
    base_rate = oof["base_rate"]["log_loss"]
    chosen += (f" Both beat the constant conversion rate (log loss {base_rate:.4f}), or there "
               "would be no model.")
    if metrics.get("bayes_auc") is None:
        return (chosen + " How close this is to the best possible model cannot be known "
                "without the true probabilities (only generated data has them).")
    return (chosen + f" Distance to the Bayes limit on the held-out split: AUC "
            f"{metrics['ensemble_auc_roc']:.4f} vs {metrics['bayes_auc']:.4f} (ratio "
            f"{metrics['auc_ratio']:.4f}), Brier {metrics['ensemble_brier_score']:.4f} vs "
            f"{metrics['bayes_brier']:.4f} (ratio {metrics['brier_ratio']:.4f}).")


def _class_thresholds(score: np.ndarray) -> tuple[dict[str, float], str]:
    """The bundle's class thresholds, chosen from the held-out scores, and how."""
    chosen = choose_thresholds(score)
    if chosen is None:
        return dict(DEFAULT_CLASS_THRESHOLDS), (
            f"the defaults: fewer than {MIN_ROWS_TO_CHOOSE} held-out rows to choose from")
    return chosen, THRESHOLDS_METHOD


def _classes_table(y: np.ndarray, p: np.ndarray,
                   thresholds: Mapping[str, float] = DEFAULT_CLASS_THRESHOLDS
                   ) -> list[dict[str, Any]]:
    return class_table(y.tolist(), p.tolist(), thresholds)


def _validate_bundle(out: Path, X_test: np.ndarray, expected_score: np.ndarray) -> str:
    """Re-open the finished bundle with onnxruntime alone; raise TrainingFailed on a problem."""
    try:
        model = bundle.load_model(out)
    except bundle.BundleError as exc:
        raise TrainingFailed(f"Validation failed: the bundle does not load: {exc}") from exc
    got = model.predict(X_test.astype(np.float32))
    score = np.asarray(got.score, dtype=np.float64)
    interval = np.asarray(got.interval, dtype=np.float64)
    gap = float(np.max(np.abs(score - expected_score))) if score.size else 0.0
    if not gap <= VALIDATION_TOLERANCE:
        raise TrainingFailed(f"Validation failed: reloaded bundle differs from the reported "
                             f"scores by {gap:.2e}")
    if not (np.all((score >= 0) & (score <= 1))
            and np.all(interval[:, 0] <= score + 1e-6)
            and np.all(score <= interval[:, 1] + 1e-6)):
        raise TrainingFailed("Validation failed: scores outside [0, 1] or outside their interval")
    return (f"passed (bundle re-opened with onnxruntime; {score.size} held-out rows reproduced "
            f"within {gap:.1e})")


class _PhaseClock:
    """Seconds per named phase of the job (``phase_seconds`` in ensemble_metrics.json)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.phases: dict[str, float] = {}
        self._last = self.started

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = round(now - self._last, 3)
        self._last = now

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


@dataclass(frozen=True)
class HeldOutSplit:
    """The stratified train / held-out split (row indices sorted, as the data was read)."""

    train_idx: np.ndarray
    test_idx: np.ndarray
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class HeldOutScores:
    """The native ensemble's held-out predictions and the metrics computed from them."""

    score: np.ndarray
    base: np.ndarray
    interval: np.ndarray
    ensemble: dict[str, Any]  # binary_metrics of the ensemble
    best_base: dict[str, Any]  # the best base model's metrics row
    improvement: float  # % AUC over the best base model
    metrics: dict[str, Any]  # ensemble_metrics.json (completed by later phases)


@dataclass(frozen=True)
class ModelInputs:
    """What the model reads: the real-estate 20 features, or a team's own columns."""

    data: Dataset
    names: list[str]  # the model's input names, manifest `feature_names`
    custom: CustomData | None = None  # the fitted schema, leaks, split, baseline


def model_directions(inputs: ModelInputs) -> list[int]:
    """One monotone direction per model input: the feature contract's for the real-estate
    inputs, the schema's ``direction`` for a team's own columns (one-hot levels and missing
    indicators free)."""
    if inputs.custom is not None:
        return inputs.custom.schema.directions()
    from leadscore.features import FEATURE_DIRECTIONS

    return [FEATURE_DIRECTIONS.get(n, 0) for n in inputs.names]


def _load_inputs(cfg: JobConfig) -> ModelInputs:
    if cfg.custom.active:
        from train_custom import prepare_custom

        custom = prepare_custom(cfg.input_path, cfg.custom, cfg.test_size, cfg.random_seed)
        return ModelInputs(custom.dataset, custom.schema.input_names, custom)
    return ModelInputs(load_dataset(cfg.input_path), list(FEATURE_NAMES))


def _split(data: Dataset, cfg: JobConfig, custom: CustomData | None = None) -> HeldOutSplit:
    from sklearn.model_selection import train_test_split

    if custom is not None:  # split before the schema was fitted (on training rows only)
        tr, te = custom.train_idx, custom.test_idx
        return HeldOutSplit(tr, te, data.X[tr], data.y[tr], data.X[te], data.y[te])
    idx = np.arange(data.n_rows)
    try:
        train_idx, test_idx = train_test_split(
            idx, test_size=cfg.test_size, random_state=cfg.random_seed, stratify=data.y
        )
    except ValueError as exc:
        raise TrainingRefused(f"Cannot split the data: {exc}") from exc
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    return HeldOutSplit(train_idx, test_idx, data.X[train_idx], data.y[train_idx],
                        data.X[test_idx], data.y[test_idx])


def _held_out_metrics(
    ens: FittedEnsemble, data: Dataset, split: HeldOutSplit, export: Mapping[str, Any],
    version: str,
) -> HeldOutScores:
    from train_report import binary_metrics

    y_test = split.y_test
    native = ens.predict_native(split.X_test)
    score = np.asarray(native.score, dtype=np.float64)
    base = np.asarray(native.base_scores, dtype=np.float64)
    interval = np.asarray(native.interval, dtype=np.float64)

    ens_m = binary_metrics(y_test, score)
    base_metrics: list[dict[str, Any]] = []
    for i, name in enumerate(bundle.BASE_MODEL_NAMES):
        model_metrics = binary_metrics(y_test, base[:, i])
        base_metrics.append({"model_name": name, **model_metrics,
                             "training_time_seconds": float(ens.training_seconds[name])})
    best = max(base_metrics, key=lambda row: float(row["auc_roc"]))
    best_auc = float(best["auc_roc"])
    improvement = 100.0 * (ens_m["auc_roc"] - best_auc) / best_auc

    metrics: dict[str, Any] = {
        "ensemble_auc_roc": ens_m["auc_roc"],
        "ensemble_accuracy": ens_m["accuracy"],
        "ensemble_precision": ens_m["precision"],
        "ensemble_recall": ens_m["recall"],
        "ensemble_f1_score": ens_m["f1_score"],
        "ensemble_brier_score": ens_m["brier_score"],
        "base_model_metrics": base_metrics,
        "improvement_over_best_base": improvement,
        "training_samples": int(split.train_idx.size),
        "validation_samples": int(split.test_idx.size),
        "training_date": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "model_version": version,
        "parity_max_abs_diff": float(export["parity_max_abs_diff"]),
        "decision_threshold": 0.5,
        "combiner": ens.combiner,
        "stacker_weights": {n: float(w) for n, w in zip(ens.part_names, ens.weights,
                                                         strict=True)},
        # parts the stacker dropped because they did not help out of fold
        "parts_dropped": list(ens.dropped),
        "stacker_candidates": dict(ens.stacker_candidates),
        "stacker_intercept": float(ens.intercept),
        "oof_metrics": ens.oof_metrics,
        "stacker_training_time_seconds": float(ens.training_seconds.get("stacker", 0.0)),
        "interval_mean_width": float(np.mean(interval[:, 1] - interval[:, 0])),
        "bayes_auc": None,
        "bayes_brier": None,
        "auc_ratio": None,
        "brier_ratio": None,
        "interval_coverage": None,
        "interval_hot_coverage": None,
        "hot_leads": None,
    }
    if data.true_probability is not None:
        true_probability = data.true_probability[split.test_idx]
        bayes = binary_metrics(y_test, true_probability)
        metrics.update({
            "bayes_auc": bayes["auc_roc"],
            "bayes_brier": bayes["brier_score"],
            "auc_ratio": ens_m["auc_roc"] / bayes["auc_roc"],
            "brier_ratio": ens_m["brier_score"] / bayes["brier_score"],
            "interval_coverage": float(np.mean((interval[:, 0] <= true_probability)
                                               & (true_probability <= interval[:, 1]))),
        })
        hot = score >= DEFAULT_CLASS_THRESHOLDS["hot"]
        inside = (interval[:, 0] <= true_probability) & (true_probability <= interval[:, 1])
        metrics["hot_leads"] = int(hot.sum())
        if hot.any():
            metrics["interval_hot_coverage"] = float(np.mean(inside[hot]))
    return HeldOutScores(score, base, interval, ens_m, best, improvement, metrics)


def _write_importance(
    staging: Path, ens: FittedEnsemble, split: HeldOutSplit, random_seed: int,
    names: Sequence[str] = FEATURE_NAMES,
) -> list[ImportanceRow]:
    from train_report import importance_text

    rows = feature_importance(ens, split.X_test, split.y_test, random_seed, names)
    note = ("xgboost/lightgbm: total split gain; neural_net/ensemble: permutation "
            f"importance (mean held-out AUC drop, {IMPORTANCE_REPEATS} shuffles, "
            f"<= {IMPORTANCE_MAX_ROWS} rows, negatives clipped to 0); std_dev across the "
            "three base models.")
    (staging / bundle.IMPORTANCE_JSON).write_text(
        json.dumps([row.to_dict() for row in rows], indent=2) + "\n")
    (staging / bundle.IMPORTANCE_TXT).write_text(importance_text(rows, note))
    return rows


def _warnings(held_out: HeldOutScores, split: HeldOutSplit, n_rows: int,
              real_estate: bool = True) -> list[str]:
    """Sentences for the report when a figure misses its target (the job still succeeds).

    The AUC and Brier targets are the real-estate contract's (measured on its data); a team's
    own columns are judged against the reference LightGBM on the same split instead."""
    from train_report import TARGET_AUC, TARGET_BRIER

    ens_m, metrics = held_out.ensemble, held_out.metrics
    warnings = []
    if real_estate and ens_m["auc_roc"] < TARGET_AUC:
        warnings.append(f"ensemble AUC {ens_m['auc_roc']:.4f} is below the "
                        f"{TARGET_AUC} target")
    if real_estate and ens_m["brier_score"] >= TARGET_BRIER:
        warnings.append(f"Brier score {ens_m['brier_score']:.4f} is not below "
                        f"{TARGET_BRIER}")
    if metrics["auc_ratio"] is not None and metrics["auc_ratio"] < 0.98:
        warnings.append(f"AUC ratio to the Bayes limit {metrics['auc_ratio']:.4f} < 0.98")
    if metrics["brier_ratio"] is not None and metrics["brier_ratio"] > 1.10:
        warnings.append(f"Brier ratio to the Bayes limit {metrics['brier_ratio']:.4f} "
                        "> 1.10")
    if metrics["interval_coverage"] is not None and metrics["interval_coverage"] < 0.93:
        warnings.append(f"the 95 % interval covers the true probability for only "
                        f"{metrics['interval_coverage']:.1%} of held-out rows")
    hot = metrics.get("interval_hot_coverage")
    if hot is not None and hot < 0.90:
        warnings.append(f"the 95 % interval covers the true probability for only {hot:.1%} "
                        f"of the {metrics['hot_leads']} hot held-out leads")
    converted = int(split.y_test.sum())
    if converted < 30:
        warnings.append(f"only {converted} converted leads in the held-out split: "
                        "metrics are noisy")
    if n_rows < 1000:
        warnings.append(f"{n_rows} rows: 1000+ recommended")
    return warnings


def _custom_report(staging: Path, custom: CustomData, split: HeldOutSplit,
                   held_out: HeldOutScores, seed: int) -> list[str]:
    """A custom schema's extras: schema.json, the reference LightGBM, the Columns section."""
    from train_custom import columns_section, reference_lightgbm_auc, schema_report_lines

    reference = reference_lightgbm_auc(split.X_train, split.y_train, split.X_test,
                                       split.y_test, seed)
    held_out.metrics["reference_lightgbm_default_auc"] = reference
    held_out.metrics["columns"] = {"schema": custom.schema.column_names,
                                   "leaks_excluded": custom.leak.leaks,
                                   "leaks_kept": custom.leak.kept,
                                   "dropped": custom.dropped,
                                   "column_auc": custom.leak.aucs,
                                   "leak_auc": custom.leak_auc,
                                   "drop_column_losses": custom.leak.drop_losses}
    (staging / bundle.SCHEMA_FILE).write_text(
        json.dumps(custom.schema.to_dict(), indent=2) + "\n")
    section = columns_section(custom, seed)
    held_out.metrics["columns"]["excluded_aucs"] = {
        e["column"]: e["own_auc"] for e in section["excluded"]}
    held_out.metrics["columns_section"] = section
    return schema_report_lines(custom, held_out.ensemble["auc_roc"], reference,
                               held_out.metrics["columns"]["excluded_aucs"])


def _write_reports(
    staging: Path, cfg: JobConfig, data: Dataset, split: HeldOutSplit, ens: FittedEnsemble,
    held_out: HeldOutScores, rows: list[ImportanceRow], interval_method: str,
    clock: _PhaseClock, inputs: ModelInputs | None = None,
) -> None:
    """ensemble_metrics.json, the drift reference and the text/HTML training reports."""
    from leadscore.monitoring.reference import build_reference
    from report_page import report_page
    from train_report import calibration_table, report_text

    metrics, score, base = held_out.metrics, held_out.score, held_out.base
    names = inputs.names if inputs is not None else list(FEATURE_NAMES)
    custom = inputs.custom if inputs is not None else None
    column_lines = (_custom_report(staging, custom, split, held_out, cfg.random_seed)
                    if custom is not None else [])
    warnings = _warnings(held_out, split, data.n_rows, real_estate=custom is None)
    if data.unresolved_note:
        warnings.append(data.unresolved_note)
    ctx: dict[str, Any] = {
        "metrics": metrics,
        "combiner": ens.combiner,
        "sources": data.sources,
        "input_format": data.input_format,
        "n_rows": data.n_rows,
        "test_size": cfg.test_size,
        "random_seed": cfg.random_seed,
        "conversion_rate": data.conversion_rate,
        "train_rate": float(split.y_train.mean()),
        "test_rate": float(split.y_test.mean()),
        "fingerprint": data.fingerprint(),
        "baseline_method": BASELINE_METHOD,
        "stacker_seconds": metrics["stacker_training_time_seconds"],
        "verdict": _verdict(ens, metrics),
        "interval_method": interval_method,
        "calibration": calibration_table(split.y_test, score),
        "classes": _classes_table(split.y_test, score, metrics["class_thresholds"]),
        "columns": metrics.get("columns_section"),
        "class_thresholds_method": metrics["class_thresholds_method"],
        "importance": rows,
        "warnings": warnings,
        "validation": "skipped (--skip-validation)" if cfg.skip_validation
        else "pending",
        "wall_seconds": clock.elapsed(),
    }
    rates = [c["conversion_rate"] for c in ctx["classes"] if c["conversion_rate"] is not None]
    if any(a < b for a, b in itertools.pairwise(rates)):
        warnings.append("class conversion rates do not fall from hot to cold on the held-out "
                        "split: " + ", ".join(f"{c['class']} {c['conversion_rate']:.1%}"
                                              for c in ctx["classes"]
                                              if c["conversion_rate"] is not None))
    metrics["calibration"] = ctx["calibration"]
    metrics["class_distribution"] = ctx["classes"]
    metrics["warnings"] = warnings
    metrics["phase_seconds"] = clock.phases
    (staging / bundle.METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")

    # Drift monitoring compares live traffic with these (leadscore.monitoring).
    (staging / bundle.REFERENCE_FILE).write_text(json.dumps(
        build_reference(names, split.X_train, score, split.y_test)) + "\n")
    ctx["validation"] = ("skipped (--skip-validation)" if cfg.skip_validation else
                         "re-open the bundle with onnxruntime and reproduce the held-out "
                         "scores (result printed by the job)")
    ctx["wall_seconds"] = clock.elapsed()
    text = report_text(ctx)
    if column_lines:
        text += "\n" + "\n".join(column_lines) + "\n"
    (staging / bundle.REPORT_TXT).write_text(text)
    probabilities = {name: base[:, i] for i, name in enumerate(bundle.BASE_MODEL_NAMES)}
    (staging / bundle.REPORT_HTML).write_text(report_page(
        ctx, split.y_test, probabilities | {"ensemble": score},
        data.true_probability[split.test_idx] if data.true_probability is not None else None))


def _write_manifest(
    staging: Path, cfg: JobConfig, data: Dataset, ens: FittedEnsemble, held_out: HeldOutScores,
    export: Mapping[str, Any], baseline: np.ndarray, interval_method: str,
    hyperparameters: Mapping[str, Any], inputs: ModelInputs | None = None,
) -> dict[str, Any]:
    metrics = held_out.metrics
    ens_counts = ens.class_counts
    summary = {
        "auc": held_out.ensemble["auc_roc"],
        "brier": held_out.ensemble["brier_score"],
        "parity_max_abs_diff": metrics["parity_max_abs_diff"],
        "improvement_over_best_base": held_out.improvement,
        "best_base_model": held_out.best_base["model_name"],
        "combiner": ens.combiner,
        "training_samples": metrics["training_samples"],
        "validation_samples": metrics["validation_samples"],
        "interval_mean_width": metrics["interval_mean_width"],
    }
    for key in ("bayes_auc", "bayes_brier", "auc_ratio", "brier_ratio",
                "interval_coverage"):
        if metrics[key] is not None:
            summary[key] = metrics[key]
    onnx_info = dict(export.get("onnx") or {})
    onnx_info.setdefault("input_name", bundle.INPUT_NAME)
    onnx_info.setdefault("output_names", list(bundle.OUTPUT_NAMES))
    names = inputs.names if inputs is not None else list(FEATURE_NAMES)
    extra: dict[str, Any] = {}
    if inputs is not None and inputs.custom is not None:
        from train_custom import manifest_fields

        extra = {"feature_names": names, **manifest_fields(inputs.custom)}
        summary["reference_lightgbm_default_auc"] = metrics["reference_lightgbm_default_auc"]
    return bundle.finalize_bundle(staging, {
        **extra,
        "class_thresholds": dict(metrics["class_thresholds"]),
        "class_thresholds_method": metrics["class_thresholds_method"],
        "baseline": {n: float(v) for n, v in zip(names, baseline, strict=True)},
        "baseline_method": BASELINE_METHOD,
        "baseline_score": float(export["baseline_score"]),
        "onnx": onnx_info,
        "library_versions": _library_versions(),
        "training_data_fingerprint": data.fingerprint(),
        "metrics": summary,
        "interval_method": interval_method,
        "hyperparameters": dict(hyperparameters),
        # after the size-adaptive regularisation (lead_ensemble.ensemble.adapted)
        "hyperparameters_used": ens.hp.to_dict(),
        "training": {"test_size": cfg.test_size, "random_seed": cfg.random_seed,
                     "input_format": data.input_format, "rows": data.n_rows,
                     "skip_validation": cfg.skip_validation,
                     # what the ensemble was fitted on (the gate's MIN_CONVERSIONS reads the
                     # retrain function's own count when it has one; this is the claim)
                     "class_counts": {"converted": int(ens_counts[0]),
                                      "not_converted": int(ens_counts[1])}},
    })


def _recalibrate(ens: Any, split: HeldOutSplit, custom: CustomData | None
                 ) -> tuple[Any, dict[str, Any]]:
    """The stacker's intercept moved to the newest training rows' rate when the loop's export
    shows a prior shift (`prior_shift`); only the training rows are read."""
    from leadscore.columns.schema import EXPORT_TIME_COLUMN
    from prior_shift import recalibrate

    table = custom.table if custom is not None else None
    cells = table.columns.get(EXPORT_TIME_COLUMN) if table is not None else None
    times = None if cells is None else [cells[i] for i in split.train_idx]
    ens, found = recalibrate(ens, split.y_train, times)
    if found.applied:
        progress.say(f"prior shift: {found.reason}; intercept moved {found.shift:+.3f}")
    return ens, found.to_dict()


def run_training(cfg: JobConfig) -> dict[str, Any]:
    """The whole job. Returns the ensemble_metrics dict. Raises TrainingRefused/Failed.

    Phases (timed in ``phase_seconds``): load_and_import, fit, export_and_parity, metrics,
    importance, charts_reports_manifest, validation.
    """
    clock = _PhaseClock()
    check_output_dir(cfg.output_dir)
    inputs = _load_inputs(cfg)
    data: Dataset = inputs.data
    progress.say(f"read {data.n_rows:,} rows ({int(data.y.sum()):,} converted) from "
                 f"{', '.join(data.sources)}" + (f"; {data.unresolved_note}"
                                                 if data.unresolved_note else ""))

    progress.say("loading the model libraries (xgboost, lightgbm, scikit-learn)")
    from lead_ensemble.ensemble import HyperparameterError, Hyperparameters, fit_ensemble
    from lead_ensemble.export import export_bundle_model

    clock.mark("load_and_import")
    try:
        hyperparameters = Hyperparameters.from_mapping(cfg.hyperparameters)
    except HyperparameterError as exc:
        raise TrainingRefused(str(exc)) from exc

    split = _split(data, cfg, inputs.custom)
    from lead_ensemble.ensemble import EnsembleRefused

    directions = model_directions(inputs)
    progress.say(f"fitting the ensemble on {split.y_train.size:,} rows x "
                 f"{split.X_train.shape[1]} inputs ({hyperparameters.folds} folds, then the "
                 "served models on all training rows)")
    try:
        ens = fit_ensemble(split.X_train, split.y_train, hyperparameters, directions=directions,
                           progress=progress.FitProgress(hyperparameters.folds))
    except EnsembleRefused as exc:
        raise TrainingFailed(f"Not enough signal to train: {exc}") from exc
    ens, prior_shift = _recalibrate(ens, split, inputs.custom)
    clock.mark("fit")

    out = cfg.output_dir
    staging = _prepare_output(out)
    try:
        baseline = (inputs.custom.baseline if inputs.custom is not None
                    else np.median(split.X_train, axis=0).astype(np.float32))
        progress.say("fitted; exporting one ONNX graph and checking parity")
        export = export_bundle_model(ens, staging, baseline, split.X_test)
        clock.mark("export_and_parity")
        version = bundle.model_version_for(staging / bundle.MODEL_FILE)
        held_out = _held_out_metrics(ens, data, split, export, version)
        held_out.metrics["prior_shift"] = prior_shift
        thresholds, method = _class_thresholds(held_out.score)
        held_out.metrics["class_thresholds"] = thresholds
        held_out.metrics["class_thresholds_method"] = method
        clock.mark("metrics")
        progress.say("held-out metrics done; measuring feature importance")
        rows = _write_importance(staging, ens, split, cfg.random_seed, inputs.names)
        clock.mark("importance")
        progress.say("writing reports and the manifest")
        interval_method = _interval_method(export, sys.modules[fit_ensemble.__module__])
        _write_reports(staging, cfg, data, split, ens, held_out, rows, interval_method, clock,
                       inputs)
        manifest = _write_manifest(staging, cfg, data, ens, held_out, export, baseline,
                                   interval_method, hyperparameters.to_dict(), inputs)
        clock.mark("charts_reports_manifest")
        if manifest["model_version"] != version:
            raise TrainingFailed("model.onnx changed while the bundle was written")
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    metrics = held_out.metrics
    if cfg.skip_validation:
        metrics["validation"] = "skipped"
    else:
        metrics["validation"] = _validate_bundle(out, split.X_test, held_out.score)
        clock.mark("validation")
    metrics["wall_seconds"] = clock.elapsed()
    return metrics


def _summary_lines(m: Mapping[str, Any], out: Path) -> list[str]:
    lines = [
        f"bundle {m['model_version']} -> {out}",
        f"held-out AUC {m['ensemble_auc_roc']:.4f}  Brier {m['ensemble_brier_score']:.4f}  "
        f"improvement over best base {m['improvement_over_best_base']:+.2f} %  "
        f"({m['combiner']})",
        f"ONNX parity max |diff| {m['parity_max_abs_diff']:.2e}",
    ]
    if m.get("reference_lightgbm_default_auc") is not None:
        lines.append(f"reference: LightGBM with default parameters, same split and inputs: "
                     f"held-out AUC {m['reference_lightgbm_default_auc']:.4f}")
    columns = m.get("columns") or {}
    for name, reason in (columns.get("leaks_excluded") or {}).items():
        lines.append(f"excluded {name}: {reason}")
    if m.get("auc_ratio") is not None:
        lines.append(f"Bayes: AUC ratio {m['auc_ratio']:.4f} (Bayes {m['bayes_auc']:.4f})  "
                     f"Brier ratio {m['brier_ratio']:.4f} (Bayes {m['bayes_brier']:.4f})  "
                     f"interval coverage {m['interval_coverage']:.1%}")
    lines.append(f"validation: {m['validation']}")
    phases = ", ".join(f"{k} {v:.1f}" for k, v in m.get("phase_seconds", {}).items())
    lines.append(f"wall time {m['wall_seconds']:.1f} s ({phases})")
    return lines


def _write_failure(settings: TrainingSettings, message: str) -> None:
    try:
        path = Path(settings.failure_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(message + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"could not write the failure file: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    settings = TrainingSettings.from_env(env)
    given = list(sys.argv[1:] if argv is None else argv)
    sagemaker = not any(a == "--input" or a.startswith("--input=") for a in given)
    try:
        cfg = config_from_args(argv, settings)
        sagemaker = cfg.sagemaker
        if cfg.print_schema:
            from train_custom import print_schema

            if not cfg.custom.active:
                raise TrainingRefused("--print-schema needs --target COLUMN")
            print_schema(cfg.input_path, cfg.custom, sys.stdout)
            return 0
        progress.enable()
        try:
            metrics = run_training(cfg)
        finally:
            progress.enable(False)
    except (TrainingRefused, TrainingFailed) as exc:
        message = " ".join(str(exc).split())
        print(f"error: {message}", file=sys.stderr)
        if sagemaker:
            _write_failure(settings, message)
        return 2
    except Exception as exc:  # the job must always leave a reason behind
        message = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        print(f"error: {message}", file=sys.stderr)
        if sagemaker:
            _write_failure(settings, message)
        return 1
    for line in _summary_lines(metrics, cfg.output_dir):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
