"""CUPED for ratio metrics and binomial moments for 0/1 metrics, against independent
computations: GrowthBook's published case, per-unit linearised values with numpy and scipy,
OLS with statsmodels, a Monte Carlo of the estimator, and the plain tests it must reduce to."""

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import optimize, stats

from analysis.stats import (
    Proportion,
    Ratio,
    RegressionAdjusted,
    RegressionAdjustedRatio,
    SampleMean,
    estimate_effect,
    sequential_test,
    welch_test,
)
from analysis.stats.cuped import pooled_theta


def ratio_arm(m, d, mx, dx) -> RegressionAdjustedRatio:
    cols = [np.asarray(v, dtype=float) for v in (m, d, mx, dx)]
    products = tuple(float((cols[i] * cols[j]).sum()) for i in range(4) for j in range(i, 4))
    return RegressionAdjustedRatio(len(cols[0]), tuple(float(c.sum()) for c in cols), products)  # type: ignore[arg-type]


def simulate(rng, n, lift=0.0):
    """Calls per caller (D) and interruptions (M), with the caller's pre-period counts (Dx, Mx)
    driven by the same persistent propensity, so the pre-period predicts the experiment."""
    propensity = rng.gamma(2.0, 0.1, n)
    d = rng.poisson(8, n) + 1
    dx = rng.poisson(30, n) + 1
    m = rng.binomial(d, np.clip(propensity * (1 + lift), 0, 1))
    mx = rng.binomial(dx, np.clip(propensity, 0, 1))
    return m, d, mx, dx


def linearised(m, d, mx, dx):
    """Per-unit influence values of r = ΣM/ΣD and r_x = ΣMx/ΣDx (Deng et al. 2018)."""
    r, rx = m.sum() / d.sum(), mx.sum() / dx.sum()
    return (m - r * d) / d.mean(), (mx - rx * dx) / dx.mean()


@pytest.fixture
def arms():
    rng = np.random.default_rng(7)
    return simulate(rng, 3000), simulate(rng, 2500, lift=0.05)


def test_matches_growthbooks_published_case():
    # gbstats tests/models/test_tests.py, test_two_sided_ttest_test_runs_ratio_ra and
    # test_sequential_test_runs_ratio_ra: relative lift -0.0007, sd 0.00391, p 0.85771,
    # 95 % CI (-0.00841, 0.00700); sequential (N* = 5000) CI (-0.02063, 0.01923).
    def arm(n, m, d, mx, dx, mmx, ddx, mxdx, md, mdx, mxd):
        return RegressionAdjustedRatio(
            n, (m[0], d[0], mx[0], dx[0]), (m[1], md, mmx, mdx, d[1], mxd, ddx, mx[1], mxdx, dx[1])
        )

    a = arm(100, (485.112236689623, 2715.484666118136), (679.9093275844917, 4939.424001640236),
            (192.59138069991536, 460.076026390857), (290.1398399750233, 920.9461385038898),
            1113.6215759318352, 2130.9404074446747, 634.239482353647, 3602.146836776702,
            1559.2878434944676, 1460.3181079276983)  # fmt: skip
    b = arm(100, (514.7757826608777, 2994.897482705013), (705.4090874383759, 5291.36604146392),
            (206.94157227402536, 514.2903702246757), (302.54389139107326, 994.4506208125663),
            1237.0953021125997, 2292.081739775257, 698.4173425817908, 3918.1561431600717,
            1701.0287270040265, 1604.0759503266522)  # fmt: skip
    r = welch_test(a, b, relative=True)
    assert round(r.effect, 5) == -0.0007
    assert round(r.se, 5) == 0.00391
    assert round(r.p_value, 5) == 0.85771
    assert (round(r.ci_low, 5), round(r.ci_high, 5)) == (-0.00841, 0.00700)
    s = sequential_test(a, b, relative=True, tuning_n=5000)
    assert (round(s.ci_low, 5), round(s.ci_high, 5)) == (-0.02063, 0.01923)


def test_absolute_equals_welch_on_linearised_adjusted_values(arms):
    (ma, da, mxa, dxa), (mb, db, mxb, dxb) = arms
    r = welch_test(ratio_arm(ma, da, mxa, dxa), ratio_arm(mb, db, mxb, dxb))
    psi_a, x_a = linearised(ma, da, mxa, dxa)
    psi_b, x_b = linearised(mb, db, mxb, dxb)

    # θ minimises the variance of the difference, found numerically from the unit values
    def var_diff(t):
        return np.var(psi_a - t * x_a, ddof=1) / len(ma) + np.var(psi_b - t * x_b, ddof=1) / len(mb)

    theta = optimize.minimize_scalar(var_diff).x
    assert r.theta == pytest.approx(theta, rel=1e-6)
    ra, rxa = ma.sum() / da.sum(), mxa.sum() / dxa.sum()
    rb, rxb = mb.sum() / db.sum(), mxb.sum() / dxb.sum()
    assert r.effect == pytest.approx((rb - theta * rxb) - (ra - theta * rxa))
    assert r.se == pytest.approx(np.sqrt(var_diff(theta)), rel=1e-6)
    # the interval is Welch's on the adjusted unit values, shifted to the estimate
    ref = stats.ttest_ind(psi_b - theta * x_b, psi_a - theta * x_a, equal_var=False)
    half = (ref.confidence_interval(0.95).high - ref.confidence_interval(0.95).low) / 2
    assert (r.ci_high - r.ci_low) / 2 == pytest.approx(half, rel=1e-6)


def test_shrinks_the_interval_and_the_se_is_the_estimators_spread():
    # Monte Carlo: the reported se is the spread of the estimate over repeated experiments,
    # smaller than the plain ratio's, and the estimate is centred on the true difference 0.
    rng = np.random.default_rng(11)
    effects, ses, plain_ses = [], [], []
    for _ in range(300):
        a, b = simulate(rng, 800), simulate(rng, 800)
        r = welch_test(ratio_arm(*a), ratio_arm(*b))
        effects.append(r.effect)
        ses.append(r.se)
        plain_ses.append(welch_test(ratio_arm(*a).post, ratio_arm(*b).post).se)
    assert np.mean(ses) == pytest.approx(np.std(effects, ddof=1), rel=0.12)
    assert abs(np.mean(effects)) < 3 * np.std(effects) / np.sqrt(300)
    assert np.mean(ses) < 0.85 * np.mean(plain_ses)


def test_reduces_to_the_plain_ratio_without_a_usable_pre_period(arms):
    (ma, da, mxa, dxa), (mb, db, mxb, dxb) = arms
    for relative in (False, True):
        plain = welch_test(ratio_arm(ma, da, mxa, dxa).post, ratio_arm(mb, db, mxb, dxb).post,
                           relative=relative)  # fmt: skip
        # the same pre-period ratio for every unit: nothing to adjust by
        flat = welch_test(ratio_arm(ma, da, 2 * dxa, dxa), ratio_arm(mb, db, 2 * dxb, dxb),
                          relative=relative)  # fmt: skip
        # every caller new in one arm: no pre-period at all
        new = welch_test(ratio_arm(ma, da, 0 * mxa, 0 * dxa), ratio_arm(mb, db, mxb, dxb),
                         relative=relative)  # fmt: skip
        for r in (flat, new):
            assert r.computable and r.theta == 0
            assert (r.effect, r.se, r.p_value) == pytest.approx(
                (plain.effect, plain.se, plain.p_value), rel=1e-9
            )
        assert "CUPED not applied" in new.note


def test_reduces_to_plain_cuped_when_every_denominator_is_one(arms):
    # D = Dx = 1: the ratio is a mean and the adjustment is Welch on y − θx, θ as reported
    (ma, _, mxa, _), (mb, _, mxb, _) = arms
    ones_a, ones_b = np.ones(len(ma)), np.ones(len(mb))
    r = welch_test(ratio_arm(ma, ones_a, mxa, ones_a), ratio_arm(mb, ones_b, mxb, ones_b))
    ref = stats.ttest_ind(mb - r.theta * mxb, ma - r.theta * mxa, equal_var=False)
    assert r.effect == pytest.approx(ref.statistic * r.se)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    assert r.theta == pytest.approx(pooled_theta(
        RegressionAdjusted(SampleMean(len(ma), ma.sum(), (ma**2).sum()),
                           SampleMean(len(ma), mxa.sum(), (mxa**2).sum()), float((ma * mxa).sum())),
        RegressionAdjusted(SampleMean(len(mb), mb.sum(), (mb**2).sum()),
                           SampleMean(len(mb), mxb.sum(), (mxb**2).sum()), float((mb * mxb).sum())),
    ), rel=0.02)  # fmt: skip


def test_relative_variance_is_the_delta_method_of_the_adjusted_lift(arms):
    # Numerical gradient of Δ/r_A over the eight arm means, with each arm's covariance of
    # (M, D, Mx, Dx) from numpy: the exact delta method, computed independently.
    (a, b) = arms
    theta = welch_test(ratio_arm(*a), ratio_arm(*b)).theta

    def lift(means):
        ma, da, mxa, dxa, mb, db, mxb, dxb = means
        adj_a = ma / da - theta * mxa / dxa
        adj_b = mb / db - theta * mxb / dxb
        return (adj_b - adj_a) / (ma / da)

    means = np.array([np.mean(v) for v in (*a, *b)], dtype=float)
    grad = np.array([
        (lift(means + h) - lift(means - h)) / (2 * 1e-6)
        for h in np.eye(8) * 1e-6
    ])  # fmt: skip
    cov_a = np.cov(np.vstack(a).astype(float)) / len(a[0])
    cov_b = np.cov(np.vstack(b).astype(float)) / len(b[0])
    var = grad[:4] @ cov_a @ grad[:4] + grad[4:] @ cov_b @ grad[4:]
    r = estimate_effect(ratio_arm(*a), ratio_arm(*b), relative=True)
    assert r.effect == pytest.approx(lift(means), rel=1e-9)
    assert r.se == pytest.approx(np.sqrt(var), rel=1e-5)


def test_inconsistent_pre_period_sums_are_refused():
    rng = np.random.default_rng(3)
    good = ratio_arm(*simulate(rng, 200))
    p = list(good.products)
    p[7] = good.sums[2] ** 2 / good.n / 2  # Σ Mx² below (Σ Mx)²/n
    bad = RegressionAdjustedRatio(good.n, good.sums, tuple(p))  # type: ignore[arg-type]
    r = welch_test(good, bad)
    assert not r.computable and "inconsistent input in the treatment arm" in r.reason


def test_binomial_cuped_theta_is_the_ols_slope_and_matches_ancova():
    # A 0/1 metric with a 0/1 covariate (did the caller resolve a call before?): θ is the
    # pooled OLS slope exactly, and the effect agrees with ANCOVA's treatment coefficient.
    rng = np.random.default_rng(5)
    n_a, n_b = 4000, 4200
    xa, xb = rng.binomial(1, 0.5, n_a), rng.binomial(1, 0.5, n_b)
    ya = rng.binomial(1, 0.3 + 0.3 * xa)
    yb = rng.binomial(1, 0.34 + 0.3 * xb)

    def arm(y, x):
        return RegressionAdjusted(Proportion(len(y), y.sum()), Proportion(len(x), x.sum()),
                                  float((x * y).sum()))  # fmt: skip

    x, y = np.r_[xa, xb], np.r_[ya, yb]
    slope = np.polyfit(x, y, 1)[0]
    assert pooled_theta(arm(ya, xa), arm(yb, xb)) == pytest.approx(slope, rel=1e-12)
    # a covariate counted as a mean (e.g. the share of past calls resolved) gives the same θ
    mean_pre = RegressionAdjusted(Proportion(n_a, ya.sum()), SampleMean(n_a, xa.sum(), xa.sum()),
                                  float((xa * ya).sum()))  # fmt: skip
    assert mean_pre.pre_variance == pytest.approx(np.var(xa))
    assert mean_pre.covariance == pytest.approx(np.cov(ya, xa, ddof=0)[0, 1])
    r = welch_test(arm(ya, xa), arm(yb, xb))
    treat = np.r_[np.zeros(n_a), np.ones(n_b)]
    ols = sm.OLS(y, sm.add_constant(np.c_[treat, x])).fit()
    assert r.effect == pytest.approx(ols.params[1], abs=2e-3)
    assert r.se == pytest.approx(ols.bse[1], rel=0.03)
    assert r.se < welch_test(Proportion(n_a, ya.sum()), Proportion(n_b, yb.sum())).se


def test_ratio_cuped_statistics_add_across_days():
    rng = np.random.default_rng(9)
    m, d, mx, dx = simulate(rng, 500)
    whole = ratio_arm(m, d, mx, dx)
    parts = ratio_arm(m[:200], d[:200], mx[:200], dx[:200]) + ratio_arm(
        m[200:], d[200:], mx[200:], dx[200:]
    )
    assert parts.n == whole.n
    assert parts.sums == pytest.approx(whole.sums)
    assert parts.products == pytest.approx(whole.products)
    assert isinstance(whole.post, Ratio) and whole.mean == pytest.approx(m.sum() / d.sum())
