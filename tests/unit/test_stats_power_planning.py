"""Issue 17: planning applies the evaluation's correction, says which test it plans for and
offers the relative lift (as GrowthBook plans), and mid-experiment power; against statsmodels
NormalIndPower and the delta-method variance written out here."""

from __future__ import annotations

import math

import pytest
from statsmodels.stats.power import NormalIndPower

from analysis.stats import (
    Proportion,
    SampleMean,
    mid_experiment_power,
    plan_experiment,
    power,
    sample_size_per_arm,
)

MEAN, VAR = 180.0, 60.0**2


def test_planning_applies_the_correction_over_metrics_and_arms():
    m = 3 * 2  # three metrics, two treatment arms: the family the evaluation corrects over
    d = MEAN * 0.05 / 60.0
    expected = NormalIndPower().solve_power(d, nobs1=None, alpha=0.05 / m, power=0.8, ratio=1)
    n = sample_size_per_arm(MEAN, VAR, 0.05, 0.8, comparisons=m)
    assert n == math.ceil(expected)
    assert n > sample_size_per_arm(MEAN, VAR, 0.05, 0.8)  # uncorrected planning is optimistic
    plan = plan_experiment(MEAN, VAR, 0.05, daily_units=1000, arms=3, comparisons=m)
    assert plan.n_per_arm == n and plan.alpha_per_comparison == pytest.approx(0.05 / 6)
    assert "6 comparisons" in plan.description and "absolute difference" in plan.description


def test_relative_scale_plans_the_lift_with_its_delta_method_variance():
    p, lift, n = 0.3, 0.1, 3000
    q = p * (1 + lift)
    # Var of (p̂B − p̂A)/p̂A per unit and arm pair: vB/pA² + vA·pB²/pA⁴ (written out here)
    v_rel = q * (1 - q) / p**2 + p * (1 - p) * q**2 / p**4
    d = lift / math.sqrt(v_rel / 2)  # NormalIndPower's effect size: se² = 2σ²/n
    expected = NormalIndPower().power(d, nobs1=n, alpha=0.05, ratio=1)
    got = power(p, p * (1 - p), lift, n, proportion=True, scale="relative")
    assert got == pytest.approx(expected, rel=1e-9)
    assert got != pytest.approx(power(p, p * (1 - p), lift, n, proportion=True))
    plan = plan_experiment(p, p * (1 - p), lift, 500, proportion=True, scale="relative")
    assert "relative lift" in plan.description
    assert plan.n_per_arm == math.ceil(_solve_relative(p, lift))


def _solve_relative(p: float, lift: float) -> float:
    q = p * (1 + lift)
    v_rel = q * (1 - q) / p**2 + p * (1 - p) * q**2 / p**4
    d = lift / math.sqrt(v_rel / 2)
    return NormalIndPower().solve_power(d, nobs1=None, alpha=0.05, power=0.8, ratio=1)


def test_mid_experiment_power_and_the_units_still_needed():
    # equal arms with the same sums of squares about their means, so NormalIndPower applies
    control = SampleMean(1500, 150000.0, 1500 * 100.0**2 + 1499 * 400.0)
    treatment = SampleMean(1500, 150000.0, 1500 * 100.0**2 + 1499 * 400.0)
    m = 4
    mid = mid_experiment_power(control, treatment, 0.02, 0.8, comparisons=m, daily_units=200.0)
    d = 100.0 * 0.02 / 20.0
    assert mid.power_now == pytest.approx(
        NormalIndPower().power(d, nobs1=1500, alpha=0.05 / m, ratio=1), rel=1e-9
    )
    needed = NormalIndPower().solve_power(d, nobs1=None, alpha=0.05 / m, power=0.8, ratio=1)
    assert mid.more_units == pytest.approx(2 * (needed - 1500), abs=2)
    assert mid.more_days == math.ceil(mid.more_units / 200.0)
    assert f"{mid.more_units:,} more units" in mid.sentence
    sequential = mid_experiment_power(
        control, treatment, 0.02, 0.8, comparisons=m, sequential_tuning_n=5000
    )
    assert sequential.power_now < mid.power_now and sequential.more_units > mid.more_units
    done = mid_experiment_power(control, treatment, 0.5, 0.8)
    assert done.more_units == 0 and "at or above" in done.sentence


def test_mid_experiment_power_refuses_degenerate_input_with_a_reason():
    r = mid_experiment_power(Proportion(100, 0), Proportion(100, 5), 0.1)
    assert not r.computable and "no conversions" in r.reason
