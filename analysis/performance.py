"""Performance drill-downs over raw rows: slow requests, DB statements, and what makes slow
voice turns slow. Latency percentiles per route and stage are read from the hourly histograms
(analysis.latency); host resources are analysis.infrastructure's.

Voice pipeline stages overlap (transcription runs during the end-of-utterance wait; reference
voice_observability.md section 1.3), so they are reported side by side with e2e_ms and never
summed. Slow-turn attribution (`slow_turn_attribution`) defines two contributions per stage:
- share_over_own_p90: among slow turns (e2e above the threshold, default the window's e2e p90),
  the share where the stage is above its own p90 over all turns in the window. `lift` divides
  it by the same share over all turns (about 0.10 by construction); lift > 1 means the stage
  is over-represented in slow turns.
- share_dominant: among slow turns, the share where this stage has the largest ratio of its
  value to its own median (the stage that is furthest above its typical value in that turn).
  These shares sum to 1 over the stages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

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


_TURNS_SQL = """
SELECT eou_delay_ms, stt_ms, llm_ttft_ms, tts_ttfb_ms, e2e_ms
FROM voice_turns
WHERE started_at >= ? AND started_at < ? AND e2e_ms IS NOT NULL AND NOT isnan(e2e_ms)
  AND (? IS NULL OR release = ?)
"""


@dataclass(frozen=True)
class SlowTurnAttribution:
    frame: pd.DataFrame  # stage, p90_ms, share_over_own_p90, baseline_share, lift, share_dominant
    threshold_ms: float | None
    slow_turns: int
    turns: int
    reason: str | None = None


def slow_turn_attribution(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    threshold_ms: float | None = None,
    release: str | None = None,
    min_turns: int = 20,
) -> SlowTurnAttribution:
    """Which stage makes slow turns slow (definitions in the module docstring)."""
    df = con.execute(_TURNS_SQL, [start, end, release, release]).df()
    cols = ["stage", "p90_ms", "share_over_own_p90", "baseline_share", "lift", "share_dominant"]
    empty = pd.DataFrame(columns=cols)
    if len(df) < min_turns:
        return SlowTurnAttribution(
            empty, None, 0, len(df), f"need at least {min_turns} turns with e2e, have {len(df)}"
        )
    e2e = df["e2e_ms"].to_numpy(float)
    thr = float(np.percentile(e2e, 90)) if threshold_ms is None else float(threshold_ms)
    slow = e2e > thr
    if not slow.any():
        return SlowTurnAttribution(empty, thr, 0, len(df), f"no turn slower than {thr:.0f} ms")
    stage_vals = df[list(STAGES)].to_numpy(float)
    p90 = np.nanpercentile(stage_vals, 90, axis=0)
    med = np.nanmedian(stage_vals, axis=0)
    over = stage_vals > p90  # NaN compares False: a missing stage is never "over"
    ratio = np.where(np.isnan(stage_vals), -np.inf, stage_vals / np.where(med > 0, med, np.nan))
    ratio = np.nan_to_num(ratio, nan=-np.inf)
    dominant = np.argmax(ratio[slow], axis=1)
    rows = []
    for k, stage in enumerate(STAGES):
        share_slow = float(over[slow, k].mean())
        base = float(over[:, k].mean())
        rows.append(
            [
                stage,
                float(p90[k]),
                share_slow,
                base,
                share_slow / base if base > 0 else np.nan,
                float((dominant == k).mean()),
            ]
        )
    return SlowTurnAttribution(pd.DataFrame(rows, columns=cols), thr, int(slow.sum()), len(df))
