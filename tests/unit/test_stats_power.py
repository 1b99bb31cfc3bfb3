"""Power, sample size and MDE against statsmodels NormalIndPower / tt_ind_solve_power."""

import math

import pytest
from scipy.stats import norm
from statsmodels.stats.power import NormalIndPower, tt_ind_solve_power

from analysis.stats import (
    days_needed,
    minimum_detectable_effect,
    plan_experiment,
    power,
    sample_size_per_arm,
)

MEAN, VAR = 180.0, 60.0**2  # handle time: 3 minutes, sd 1 minute


def test_power_matches_normal_ind_power():
    for lift, n in [(0.02, 1000), (0.05, 500), (-0.03, 2000)]:
        d = MEAN * abs(lift) / math.sqrt(VAR)
        assert power(MEAN, VAR, lift, n) == pytest.approx(
            NormalIndPower().power(d, nobs1=n, alpha=0.05, ratio=1)
        )


def test_sample_size_matches_statsmodels_solvers():
    n = sample_size_per_arm(MEAN, VAR, 0.05, target_power=0.8)
    d = MEAN * 0.05 / 60.0
    z_n = NormalIndPower().solve_power(d, nobs1=None, alpha=0.05, power=0.8, ratio=1)
    t_n = tt_ind_solve_power(d, nobs1=None, alpha=0.05, power=0.8, ratio=1)
    assert n == math.ceil(z_n)
    assert abs(n - t_n) < 2  # t vs z differ by about one unit at this size


def test_proportion_sample_size_matches_textbook_formula():
    # n = (z_{1−α/2} + z_{1−β})² (p1q1 + p2q2)/(p2 − p1)² (ignores the far tail: ≤ 1 unit off)
    p1, p2 = 0.60, 0.63
    textbook = (norm.ppf(0.975) + norm.ppf(0.8)) ** 2 * (p1 * (1 - p1) + p2 * (1 - p2))
    textbook /= (p2 - p1) ** 2
    n = sample_size_per_arm(p1, p1 * (1 - p1), 0.05, proportion=True)
    assert abs(n - textbook) <= 1


def test_mde_inverts_power():
    mde = minimum_detectable_effect(MEAN, VAR, 1500, target_power=0.8)
    assert power(MEAN, VAR, mde, 1500) == pytest.approx(0.8, abs=1e-6)
    d = NormalIndPower().solve_power(None, nobs1=1500, alpha=0.05, power=0.8, ratio=1)
    assert mde == pytest.approx(d * 60.0 / MEAN, rel=1e-5)


def test_sequential_testing_costs_power():
    fixed = power(MEAN, VAR, 0.03, 2000)
    seq = power(MEAN, VAR, 0.03, 2000, sequential_tuning_n=4000)
    assert seq < fixed
    n_fixed = sample_size_per_arm(MEAN, VAR, 0.03)
    n_seq = sample_size_per_arm(MEAN, VAR, 0.03, sequential_tuning_n=4000)
    assert n_seq > n_fixed


def test_plan_reports_days_at_daily_traffic_for_several_arms():
    plan = plan_experiment(0.6, 0.24, 0.05, daily_units=800, arms=3, proportion=True)
    assert plan.computable and plan.power >= 0.8
    assert plan.total_units == 3 * plan.n_per_arm
    assert plan.days == math.ceil(plan.total_units / 800)
    assert days_needed(1000, 2, 300, traffic_share=0.5) == 14


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(baseline_mean=0.6, baseline_variance=0.24, relative_effect=0.0, daily_units=100),
        dict(baseline_mean=1.2, baseline_variance=0.24, relative_effect=0.1, daily_units=100),
        dict(baseline_mean=0.6, baseline_variance=0.0, relative_effect=0.1, daily_units=100),
        dict(baseline_mean=0.6, baseline_variance=0.24, relative_effect=0.1, daily_units=0),
    ],
)
def test_impossible_plans_say_why(kwargs):
    plan = plan_experiment(**kwargs, proportion=True)
    assert not plan.computable and plan.reason
