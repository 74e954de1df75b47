"""training/train.py, unchanged, in SageMaker's container layout.

The sourcedir is built by `make package-training` (exactly what the deploy uploads), unpacked
like SageMaker unpacks it into its code directory, and run the way the training toolkit runs
a script-mode entry point: `python train.py --name value ...` from that directory, with
/opt/ml moved to a temporary directory (LEADSCORE_OPT_ML_ROOT) and hyperparameters.json
holding the JSON-encoded strings of the CreateTrainingJob request the retrain function builds.
The repository is NOT on the path: the archive alone must be enough.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from leadscore import registry
from leadscore.bundle import verify_bundle
from leadscore.registry import retraining
from leadscore.settings import PromoteSettings, RetrainSettings

from .conftest import tar_bundle

ROOT = Path(__file__).resolve().parents[2]
TINY = {"xgb_n_estimators": 15, "lgb_n_estimators": 15, "folds": 3, "mlp_hidden": "8",
        "mlp_max_iter": 20, "n_jobs": 1}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sourcedir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("sourcedir")
    archive = work / "sourcedir.tar.gz"
    subprocess.run(
        ["make", "--no-print-directory", "-s", "-C", str(ROOT), "package-training",
         f"SOURCEDIR={archive}"],
        check=True, capture_output=True,
    )
    code = work / "code"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        tar.extractall(code, filter="data")
    assert "./train.py" in names and "./requirements.txt" in names
    assert "leadscore/features/contract.py" in names and "./lead_ensemble/ensemble.py" in names
    return code


def _hyperparameters(extra: dict[str, object]) -> dict[str, str]:
    """The request's HyperParameters (script mode, JSON-encoded strings) + tiny model sizes."""
    settings = RetrainSettings(
        training_hyperparameters={k: json.dumps(v) for k, v in extra.items()}
    )
    request = retraining.training_job_request(
        "bkt", "training-data/leads.csv", "v1", settings, "us-east-1"
    )
    hyperparameters: dict[str, str] = request["HyperParameters"]
    return hyperparameters


def _toolkit_args(hyperparameters: dict[str, str]) -> list[str]:
    """What sagemaker-training passes the entry point: decoded user hyperparameters as flags."""
    args: list[str] = []
    for key, encoded in hyperparameters.items():
        if key.startswith("sagemaker_"):
            continue
        args += [f"--{key}", str(json.loads(encoded))]
    return args


def _run_job(code: Path, opt_ml: Path, data: str, extra: dict[str, object]) -> int:
    channel = opt_ml / "input" / "data" / "training"
    config = opt_ml / "input" / "config"
    channel.mkdir(parents=True)
    config.mkdir(parents=True)
    (channel / "leads.csv").write_text(data)
    hyperparameters = _hyperparameters(extra)
    assert all(isinstance(v, str) for v in hyperparameters.values())
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH",) and not k.startswith(("SM_", "LEADSCORE_"))}
    env.update(LEADSCORE_OPT_ML_ROOT=str(opt_ml), PYTHONWARNINGS="ignore",
               MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, "train.py", *_toolkit_args(hyperparameters)],
        cwd=code, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    return result.returncode


def _rows(csv_path: Path, n: int) -> str:
    lines = csv_path.read_text().splitlines()
    return "\n".join(lines[: n + 1]) + "\n"


def test_train_py_produces_a_promotable_bundle_in_sagemaker_layout(
    sourcedir: Path, small_training_csv: Path, tmp_path: Path
) -> None:
    opt_ml = tmp_path / "opt_ml"
    # Training needs MIN_CONVERSIONS of each outcome: 900 generated rows hold about 165.
    code = _run_job(sourcedir, opt_ml, _rows(small_training_csv, 900), TINY)
    assert code == 0, (opt_ml / "output" / "failure").read_text() if (
        opt_ml / "output" / "failure").exists() else code
    model_dir = opt_ml / "model"
    manifest = verify_bundle(model_dir)
    assert not (opt_ml / "output" / "failure").exists()
    assert manifest["hyperparameters"]["xgb_n_estimators"] == 15
    # what SageMaker would upload, through the promote path's archive handling and registry
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(tar_bundle(model_dir))
    bundle_dir = registry.extract_bundle_archive(archive, tmp_path / "unpacked", 50_000_000)
    store = registry.LocalObjectStore(tmp_path / "store")
    lenient = PromoteSettings(min_auc=0.5, max_auc_drop=1.0, max_brier=0.3,
                              min_conversions=0)
    result = registry.promote(bundle_dir, store, lenient)
    assert result.promoted, result.reasons
    assert result.version == manifest["model_version"]


def test_a_refused_dataset_leaves_a_failure_file(
    sourcedir: Path, small_training_csv: Path, tmp_path: Path
) -> None:
    opt_ml = tmp_path / "opt_ml"
    lines = _rows(small_training_csv, 50).splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name != "converted"]
    data = "\n".join(",".join(row.split(",")[i] for i in keep) for row in lines) + "\n"
    code = _run_job(sourcedir, opt_ml, data, TINY)
    assert code != 0
    failure = (opt_ml / "output" / "failure").read_text()
    assert "Target column 'converted' not found" in failure
    assert not (opt_ml / "model" / "manifest.json").exists()
