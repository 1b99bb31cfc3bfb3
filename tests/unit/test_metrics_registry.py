"""The metric registry: built-ins run on the warehouse schema, user metrics are validated."""

import duckdb
import pytest

from analysis.metrics import MetricConfigError, builtin_metrics, metric_from_config, metric_registry
from bench.bench_experiment import create_schema

GOOD = {
    "name": "transfer_rate",
    "sql": "SELECT call_id, started_at AS ts, CASE WHEN outcome = 'escalated' THEN 1 ELSE 0 END "
    "AS value FROM calls",
    "type": "proportion",
    "level": "call",
    "lower_is_better": True,
    "unit": "%",
}


def test_builtins_cover_the_voice_agent_metrics():
    m = builtin_metrics()
    for name in (
        "resolved_rate", "escalated_rate", "abandoned_rate", "thumbs_down_rate", "handle_time",
        "turns_per_call", "csat", "interruptions_per_turn", "errors_per_request",
        "p50_e2e_latency", "p95_e2e_latency", "p99_e2e_latency", "llm_ttft",
    ):  # fmt: skip
        assert name in m
    assert m["interruptions_per_turn"].type == "ratio"
    assert m["p95_e2e_latency"].quantile == 0.95
    assert m["handle_time"].lower_is_better and not m["csat"].lower_is_better


def test_every_builtin_query_runs_and_returns_its_contract_columns():
    con = duckdb.connect()
    create_schema(con)
    for metric in builtin_metrics().values():
        cols = [d[0] for d in con.execute(metric.sql).description]
        assert {"call_id", "ts", *metric.value_columns} <= set(cols), metric.name


def test_user_metric_is_added_and_can_replace_a_builtin():
    reg = metric_registry([GOOD, {**GOOD, "name": "csat", "type": "mean"}])
    assert reg["transfer_rate"].lower_is_better
    assert reg["csat"].sql == GOOD["sql"]


@pytest.mark.parametrize(
    "change,key",
    [
        ({"colour": "red"}, "colour"),
        ({"type": "median"}, "type"),
        ({"level": "session"}, "level"),
        ({"sql": "DROP TABLE calls"}, "sql"),
        ({"sql": "SELECT 1; DROP TABLE calls"}, "sql"),
        ({"name": "Bad Name"}, "name"),
        ({"lower_is_better": "yes"}, "lower_is_better"),
        ({"type": "quantile"}, "quantile"),
        ({"type": "quantile", "quantile": 95}, "quantile"),
        ({"quantile": 0.5}, "quantile"),
    ],
)
def test_bad_user_metric_names_the_key_to_fix(change, key):
    with pytest.raises(MetricConfigError, match=repr(key)):
        metric_from_config({**GOOD, **change})


def test_missing_required_key_is_named():
    config = dict(GOOD)
    del config["level"]
    with pytest.raises(MetricConfigError, match="'level' is required"):
        metric_from_config(config)
