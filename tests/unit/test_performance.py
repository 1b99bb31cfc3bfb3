"""Slow requests, DB statement grouping and slow-turn attribution over raw rows."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from analysis.performance import (
    db_query_stats,
    normalise_sql,
    slow_requests,
    slow_turn_attribution,
)

MIGRATION = Path(__file__).resolve().parents[2] / "collectors" / "migrations" / "0001_initial.sql"
T0 = datetime(2025, 2, 1)
T1 = T0 + timedelta(days=1)


@pytest.fixture()
def con():
    c = duckdb.connect()
    c.execute(MIGRATION.read_text())
    yield c
    c.close()


def _insert(con, table: str, df: pd.DataFrame) -> None:
    con.register("tmp_df", df)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM tmp_df")
    con.unregister("tmp_df")


@pytest.fixture()
def requests_df(con):
    rng = np.random.default_rng(0)
    n = 3000
    df = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "started_at": [T0 + timedelta(seconds=int(s)) for s in rng.integers(0, 86000, n)],
            "route": rng.choice(["/v1/turn", "/health"], n),
            "method": rng.choice(["GET", "POST"], n),
            "status_code": rng.choice([200, 500], n, p=[0.97, 0.03]),
            "duration_ms": rng.lognormal(5, 0.9, n),
        }
    )
    _insert(con, "requests", df)
    return df


def test_slow_requests_are_exactly_those_over_threshold(con, requests_df):
    res = slow_requests(con, T0, T1, threshold_ms=800, limit=10_000)
    assert len(res.frame) == (requests_df.duration_ms > 800).sum()
    assert res.frame["duration_ms"].is_monotonic_decreasing
    assert slow_requests(con, T0, T1, threshold_ms=1e12).reason


def test_sql_normalisation_groups_literals_numbers_and_in_lists():
    a = normalise_sql("SELECT * FROM calls WHERE id = 42 AND name = 'bob' AND x IN (1, 2, 3)")
    b = normalise_sql("select * from calls where id = 7 and name = 'O''Neil' and x in (9)")
    assert a.lower() == b.lower()
    assert a == "SELECT * FROM calls WHERE id = ? AND name = ? AND x IN (...)"
    assert normalise_sql("INSERT INTO t VALUES (1, 'a'), (2, 'b')") == "INSERT INTO t VALUES (...)"
    assert normalise_sql("SELECT col2 FROM t3 WHERE v = $1") == "SELECT col2 FROM t3 WHERE v = ?"


def test_db_stats_combine_single_queries_and_statement_deltas(con):
    df = pd.DataFrame(
        {
            "query_id": ["q1", "q2", "q3", "q4"],
            "observed_at": [T0 + timedelta(minutes=i) for i in range(4)],
            "statement": [
                "SELECT * FROM calls WHERE id = 1",
                "SELECT * FROM calls WHERE id = 2",
                "SELECT * FROM calls WHERE id = $1",
                "UPDATE calls SET outcome = 'x' WHERE id = 5",
            ],
            "calls": [1, 1, 100, 1],
            "total_ms": [10.0, 30.0, 500.0, 4.0],
            "mean_ms": [10.0, 30.0, 5.0, 4.0],
            "rows": [1, 1, 100, 1],
        }
    )
    _insert(con, "db_queries", df)
    res = db_query_stats(con, T0, T1).frame
    sel = res[res.statement.str.startswith("SELECT")].iloc[0]
    assert len(res) == 2
    assert sel["calls"] == 102 and sel["total_ms"] == 540.0
    assert sel["mean_ms"] == pytest.approx(540 / 102)
    assert res["share_of_time"].sum() == pytest.approx(1.0)


def _turns(con, n=4000, seed=4):
    rng = np.random.default_rng(seed)
    eou = rng.lognormal(np.log(320), 0.35, n)
    stt = rng.lognormal(np.log(260), 0.45, n)
    llm = rng.lognormal(np.log(430), 0.55, n)
    tts = rng.lognormal(np.log(170), 0.4, n)
    e2e = eou + np.maximum(0, stt - eou) + llm + tts + 45
    df = pd.DataFrame(
        {
            "turn_id": [f"t{i}" for i in range(n)],
            "call_id": [f"c{i // 8}" for i in range(n)],
            "started_at": [T0 + timedelta(seconds=20 * i) for i in range(n)],
            "eou_delay_ms": eou,
            "stt_ms": stt,
            "llm_ttft_ms": llm,
            "tts_ttfb_ms": tts,
            "e2e_ms": e2e,
            "release": np.where(np.arange(n) < n // 2, "v1", "v2"),
        }
    )
    _insert(con, "voice_turns", df)
    return df


def test_slow_turns_are_attributed_to_the_high_variance_llm_stage(con):
    df = _turns(con)
    res = slow_turn_attribution(con, T0, T0 + timedelta(days=2))
    f = res.frame.set_index("stage")
    # independent computation of the first definition with pandas
    slow = df.e2e_ms > np.percentile(df.e2e_ms, 90)
    llm_over = df.llm_ttft_ms > np.percentile(df.llm_ttft_ms, 90)
    assert f.loc["llm_ttft_ms", "share_over_own_p90"] == pytest.approx(llm_over[slow].mean())
    assert f["share_dominant"].sum() == pytest.approx(1.0)
    assert f["share_dominant"].idxmax() == "llm_ttft_ms"
    assert f["lift"].idxmax() == "llm_ttft_ms" and f.loc["llm_ttft_ms", "lift"] > 3


def test_voice_empty_and_tiny_windows_give_reasons(con):
    assert slow_turn_attribution(con, T0, T1).reason
    assert db_query_stats(con, T0, T1).reason
