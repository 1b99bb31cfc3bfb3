"""Small queries the monitoring pages need that no other analysis module provides.

Pure functions over a DuckDB connection; values are bound with `?`, identifiers only come from
the fixed dictionaries below. Most read the hourly rollups (collectors/rollups.py), so their
cost follows hours and groups, not raw rows; drill-downs read raw rows for one call, one error
group or a bounded recent window.

Percentiles from the latency histograms use analysis.sketch (DDSketch buckets, about 1 %
relative error): buckets of any hours and routes merge by adding counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from analysis.errors import fingerprint as error_fingerprint
from analysis.sketch import bucket_value
from analysis.vocabulary import OUTCOMES, STAGES

STAGE_LABELS = {
    "eou_delay_ms": "End of utterance",
    "stt_ms": "Transcription",
    "llm_ttft_ms": "LLM first token",
    "tts_ttfb_ms": "TTS first byte",
    "e2e_ms": "End to end",
}


def _quantile_columns(qs: tuple[float, ...]) -> list[str]:
    return [f"p{round(q * 100):d}_ms" for q in qs]


def _merged_quantiles(
    con, hist_sql: str, params: list, keys: tuple[str, ...], qs: tuple[float, ...]
) -> pd.DataFrame:
    """Per group of `keys`: the count and the quantiles of merged histogram bucket counts.

    `hist_sql` is one of this module's fixed queries returning keys..., bucket, n. The merge
    and the rank search run in DuckDB (the histograms of a month hold ~10^5 rows); the rule is
    analysis.sketch.quantiles_from_buckets' (DDSketch, Algorithm 2): the q-quantile is the
    value of the first bucket, in bucket order, whose cumulative count exceeds the 0-based
    rank q * (n - 1).
    """
    cols = [*keys, "n", *_quantile_columns(qs)]
    k = ", ".join(keys)  # identifiers from this module's call sites only
    picks = ", ".join(
        f"min(bucket) FILTER (WHERE cum > ? * (total - 1)) AS b{i}" for i in range(len(qs))
    )
    sql = f"""
        WITH h AS (SELECT {k}, bucket, sum(n) AS n FROM ({hist_sql})
                   WHERE bucket IS NOT NULL AND n > 0 GROUP BY ALL),
        c AS (SELECT *, sum(n) OVER (PARTITION BY {k} ORDER BY bucket) AS cum,
                     sum(n) OVER (PARTITION BY {k}) AS total FROM h)
        SELECT {k}, CAST(any_value(total) AS BIGINT) AS n, {picks}
        FROM c GROUP BY ALL ORDER BY {k}
    """  # noqa: S608
    df = con.execute(sql, [*params, *qs]).df()
    if df.empty:
        return pd.DataFrame(columns=cols)
    for i, col in enumerate(_quantile_columns(qs)):
        df[col] = bucket_value(df.pop(f"b{i}").to_numpy())
    return df[cols]


# Histogram sources for _merged_quantiles: each returns its keys, bucket and n.
_REQUEST_HIST = (
    "SELECT hour, route, method, bucket, n FROM requests_latency_hist WHERE hour >= ? AND hour < ?"
)
_TURN_HIST = "SELECT hour, stage, bucket, n FROM turn_latency_hist WHERE hour >= ? AND hour < ?"
_STAGE_HIST = (
    "SELECT hour, bucket, n FROM turn_latency_hist WHERE stage = ? AND hour >= ? AND hour < ?"
)


# ------------------------------------------------------------------------- health & probes


def probe_uptime_hourly(con, start: datetime, end: datetime) -> pd.DataFrame:
    """Per hour and target: checks, uptime % (up over non-maintenance checks, as Uptime Kuma
    counts it: a pending check is not up) and mean probe latency in ms."""
    return con.execute(
        """
        SELECT hour, target, sum(n) AS checks,
               100.0 * sum(n_up) / nullif(sum(n) - sum(n_maintenance), 0) AS uptime_pct,
               sum(sum_latency_ms) / nullif(sum(n), 0) AS mean_latency_ms
        FROM probes_hourly WHERE hour >= ? AND hour < ?
        GROUP BY hour, target ORDER BY hour, target
        """,
        [start, end],
    ).df()


def probe_status(con, start: datetime, end: datetime) -> pd.DataFrame:
    """Per target: its kind, last check, last status and error, checks in the window, share up
    and latency p50/p95 (exact, over the window's raw checks)."""
    return con.execute(
        """
        SELECT target, any_value(kind) AS kind,
               max(checked_at) AS last_checked,
               arg_max(status, checked_at) AS last_status,
               arg_max(error, checked_at) AS last_error,
               count(*) AS checks,
               100.0 * count(*) FILTER (WHERE status = 'up')
                   / nullif(count(*) FILTER (WHERE status <> 'maintenance'), 0) AS up_pct,
               quantile_cont(latency_ms, 0.5) AS latency_p50_ms,
               quantile_cont(latency_ms, 0.95) AS latency_p95_ms
        FROM probe_results WHERE checked_at >= ? AND checked_at < ?
        GROUP BY target ORDER BY target
        """,
        [start, end],
    ).df()


def deployment_table(con, start: datetime, end: datetime) -> pd.DataFrame:
    """Deployments in the window, newest first, with how long each took to finish."""
    return con.execute(
        """
        SELECT created_at, finished_at,
               date_diff('second', created_at, finished_at) AS build_s,
               release, status, coalesce(is_rollback, false) AS is_rollback,
               service, environment, left(commit_sha, 10) AS commit, message, deployment_id
        FROM deployments WHERE created_at >= ? AND created_at < ?
        ORDER BY created_at DESC
        """,
        [start, end],
    ).df()


def resources_hourly(con, start: datetime, end: datetime) -> pd.DataFrame:
    """Per hour and host: mean and max CPU, memory and disk use in %."""
    return con.execute(
        """
        SELECT CAST(date_trunc('hour', sampled_at) AS TIMESTAMP) AS hour, host,
               avg(cpu_pct) AS cpu_pct, max(cpu_pct) AS cpu_max_pct,
               avg(memory_pct) AS memory_pct, avg(disk_pct) AS disk_pct
        FROM resource_samples WHERE sampled_at >= ? AND sampled_at < ?
        GROUP BY ALL ORDER BY hour, host
        """,
        [start, end],
    ).df()


# ----------------------------------------------------------------------------- performance


def route_percentiles(
    con, start: datetime, end: datetime, qs: tuple[float, ...] = (0.5, 0.95, 0.99)
) -> pd.DataFrame:
    """Per route and method: requests, p50/p95/p99 in ms (from the latency histograms), mean
    and 5xx share in %. Sorted by p95, slowest first."""
    q = _merged_quantiles(con, _REQUEST_HIST, [start, end], ("route", "method"), qs)
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
        return pd.DataFrame(columns=["route", "method", "requests", *_quantile_columns(qs)])
    out = counts.merge(q.drop(columns="n"), on=["route", "method"], how="left")
    first = ["route", "method", "requests", *_quantile_columns(qs)]
    out = out[first + [c for c in out.columns if c not in first]]
    return out.sort_values(_quantile_columns(qs)[1], ascending=False).reset_index(drop=True)


def stage_percentiles(
    con, start: datetime, end: datetime, qs: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)
) -> pd.DataFrame:
    """Per voice pipeline stage (pipeline order, e2e last): turns and percentiles in ms.

    The stages overlap in time, so their percentiles are shown side by side, never summed."""
    out = _merged_quantiles(con, _TURN_HIST, [start, end], ("stage",), qs)
    out = out[out["stage"].isin(STAGES)]
    out["_o"] = out["stage"].map({s: i for i, s in enumerate(STAGES)})
    out = out.sort_values("_o").drop(columns="_o").rename(columns={"n": "turns"})
    out.insert(1, "label", out["stage"].map(STAGE_LABELS))
    return out.reset_index(drop=True)


def stage_distributions(con, start: datetime, end: datetime) -> pd.DataFrame:
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


def stage_quantile_hourly(con, start: datetime, end: datetime, q: float = 0.95) -> pd.DataFrame:
    """Per hour: the q-quantile of each stage in ms, one column per stage (wide)."""
    long = _merged_quantiles(con, _TURN_HIST, [start, end], ("hour", "stage"), (q,))
    if long.empty:
        return pd.DataFrame(columns=["hour", *STAGES])
    wide = long.pivot(index="hour", columns="stage", values=_quantile_columns((q,))[0])
    return wide.reindex(columns=list(STAGES)).reset_index().rename_axis(columns=None)


def requests_hourly(con, start: datetime, end: datetime) -> pd.DataFrame:
    """Per hour: requests, 5xx share in % and p95 request latency in ms."""
    counts = con.execute(
        "SELECT hour, sum(n) AS requests, 100.0 * sum(n_5xx) / sum(n) AS error_5xx_pct "
        "FROM requests_hourly WHERE hour >= ? AND hour < ? GROUP BY hour",
        [start, end],
    ).df()
    p95 = _merged_quantiles(con, _REQUEST_HIST, [start, end], ("hour",), (0.95,))
    p95 = p95.drop(columns="n")
    return counts.merge(p95, on="hour", how="left").sort_values("hour").reset_index(drop=True)


# --------------------------------------------------------------------------------- errors


def errors_hourly(con, start: datetime, end: datetime) -> pd.DataFrame:
    """Per hour: captured error events and the sample-rate-corrected estimate."""
    return con.execute(
        "SELECT hour, sum(n) AS events, sum(n_estimated) AS estimated_events "
        "FROM errors_hourly WHERE hour >= ? AND hour < ? GROUP BY hour ORDER BY hour",
        [start, end],
    ).df()


@dataclass(frozen=True)
class ErrorOccurrences:
    """The latest events of one error group, its total in the window and one stack trace."""

    frame: pd.DataFrame
    total: int
    stack_trace: str | None
    reason: str | None = None


_OCCURRENCE_COLS = [
    "occurred_at",
    "severity",
    "release",
    "route",
    "method",
    "message",
    "request_id",
    "call_id",
    "user_id",
    "sample_rate",
]


def error_occurrences(
    con,
    start: datetime,
    end: datetime,
    fingerprint: str,
    error_type: str,
    limit: int = 100,
) -> ErrorOccurrences:
    """Events in [start, end) of the group `fingerprint` (analysis.errors' grouping key).

    Candidates are the window's events of `error_type`; each distinct (message, stack trace)
    pair is fingerprinted once, as analysis.errors.error_groups does.
    """
    rows = con.execute(
        f"SELECT {', '.join(_OCCURRENCE_COLS)}, stack_trace FROM errors "  # noqa: S608 (fixed list)
        "WHERE occurred_at >= ? AND occurred_at < ? AND error_type = ? "
        "ORDER BY occurred_at DESC",
        [start, end, error_type],
    ).df()
    keys = {
        pair: error_fingerprint(error_type, pair[0], pair[1])
        for pair in set(zip(rows["message"], rows["stack_trace"], strict=True))
    }
    match = [
        keys[pair] == fingerprint for pair in zip(rows["message"], rows["stack_trace"], strict=True)
    ]
    hits = rows[np.asarray(match, dtype=bool)] if len(rows) else rows
    if hits.empty:
        return ErrorOccurrences(
            pd.DataFrame(columns=_OCCURRENCE_COLS), 0, None, "no events of this group here"
        )
    traces = hits["stack_trace"].dropna()
    trace = str(traces.iloc[0]) if len(traces) else None
    frame = hits[_OCCURRENCE_COLS].head(limit).reset_index(drop=True)
    return ErrorOccurrences(frame, len(hits), trace)


# ----------------------------------------------------------------------- calls & feedback


def outcomes_hourly(con, start: datetime, end: datetime) -> pd.DataFrame:
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


def turns_hourly(con, start: datetime, end: datetime) -> pd.DataFrame:
    """Per hour: turns, interrupted turns and the interrupted share in %."""
    return con.execute(
        "SELECT hour, sum(n) AS turns, sum(n_interrupted) AS interrupted, "
        "100.0 * sum(n_interrupted) / nullif(sum(n), 0) AS interrupted_pct "
        "FROM turns_hourly WHERE hour >= ? AND hour < ? GROUP BY hour ORDER BY hour",
        [start, end],
    ).df()


def recent_calls(
    con, start: datetime, end: datetime, outcome: str | None = None, limit: int = 200
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


def call_turns(con, call_id: str) -> pd.DataFrame:
    """Every turn of one call in order, with its latency parts (overlapping: never summed)."""
    return con.execute(
        """
        SELECT turn_index, started_at, eou_delay_ms, stt_ms, llm_ttft_ms, tts_ttfb_ms, e2e_ms,
               interrupted, llm_prompt_tokens, llm_completion_tokens, tts_characters, release
        FROM voice_turns WHERE call_id = ? ORDER BY turn_index, started_at
        """,
        [call_id],
    ).df()


def csat_daily(con, start: datetime, end: datetime) -> pd.DataFrame:
    """Per day: ratings, CSAT % (share of 4-5) and mean rating, from the feedback rollup."""
    return con.execute(
        """
        SELECT CAST(date_trunc('day', hour) AS TIMESTAMP) AS day, sum(n) AS ratings,
               100.0 * sum(n_positive) / nullif(sum(n), 0) AS csat_pct,
               sum(sum_rating) / nullif(sum(n), 0) AS mean_rating
        FROM feedback_hourly WHERE hour >= ? AND hour < ? GROUP BY day ORDER BY day
        """,
        [start, end],
    ).df()


def recent_feedback(
    con, start: datetime, end: datetime, limit: int = 50, with_comment: bool = True
) -> pd.DataFrame:
    """The latest feedback in the window, newest first (only rows with a comment by default)."""
    return con.execute(
        """
        SELECT submitted_at, rating, category, comment, call_id, release
        FROM feedback
        WHERE submitted_at >= ? AND submitted_at < ?
          AND (NOT ? OR (comment IS NOT NULL AND trim(comment) <> ''))
        ORDER BY submitted_at DESC LIMIT ?
        """,
        [start, end, with_comment, int(limit)],
    ).df()


def feature_usage_daily(con, start: datetime, end: datetime) -> pd.DataFrame:
    """Per day: uses of each feature, one column per feature (wide)."""
    df = con.execute(
        "SELECT CAST(date_trunc('day', used_at) AS TIMESTAMP) AS day, feature_name, "
        "count(*) AS uses FROM feature_usage WHERE used_at >= ? AND used_at < ? GROUP BY ALL",
        [start, end],
    ).df()
    if df.empty:
        return pd.DataFrame(columns=["day"])
    wide = df.pivot_table(
        index="day", columns="feature_name", values="uses", aggfunc="sum", fill_value=0
    )
    return wide.reset_index().rename_axis(columns=None)


# -------------------------------------------------------------------------------- security


def security_event_summary(con, start: datetime, end: datetime) -> pd.DataFrame:
    """Events the SDK reported (rate limits, blocked IPs...) per type and severity."""
    return con.execute(
        """
        SELECT event_type, severity, count(*) AS events, count(DISTINCT ip) AS ips,
               min(occurred_at) AS first_seen, max(occurred_at) AS last_seen
        FROM security_events WHERE occurred_at >= ? AND occurred_at < ?
        GROUP BY ALL ORDER BY events DESC
        """,
        [start, end],
    ).df()


def auth_failures_hourly(con, start: datetime, end: datetime) -> pd.DataFrame:
    """Per hour: login attempts, failed ones, and the IPs and accounts they came from."""
    return con.execute(
        """
        SELECT CAST(date_trunc('hour', occurred_at) AS TIMESTAMP) AS hour,
               count(*) AS attempts, count(*) FILTER (WHERE success = false) AS failed,
               count(DISTINCT ip) FILTER (WHERE success = false) AS failing_ips,
               count(DISTINCT user_id) FILTER (WHERE success = false) AS failing_accounts
        FROM auth_events
        WHERE occurred_at >= ? AND occurred_at < ? AND lower(event_type) = 'login'
        GROUP BY hour ORDER BY hour
        """,
        [start, end],
    ).df()


# ---------------------------------------------------------------------- anomaly metrics


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric("p95_e2e_ms", "p95 end-to-end turn latency per hour", "ms"),
        Metric("p95_llm_ttft_ms", "p95 LLM time to first token per hour", "ms"),
        Metric("error_5xx_pct", "5xx error rate per hour", "%"),
        Metric("calls", "Calls per hour", "calls"),
        Metric("mos", "Mean reported MOS per hour", "MOS"),
        Metric("p95_request_ms", "p95 request latency per hour", "ms"),
        Metric("errors", "Captured errors per hour (sample-corrected)", "errors"),
    )
}


def _hours(start: datetime, end: datetime) -> pd.DatetimeIndex:
    first = pd.Timestamp(start).floor("h")
    return pd.date_range(first, pd.Timestamp(end), freq="h", inclusive="left")


def deployment_marks(con, start: datetime, end: datetime) -> list[tuple[datetime, str, str]]:
    """Successful deployments in [start, end) as (hour, release, deployment id) for
    analysis.anomalies.label_with_deployments on an hourly series.

    The time is floored to the hour: an hourly point covers its whole hour, so a deploy at
    14:05 precedes an episode whose first point is the 14:00 hour.
    """
    rows = con.execute(
        "SELECT CAST(date_trunc('hour', created_at) AS TIMESTAMP), release, deployment_id "
        "FROM deployments WHERE created_at >= ? AND created_at < ? "
        "AND coalesce(upper(status), 'SUCCESS') = 'SUCCESS' ORDER BY created_at",
        [start, end],
    ).fetchall()
    return [(t, r, d) for t, r, d in rows]


def _latest_request(con) -> pd.Timestamp | None:
    value = con.execute("SELECT max(started_at) FROM requests").fetchone()[0]
    return None if value is None else pd.Timestamp(value)


def metric_series(con, metric: str, start: datetime, end: datetime) -> pd.Series:
    """An hourly series of `metric` (a key of METRICS) over [start, end), indexed by hour.

    Counts are 0 in hours without events; rates and quantiles are NaN there (nothing to
    measure). The hour still being collected (the latest request falls inside it) is left
    out: a partial hour looks like a drop in volume. An unknown metric gives an empty series.
    """
    hours = _hours(start, end)
    latest = _latest_request(con)
    if latest is not None and len(hours) and hours[-1] <= latest < hours[-1] + pd.Timedelta("1h"):
        hours = hours[:-1]
    if metric not in METRICS:
        return pd.Series(dtype=float, name=metric)
    if metric in ("p95_e2e_ms", "p95_llm_ttft_ms"):
        stage = "e2e_ms" if metric == "p95_e2e_ms" else "llm_ttft_ms"
        q = _merged_quantiles(con, _STAGE_HIST, [stage, start, end], ("hour",), (0.95,))
        s = q.set_index("hour")["p95_ms"] if len(q) else pd.Series(dtype=float)
    elif metric == "p95_request_ms":
        s = requests_hourly(con, start, end).set_index("hour")["p95_ms"]
    elif metric == "error_5xx_pct":
        s = con.execute(
            "SELECT hour, 100.0 * sum(n_5xx) / sum(n) AS v FROM requests_hourly "
            "WHERE hour >= ? AND hour < ? GROUP BY hour",
            [start, end],
        ).df()
        s = s.set_index("hour")["v"]
    elif metric == "calls":
        s = con.execute(
            "SELECT hour, sum(n) AS v FROM calls_hourly WHERE hour >= ? AND hour < ? GROUP BY hour",
            [start, end],
        ).df()
        s = s.set_index("hour")["v"].reindex(hours, fill_value=0)
    elif metric == "errors":
        s = errors_hourly(con, start, end).set_index("hour")["estimated_events"]
        s = s.reindex(hours, fill_value=0)
    else:  # mos
        s = con.execute(
            "SELECT hour, sum(sum_mos) / nullif(sum(n_mos), 0) AS v FROM quality_hourly "
            "WHERE hour >= ? AND hour < ? GROUP BY hour",
            [start, end],
        ).df()
        s = s.set_index("hour")["v"]
    s = pd.Series(s, dtype=float).reindex(hours)
    s.index.name = "hour"
    return s.rename(metric)
