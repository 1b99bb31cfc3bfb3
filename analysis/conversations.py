"""Conversations: call outcomes and interruptions per hour from the rollups, and the
drill-downs into the latest calls and one call's turns (raw rows, bounded)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from analysis.vocabulary import OUTCOMES


def outcomes_hourly(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pd.DataFrame:
    """Per hour: calls and the count of each outcome (one column per outcome)."""
    df = con.execute(
        "SELECT hour, coalesce(outcome, 'unknown') AS outcome, sum(n) AS n FROM calls_hourly "
        "WHERE hour >= ? AND hour < ? GROUP BY ALL",
        [start, end],
    ).df()
    if df.empty:
        return pd.DataFrame(columns=["hour", "calls", *OUTCOMES])
    wide = df.pivot_table(index="hour", columns="outcome", values="n", aggfunc="sum", fill_value=0)
    wide = wide.reindex(columns=list(OUTCOMES), fill_value=0)
    wide.insert(0, "calls", df.groupby("hour")["n"].sum())
    return wide.reset_index().rename_axis(columns=None)


def turns_hourly(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pd.DataFrame:
    """Per hour: turns, interrupted turns and the interrupted share in %."""
    return con.execute(
        "SELECT hour, sum(n) AS turns, sum(n_interrupted) AS interrupted, "
        "100.0 * sum(n_interrupted) / nullif(sum(n), 0) AS interrupted_pct "
        "FROM turns_hourly WHERE hour >= ? AND hour < ? GROUP BY hour ORDER BY hour",
        [start, end],
    ).df()


def recent_calls(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    outcome: str | None = None,
    limit: int = 200,
) -> pd.DataFrame:
    """The latest calls in the window (optionally of one outcome), newest first."""
    return con.execute(
        """
        SELECT call_id, started_at, duration_s, outcome, turns, interruptions, release,
               variant, region, network
        FROM calls
        WHERE started_at >= ? AND started_at < ? AND (? IS NULL OR outcome = ?)
        ORDER BY started_at DESC LIMIT ?
        """,
        [start, end, outcome, outcome, int(limit)],
    ).df()


def call_turns(con: duckdb.DuckDBPyConnection, call_id: str) -> pd.DataFrame:
    """Every turn of one call in order, with its latency parts (overlapping: never summed)."""
    return con.execute(
        """
        SELECT turn_index, started_at, eou_delay_ms, stt_ms, llm_ttft_ms, tts_ttfb_ms, e2e_ms,
               interrupted, llm_prompt_tokens, llm_completion_tokens, tts_characters, release
        FROM voice_turns WHERE call_id = ? ORDER BY turn_index, started_at
        """,
        [call_id],
    ).df()
