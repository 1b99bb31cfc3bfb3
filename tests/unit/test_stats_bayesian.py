"""Bayesian engine against closed forms and numerical integration."""

import numpy as np
import pytest
from scipy import integrate, stats

from analysis.stats import NormalPrior, SampleMean, bayesian_test, estimate_effect
from analysis.stats.bayesian import expected_positive_part

A = SampleMean(n=3000, sum=1396.87, sum_squares=52377.9767)
B = SampleMean(n=3461, sum=2422.7, sum_squares=134698.29)


def test_flat_prior_posterior_is_the_likelihood():
    est = estimate_effect(A, B)
    r = bayesian_test(A, B)
    assert r.effect == pytest.approx(est.effect)
    assert r.chance_to_beat_control == pytest.approx(stats.norm.cdf(est.effect / est.se))
    z = stats.norm.ppf(0.975)
    assert (r.ci_low, r.ci_high) == pytest.approx(
        (est.effect - z * est.se, est.effect + z * est.se)
    )


def test_proper_prior_matches_numerical_posterior():
    prior = NormalPrior(mean=0.0, variance=0.3**2, proper=True)
    est = estimate_effect(A, B, relative=True)
    r = bayesian_test(A, B, relative=True, prior=prior)

    def density(x):
        return stats.norm.pdf(est.effect, x, est.se) * stats.norm.pdf(x, 0, 0.3)

    z = integrate.quad(density, -5, 5)[0]
    post_mean = integrate.quad(lambda x: x * density(x), -5, 5)[0] / z
    ctw = integrate.quad(density, 0, 5)[0] / z
    assert r.effect == pytest.approx(post_mean, rel=1e-6)
    assert r.chance_to_beat_control == pytest.approx(ctw, rel=1e-6)
    assert abs(r.effect) < abs(est.effect)  # shrunk toward the prior mean


def test_risk_is_truncated_normal_mean():
    for mu, sd in [(0.3, 1.0), (-0.2, 0.5), (0.0, 2.0)]:
        numeric = integrate.quad(lambda x, m=mu, s=sd: max(x, 0) * stats.norm.pdf(x, m, s), -30, 30)
        assert expected_positive_part(mu, sd) == pytest.approx(numeric[0], abs=1e-7)
    r = bayesian_test(A, B)
    assert r.risk_control == pytest.approx(expected_positive_part(r.effect, r.se))
    assert r.risk_treatment == pytest.approx(expected_positive_part(-r.effect, r.se))


def test_lower_is_better_flips_chance_to_win_and_risks():
    higher = bayesian_test(A, B)
    lower = bayesian_test(A, B, lower_is_better=True)
    assert lower.chance_to_beat_control == pytest.approx(1 - higher.chance_to_beat_control)
    assert lower.risk_treatment == pytest.approx(higher.risk_control)


def test_clear_winner_is_decisive_and_coin_flip_is_not():
    rng = np.random.default_rng(5)
    x, y = rng.normal(0, 1, 5000), rng.normal(0.2, 1, 5000)
    win = bayesian_test(
        SampleMean(5000, x.sum(), (x**2).sum()), SampleMean(5000, y.sum(), (y**2).sum())
    )
    assert win.significant and win.chance_to_beat_control > 0.99
    same = bayesian_test(A, A)
    assert same.chance_to_beat_control == pytest.approx(0.5)
    assert not same.significant
