"""Latency percentiles per route and per voice pipeline stage, read from the hourly latency
histograms (collectors/rollups.py), so their cost follows hours and groups, not raw rows.

Every percentile goes through analysis.sketch.merged_quantiles (DDSketch buckets, about 1 %
relative error): buckets of any hours, routes and releases merge by adding counts.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from analysis.sketch import bucket_value, merged_quantiles
from analysis.vocabulary import STAGES

STAGE_LABELS = {
    "eou_delay_ms": "End of utterance",
    "stt_ms": "Transcription",
    "llm_ttft_ms": "LLM first token",
    "tts_ttfb_ms": "TTS first byte",
    "e2e_ms": "End to end",
}
# Columns the stage table may be split by: each is a column of turn_latency_hist.
STAGE_GROUPS = ("release",)

# Histogram sources for merged_quantiles: each returns its keys, bucket and n.
_REQUEST_HIST = (
    "SELECT hour, route, method, bucket, n FROM requests_latency_hist WHERE hour >= ? AND hour < ?"
)
_TURN_HIST = (
    "SELECT hour, stage, release, bucket, n FROM turn_latency_hist WHERE hour >= ? AND hour < ?"
)


def quantile_columns(qs: tuple[float, ...]) -> list[str]:
    """p50_ms, p95_ms, ... for the levels qs."""
    return [f"p{round(q * 100):d}_ms" for q in qs]


def route_percentiles(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    qs: tuple[float, ...] = (0.5, 0.95, 0.99),
) -> pd.DataFrame:
    """Per route and method: requests, p50/p95/p99 in ms (from the latency histograms), mean
    and 5xx share in %. Sorted by p95, slowest first."""
    names = quantile_columns(qs)
    q = merged_quantiles(con, _REQUEST_HIST, [start, end], ("route", "method"), qs, names)
    counts = con.execute(
        """
        SELECT route, method, sum(n) AS requests, sum(sum_ms) / sum(n) AS mean_ms,
               100.0 * sum(n_5xx) / sum(n) AS error_5xx_pct,
               100.0 * sum(n_4xx) / sum(n) AS error_4xx_pct
        FROM requests_hourly WHERE hour >= ? AND hour < ? GROUP BY ALL
        """,
        [start, end],
    ).df()
    if counts.empty:
        return pd.DataFrame(columns=["route", "method", "requests", *names])
    out = counts.merge(q.drop(columns="n"), on=["route", "method"], how="left")
    first = ["route", "method", "requests", *names]
    out = out[first + [c for c in out.columns if c not in first]]
    return out.sort_values(names[1], ascending=False).reset_index(drop=True)


def stage_percentiles(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    qs: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99),
    by: str | None = None,
) -> pd.DataFrame:
    """Per voice pipeline stage (pipeline order, e2e last), and per `by` (a column of
    STAGE_GROUPS) when given: turns and percentiles in ms.

    The stages overlap in time, so their percentiles are shown side by side, never summed."""
    if by is not None and by not in STAGE_GROUPS:
        raise ValueError(f"voice stages can be split by {', '.join(STAGE_GROUPS)}, not {by!r}")
    keys = ("stage",) if by is None else (by, "stage")
    out = merged_quantiles(con, _TURN_HIST, [start, end], keys, qs, quantile_columns(qs))
    out = out[out["stage"].isin(STAGES)]
    out["_o"] = out["stage"].map({s: i for i, s in enumerate(STAGES)})
    order = ["_o"] if by is None else [by, "_o"]
    out = out.sort_values(order).drop(columns="_o").rename(columns={"n": "turns"})
    out.insert(len(keys), "label", out["stage"].map(STAGE_LABELS))
    return out.reset_index(drop=True)


def stage_distributions(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime
) -> pd.DataFrame:
    """Per stage and histogram bucket: the bucket's latency (ms) and its share of the stage's
    turns, for drawing each stage's distribution on a log axis."""
    hist = con.execute(
        "SELECT stage, bucket, sum(n) AS n FROM turn_latency_hist "
        "WHERE hour >= ? AND hour < ? AND bucket IS NOT NULL GROUP BY ALL ORDER BY stage, bucket",
        [start, end],
    ).df()
    if hist.empty:
        return pd.DataFrame(columns=["stage", "label", "latency_ms", "share"])
    hist["latency_ms"] = bucket_value(hist["bucket"].to_numpy())
    hist["share"] = hist["n"] / hist.groupby("stage")["n"].transform("sum")
    hist["label"] = hist["stage"].map(STAGE_LABELS)
    return hist[hist["stage"].isin(STAGES)][["stage", "label", "latency_ms", "share"]].reset_index(
        drop=True
    )


def stage_quantile_hourly(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, q: float = 0.95
) -> pd.DataFrame:
    """Per hour: the q-quantile of each stage in ms, one column per stage (wide)."""
    column = quantile_columns((q,))[0]
    long = merged_quantiles(con, _TURN_HIST, [start, end], ("hour", "stage"), (q,), [column])
    if long.empty:
        return pd.DataFrame(columns=["hour", *STAGES])
    wide = long.pivot(index="hour", columns="stage", values=column)
    return wide.reindex(columns=list(STAGES)).reset_index().rename_axis(columns=None)


def requests_hourly(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pd.DataFrame:
    """Per hour: requests, 5xx share in % and p95 request latency in ms."""
    counts = con.execute(
        "SELECT hour, sum(n) AS requests, 100.0 * sum(n_5xx) / sum(n) AS error_5xx_pct "
        "FROM requests_hourly WHERE hour >= ? AND hour < ? GROUP BY hour",
        [start, end],
    ).df()
    p95 = merged_quantiles(con, _REQUEST_HIST, [start, end], ("hour",), (0.95,), ["p95_ms"])
    p95 = p95.drop(columns="n")
    return counts.merge(p95, on="hour", how="left").sort_values("hour").reset_index(drop=True)
