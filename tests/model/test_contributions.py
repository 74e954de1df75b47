"""Contributions: exact tree Shapley closed form, sums, and fidelity to exact Shapley values."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from lead_ensemble.shapley import exact_shapley, onnx_score_fn, relative_l1
from leadscore import bundle
from leadscore.explain import (
    MLP_PERMUTATIONS,
    PERMUTATIONS,
    Explainer,
    _perm_plan,
    contributions,
    fixed_uniforms,
)

from tests.model.conftest import TinyModel


@pytest.fixture(scope="module")
def explainer(tiny_model: TinyModel) -> Explainer:
    return Explainer.load(tiny_model.out_dir / bundle.EXPLAINER_FILE)


@pytest.fixture(scope="module")
def loaded(tiny_model: TinyModel) -> bundle.LoadedModel:
    return bundle.LoadedModel(tiny_model.out_dir, {"model_version": "lsm-test"})


def _trees_value(e: Explainer, rows: np.ndarray) -> np.ndarray:
    """Sum of the (weighted) leaves each row reaches, straight from the leaf paths."""
    valid = e.path_feature >= 0
    feat = np.where(valid, e.path_feature, 0)
    xs = rows[:, feat]  # [n, L, D]
    ok = ((xs < e.path_threshold[None]) == e.path_left[None]) | ~valid[None]
    reached = ok.all(axis=2)
    out: np.ndarray = reached @ e.leaf_value
    return out


def test_tree_closed_form_equals_brute_force_shapley(
    explainer: Explainer, tiny_model: TinyModel
) -> None:
    rng = np.random.default_rng(0)
    for row in tiny_model.X_check[:3]:
        x = explainer.baseline.copy()
        movers = rng.choice(20, size=8, replace=False)
        x[movers] = row[movers].astype(np.float32)
        m = len(movers)
        values = {}
        for bits in itertools.product((0, 1), repeat=m):
            z = explainer.baseline.copy()
            for j, on in enumerate(bits):
                if on:
                    z[movers[j]] = x[movers[j]]
            values[bits] = float(_trees_value(explainer, z[None, :])[0])
        brute = np.zeros(20)
        for j in range(m):
            for bits, v in values.items():
                if bits[j]:
                    continue
                s = sum(bits)
                w = math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m)
                with_j = (*bits[:j], 1, *bits[j + 1:])
                brute[movers[j]] += w * (values[with_j] - v)
        closed = explainer.tree_contributions(x)
        np.testing.assert_allclose(closed, brute, atol=1e-9)
        assert abs(closed.sum() - (_trees_value(explainer, x[None])[0]
                                   - _trees_value(explainer, explainer.baseline[None])[0])) < 1e-9


def test_logit_contributions_add_up_to_the_logit_difference(
    explainer: Explainer, loaded: bundle.LoadedModel, tiny_model: TinyModel
) -> None:
    X = tiny_model.X_check[:20].astype(np.float32)
    s = loaded.predict(X).score
    sb = float(loaded.predict(explainer.baseline).score[0])
    for x, score in zip(X, s, strict=True):
        phi = explainer.logit_contributions(x)
        dz = (math.log(score) - math.log1p(-score)) - (math.log(sb) - math.log1p(-sb))
        assert abs(phi.sum() - dz) < 1e-4


def test_the_linear_part_is_explained_exactly(
    explainer: Explainer, tiny_model: TinyModel
) -> None:
    """The stacker kept the logistic regression on this data; its share of each lead's logit
    is additive, so its contributions are exact: they add up to its weighted logit change."""
    from lead_ensemble.ensemble import mlp_logit

    ens = tiny_model.ens
    assert ens.weights[3] > 0 and explainer.linear_coef is not None
    X = tiny_model.X_check[:20].astype(np.float32)
    base = explainer.baseline.astype(np.float64)[None]
    change = ens.weights[3] * (mlp_logit(ens.linear, X.astype(np.float64))
                               - mlp_logit(ens.linear, base)[0])
    for x, dz in zip(X, change, strict=True):
        assert abs(explainer.linear_contributions(x).sum() - dz) < 1e-5


def test_contributions_add_up_to_score_minus_baseline(
    explainer: Explainer, loaded: bundle.LoadedModel, tiny_model: TinyModel
) -> None:
    X = tiny_model.X_check[:50].astype(np.float32)
    out = loaded.predict(X)
    baseline_score = tiny_model.export["baseline_score"]
    for x, score in zip(X, out.score, strict=True):
        c = contributions(explainer, x, float(score), baseline_score)
        assert c.shape == (20,)
        assert abs(c.sum() - (score - baseline_score)) <= 1e-4
    # at the baseline itself nothing contributes
    c0 = contributions(explainer, explainer.baseline, baseline_score, baseline_score)
    assert np.all(np.abs(c0) < 1e-9)


@pytest.mark.slow
def test_contributions_are_faithful_to_exact_shapley(
    explainer: Explainer, loaded: bundle.LoadedModel, tiny_model: TinyModel
) -> None:
    predict = onnx_score_fn(tiny_model.out_dir / bundle.MODEL_FILE)
    baseline_score = tiny_model.export["baseline_score"]
    errors = []
    for x in tiny_model.X_check[:2].astype(np.float32):
        score = float(loaded.predict(x).score[0])
        exact = exact_shapley(predict, x, explainer.baseline)
        assert abs(exact.sum() - (score - baseline_score)) < 1e-5  # efficiency of the reference
        ours = contributions(explainer, x, score, baseline_score)
        errors.append(relative_l1(ours, exact))
    assert float(np.mean(errors)) <= 0.25


def _mlp_permutation_reference(e: Explainer, x: np.ndarray) -> np.ndarray:
    """The permutation estimate computed the plain way: the MLP run on every prefix coalition
    of every fixed permutation (all features, in float64), marginals averaged."""
    b = e.baseline.astype(np.float64)
    out = np.zeros(x.size)
    for perm in e._perm:
        z = b.copy()
        before = float(e.mlp_logit(z[None, :])[0])
        for j in perm:
            z[j] = x[j]
            after = float(e.mlp_logit(z[None, :])[0])
            out[j] += after - before
            before = after
    return e.mlp_weight * out / len(e._perm)


def test_mlp_contributions_equal_the_plain_permutation_estimate(
    explainer: Explainer, tiny_model: TinyModel
) -> None:
    """The batched evaluation (first layer as prefix sums, movers only, shared end points) is
    the same estimate as running the MLP on every prefix coalition, also when few features
    move."""
    # the tiny model's combiner may give the MLP no weight: the estimate is checked either way
    explainer = dataclasses.replace(explainer, mlp_weight=0.7)
    rng = np.random.default_rng(5)
    rows = tiny_model.X_check[:3].astype(np.float64)
    leads = [row for row in rows]
    for movers in (1, 2, 7):
        x = explainer.baseline.astype(np.float64)
        pick = rng.choice(20, size=movers, replace=False)
        x[pick] = rows[0][pick]
        leads.append(x)
    for x in leads:
        x32 = x.astype(np.float32)
        got = explainer.mlp_contributions(x32)
        want = _mlp_permutation_reference(explainer, x32.astype(np.float64))
        np.testing.assert_allclose(got, want, atol=2e-5)
        assert np.all(got[x32 == explainer.baseline] == 0.0)


@pytest.mark.parametrize("seed", [0, 1, 12345, 20240611, 2**32 - 1, 2**32, 2**70 + 3])
@pytest.mark.parametrize("shape", [(1, 1), (16, 20), (24, 13)])
def test_fixed_uniforms_are_numpys_generator_bit_for_bit(seed: int,
                                                         shape: tuple[int, int]) -> None:
    """The explainer's permutations come from a plain-Python copy of numpy's default generator
    (numpy.random stays out of a scoring function's cold start): the same numbers exactly."""
    expected = np.random.default_rng(seed).random(shape)
    assert np.array_equal(fixed_uniforms(seed, *shape), expected)


def test_the_fixed_permutations_are_the_ones_numpys_generator_draws(
    explainer: Explainer,
) -> None:
    n = explainer.n_inputs
    rng = np.random.default_rng(20240611)
    perm = np.argsort(rng.random((MLP_PERMUTATIONS // 2, n)), axis=1)
    assert np.array_equal(explainer._perm, np.concatenate([perm, perm[:, ::-1]], axis=0))
    for m in (11, 15, 20):
        half = np.argsort(np.random.default_rng(12345).random((PERMUTATIONS // 2, m)), axis=1)
        assert np.array_equal(_perm_plan(m, PERMUTATIONS),
                              np.concatenate([half, half[:, ::-1]], axis=0))
