"""Registry metrics read from `calls` share one statement (and the quantile groups on an
integer unit key); user SQL runs one statement per metric. Both must give the same numbers,
also when unit ids repeat (duplicate exposures or calls), where the shared path steps aside."""

import dataclasses
import math

import duckdb
import pytest

from analysis.experiments import ExperimentDefinition, evaluate_experiment
from analysis.metrics import builtin_metrics
from bench.bench_experiment import build_synthetic_warehouse, create_schema

KEY = "exp-prompt-v2"
NAMES = ("resolved_rate", "handle_time", "csat", "interruptions_per_turn", "p95_e2e_latency")


def _as_user_sql(metric):
    # Same facts, different text: the engine cannot recognise it as registry SQL.
    return dataclasses.replace(metric, sql=f"SELECT * FROM ({metric.sql}) AS user_facts")


def _numbers(result):
    out = {}
    for r in result.results:
        for side, stat in (("c", r.control), ("t", r.treatment)):
            for f in dataclasses.fields(stat):
                v = getattr(stat, f.name)
                if dataclasses.is_dataclass(v):
                    for g in dataclasses.fields(v):
                        out[(r.metric, side, f.name, g.name)] = getattr(v, g.name)
                else:
                    out[(r.metric, side, f.name)] = v
        out[(r.metric, "p")] = r.absolute.p_value
    return out


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, float) and math.isnan(x):
            assert isinstance(y, float) and math.isnan(y), k
        else:
            assert x == pytest.approx(y, rel=1e-9, abs=1e-12), k


@pytest.fixture(scope="module")
def warehouse():
    con = duckdb.connect()
    create_schema(con)
    start = build_synthetic_warehouse(con, calls=12_000, days=20, pre_days=10)
    return con, start


@pytest.mark.parametrize("cuped", [True, False])
def test_registry_and_user_sql_give_the_same_statistics(warehouse, cuped):
    con, start = warehouse
    registry = [builtin_metrics()[n] for n in NAMES]
    d = ExperimentDefinition(KEY, "control", start=start, cuped=cuped)
    shared = evaluate_experiment(con, d, registry, "sequential")
    alone = evaluate_experiment(con, d, [_as_user_sql(m) for m in registry], "sequential")
    assert shared.computable and alone.computable
    _assert_same(_numbers(shared), _numbers(alone))


def test_repeated_unit_ids_give_the_same_statistics_either_way():
    con = duckdb.connect()
    create_schema(con)
    start = build_synthetic_warehouse(con, calls=6_000, days=20, pre_days=10)
    # A call logged twice and a unit exposed twice: units are no longer one row per id.
    con.execute("INSERT INTO calls SELECT * FROM calls WHERE call_id IN ('c5000', 'c5001')")
    con.execute(
        "INSERT INTO experiment_exposures SELECT * FROM experiment_exposures "
        "WHERE unit_id IN ('c5002', 'c5003')"
    )
    registry = [builtin_metrics()[n] for n in NAMES]
    d = ExperimentDefinition(KEY, "control", start=start)
    shared = evaluate_experiment(con, d, registry, "fixed")
    alone = evaluate_experiment(con, d, [_as_user_sql(m) for m in registry], "fixed")
    _assert_same(_numbers(shared), _numbers(alone))


@pytest.mark.parametrize("cuped", [True, False])
def test_missing_values_and_missing_history_give_the_same_statistics_either_way(cuped):
    # Some calls lack an outcome or a duration (units with a pre-period but no value), some
    # callers lack history (a value but no pre-period), and a repeated pre-period call row.
    con = duckdb.connect()
    create_schema(con)
    start = build_synthetic_warehouse(con, calls=8_000, days=20, pre_days=10)
    con.execute("UPDATE calls SET outcome = NULL WHERE hash(call_id) % 7 = 0")
    con.execute("UPDATE calls SET duration_s = NULL WHERE hash(call_id) % 11 = 0")
    con.execute("INSERT INTO calls SELECT * FROM calls WHERE started_at < ? LIMIT 3", [start])
    ratio_first = sorted(NAMES, key=lambda n: n != "interruptions_per_turn")
    registry = [builtin_metrics()[n] for n in ratio_first]
    d = ExperimentDefinition(KEY, "control", start=start, cuped=cuped)
    shared = evaluate_experiment(con, d, registry, "fixed")
    alone = evaluate_experiment(con, d, [_as_user_sql(m) for m in registry], "fixed")
    assert shared.computable and alone.computable
    _assert_same(_numbers(shared), _numbers(alone))
