"""leadscore.metrics against scikit-learn and the textbook (O(m·n)) DeLong formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from leadscore import metrics
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.metrics import log_loss as sk_log_loss


def _brute_delong(y: np.ndarray, scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their covariance from the pairwise kernel, as in DeLong et al. (1988)."""
    pos, neg = y == 1, y == 0
    aucs, v10s, v01s = [], [], []
    for s in scores:
        x, z = s[pos], s[neg]
        psi = (x[:, None] > z[None, :]).astype(float) + 0.5 * (x[:, None] == z[None, :])
        aucs.append(psi.mean())
        v10s.append(psi.mean(axis=1))
        v01s.append(psi.mean(axis=0))
    cov = np.cov(np.vstack(v10s)) / pos.sum() + np.cov(np.vstack(v01s)) / neg.sum()
    return np.array(aucs), np.atleast_2d(cov)


def _sample(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    a = y * 0.8 + rng.normal(size=n)
    b = np.round(y * 0.4 + rng.normal(size=n), 1)  # ties on purpose
    return y, a, b


@given(st.integers(0, 10_000))
@settings(max_examples=30, deadline=None)
def test_auc_equals_sklearn_with_ties(seed: int) -> None:
    y, _, b = _sample(seed, 120)
    if 0 < y.sum() < len(y):
        assert metrics.auc(y, b) == pytest.approx(roc_auc_score(y, b), abs=1e-12)


def test_delong_variance_and_paired_test_match_the_pairwise_formulas() -> None:
    y, a, b = _sample(7)
    aucs, cov = _brute_delong(y, [a, b])
    value, variance = metrics.delong(y, a)
    assert value == pytest.approx(aucs[0], abs=1e-12)
    assert variance == pytest.approx(cov[0, 0], rel=1e-9)
    paired = metrics.delong_paired(y, a, b)
    assert paired.diff == pytest.approx(aucs[0] - aucs[1], abs=1e-12)
    assert paired.se == pytest.approx(math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]), rel=1e-9)
    assert 0 <= paired.p_value <= 1


def test_unpaired_comparison_adds_the_variances() -> None:
    y1, a, _ = _sample(1)
    y2, _, b = _sample(2)
    result = metrics.delong_unpaired(y1, a, y2, b)
    _, var_a = metrics.delong(y1, a)
    _, var_b = metrics.delong(y2, b)
    assert result.se == pytest.approx(math.sqrt(var_a + var_b))


def test_unpaired_brier_is_welchs_test_on_the_squared_errors() -> None:
    """The statistic and p-value agree with scipy's Welch t-test (normal tail: n is large)."""
    from scipy import stats

    rng = np.random.default_rng(7)
    y_a, y_b = rng.random(1500) < 0.2, rng.random(1700) < 0.2
    p_a, p_b = np.clip(rng.beta(2, 6, 1500) * 2, 0, 1), rng.beta(2, 6, 1700)
    result = metrics.brier_unpaired(y_a, p_a, y_b, p_b)
    assert result.brier_a == pytest.approx(brier_score_loss(y_a, p_a))
    assert result.brier_b == pytest.approx(brier_score_loss(y_b, p_b))
    welch = stats.ttest_ind((p_a - y_a) ** 2, (p_b - y_b) ** 2, equal_var=False)
    assert result.z == pytest.approx(welch.statistic)
    assert result.p_value == pytest.approx(welch.pvalue, rel=0.05, abs=1e-12)
    same = metrics.brier_unpaired(y_a, p_a, y_a, p_a)
    assert same.diff == 0 and same.p_value == 1.0
    assert math.isnan(metrics.brier_unpaired(y_a[:1], p_a[:1], y_b, p_b).p_value)


def test_strong_signal_is_significant_and_noise_is_not() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(2000) < 0.3).astype(int)
    strong = y * 1.5 + rng.normal(size=2000)
    noise = rng.normal(size=2000)
    assert metrics.delong_paired(y, strong, noise).p_value < 1e-6
    other_noise = rng.normal(size=2000)
    assert metrics.delong_paired(y, noise, other_noise).p_value > 0.01


def test_auc_lower_bound_is_below_the_estimate_and_tightens_with_data() -> None:
    y_small, a_small, _ = _sample(5, 80)
    y_big, a_big, _ = _sample(5, 8000)
    small_gap = metrics.auc(y_small, a_small) - metrics.auc_lower_bound(y_small, a_small)
    big_gap = metrics.auc(y_big, a_big) - metrics.auc_lower_bound(y_big, a_big)
    assert small_gap > big_gap > 0


def test_one_class_gives_nan_not_an_error() -> None:
    y = np.zeros(10)
    assert math.isnan(metrics.auc(y, np.arange(10)))
    assert math.isnan(metrics.auc_lower_bound(y, np.arange(10)))


def test_brier_and_log_loss_match_sklearn() -> None:
    rng = np.random.default_rng(9)
    p = rng.random(500)
    y = (rng.random(500) < p).astype(int)
    assert metrics.brier(y, p) == pytest.approx(brier_score_loss(y, p))
    assert metrics.log_loss(y, p) == pytest.approx(sk_log_loss(y, p))


def test_deciles_cover_every_row_and_gain_reaches_one() -> None:
    y, a, _ = _sample(11, 1003)
    rows = metrics.lift_by_decile(y, a)
    assert sum(r["n"] for r in rows) == 1003
    assert rows[-1]["cumulative_gain"] == pytest.approx(1.0)
    assert rows[0]["lift"] > 1 > rows[-1]["lift"]
    assert metrics.top_decile_lift(y, a) == rows[0]["lift"]


def test_calibration_bins_of_calibrated_probabilities_are_close() -> None:
    rng = np.random.default_rng(4)
    p = rng.random(50_000)
    y = (rng.random(50_000) < p).astype(int)
    for row in metrics.calibration_bins(y, p):
        assert abs(row["observed_rate"] - row["mean_predicted"]) < 0.03


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(8)
    reference = metrics.reference_distribution(rng.normal(size=20_000))
    assert metrics.psi(reference, rng.normal(size=5_000)) < 0.02
    assert metrics.psi(reference, rng.normal(loc=1.0, size=5_000)) > 0.25


def test_psi_of_a_binary_feature_uses_one_bin_per_value() -> None:
    reference = metrics.reference_distribution(np.array([0.0] * 700 + [1.0] * 300))
    assert reference["edges"] == [0.5]
    assert reference["fractions"] == pytest.approx([0.7, 0.3])
    assert metrics.psi(reference, np.array([0.0] * 300 + [1.0] * 700)) > 0.25


def test_two_proportion_p() -> None:
    assert metrics.two_proportion_p(50, 100, 50, 100) == pytest.approx(1.0)
    assert metrics.two_proportion_p(80, 100, 40, 100) < 1e-6
    assert math.isnan(metrics.two_proportion_p(1, 0, 1, 10))


@pytest.mark.parametrize("df, p, exact", [(9, 0.999, 27.877), (9, 0.95, 16.919),
                                          (3, 0.999, 16.266), (49, 0.999, 85.351)])
def test_chi2_quantile_is_close_to_the_exact_values(df: int, p: float, exact: float) -> None:
    from scipy.stats import chi2

    assert chi2.ppf(p, df) == pytest.approx(exact, rel=1e-3)
    assert metrics.chi2_quantile(df, p) == pytest.approx(exact, rel=0.02)


def test_a_window_from_the_reference_is_rarely_a_significant_shift() -> None:
    rng = np.random.default_rng(12)
    reference = metrics.reference_distribution(rng.normal(size=50_000))
    hits = sum(metrics.shift_is_significant(reference, rng.normal(size=60))
               for _ in range(2000))
    assert hits <= 10  # 1e-3 nominal: 2 expected
    assert metrics.shift_is_significant(reference, rng.normal(loc=0.8, size=60))


# ------------------------------------------------------------------------ the gate's paired maths


def test_paired_brier_is_the_difference_with_a_paired_standard_error() -> None:
    rng = np.random.default_rng(5)
    p = rng.uniform(0.05, 0.6, 2000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    a = np.clip(p + rng.normal(0, 0.02, p.size), 0, 1)
    b = np.clip(p + rng.normal(0, 0.02, p.size), 0, 1)
    paired = metrics.brier_paired(y, a, b)
    assert paired.diff == pytest.approx(brier_score_loss(y, a) - brier_score_loss(y, b))
    d = (a - y) ** 2 - (b - y) ** 2
    assert paired.se == pytest.approx(d.std(ddof=1) / math.sqrt(d.size))
    # both scorers share the hard and the easy leads: pairing cancels that
    assert paired.se < metrics.brier_unpaired(y, a, y, b).se / 5


def test_calibration_error_sees_a_shift_at_a_low_base_rate() -> None:
    rng = np.random.default_rng(6)
    p = rng.beta(0.5, 20.0, 50_000)  # ~2.4 % base rate: nearly all leads below 0.1
    y = (rng.uniform(size=p.size) < p).astype(int)
    assert metrics.expected_calibration_error(y, p) < 0.003
    assert metrics.expected_calibration_error(y, 1.5 * p) == pytest.approx(0.5 * p.mean(),
                                                                          rel=0.15)


def test_precision_at_top_counts_conversions_among_the_highest_scores() -> None:
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    score = np.linspace(1.0, 0.1, 10)  # row 0 highest
    assert metrics.precision_at_top(y, score, 0.2) == 0.5
    assert metrics.precision_at_top(y, score, 0.3) == pytest.approx(2 / 3)
    assert metrics.precision_at_top(y, score, 0.01) == 1.0  # at least one lead
    def top(labels: np.ndarray, s: np.ndarray) -> float:
        return metrics.precision_at_top(labels, s, 0.2)

    same = metrics.paired_bootstrap(y, score, score, top, resamples=50, seed=1)
    assert np.all(same == 0)  # the same scorer on the same resamples: no difference
    flipped = metrics.paired_bootstrap(y, -score, score, top, resamples=200, seed=1)
    assert flipped.mean() < 0  # ranking upside down loses the conversions at the top
