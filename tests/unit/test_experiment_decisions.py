"""The decision a product owner reads per experiment (ship, stop, keep running) with its reason
in one sentence, on the real engine over a synthetic warehouse with a planted lift on the
primary metric and, for some tests, a planted harm on a guardrail."""

import duckdb
import pytest

from analysis.changes import ExperimentPlan, decide
from analysis.experiments import ExperimentDefinition, evaluate_experiment
from analysis.metrics import builtin_metrics
from bench.bench_experiment import build_synthetic_warehouse, create_schema

KEY = "exp-prompt-v2"
M = builtin_metrics()
PRIMARY = (M["resolved_rate"],)
GUARDRAILS = (M["abandoned_rate"],)


def _warehouse(harm: bool):
    con = duckdb.connect()
    create_schema(con)
    start = build_synthetic_warehouse(con, calls=30_000, days=20, pre_days=10, resolved_lift=0.04)
    if harm:  # a fifth of the treatment's failed and escalated calls now hang up
        con.execute(
            "UPDATE calls SET outcome = 'abandoned' WHERE outcome IN ('failed', 'escalated') "
            "AND started_at >= ? AND hash(call_id, 'harm') % 5 = 0 AND call_id IN ("
            "SELECT unit_id FROM experiment_exposures WHERE variant = 'treatment')",
            [start],
        )
    return con, start


@pytest.fixture(scope="module")
def clean():
    return _warehouse(harm=False)


@pytest.fixture(scope="module")
def harmed():
    return _warehouse(harm=True)


def _decision(warehouse, method):
    con, start = warehouse
    definition = ExperimentDefinition(KEY, "control", start=start)
    plan = ExperimentPlan(definition, PRIMARY, GUARDRAILS, method)
    result = evaluate_experiment(
        con, definition, [*PRIMARY, *GUARDRAILS], method, include_daily=False
    )
    return decide(plan)(result), result


def test_a_better_primary_with_no_harm_is_shipped(clean):
    d, result = _decision(clean, "sequential")
    assert result.result("resolved_rate").direction == "better"
    assert d.decision == "ship"
    assert d.summary == "Ship: treatment is better on Resolved rate and no guardrail is worse."


def test_a_harmed_guardrail_under_the_sequential_test_suggests_stopping_early(harmed):
    d, result = _decision(harmed, "sequential")
    assert result.result("abandoned_rate").direction == "worse"
    assert result.result("resolved_rate").direction == "better"
    assert d.decision == "stop"
    assert d.summary.startswith("Stop early: treatment is worse on the guardrail Abandoned rate")
    assert "though better on Resolved rate" in d.summary
    assert d.summary.count(".") == 1  # one sentence


def test_a_harmed_guardrail_under_a_fixed_horizon_is_weighed_at_the_planned_size(harmed):
    # a fixed-horizon test is only valid at its planned size: no early stop from a peek
    d, result = _decision(harmed, "fixed")
    assert result.result("abandoned_rate").direction == "worse"
    assert d.decision == "keep running"
    assert "weigh the trade-off" in d.summary and "decide at the planned size" in d.summary


def test_no_difference_keeps_it_running(clean):
    con, start = clean
    definition = ExperimentDefinition(KEY, "control", start=start)
    latency = (M["handle_time"],)
    plan = ExperimentPlan(definition, latency, (), "sequential")
    result = evaluate_experiment(con, definition, list(latency), "sequential", include_daily=False)
    d = decide(plan)(result)
    assert result.result("handle_time").direction == "unclear"
    assert d.decision == "keep running"
    assert d.summary == "Keep running: no detectable difference on the primary metric yet."
