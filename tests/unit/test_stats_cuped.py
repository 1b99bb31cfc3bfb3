"""CUPED against an independent computation: Welch on the adjusted per-unit values."""

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from analysis.stats import RegressionAdjusted, SampleMean, welch_test
from analysis.stats.cuped import pooled_theta


def arm(y, x) -> RegressionAdjusted:
    return RegressionAdjusted(
        SampleMean(len(y), y.sum(), (y**2).sum()),
        SampleMean(len(x), x.sum(), (x**2).sum()),
        float((x * y).sum()),
    )


@pytest.fixture
def data():
    rng = np.random.default_rng(42)
    xa, xb = rng.normal(50, 10, 800), rng.normal(50, 10, 900)
    ya = 0.8 * xa + rng.normal(0, 5, 800)
    yb = 0.8 * xb + 1.5 + rng.normal(0, 5, 900)
    return xa, ya, xb, yb


def test_theta_is_pooled_regression_slope(data):
    xa, ya, xb, yb = data
    x, y = np.concatenate([xa, xb]), np.concatenate([ya, yb])
    assert pooled_theta(arm(ya, xa), arm(yb, xb)) == pytest.approx(
        np.cov(y, x)[0, 1] / np.var(x, ddof=1)
    )


def test_absolute_cuped_equals_welch_on_adjusted_values(data):
    xa, ya, xb, yb = data
    r = welch_test(arm(ya, xa), arm(yb, xb))
    theta = r.theta
    adj_a, adj_b = ya - theta * xa, yb - theta * xb
    ref = stats.ttest_ind(adj_b, adj_a, equal_var=False)
    assert r.effect == pytest.approx(adj_b.mean() - adj_a.mean())
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    ci = ref.confidence_interval(0.95)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-6)


def test_cuped_agrees_with_ancova_and_shrinks_the_interval(data):
    xa, ya, xb, yb = data
    cuped = welch_test(arm(ya, xa), arm(yb, xb))
    plain = welch_test(arm(ya, xa).post, arm(yb, xb).post)
    treat = np.r_[np.zeros(800), np.ones(900)]
    ols = sm.OLS(np.r_[ya, yb], sm.add_constant(np.c_[treat, np.r_[xa, xb]])).fit()
    assert cuped.effect == pytest.approx(ols.params[1], abs=0.05)
    assert cuped.se == pytest.approx(ols.bse[1], rel=0.05)
    assert cuped.se < 0.6 * plain.se
    assert cuped.ci_low < 1.5 < cuped.ci_high


def test_no_pre_period_variance_falls_back_to_plain_test(data):
    _, ya, _, yb = data
    flat_a, flat_b = np.zeros_like(ya), np.zeros_like(yb)  # every caller is new
    r = welch_test(arm(ya, flat_a), arm(yb, flat_b))
    plain = welch_test(arm(ya, flat_a).post, arm(yb, flat_b).post)
    assert r.computable and r.theta == 0
    assert "CUPED not applied" in r.note
    assert r.p_value == pytest.approx(plain.p_value)


def test_relative_cuped_is_close_to_absolute_over_control_mean(data):
    xa, ya, xb, yb = data
    rel = welch_test(arm(ya, xa), arm(yb, xb), relative=True)
    ab = welch_test(arm(ya, xa), arm(yb, xb))
    assert rel.effect == pytest.approx(ab.effect / ya.mean())
    assert rel.se == pytest.approx(ab.se / ya.mean(), rel=0.05)
