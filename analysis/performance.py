"""Performance drill-downs over raw rows: slow requests, DB statements, and what makes slow
voice turns slow. Latency percentiles per route and stage are read from the hourly histograms
(analysis.latency); host resources are analysis.infrastructure's.

Voice pipeline stages overlap (transcription runs during the end-of-utterance wait; reference
voice_observability.md section 1.3), so they are reported side by side with e2e_ms and never
summed. Slow-turn attribution (`slow_turn_attribution`) defines two contributions per stage:
- share_over_own_p90: among slow turns (e2e above its day's e2e p90), the share where the stage
  is above its own p90 of that day. `lift` divides it by the same share over all turns (about
  0.10 by construction); lift > 1 means the stage is over-represented in slow turns.
- share_dominant: among slow turns, the share where this stage has the largest ratio of its
  value to its day's median (the stage that is furthest above its typical value in that turn).
  These shares sum to 1 over the stages.
The references are per UTC day, set at publish time (collectors/rollups.py,
turn_attribution_hourly), so the page reads counts per hour instead of every turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

from analysis.sketch import merged_quantiles
from analysis.vocabulary import PIPELINE_STAGES as STAGES


@dataclass(frozen=True)
class Table:
    """A result table and, when it could not be computed, the reason in one sentence."""

    frame: pd.DataFrame
    reason: str | None = None


_SLOW_SQL = """
SELECT request_id, started_at, route, method, status_code, duration_ms, release, user_id, ip,
       call_id
FROM requests
WHERE started_at >= ? AND started_at < ? AND duration_ms > ?
ORDER BY duration_ms DESC
LIMIT ?
"""


def slow_requests(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    threshold_ms: float = 1000.0,
    limit: int = 200,
) -> Table:
    """The slowest requests over the threshold (the spec's SLOW_REQUEST_THRESHOLD, in ms here)."""
    df = con.execute(_SLOW_SQL, [start, end, threshold_ms, int(limit)]).df()
    if df.empty:
        return Table(df, f"no request slower than {threshold_ms:g} ms in this window")
    return Table(df)


# Statement normalisation in the spirit of pg_stat_statements: literals become placeholders,
# so the same statement with different values is one row.
_SQL_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"'(?:[^']|'')*'"), "?"),  # string literals (with '' escapes)
    (re.compile(r"\$\d+"), "?"),  # positional parameters
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "?"),
    (re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", re.I), "?"),
    (re.compile(r"\b(?:true|false|null)\b", re.I), "?"),
    (re.compile(r"\bin\s*\(\s*\?(?:\s*,\s*\?)*\s*\)", re.I), "IN (...)"),
    (re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)"), "(...)"),  # VALUES tuples
    (re.compile(r"(?:\(\.\.\.\)\s*,\s*)+\(\.\.\.\)"), "(...)"),  # multi-row VALUES
    (re.compile(r"\s+"), " "),
)


def normalise_sql(statement: str) -> str:
    """Replace literals, numbers and IN-lists by placeholders; collapse whitespace."""
    if not isinstance(statement, str):
        return ""
    s = statement.strip().rstrip(";")
    for pattern, repl in _SQL_RULES:
        s = pattern.sub(repl, s)
    return s.strip()


_DB_SQL = """
SELECT statement,
       sum(coalesce(calls, 1)) AS calls,
       sum(coalesce(total_ms, mean_ms * coalesce(calls, 1))) AS total_ms,
       max(mean_ms) AS worst_mean_ms,
       sum(coalesce(rows, 0)) AS rows
FROM db_queries
WHERE observed_at >= ? AND observed_at < ?
  AND (? IS NULL OR database = ?)
GROUP BY statement
"""


def db_query_stats(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, database: str | None = None
) -> Table:
    """Per normalised statement: calls, total and mean time, worst observed mean, rows.

    Rows are single executions (calls 1) or pg_stat_statements deltas (calls, total_ms);
    mean = total / calls over the window, so both kinds weigh correctly.
    """
    raw = con.execute(_DB_SQL, [start, end, database, database]).df()
    cols = ["statement", "calls", "total_ms", "mean_ms", "worst_mean_ms", "rows", "share_of_time"]
    if raw.empty:
        return Table(pd.DataFrame(columns=cols), "no database statements in this window")
    raw["statement"] = raw["statement"].map(normalise_sql)
    g = raw.groupby("statement", as_index=False).agg(
        calls=("calls", "sum"),
        total_ms=("total_ms", "sum"),
        worst_mean_ms=("worst_mean_ms", "max"),
        rows=("rows", "sum"),
    )
    g["mean_ms"] = g["total_ms"] / g["calls"].where(g["calls"] > 0)
    total = g["total_ms"].sum()
    g["share_of_time"] = g["total_ms"] / total if total > 0 else np.nan
    return Table(g.sort_values("total_ms", ascending=False)[cols].reset_index(drop=True))


@dataclass(frozen=True)
class SlowTurnAttribution:
    frame: pd.DataFrame  # stage, p90_ms, share_over_own_p90, baseline_share, lift, share_dominant
    threshold_ms: float | None  # the days' e2e p90s, averaged over the window's turns
    slow_turns: int
    turns: int
    reason: str | None = None


_ATTRIBUTION_SQL = (  # column names from STAGES, values bound
    "SELECT CAST(sum(n) AS BIGINT) AS n, CAST(sum(n_slow) AS BIGINT) AS n_slow, "  # noqa: S608
    "sum(sum_threshold_ms) AS sum_threshold_ms, "
    + ", ".join(
        f"CAST(sum({c}_{s}) AS BIGINT) AS {c}_{s}"
        for s in STAGES
        for c in ("n_over", "n_slow_over", "n_slow_dominant")
    )
    + " FROM turn_attribution_hourly WHERE hour >= ? AND hour < ? "
    "AND (CAST(? AS VARCHAR) IS NULL OR release = ?)"
)
_STAGE_HIST = (
    "SELECT stage, bucket, n FROM turn_latency_hist WHERE hour >= ? AND hour < ? "
    "AND (CAST(? AS VARCHAR) IS NULL OR release = ?)"
)


def slow_turn_attribution(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    release: str | None = None,
    min_turns: int = 20,
) -> SlowTurnAttribution:
    """Which stage makes slow turns slow (definitions in the module docstring), from the hourly
    rollup turn_attribution_hourly, so its cost follows hours, not turns.

    The references are each turn's UTC day's, set when the day is published: a turn is slow
    when its e2e is above its day's e2e p90, a stage is over when above its day's p90 of that
    stage, and the dominant stage is the one furthest above its day's median. Counts add up
    over the hours that start in [start, end) (and of `release`, when given, against the days'
    references over all releases). So an incident of a few hours still shows (its turns are
    the day's slowest); a regression that lasts whole days raises its days' references and
    shows in the per-stage percentiles instead. threshold_ms is the days' e2e p90 averaged over
    the window's turns; p90_ms is each stage's p90 over the window from the latency histograms
    (about 1 % relative error)."""
    cols = ["stage", "p90_ms", "share_over_own_p90", "baseline_share", "lift", "share_dominant"]
    empty = pd.DataFrame(columns=cols)
    row = con.execute(_ATTRIBUTION_SQL, [start, end, release, release]).df().iloc[0]
    turns = 0 if pd.isna(row["n"]) else int(row["n"])
    if turns < min_turns:
        return SlowTurnAttribution(
            empty, None, 0, turns, f"need at least {min_turns} turns with e2e, have {turns}"
        )
    threshold = float(row["sum_threshold_ms"]) / turns
    slow = int(row["n_slow"])
    if slow == 0:
        return SlowTurnAttribution(
            empty, threshold, 0, turns, "no turn is slower than its day's p90"
        )
    p90 = merged_quantiles(
        con, _STAGE_HIST, [start, end, release, release], ("stage",), (0.9,), ["p90_ms"]
    )
    p90_of = dict(zip(p90["stage"], p90["p90_ms"], strict=True))
    rows = []
    for stage in STAGES:
        share_slow = int(row[f"n_slow_over_{stage}"]) / slow
        base = int(row[f"n_over_{stage}"]) / turns
        rows.append(
            [
                stage,
                float(p90_of.get(stage, np.nan)),
                share_slow,
                base,
                share_slow / base if base > 0 else np.nan,
                int(row[f"n_slow_dominant_{stage}"]) / slow,
            ]
        )
    return SlowTurnAttribution(pd.DataFrame(rows, columns=cols), threshold, slow, turns)
