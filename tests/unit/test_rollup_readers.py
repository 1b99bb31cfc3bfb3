"""What the pages read from the hourly rollups (latency percentiles, hourly series, deploy
marks, error occurrences, outcomes, a call's turns) on a small synthetic warehouse with its
rollups built as the publisher does."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from analysis.conversations import call_turns, outcomes_hourly
from analysis.deployments import deployment_marks
from analysis.errors import error_groups, error_occurrences, errors_hourly
from analysis.latency import (
    route_percentiles,
    stage_distributions,
    stage_percentiles,
    stage_quantile_hourly,
)
from analysis.metrics import hourly_values
from analysis.vocabulary import OUTCOMES, STAGES
from collectors.rollups import ROLLUPS
from collectors.warehouse import migrate

T0 = datetime(2025, 3, 3)  # a Monday, 00:00 UTC


def _insert(con, table: str, frame: pd.DataFrame) -> None:
    con.register("frame", frame)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM frame")
    con.unregister("frame")


def _build_rollups(con) -> None:
    for rollup in ROLLUPS:
        con.execute(f"CREATE OR REPLACE TEMP TABLE src AS SELECT * FROM {rollup.source}")
        con.execute(f"CREATE TABLE {rollup.name} AS {rollup.select}")
        con.execute("DROP TABLE src")


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(3)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    migrate(con)
    # requests: 48 hours; /slow is lognormal around 400 ms, /fast around 20 ms; hour 30 empty
    n = 20_000
    t = T0 + pd.to_timedelta(rng.uniform(0, 48 * 3600, n), unit="s")
    keep = ~((t >= T0 + timedelta(hours=30)) & (t < T0 + timedelta(hours=31)))
    route = np.where(rng.random(n) < 0.5, "/slow", "/fast")
    dur = np.where(route == "/slow", 400.0, 20.0) * np.exp(0.5 * rng.standard_normal(n))
    status = np.where(rng.random(n) < 0.02, 500, 200)
    requests = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "started_at": t,
            "route": route,
            "method": "GET",
            "status_code": status,
            "duration_ms": dur,
            "release": "v1",
        }
    )[keep]
    _insert(con, "requests", requests)
    # voice turns: stages overlap; e2e is not their sum
    m = 5_000
    tt = T0 + pd.to_timedelta(rng.uniform(0, 48 * 3600, m), unit="s")
    stages = {
        "eou_delay_ms": 300 * np.exp(0.3 * rng.standard_normal(m)),
        "stt_ms": 250 * np.exp(0.4 * rng.standard_normal(m)),
        "llm_ttft_ms": 450 * np.exp(0.5 * rng.standard_normal(m)),
        "tts_ttfb_ms": 170 * np.exp(0.4 * rng.standard_normal(m)),
    }
    stages["e2e_ms"] = stages["eou_delay_ms"] + stages["llm_ttft_ms"] + stages["tts_ttfb_ms"]
    turns = pd.DataFrame(
        {
            "turn_id": [f"t{i}" for i in range(m)],
            "call_id": [f"c{i // 5}" for i in range(m)],
            "turn_index": np.arange(m) % 5,
            "started_at": tt,
            **stages,
            "interrupted": rng.random(m) < 0.1,
            "release": "v1",
        }
    )
    _insert(con, "voice_turns", turns)
    calls = pd.DataFrame(
        {
            "call_id": [f"c{i}" for i in range(1000)],
            "started_at": T0 + pd.to_timedelta(np.arange(1000) * 150, unit="s"),
            "outcome": np.array(["resolved", "escalated", "abandoned", "failed"])[
                np.arange(1000) % 4
            ],
            "release": "v1",
        }
    )
    _insert(con, "calls", calls)
    deployments = pd.DataFrame(
        {
            "deployment_id": ["d1", "d2"],
            "created_at": [T0 + timedelta(hours=14, minutes=5), T0 + timedelta(hours=20)],
            "release": ["v2", "v3"],
            "status": ["SUCCESS", "FAILED"],
        }
    )
    _insert(con, "deployments", deployments)
    trace = 'Traceback:\n  File "/app/agent/tools.py", line 10, in book\n    x()\n'
    errors = pd.DataFrame(
        {
            "error_id": [f"e{i}" for i in range(6)],
            "occurred_at": [T0 + timedelta(hours=h) for h in (1, 2, 3, 4, 5, 6)],
            "error_type": ["ValueError"] * 4 + ["KeyError"] * 2,
            "message": ["bad id 17", "bad id 18", "other 1", "other 2", "k", "k"],
            "stack_trace": [trace, trace, None, None, None, None],
            "sample_rate": [0.5] * 6,
        }
    )
    _insert(con, "errors", errors)
    _build_rollups(con)
    yield con, requests, turns
    con.close()


def test_route_percentiles_are_within_the_sketch_error_of_exact_quantiles(world):
    con, requests, _ = world
    out = route_percentiles(con, T0, T0 + timedelta(days=2)).set_index("route")
    assert list(out.index) == ["/slow", "/fast"]  # slowest p95 first
    for route, g in requests.groupby("route"):
        for q, col in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
            exact = np.quantile(g["duration_ms"], q)
            # DDSketch with alpha = 1 %: relative error 1 %, plus one rank of discreteness
            assert out.loc[route, col] == pytest.approx(exact, rel=0.03)
        assert out.loc[route, "requests"] == len(g)
        expected_5xx = 100 * (g["status_code"] >= 500).mean()
        assert out.loc[route, "error_5xx_pct"] == pytest.approx(expected_5xx)


def test_stage_percentiles_list_stages_in_pipeline_order_with_e2e_last(world):
    con, _, turns = world
    out = stage_percentiles(con, T0, T0 + timedelta(days=2))
    assert list(out["stage"]) == list(STAGES)
    for row in out.itertuples():
        assert row.p95_ms == pytest.approx(np.quantile(turns[row.stage], 0.95), rel=0.03)
        assert row.turns == len(turns)
    dist = stage_distributions(con, T0, T0 + timedelta(days=2))
    assert dist.groupby("stage")["share"].sum().to_numpy() == pytest.approx(np.ones(5))


def test_stage_quantile_hourly_matches_exact_per_hour_quantiles(world):
    con, _, turns = world
    wide = stage_quantile_hourly(con, T0, T0 + timedelta(days=2), q=0.5).set_index("hour")
    hour = pd.Timestamp(T0 + timedelta(hours=10))
    in_hour = turns[
        (turns["started_at"] >= hour) & (turns["started_at"] < hour + pd.Timedelta("1h"))
    ]
    assert wide.loc[hour, "llm_ttft_ms"] == pytest.approx(
        np.quantile(in_hour["llm_ttft_ms"], 0.5), rel=0.05
    )


def test_calls_series_has_zero_in_empty_hours_and_rates_are_missing(world):
    con, requests, _ = world
    calls = hourly_values(con, "calls", T0, T0 + timedelta(hours=48))
    # 47 hours: the 48th holds the latest request, so it counts as still being collected
    assert len(calls) == 47 and calls.iloc[0] == 24  # a call every 150 s
    assert calls.iloc[46] == 0  # after the last call (hour 41): zero, not missing
    rate = hourly_values(con, "error_rate", T0, T0 + timedelta(hours=48))
    assert np.isnan(rate.iloc[30])  # no requests that hour: nothing to measure
    first = requests[requests["started_at"] < T0 + timedelta(hours=1)]
    assert rate.iloc[0] == pytest.approx(100 * (first["status_code"] >= 500).mean())
    assert hourly_values(con, "nope", T0, T0 + timedelta(hours=2)).empty


def test_the_hour_still_being_collected_is_left_out(world):
    con, requests, _ = world
    last = pd.Timestamp(requests["started_at"].max()).floor("h")
    series = hourly_values(con, "calls", T0, (last + pd.Timedelta("1h")).to_pydatetime())
    assert series.index[-1] == last - pd.Timedelta("1h")


def test_deployment_marks_are_hourly_and_skip_failed_deploys(world):
    con, _, _ = world
    marks = deployment_marks(con, T0, T0 + timedelta(days=1))
    assert marks == [(T0 + timedelta(hours=14), "v2", "d1")]


def test_error_occurrences_are_the_rows_of_the_group(world):
    con, _, _ = world
    groups = error_groups(con, T0, T0 + timedelta(days=1)).frame
    by_type = groups.groupby("error_type")["fingerprint"].apply(list)
    # the traced ValueErrors form one group (frames decide), the untraced ones another
    assert len(by_type["ValueError"]) == 2
    traced = groups[(groups.error_type == "ValueError") & (groups.frames != "")].iloc[0]
    found = error_occurrences(con, T0, T0 + timedelta(days=1), traced.fingerprint, "ValueError")
    assert found.total == 2 and set(found.frame["message"]) == {"bad id 17", "bad id 18"}
    assert "tools.py" in found.stack_trace
    none = error_occurrences(con, T0, T0 + timedelta(days=1), "0" * 16, "ValueError")
    assert none.total == 0 and none.reason


def test_errors_hourly_corrects_for_sampling(world):
    con, _, _ = world
    hourly = errors_hourly(con, T0, T0 + timedelta(days=1))
    assert hourly["events"].sum() == 6 and hourly["estimated_events"].sum() == 12


def test_outcomes_hourly_has_a_column_per_outcome(world):
    con, _, _ = world
    out = outcomes_hourly(con, T0, T0 + timedelta(hours=2))
    assert list(out.columns) == ["hour", "calls", *OUTCOMES]
    assert (out["calls"] == out[list(OUTCOMES)].sum(axis=1)).all()


def test_call_turns_are_in_turn_order(world):
    con, _, _ = world
    turns = call_turns(con, "c3")
    assert list(turns["turn_index"]) == [0, 1, 2, 3, 4]
