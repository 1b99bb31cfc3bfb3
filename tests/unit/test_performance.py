"""Slow requests and DB statement grouping over raw rows; slow-turn attribution from its
hourly rollup, checked against the raw turns."""

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
from analysis.sketch import sketch_values
from analysis.vocabulary import PIPELINE_STAGES
from tests.rollup_tables import build_rollups

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
    build_rollups(con, "voice_turns")
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
    build_rollups(con, "voice_turns")
    assert slow_turn_attribution(con, T0, T1).reason
    assert db_query_stats(con, T0, T1).reason


def _attribution_by_hand(turns: pd.DataFrame, start, end, release=None) -> pd.DataFrame:
    """The attribution's definition on raw turns with pandas and numpy: references per UTC day
    over all turns with an e2e; counts over the turns in [start, end) (of `release`)."""
    t = turns[turns["e2e_ms"].notna()].copy()
    t["day"] = t["started_at"].dt.floor("D")
    parts = []
    for _, d in t.groupby("day"):
        d = d.copy()
        d["slow"] = d["e2e_ms"] > np.percentile(d["e2e_ms"], 90)
        d["threshold"] = np.percentile(d["e2e_ms"], 90)
        vals = d[list(PIPELINE_STAGES)].to_numpy(float)
        over = vals > np.nanpercentile(vals, 90, axis=0)
        med = np.nanmedian(vals, axis=0)
        ratio = np.nan_to_num(vals / np.where(med > 0, med, np.nan), nan=-np.inf)
        for k, stage in enumerate(PIPELINE_STAGES):
            d[f"over_{stage}"] = over[:, k]
        d["dominant"] = np.array(PIPELINE_STAGES)[np.argmax(ratio, axis=1)]
        parts.append(d)
    t = pd.concat(parts)
    t = t[(t["started_at"] >= start) & (t["started_at"] < end)]
    if release is not None:
        t = t[t["release"] == release]
    slow = t[t["slow"]]
    rows = [
        [
            stage,
            slow[f"over_{stage}"].mean(),
            t[f"over_{stage}"].mean(),
            (slow.dominant == stage).mean(),
        ]
        for stage in PIPELINE_STAGES
    ]
    out = pd.DataFrame(
        rows, columns=["stage", "share_over_own_p90", "baseline_share", "share_dominant"]
    )
    return out.set_index("stage").assign(
        turns=len(t), slow=len(slow), threshold=t["threshold"].mean()
    )


@pytest.mark.parametrize("release", [None, "v2"])
def test_attribution_from_the_rollup_equals_the_raw_turns(con, release):
    rng = np.random.default_rng(12)
    n = 6000
    at = T0 + pd.to_timedelta(np.sort(rng.uniform(0, 3 * 86400, n)), unit="s")
    stages = {
        "eou_delay_ms": rng.lognormal(np.log(320), 0.35, n),
        "stt_ms": np.where(rng.random(n) < 0.1, np.nan, rng.lognormal(np.log(260), 0.45, n)),
        "llm_ttft_ms": rng.lognormal(np.log(430), 0.55, n),
        "tts_ttfb_ms": rng.lognormal(np.log(170), 0.4, n),
    }
    # day 2 has a slow LLM for three hours: an incident the day's references make stand out
    incident = (at >= T0 + timedelta(days=1, hours=9)) & (at < T0 + timedelta(days=1, hours=12))
    stages["llm_ttft_ms"] = np.where(incident, 3 * stages["llm_ttft_ms"], stages["llm_ttft_ms"])
    e2e = stages["eou_delay_ms"] + stages["llm_ttft_ms"] + stages["tts_ttfb_ms"] + 40
    df = pd.DataFrame(
        {
            "turn_id": [f"t{i}" for i in range(n)],
            "call_id": [f"c{i // 8}" for i in range(n)],
            "started_at": at,
            **stages,
            "e2e_ms": np.where(rng.random(n) < 0.05, np.nan, e2e),
            "release": rng.choice(["v1", "v2"], n),
        }
    )
    _insert(con, "voice_turns", df)
    build_rollups(con, "voice_turns")
    start, end = T0 + timedelta(hours=7), T0 + timedelta(days=2, hours=20)
    res = slow_turn_attribution(con, start, end, release=release)
    expected = _attribution_by_hand(df, start, end, release)
    got = res.frame.set_index("stage")
    assert (res.turns, res.slow_turns) == (expected["turns"].iloc[0], expected["slow"].iloc[0])
    assert res.threshold_ms == pytest.approx(expected["threshold"].iloc[0], rel=1e-9)
    for column in ("share_over_own_p90", "baseline_share", "share_dominant"):
        assert np.allclose(got[column], expected[column], rtol=1e-12), column
    assert got["share_dominant"].idxmax() == "llm_ttft_ms"
    # each stage's p90 over the window from the histograms, within the sketch's error
    window = df[(df.started_at >= start) & (df.started_at < end)]
    if release is not None:
        window = window[window.release == release]
    for stage in PIPELINE_STAGES:
        exact = np.nanpercentile(window[stage], 90)
        assert got.loc[stage, "p90_ms"] == pytest.approx(exact, rel=0.02)
        # and equal to the sketch of those values (the same buckets, merged over hours)
        assert got.loc[stage, "p90_ms"] == pytest.approx(
            sketch_values(window[stage], [0.9]).values[0.9]
        )
