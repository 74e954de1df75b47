"""A schema's `direction` reaches the monotone constraints of every constrained model.

Training used to take directions from the real-estate contract for every input, so a team's
declared +1 column was free and followed the data the wrong way. The data here converts LESS
as `touches` rises; the schema declares +1; the served XGBoost, LightGBM and network (the
bundle's `base_scores`) and the served score itself must never go down along a `touches`
sweep.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import train
from lead_ensemble.checks import wrong_direction_rates
from leadscore.bundle import load_model

from tests.fixtures.custom_leads import CUSTOM_TINY_HP

pytestmark = pytest.mark.slow


def _export(path: Path, n: int = 900, seed: int = 5) -> Path:
    rng = np.random.default_rng(seed)
    touches = rng.integers(0, 20, n)
    budget = rng.normal(400, 80, n).round(1)
    logit = 1.0 - 0.25 * touches + 0.01 * (budget - 400)
    won = rng.random(n) < 1 / (1 + np.exp(-logit))
    lines = ["touches,budget,status"] + [
        f"{t},{b},{'won' if w else 'lost'}" for t, b, w in zip(touches, budget, won, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_plus_one_column_is_obeyed_by_every_constrained_model(tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({
        "target": "status", "positive": ["won"],
        "columns": [{"name": "touches", "kind": "numeric", "direction": 1},
                    {"name": "budget", "kind": "numeric"}]}))
    out = tmp_path / "bundle"
    args = ["--input", str(_export(tmp_path / "leads.csv")), "--output", str(out),
            "--schema", str(schema), "--keep", "touches", "--skip-validation"]
    for key, value in CUSTOM_TINY_HP.items():
        args += ["--hp", f"{key}={value}"]
    assert train.main(args) == 0
    model = load_model(out)
    names = list(model.manifest["feature_names"])
    assert names[:2] == ["touches", "budget"]
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.integers(0, 20, 200), rng.normal(400, 80, 200)])
    for i, base in enumerate(("xgboost", "lightgbm", "neural_network")):
        rates = wrong_direction_rates(
            lambda x, i=i: model.predict(x.astype(np.float32)).base_scores[:, i],
            X, [1, 0], names[:2])
        assert rates == {"touches": 0.0}, base
    served = wrong_direction_rates(lambda x: model.predict(x.astype(np.float32)).score,
                                   X, [1, 0], names[:2])
    assert served == {"touches": 0.0}


def test_the_data_goes_against_the_declared_direction(tmp_path: Path) -> None:
    """Without the constraint the trees would follow this: fewer conversions with touches."""
    rows = [line.split(",") for line in
            _export(tmp_path / "leads.csv").read_text().splitlines()[1:]]
    low = [r[2] == "won" for r in rows if int(r[0]) < 5]
    high = [r[2] == "won" for r in rows if int(r[0]) >= 15]
    assert np.mean(low) > np.mean(high) + 0.3
