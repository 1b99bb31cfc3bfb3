"""The Experiments page plans at the level the evaluation corrects to, and a running
experiment reports its power so far, on a synthetic warehouse, against the power module's
own functions at the corrected level (which tests/unit/test_stats_power*.py check against
statsmodels)."""

import duckdb
import pytest
from scipy.stats import norm

from analysis.experiments import (
    ExperimentDefinition,
    evaluate_experiment,
    metric_baseline,
    plan_for_metric,
    planned_comparisons,
    power_so_far,
)
from analysis.metrics import builtin_metrics
from analysis.stats import plan_experiment
from bench.bench_experiment import build_rollups, build_synthetic_warehouse, create_schema

KEY = "exp-prompt-v2"
M = builtin_metrics()


@pytest.fixture(scope="module")
def warehouse():
    con = duckdb.connect()
    create_schema(con)
    start = build_synthetic_warehouse(con, calls=20_000, days=14, pre_days=10)
    build_rollups(con)  # current traffic is read from the hourly calls rollup
    return con, start


def test_comparisons_are_metrics_times_treatment_arms_when_corrected():
    assert planned_comparisons(4, 2) == 4
    assert planned_comparisons(3, 3, "bh") == 6
    assert planned_comparisons(4, 3, "none") == 1


def test_the_plan_is_made_at_alpha_over_the_comparisons(warehouse):
    con, _ = warehouse
    metric = M["resolved_rate"]
    one, base, daily = plan_for_metric(con, metric, 0.05, method="fixed")
    four, _, _ = plan_for_metric(con, metric, 0.05, method="fixed", comparisons=4)
    by_hand = plan_experiment(
        base.mean, base.variance, 0.05, daily, alpha=0.05 / 4, proportion=True
    )
    assert four.n_per_arm == by_hand.n_per_arm > one.n_per_arm


def test_power_so_far_of_a_running_experiment(warehouse):
    con, start = warehouse
    d = ExperimentDefinition(KEY, "control", start=start, correction="none")
    result = evaluate_experiment(con, d, [M["resolved_rate"]], "fixed", include_daily=False)
    r = result.result("resolved_rate")
    so_far = power_so_far(result, d, "resolved_rate", 0.05, 0.8, daily_units=1000)
    # a fixed-horizon z-test's power for a 5 % lift at the observed standard error
    delta = 0.05 * r.absolute.control_mean
    z = norm.ppf(0.975)
    expected = norm.sf(z - delta / r.absolute.se) + norm.cdf(-z - delta / r.absolute.se)
    assert so_far.power_now == pytest.approx(expected, rel=1e-3)
    assert so_far.units_so_far == r.control.n + r.treatment.n
    assert "Power so far to detect a 5 % change" in so_far.sentence
    assert metric_baseline(con, M["resolved_rate"]).computable
