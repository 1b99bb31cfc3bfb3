"""Quantile statistics: order-statistic interval against numpy and exact binomial ranks, and
coverage by simulation."""

import numpy as np
import pytest
from scipy.stats import binom

from analysis.stats import Quantile, compare, quantile_from_values
from analysis.stats.statistics import quantile_ranks


def test_estimate_is_the_inverted_cdf_sample_quantile():
    x = np.random.default_rng(0).exponential(300, 5000)
    q = quantile_from_values(x, 0.95)
    assert q.estimate == pytest.approx(np.quantile(x, 0.95, method="inverted_cdf"))
    assert q.lower < q.estimate < q.upper


def test_ranks_are_close_to_exact_binomial_ranks():
    for n, nu in [(1000, 0.5), (5000, 0.95), (20000, 0.99)]:
        lo, _, hi = quantile_ranks(n, nu)
        assert abs(lo - binom.ppf(0.025, n, nu)) <= 2
        assert abs(hi - (binom.ppf(0.975, n, nu) + 1)) <= 2


def test_interval_covers_the_true_p95_about_95_percent_of_the_time():
    rng = np.random.default_rng(9)
    true_q = -np.log(0.05) * 300  # exponential(scale 300) p95
    hits = sum(
        q.lower <= true_q <= q.upper
        for q in (quantile_from_values(rng.exponential(300, 2000), 0.95) for _ in range(400))
    )
    assert 0.92 <= hits / 400 <= 0.98


def test_p95_difference_detects_a_slower_arm_and_clustering_widens_it():
    rng = np.random.default_rng(4)
    a = quantile_from_values(rng.lognormal(6.5, 0.5, 20000), 0.95)
    b = quantile_from_values(rng.lognormal(6.5, 0.5, 20000) * 1.1, 0.95)
    r = compare(a, b)
    assert r.computable and r.significant and r.effect > 0
    clustered = compare(
        Quantile(a.n, 0.95, a.estimate, a.lower, a.upper, design_effect=3.0, n_units=4000),
        Quantile(b.n, 0.95, b.estimate, b.lower, b.upper, design_effect=3.0, n_units=4000),
    )
    assert clustered.se == pytest.approx(r.se * np.sqrt(3.0))
