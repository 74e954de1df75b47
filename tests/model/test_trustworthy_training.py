"""Enough data or no model; non-negative stacker; monotone trees."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from lead_ensemble.ensemble import (
    EnsembleRefused,
    Hyperparameters,
    fit_ensemble,
    fit_nonnegative_logistic,
)
from leadscore.features import FEATURE_DIRECTIONS, FEATURE_NAMES

from tests.fixtures.bundle import train_bundle

pytestmark = pytest.mark.slow  # every test here fits models

DIRECTIONS = [FEATURE_DIRECTIONS[n] for n in FEATURE_NAMES]
TINY = {"xgb_n_estimators": "20", "lgb_n_estimators": "20", "folds": "3",
        "mlp_hidden": "16,8", "mlp_max_iter": "30"}


def _csv(path: Path, n: int, seed: int) -> Path:
    from generate_leads import generate_leads, to_feature_frame, write_csv

    write_csv(to_feature_frame(generate_leads(n, seed)), path)
    return path


def _one_line_failure(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    return err


def test_a_100_row_run_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = train_bundle(_csv(tmp_path / "leads.csv", 100, 99), tmp_path / "out")
    err = _one_line_failure(capsys, code)
    # ~18 conversions: refused for too few of one outcome before any model is fitted
    assert "Too few of one outcome" in err
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_degenerate_fold_run_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # LightGBM may not put fewer than 5,000 rows in a leaf: every fold model stays a stump.
    code = train_bundle(_csv(tmp_path / "leads.csv", 800, 5), tmp_path / "out",
                        "--hp", "lgb_min_child_samples=5000")
    err = _one_line_failure(capsys, code)
    assert "fold models are degenerate" in err and "lightgbm fold 1" in err


def test_the_stacker_never_gives_a_negative_weight() -> None:
    rng = np.random.default_rng(3)
    signal = rng.normal(size=4000)
    y = (rng.uniform(size=4000) < 1 / (1 + np.exp(-signal))).astype(int)
    logits = np.column_stack([signal + rng.normal(scale=0.3, size=4000),
                              -signal,  # an upside-down model: unconstrained it gets w < 0
                              rng.normal(size=4000)])
    w, _ = fit_nonnegative_logistic(logits, y, 1.0)
    assert np.all(w >= 0) and w[1] == 0.0 and w[0] > 0.5
    from sklearn.linear_model import LogisticRegression

    free = LogisticRegression().fit(logits, y).coef_[0]
    assert free[1] < 0  # what the old stacker did


@pytest.fixture(scope="module")
def monotone_ensemble() -> tuple[object, np.ndarray]:
    from generate_leads import generate_leads, to_feature_frame

    rows = to_feature_frame(generate_leads(1500, 12))
    X = np.array([[r[n] for n in FEATURE_NAMES] for r in rows])
    y = np.array([int(r["converted"]) for r in rows])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ens = fit_ensemble(X, y, Hyperparameters.from_mapping(TINY), directions=DIRECTIONS)
    return ens, X


def test_the_trees_follow_the_feature_directions(monotone_ensemble: tuple[object, np.ndarray]
                                                 ) -> None:
    from lead_ensemble.checks import wrong_direction_rates
    from lead_ensemble.ensemble import lgb_margin, xgb_margin

    ens, X = monotone_ensemble
    for name, margin in (("xgb", xgb_margin), ("lgb", lgb_margin)):
        model = getattr(ens, name)
        rates = wrong_direction_rates(lambda x, m=model, f=margin: f(m, x), X[:200], DIRECTIONS)
        assert max(rates.values()) == 0.0, (name, rates)
    assert all(w >= 0 for w in ens.weights)  # type: ignore[attr-defined]


def test_every_part_and_the_served_score_follow_the_feature_directions(
    monotone_ensemble: tuple[object, np.ndarray],
) -> None:
    """The network and the logistic regression too, so the served blend cannot go the wrong
    way (before, the unconstrained MLP moved it the wrong way on 9 % of sweep steps)."""
    from lead_ensemble.checks import wrong_direction_rates
    from lead_ensemble.ensemble import mlp_logit

    ens, X = monotone_ensemble
    parts = {"network": lambda x: mlp_logit(ens.mlp_pipeline, x),  # type: ignore[attr-defined]
             "linear": lambda x: mlp_logit(ens.linear, x),  # type: ignore[attr-defined]
             "served": lambda x: ens.predict_native(x).score}  # type: ignore[attr-defined]
    for name, predict in parts.items():
        rates = wrong_direction_rates(predict, X[:100], DIRECTIONS)
        assert max(rates.values()) == 0.0, (name, rates)


def test_too_little_signal_is_refused() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(300, 20))
    y = (rng.uniform(size=300) < 0.3).astype(int)  # labels unrelated to the features
    with warnings.catch_warnings(), pytest.raises(EnsembleRefused, match="base rate"):
        warnings.simplefilter("ignore")
        fit_ensemble(X, y, Hyperparameters.from_mapping(TINY), directions=DIRECTIONS)
