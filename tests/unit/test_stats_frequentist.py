"""Welch t, proportions and ratio metrics against scipy/statsmodels and GrowthBook's published
worked examples (packages/stats/tests/frequentist/test_tests.py)."""

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import test_proportions_2indep as proportions_2indep
from statsmodels.stats.weightstats import ttest_ind

from analysis.stats import Proportion, Ratio, SampleMean, estimate_effect, welch_test


def mean_stat(x) -> SampleMean:
    x = np.asarray(x, dtype=float)
    return SampleMean(len(x), float(x.sum()), float((x**2).sum()))


@pytest.fixture
def samples():
    rng = np.random.default_rng(7)
    return rng.normal(10, 3, 400), rng.normal(10.6, 4, 350)


def test_sample_mean_moments_match_numpy(samples):
    a, _ = samples
    s = mean_stat(a)
    assert s.mean == pytest.approx(a.mean())
    assert s.variance == pytest.approx(a.var(ddof=1))


@pytest.mark.parametrize(
    "alternative,sm_alt", [("two-sided", "two-sided"), ("greater", "larger"), ("less", "smaller")]
)
def test_welch_matches_statsmodels_unequal_variance(samples, alternative, sm_alt):
    a, b = samples
    r = welch_test(mean_stat(a), mean_stat(b), alternative=alternative)
    tstat, p, dof = ttest_ind(b, a, usevar="unequal", alternative=sm_alt)
    assert r.p_value == pytest.approx(p, rel=1e-9)
    assert r.dof == pytest.approx(dof, rel=1e-9)
    assert r.effect == pytest.approx(b.mean() - a.mean())


def test_welch_two_sided_interval_matches_scipy(samples):
    a, b = samples
    r = welch_test(mean_stat(a), mean_stat(b), alpha=0.1)
    ci = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.9)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_gbstats_published_relative_welch_examples():
    a = SampleMean(n=3000, sum=1396.87, sum_squares=52377.9767)
    b = SampleMean(n=3461, sum=2422.7, sum_squares=134698.29)
    greater = welch_test(a, b, relative=True, alternative="greater")
    assert greater.effect == pytest.approx(0.5033610858562358)
    assert greater.se == pytest.approx(0.3334122146400735)
    assert greater.ci_low == pytest.approx(-0.045136675850396046)
    assert greater.p_value == pytest.approx(0.06558262868467746)
    less = welch_test(a, b, relative=False, alternative="less")
    assert less.ci_high == pytest.approx(0.44796185327007765)
    assert less.p_value == pytest.approx(0.9644572751012698)
    binom = welch_test(Proportion(28, 14), Proportion(30, 16), relative=True)
    assert (binom.ci_low, binom.ci_high) == pytest.approx((-0.47767, 0.61101), abs=1e-5)
    assert binom.p_value == pytest.approx(0.80707, abs=1e-5)


def test_proportion_difference_matches_statsmodels_wald():
    control, treatment = Proportion(5000, 1500), Proportion(5000, 1650)
    r = welch_test(control, treatment)
    sm = proportions_2indep(1650, 5000, 1500, 5000, method="wald", compare="diff")
    # Welch on Bernoulli variances with ~10⁴ dof is the unpooled Wald z test.
    assert r.effect / r.se == pytest.approx(sm.statistic, rel=1e-9)
    assert r.p_value == pytest.approx(sm.pvalue, rel=1e-2)  # t with 10⁴ dof vs z
    assert r.effect == pytest.approx(0.03)
    assert r.significant


def test_relative_lift_variance_is_delta_method_closed_form():
    a, b = SampleMean(100, 500.0, 2900.0), SampleMean(120, 660.0, 4000.0)
    est = estimate_effect(a, b, relative=True)
    ma, mb = a.mean, b.mean
    expected = b.variance / (ma**2 * b.n) + a.variance * mb**2 / (ma**4 * a.n)
    assert est.effect == pytest.approx(mb / ma - 1)
    assert est.se == pytest.approx(math.sqrt(expected))


def test_ratio_delta_method_equals_linearised_variance():
    rng = np.random.default_rng(3)
    den = rng.poisson(8, 2000).astype(float) + 1
    num = rng.binomial(den.astype(int), 0.15).astype(float)
    s = Ratio(len(num), num.sum(), (num**2).sum(), den.sum(), (den**2).sum(), (num * den).sum())
    r = num.sum() / den.sum()
    # Linearisation: Var(ΣM/ΣD) per unit = Var(m − r·d)/μ_D².
    linear = np.var(num - r * den, ddof=1) / den.mean() ** 2
    assert s.mean == pytest.approx(r)
    assert s.variance == pytest.approx(linear, rel=1e-9)


def test_non_zero_null_shifts_the_test(samples):
    a, b = samples
    r = welch_test(mean_stat(a), mean_stat(b), null=0.5)
    tstat, p, _ = ttest_ind(b, a, usevar="unequal", value=0.5)
    assert r.p_value == pytest.approx(p, rel=1e-9)


def test_exact_two_proportions_matches_fisher_and_newcombe():
    """A rate leaving 0 %: Fisher's exact p (scipy) and Newcombe's hybrid score interval
    (statsmodels' confint_proportions_2indep, method="newcomb")."""
    from scipy.stats import fisher_exact
    from statsmodels.stats.proportion import confint_proportions_2indep

    from analysis.stats import Proportion
    from analysis.stats.frequentist import exact_two_proportions

    control, treatment = Proportion(5000, 0), Proportion(5000, 40)
    result = exact_two_proportions(control, treatment, alpha=0.05)
    assert result.computable and result.significant
    assert result.effect == pytest.approx(40 / 5000)
    expected_p = fisher_exact([[40, 4960], [0, 5000]]).pvalue
    assert result.p_value == pytest.approx(expected_p)
    low, high = confint_proportions_2indep(40, 5000, 0, 5000, method="newcomb", alpha=0.05)
    assert (result.ci_low, result.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_exact_two_proportions_zero_against_zero_is_no_change():
    from analysis.stats import Proportion
    from analysis.stats.frequentist import exact_two_proportions

    result = exact_two_proportions(Proportion(300, 0), Proportion(400, 0))
    assert result.computable and not result.significant
    assert result.p_value == 1.0 and result.ci_low < 0 < result.ci_high
