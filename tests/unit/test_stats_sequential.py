"""Sequential (always-valid) intervals: GrowthBook's published values and a peeking simulation."""

import numpy as np
import pytest

from analysis.stats import RegressionAdjusted, SampleMean, sequential_test, welch_test
from analysis.stats.frequentist import sequential_halfwidth_factor, sequential_rho

A = SampleMean(n=3000, sum=1396.87, sum_squares=52377.9767)
B = SampleMean(n=3461, sum=2422.7, sum_squares=134698.29)


def test_gbstats_published_sequential_example():
    r = sequential_test(A, B, relative=True, tuning_n=1000)
    assert r.effect == pytest.approx(0.50336, abs=1e-5)
    assert (r.ci_low, r.ci_high) == pytest.approx((-0.55844, 1.56516), abs=1e-5)
    assert r.p_value == 1.0 and not r.significant


def test_gbstats_published_sequential_cuped_example():
    pre_a = SampleMean(n=3000, sum=16.87, sum_squares=527.9767)
    pre_b = SampleMean(n=3461, sum=22.7, sum_squares=1348.29)
    r = sequential_test(
        RegressionAdjusted(A, pre_a, 1.0), RegressionAdjusted(B, pre_b, 1.0), relative=True
    )
    assert r.effect == pytest.approx(0.50338, abs=1e-5)
    assert (r.ci_low, r.ci_high) == pytest.approx((-0.50969, 1.51646), abs=1e-5)


def test_tuning_near_sample_size_gives_narrowest_interval():
    width = {
        n: (lambda r: r.ci_high - r.ci_low)(sequential_test(A, B, tuning_n=n))
        for n in (10, 6461, 10_000)
    }
    assert width[6461] < width[10_000] < width[10]


def test_sequential_interval_is_wider_than_fixed():
    assert sequential_halfwidth_factor(6461, 0.05, 5000) > 1.96
    seq, fixed = sequential_test(A, B), welch_test(A, B)
    assert seq.ci_high - seq.ci_low > fixed.ci_high - fixed.ci_low


def test_p_value_below_alpha_exactly_when_interval_excludes_zero():
    rng = np.random.default_rng(11)
    for _ in range(200):
        x = rng.normal(0, 1, 300)
        y = rng.normal(rng.uniform(-0.4, 0.4), 1, 300)
        r = sequential_test(
            SampleMean(300, x.sum(), (x**2).sum()), SampleMean(300, y.sum(), (y**2).sum())
        )
        assert (r.p_value < 0.05) == (r.ci_low > 0 or r.ci_high < 0)


def test_rho_matches_closed_form():
    alpha, n_star = 0.05, 5000
    rho = sequential_rho(alpha, n_star)
    assert rho**2 * n_star == pytest.approx(-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1))


def test_daily_peeking_false_positive_rate():
    """A/A tests looked at every day for 20 days: declaring a winner at the first significant
    peek inflates the fixed-horizon error rate well above α; the sequential one stays ≤ α."""
    rng = np.random.default_rng(2024)
    sims, days, per_day = 400, 20, 100
    fixed_hits = seq_hits = 0
    for _ in range(sims):
        x = rng.normal(0, 1, (2, days, per_day))
        sums = x.sum(axis=2).cumsum(axis=1)
        sq = (x**2).sum(axis=2).cumsum(axis=1)
        fixed_any = seq_any = False
        for d in range(days):
            n = (d + 1) * per_day
            a, b = SampleMean(n, sums[0, d], sq[0, d]), SampleMean(n, sums[1, d], sq[1, d])
            fixed_any = fixed_any or welch_test(a, b).significant
            seq_any = seq_any or sequential_test(a, b, tuning_n=2000).significant
        fixed_hits += fixed_any
        seq_hits += seq_any
    assert fixed_hits / sims > 0.12  # classic peeking inflation (≈ 0.2–0.25 for 20 looks)
    assert seq_hits / sims <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / sims)
