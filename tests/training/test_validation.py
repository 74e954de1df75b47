"""--skip-validation skips the bundle re-load check only, never the parity check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import train
from leadscore import bundle
from sklearn.model_selection import train_test_split
from train_data import load_dataset

from tests.fixtures.bundle import train_bundle


def _held_out(csv_path: Path) -> np.ndarray:
    data = load_dataset(csv_path)
    _, test_idx = train_test_split(np.arange(data.n_rows), test_size=0.2, random_state=42,
                                   stratify=data.y)
    return np.asarray(data.X[np.sort(test_idx)])


def test_validation_reproduces_the_reported_scores(trained_bundle: Path,
                                                   small_training_csv: Path) -> None:
    X = _held_out(small_training_csv)
    served = bundle.load_model(trained_bundle).predict(X.astype(np.float32))
    expected = np.asarray(served.score, dtype=np.float64)
    assert train._validate_bundle(trained_bundle, X, expected).startswith("passed")
    with pytest.raises(train.TrainingFailed, match="differs from the reported scores"):
        train._validate_bundle(trained_bundle, X, expected + 1e-3)


def test_validation_refuses_a_tampered_bundle(trained_bundle: Path, small_training_csv: Path,
                                              tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(trained_bundle, copy)
    with (copy / bundle.IMPORTANCE_TXT).open("a") as fh:
        fh.write("tampered\n")
    X = _held_out(small_training_csv)
    with pytest.raises(train.TrainingFailed, match="does not load"):
        train._validate_bundle(copy, X, np.zeros(len(X)))


@pytest.mark.slow
def test_skip_validation_never_skips_parity(small_training_csv: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import lead_ensemble.export as export_mod

    monkeypatch.setattr(export_mod, "PARITY_TOLERANCE", -1.0)  # no graph can pass
    code = train_bundle(small_training_csv, tmp_path / "b", "--skip-validation")
    assert code != 0
    assert "ParityError" in capsys.readouterr().err
    assert not (tmp_path / "b" / bundle.MODEL_FILE).exists()
    assert not (tmp_path / "b" / bundle.MANIFEST_FILE).exists()
