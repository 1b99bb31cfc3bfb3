"""Experiment SQL on a synthetic warehouse with a planted effect (+3 points resolved rate, no
effect on latency), checked against pandas computations on the raw tables."""

import datetime as dt

import duckdb
import numpy as np
import pytest

from analysis.experiments import (
    ExperimentDefinition,
    evaluate_experiment,
    experiment_over_time,
    verdict,
)
from analysis.metrics import builtin_metrics, metric_from_config
from bench.bench_experiment import build_synthetic_warehouse, create_schema

KEY = "exp-prompt-v2"
M = builtin_metrics()


@pytest.fixture(scope="module")
def warehouse():
    con = duckdb.connect()
    create_schema(con)
    start = build_synthetic_warehouse(con, calls=30_000, days=20, pre_days=10, resolved_lift=0.03)
    return con, start


def test_planted_lift_on_resolved_rate_is_recovered(warehouse):
    con, start = warehouse
    for cuped in (False, True):
        d = ExperimentDefinition(KEY, "control", start=start, cuped=cuped)
        r = evaluate_experiment(con, d, [M["resolved_rate"], M["p95_e2e_latency"]])
        res = r.result("resolved_rate", "treatment")
        assert res.absolute.computable and res.absolute.significant
        assert res.absolute.ci_low < 0.03 < res.absolute.ci_high
        assert res.absolute.ci_low > 0
        assert res.direction == "better"
        assert "improved" in res.verdict
    assert res.absolute.theta is not None and res.absolute.theta > 0


@pytest.mark.parametrize("method", ["fixed", "sequential", "bayesian"])
def test_no_effect_on_latency_is_not_claimed(warehouse, method):
    con, start = warehouse
    d = ExperimentDefinition(KEY, "control", start=start)
    r = evaluate_experiment(con, d, [M["p95_e2e_latency"], M["llm_ttft"]], method=method)
    for name in ("p95_e2e_latency", "llm_ttft"):
        res = r.result(name, "treatment")
        assert res.absolute.computable, res.absolute.reason
        assert res.absolute.ci_low < 0 < res.absolute.ci_high
        assert not res.absolute.significant
        assert "not enough evidence" in res.verdict
    overall = verdict(r, ["p95_e2e_latency", "llm_ttft"])
    assert "No detectable difference between treatment and control" in overall
    assert "improved" not in overall and "made worse" not in overall


def test_bayesian_chance_to_beat_control_for_the_planted_lift(warehouse):
    con, start = warehouse
    d = ExperimentDefinition(KEY, "control", start=start)
    res = evaluate_experiment(con, d, [M["resolved_rate"]], "bayesian").result("resolved_rate")
    assert res.absolute.chance_to_beat_control > 0.975
    assert res.absolute.risk_treatment < res.absolute.risk_control


def test_sufficient_statistics_match_pandas(warehouse):
    con, start = warehouse
    calls = con.execute("SELECT * FROM calls").df()
    exp = con.execute("SELECT unit_id, variant FROM experiment_exposures").df()
    df = calls.drop(columns="variant").merge(exp, left_on="call_id", right_on="unit_id")
    d = ExperimentDefinition(KEY, "control", start=start, cuped=False, correction="none")
    r = evaluate_experiment(
        con, d, [M["resolved_rate"], M["interruptions_per_turn"], M["csat"]], include_daily=False
    )
    fb = con.execute("SELECT call_id, rating FROM feedback").df()
    for arm in ("control", "treatment"):
        g = df[df.variant == arm]
        res = r.result("resolved_rate", arm if arm != "control" else "treatment")
        stat = res.control if arm == "control" else res.treatment
        assert stat.n == len(g)
        assert stat.sum == (g.outcome == "resolved").sum()
        ratio = (
            r.result("interruptions_per_turn").control
            if arm == "control"
            else (r.result("interruptions_per_turn").treatment)
        )
        assert ratio.numerator_sum == g.interruptions.sum()
        assert ratio.denominator_sum == g.turns.sum()
        assert ratio.cross_sum == (g.interruptions * g.turns).sum()
        csat = r.result("csat").control if arm == "control" else r.result("csat").treatment
        ratings = fb.merge(g[["call_id"]], on="call_id")
        # Every exposed call is a unit, rated or not (delta method over randomisation units).
        assert csat.n == len(g)
        assert csat.mean == pytest.approx(ratings.rating.mean())


def test_cuped_covariate_is_the_callers_pre_period_mean(warehouse):
    con, start = warehouse
    calls = con.execute("SELECT call_id, caller_id, started_at, outcome FROM calls").df()
    calls["y"] = (calls.outcome == "resolved").astype(float)
    pre = calls[(calls.started_at < start) & (calls.started_at >= start - dt.timedelta(days=30))]
    pre_mean = pre.groupby("caller_id").y.mean()
    exp = con.execute("SELECT unit_id AS call_id, variant FROM experiment_exposures").df()
    units = exp.merge(calls, on="call_id")
    units["x"] = units.caller_id.map(pre_mean)
    units["x"] = units.x.fillna(units.x.mean())
    d = ExperimentDefinition(KEY, "control", start=start, cuped=True)
    res = evaluate_experiment(con, d, [M["resolved_rate"]]).result("resolved_rate")
    treated = units[units.variant == "treatment"]
    assert res.treatment.pre.sum == pytest.approx(treated.x.sum())
    assert res.treatment.cross_sum == pytest.approx((treated.x * treated.y).sum())


def test_daily_series_is_cumulative_and_ends_at_the_total(warehouse):
    con, start = warehouse
    d = ExperimentDefinition(KEY, "control", start=start, correction="none", cuped=False)
    series = experiment_over_time(con, d, M["resolved_rate"], method="sequential")["treatment"]
    assert len(series) == 20
    units = [p.treatment_units for p in series]
    assert units == sorted(units)
    final = evaluate_experiment(con, d, [M["resolved_rate"]], "sequential").result("resolved_rate")
    assert series[-1].result.effect == pytest.approx(final.absolute.effect)
    assert series[-1].result.ci_low == pytest.approx(final.absolute.ci_low)


def test_three_arms_each_compared_with_control(warehouse):
    con, start = warehouse
    con.execute(
        "INSERT INTO experiment_exposures SELECT 'voices', call_id, 'call', "
        "['control', 'alloy', 'echo'][1 + CAST(hash(call_id || 'v') % 3 AS INTEGER)], started_at "
        "FROM calls WHERE started_at >= ?",
        [start],
    )
    d = ExperimentDefinition("voices", "control", correction="holm")
    r = evaluate_experiment(con, d, [M["handle_time"], M["csat"]])
    assert r.treatments == ("alloy", "echo")
    assert len(r.results) == 4
    assert not r.srm.flagged
    assert all(x.absolute.correction == "holm" for x in r.results)
    con.execute("DELETE FROM experiment_exposures WHERE experiment_key = 'voices'")


def test_caller_randomised_experiment_uses_callers_as_units(warehouse):
    con, start = warehouse
    con.execute(
        "INSERT INTO experiment_exposures SELECT 'greeting', caller_id, 'caller', "
        "CASE WHEN hash(caller_id || 'g') % 2 = 0 THEN 'control' ELSE 'short' END, min(started_at) "
        "FROM calls WHERE started_at >= ? GROUP BY caller_id",
        [start],
    )
    d = ExperimentDefinition("greeting", "control", unit_type="caller")
    r = evaluate_experiment(con, d, [M["resolved_rate"]])
    res = r.result("resolved_rate", "short")
    callers = con.execute(
        "SELECT count(*) FROM experiment_exposures WHERE experiment_key = 'greeting'"
    ).fetchone()[0]
    assert res.control.n + res.treatment.n == callers
    # calls per caller: delta method (with CUPED, on the caller's pre-period sums too)
    assert type(res.control).__name__ == "RegressionAdjustedRatio"
    assert type(res.control.post).__name__ == "Ratio"
    assert not res.absolute.significant
    con.execute("DELETE FROM experiment_exposures WHERE experiment_key = 'greeting'")


def test_srm_is_flagged_and_stated_first(warehouse):
    con, start = warehouse
    con.execute(
        "INSERT INTO experiment_exposures SELECT 'leaky', unit_id, unit_type, variant, exposed_at "
        "FROM experiment_exposures WHERE experiment_key = ? "
        "AND NOT (variant = 'treatment' AND hash(unit_id) % 10 = 0)",
        [KEY],
    )
    r = evaluate_experiment(con, ExperimentDefinition("leaky", "control"), [M["resolved_rate"]])
    assert r.srm.flagged and verdict(r, ["resolved_rate"]).startswith("Sample ratio mismatch")
    con.execute("DELETE FROM experiment_exposures WHERE experiment_key = 'leaky'")


def test_problems_are_reported_not_raised(warehouse):
    con, start = warehouse
    missing = evaluate_experiment(con, ExperimentDefinition("nope", "control"), [M["csat"]])
    assert not missing.computable and "control" in missing.reason
    bad_method = evaluate_experiment(con, ExperimentDefinition(KEY, "control"), [], "magic")
    assert not bad_method.computable and "method" in bad_method.reason
    broken = metric_from_config(
        {"name": "broken", "sql": "SELECT call_id, ts, nope AS value FROM calls",
         "type": "mean", "level": "call"}
    )  # fmt: skip
    r = evaluate_experiment(con, ExperimentDefinition(KEY, "control"), [broken, M["csat"]])
    assert r.computable
    assert not r.result("broken").absolute.computable
    assert "SQL failed" in r.result("broken").absolute.reason
    assert r.result("csat").absolute.computable


def test_empty_treatment_arm_is_not_computable(warehouse):
    con, start = warehouse
    d = ExperimentDefinition(KEY, "control", treatments=("ghost",))
    r = evaluate_experiment(con, d, [M["resolved_rate"]])
    res = r.result("resolved_rate", "ghost")
    assert not res.absolute.computable and not res.absolute.significant
    assert np.isnan(res.absolute.p_value)


def test_traffic_to_a_variant_outside_the_definition_is_an_srm(warehouse):
    con, start = warehouse
    con.execute(
        "INSERT INTO experiment_exposures SELECT 'stray', unit_id, unit_type, "
        "CASE WHEN hash(unit_id) % 50 = 0 THEN 'old-prompt' ELSE variant END, exposed_at "
        "FROM experiment_exposures WHERE experiment_key = ?",
        [KEY],
    )
    definition = ExperimentDefinition("stray", "control", ("treatment",))
    r = evaluate_experiment(con, definition, [M["resolved_rate"]])
    assert r.srm.flagged and "old-prompt" in r.srm.message
    assert set(r.units) == {"control", "treatment"}  # the stray units are not analysed
    con.execute("DELETE FROM experiment_exposures WHERE experiment_key = 'stray'")


@pytest.mark.parametrize("late", [3, 30])
def test_exposure_recorded_after_the_call_started_still_counts_the_whole_call(late):
    # Agents often assign a variant a little after the call starts, and imported exposures
    # can come much later: every turn, request and feedback row of the call still counts.
    con = duckdb.connect()
    create_schema(con)
    start = build_synthetic_warehouse(con, calls=6_000, days=10, pre_days=5)
    names = ("resolved_rate", "csat", "interruptions_per_turn", "p95_e2e_latency")
    d = ExperimentDefinition(KEY, "control", start=start)

    def totals():
        r = evaluate_experiment(con, d, [M[n] for n in names], include_daily=False)
        return {
            (x.metric, side): (s.n, s.mean, s.variance)
            for x in r.results
            for side, s in (("control", x.control), ("treatment", x.treatment))
        }

    before = totals()
    con.execute("UPDATE experiment_exposures SET exposed_at = exposed_at + to_hours(?)", [late])
    after = totals()
    assert after.keys() == before.keys()
    for k in before:
        assert after[k] == pytest.approx(before[k], rel=1e-9), k


def test_an_arm_without_exposures_does_not_shift_the_others_percentiles(warehouse):
    con, start = warehouse
    metric = [M["p95_e2e_latency"]]
    plain = evaluate_experiment(con, ExperimentDefinition(KEY, "control", ("treatment",)), metric)
    ghost = evaluate_experiment(
        con, ExperimentDefinition(KEY, "control", ("ghost", "treatment")), metric
    )
    assert ghost.result("p95_e2e_latency", "treatment").treatment == (
        plain.result("p95_e2e_latency", "treatment").treatment
    )
    assert not ghost.result("p95_e2e_latency", "ghost").absolute.computable


def test_a_proper_prior_shrinks_the_lift_and_the_absolute_effect_the_verdict_reads(warehouse):
    from scipy.stats import norm

    from analysis.stats import NormalPrior

    con, start = warehouse
    prior = NormalPrior(0.0, 0.05**2, proper=True)  # strong: sd 5 % on the lift
    flat = evaluate_experiment(con, ExperimentDefinition(KEY, "control", start=start, cuped=False),
                               [M["resolved_rate"]], "bayesian")  # fmt: skip
    shrunk = evaluate_experiment(
        con, ExperimentDefinition(KEY, "control", start=start, cuped=False, prior=prior),
        [M["resolved_rate"]], "bayesian",
    )  # fmt: skip
    a, b = flat.result("resolved_rate"), shrunk.result("resolved_rate")
    # Issue 17: the prior reaches the absolute comparison (which gives direction and verdict),
    # rescaled by the control mean as gbstats does: prior N(0, v·ȳA²) on the difference.
    d, sd = a.absolute.effect, a.absolute.se
    v_abs = prior.variance * a.absolute.control_mean**2
    assert b.absolute.effect == pytest.approx(d / sd**2 / (1 / sd**2 + 1 / v_abs))
    assert b.absolute.se == pytest.approx((1 / sd**2 + 1 / v_abs) ** -0.5)
    # Normal-normal update on the lift: the flat posterior N(m, s²) times the prior N(0, v)
    # has mean m·(1/s²) / (1/s² + 1/v).
    m = a.relative.effect
    s = (a.relative.ci_high - a.relative.ci_low) / (2 * norm.ppf(0.975))
    assert b.relative.effect == pytest.approx(m / s**2 / (1 / s**2 + 1 / prior.variance))
    assert abs(b.relative.effect) < abs(a.relative.effect)
