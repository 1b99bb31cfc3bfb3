"""Our logistic regression and Wilson interval against statsmodels (an independent
implementation that only the tests install)."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.stats.proportion import proportion_confint

from analysis.stats.frequentist import wilson_interval
from analysis.stats.logistic import logistic_regression


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_logistic_regression_matches_statsmodels_logit(seed):
    rng = np.random.default_rng(seed)
    n = 800
    x = np.column_stack([np.ones(n), rng.normal(size=n), rng.poisson(2, size=n), rng.random(n)])
    eta = -1.0 + 0.8 * x[:, 1] + 0.3 * x[:, 2] - 0.5 * x[:, 3]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    ours = logistic_regression(y, x, alpha=0.1)
    ref = sm.Logit(y, x).fit(disp=0)
    assert ours.converged and not ours.separated
    np.testing.assert_allclose(ours.coef, ref.params, rtol=1e-7)
    np.testing.assert_allclose(ours.se, ref.bse, rtol=1e-6)
    np.testing.assert_allclose(ours.p_value, ref.pvalues, rtol=1e-5)
    ci = ref.conf_int(alpha=0.1)
    np.testing.assert_allclose(ours.ci_low, ci[:, 0], rtol=1e-6)
    np.testing.assert_allclose(ours.ci_high, ci[:, 1], rtol=1e-6)


def test_separated_outcome_is_flagged_not_fitted():
    x = np.column_stack([np.ones(200), np.linspace(0, 1, 200)])
    y = (x[:, 1] > 0.5).astype(float)
    assert logistic_regression(y, x).separated


def test_collinear_columns_raise():
    x = np.column_stack([np.ones(50), np.arange(50.0), 2 * np.arange(50.0)])
    with pytest.raises(np.linalg.LinAlgError):
        logistic_regression((np.arange(50) % 2).astype(float), x)


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_wilson_interval_matches_statsmodels(alpha):
    k = np.array([0, 1, 7, 50, 99, 100])
    n = np.array([100, 100, 30, 100, 100, 100])
    lo, hi = wilson_interval(k, n, alpha)
    ref_lo, ref_hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    np.testing.assert_allclose(lo, ref_lo, atol=1e-12)
    np.testing.assert_allclose(hi, ref_hi, atol=1e-12)
