"""The experiment engine applies CUPED to ratio metrics: each exposed unit carries its caller's
pre-period numerator and denominator, checked against pandas on the same warehouse, and the
comparison is the ratio-CUPED estimator on those sums."""

import datetime as dt

import duckdb
import numpy as np
import pytest

from analysis.experiments import ExperimentDefinition, evaluate_experiment
from analysis.metrics import builtin_metrics
from analysis.stats import RegressionAdjustedRatio, welch_test
from bench.bench_experiment import build_synthetic_warehouse, create_schema

KEY = "exp-prompt-v2"
M = builtin_metrics()


@pytest.fixture(scope="module")
def warehouse():
    con = duckdb.connect()
    create_schema(con)
    start = build_synthetic_warehouse(con, calls=20_000, days=14, pre_days=10)
    return con, start


def _expected_sums(con, start, arm):
    calls = con.execute(
        "SELECT call_id, caller_id, started_at, interruptions, turns FROM calls"
    ).df()
    ok = (calls.turns > 0) & calls.interruptions.notna()
    calls["m"] = np.where(ok, calls.interruptions, 0.0)
    calls["d"] = np.where(ok, calls.turns, 0.0)
    pre = calls[(calls.started_at >= start - dt.timedelta(days=30)) & (calls.started_at < start)]
    history = pre.groupby("caller_id")[["m", "d"]].sum()
    exp = con.execute(
        "SELECT unit_id AS call_id, variant FROM experiment_exposures WHERE experiment_key = ?",
        [KEY],
    ).df()
    units = exp.merge(calls, on="call_id")
    units = units[units.variant == arm]
    mx = units.caller_id.map(history.m).fillna(0.0).to_numpy()
    dx = units.caller_id.map(history.d).fillna(0.0).to_numpy()
    return units.m.to_numpy(float), units.d.to_numpy(float), mx, dx


def test_ratio_metric_carries_the_callers_pre_period(warehouse):
    con, start = warehouse
    d = ExperimentDefinition(KEY, "control", start=start, cuped=True, correction="none")
    r = evaluate_experiment(con, d, [M["interruptions_per_turn"]], include_daily=False)
    res = r.result("interruptions_per_turn")
    assert isinstance(res.control, RegressionAdjustedRatio)
    for arm, stat in (("control", res.control), ("treatment", res.treatment)):
        cols = _expected_sums(con, start, arm)
        assert stat.n == len(cols[0])
        assert stat.sums == pytest.approx(tuple(c.sum() for c in cols))
        products = tuple((cols[i] * cols[j]).sum() for i in range(4) for j in range(i, 4))
        assert stat.products == pytest.approx(products)
    # the comparison is the ratio-CUPED test on those sums, and it is the one the page reads
    ref = welch_test(res.control, res.treatment)
    assert res.absolute.computable and res.absolute.theta == pytest.approx(ref.theta)
    plain = evaluate_experiment(
        con,
        ExperimentDefinition(KEY, "control", start=start, cuped=False, correction="none"),
        [M["interruptions_per_turn"]],
        include_daily=False,
    ).result("interruptions_per_turn")
    # same experiment-period ratio either way; only the adjustment differs
    assert res.control.mean == pytest.approx(plain.control.mean)
    assert res.absolute.se <= plain.absolute.se * 1.01


def test_feedback_level_mean_gets_a_pre_period_too_and_the_daily_series_adds_up(warehouse):
    con, start = warehouse
    d = ExperimentDefinition(KEY, "control", start=start, cuped=True, correction="none")
    r = evaluate_experiment(con, d, [M["csat"]], method="sequential")
    res = r.result("csat")
    assert isinstance(res.treatment, RegressionAdjustedRatio)
    assert res.absolute.computable
    assert res.daily and res.daily[-1].result.effect == pytest.approx(res.absolute.effect)
