"""SageMaker mode: /opt/ml redirected to a temporary directory, hyperparameters as strings."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import pytest
import train
from leadscore import bundle

SAGEMAKER_KEYS = {
    "sagemaker_program": json.dumps("train.py"),
    "sagemaker_submit_directory": json.dumps("s3://bucket/code/sourcedir.tar.gz"),
    "sagemaker_region": json.dumps("us-east-1"),
    "sagemaker_container_log_level": json.dumps(20),
    "sagemaker_job_name": json.dumps("leadscore-leads-0123456789ab"),
}


def _opt_ml(tmp_path: Path, hyperparameters: dict[str, str]) -> Path:
    root = tmp_path / "opt_ml"
    (root / "input" / "data" / "training").mkdir(parents=True)
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({**SAGEMAKER_KEYS, **hyperparameters}))
    return root


def _toolkit_argv(hyperparameters: dict[str, str]) -> list[str]:
    """What the SageMaker training toolkit passes: --name <decoded value>, no sagemaker_*."""
    argv: list[str] = []
    for key, value in sorted(hyperparameters.items()):
        argv += [f"--{key}", str(json.loads(value))]
    return argv


@pytest.mark.slow
def test_trains_from_the_channel_with_string_hyperparameters(
    tmp_path: Path, small_training_csv: Path, trained_bundle: Path
) -> None:
    hps = {
        "xgb_n_estimators": json.dumps(15), "lgb_n_estimators": json.dumps(15),
        "folds": json.dumps(3), "mlp_hidden": json.dumps("16,8"),
        "mlp_max_iter": json.dumps(30), "test-size": json.dumps(0.25),
        "random-seed": json.dumps(7),
    }
    root = _opt_ml(tmp_path, hps)
    # a CRM export: contact ids, no true_probability (so no Bayes figures)
    with small_training_csv.open() as fh:
        rows = list(csv.reader(fh))
    i = rows[0].index("true_probability")
    rows[0][i] = "contact_id"
    for k, r in enumerate(rows[1:]):
        r[i] = f"c{k:05d}"
    with (root / "input" / "data" / "training" / "part-0.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    env = {"LEADSCORE_OPT_ML_ROOT": str(root)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = train.main(_toolkit_argv(hps), env=env)
    assert code == 0
    model_dir = root / "model"
    man = bundle.verify_bundle(model_dir)
    assert man["hyperparameters"]["xgb_n_estimators"] == 15
    assert man["hyperparameters"]["mlp_hidden"] == [16, 8]
    assert man["hyperparameters"]["seed"] == 7
    metrics = json.loads((model_dir / bundle.METRICS_FILE).read_text())
    assert metrics["validation_samples"] == 375  # test-size 0.25 of 1,500 rows
    assert not (root / "output" / "failure").exists()
    assert metrics["bayes_auc"] is None and metrics["auc_ratio"] is None
    assert "auc_ratio" not in man["metrics"]
    assert "BAYES LIMIT" not in (model_dir / bundle.REPORT_TXT).read_text()
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".")]
    # another training (other seed and trees): another model, another version
    assert man["model_version"] != bundle.verify_bundle(trained_bundle)["model_version"]


def _failure(tmp_path: Path, hps: dict[str, str], rows: int | None,
             small_training_csv: Path) -> tuple[int, str]:
    root = _opt_ml(tmp_path, hps)
    if rows is not None:
        with small_training_csv.open() as fh:
            lines = fh.read().splitlines()[: rows + 1]
        (root / "input" / "data" / "training" / "leads.csv").write_text("\n".join(lines) + "\n")
    code = train.main(_toolkit_argv(hps), env={"LEADSCORE_OPT_ML_ROOT": str(root)})
    failure = root / "output" / "failure"
    assert failure.is_file()
    assert not (root / "model" / bundle.MODEL_FILE).exists()
    return code, failure.read_text()


def test_refusal_writes_the_failure_file(tmp_path: Path, small_training_csv: Path) -> None:
    code, text = _failure(tmp_path, {"folds": json.dumps(3)}, 50, small_training_csv)
    assert code != 0
    assert text.strip() == ("Insufficient training data: 50 rows, need at least 100; export "
                            "more leads whose outcome is known")


def test_unknown_hyperparameter_writes_the_failure_file(
    tmp_path: Path, small_training_csv: Path
) -> None:
    code, text = _failure(tmp_path, {"n_trees": json.dumps(9)}, 800, small_training_csv)
    assert code != 0
    assert "Unknown hyperparameter 'n_trees'" in text


def test_empty_channel_writes_the_failure_file(tmp_path: Path,
                                               small_training_csv: Path) -> None:
    code, text = _failure(tmp_path, {}, None, small_training_csv)
    assert code != 0
    assert "No .csv or .jsonl training file" in text


def test_sm_variables_win_over_the_root(tmp_path: Path) -> None:
    from leadscore.settings import TrainingSettings

    s = TrainingSettings.from_env({"LEADSCORE_OPT_ML_ROOT": str(tmp_path),
                                   "SM_MODEL_DIR": "/elsewhere/model"})
    assert s.model_dir == "/elsewhere/model"
    assert s.channel_training == f"{tmp_path}/input/data/training"
    assert s.hyperparameters_path == f"{tmp_path}/input/config/hyperparameters.json"
    assert s.failure_path == f"{tmp_path}/output/failure"
    assert TrainingSettings.from_env({}).model_dir == "/opt/ml/model"


@pytest.mark.parametrize("argv", [["--skip-validation", "maybe"], ["--folds"], ["stray"]])
def test_bad_arguments_are_refused(tmp_path: Path, small_training_csv: Path,
                                   argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = train.main(["--input", str(small_training_csv), "--output", str(tmp_path / "o"),
                       *argv])
    assert code != 0
    assert capsys.readouterr().err.startswith("error: ")

