"""A catalogue metric's value per hour or day, or over a whole window, with its sufficient
statistics, for pages and alert rules.

A metric with a `FromRollup` reading is read from that hourly rollup when the connection has it
(a published snapshot always does), so the cost follows hours, not raw rows; otherwise, or with
source="raw" (a short window's drill-down), from its facts SQL. Quantiles take one path either
way: histogram buckets (the rollup's, or raw values bucketed by analysis.sketch.bucket_sql)
merged by analysis.sketch.merged_quantiles.

Values are in the metric's unit (a share in % is the proportion times 100):
  proportion, mean   total / n            (successes or Σx over facts counted)
  ratio              total / denominator  (Σ numerator / Σ denominator)
  count              total                (Σ value: events, or events weighted)
  quantile           the q-quantile of the merged histogram
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import duckdb
import numpy as np
import pandas as pd

from analysis.metrics.builtin import builtin_metrics
from analysis.metrics.definition import Metric
from analysis.sketch import bucket_sql, merged_quantiles

# Per-period grains. Rollups are hourly, so days merge hours and minutes (alert rules' short
# windows) are read from the facts.
BUCKETS = ("minute", "hour", "day")
SOURCES = ("auto", "rollup", "raw")
_STATISTICS = ("n", "total", "squares", "denominator")


@dataclass(frozen=True)
class MetricValue:
    """A metric over a window: its value (None with a reason when nothing was measured) and
    sufficient statistics. Means read from rollups have no `squares` (rollups keep none)."""

    metric: str
    value: float | None
    n: int
    total: float | None = None
    squares: float | None = None
    denominator: float | None = None
    reason: str | None = None


def _metric(metric: str | Metric) -> Metric:
    if isinstance(metric, Metric):
        return metric
    found = builtin_metrics().get(metric)
    if found is None:
        raise ValueError(f"unknown metric {metric!r}")
    return found


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchone()
    return bool(row and row[0])


def _from_rollup(
    con: duckdb.DuckDBPyConnection,
    metric: Metric,
    by: str | None,
    source: str,
    bucket: str | None = None,
) -> bool:
    """Whether to read the rollup: asked for, or ("auto") available and able to split by `by`
    (and, being hourly, to give the `bucket`)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
    rollup = metric.rollup
    able = rollup is not None and (by is None or by in rollup.groups) and bucket != "minute"
    if source == "rollup" and not able:
        raise ValueError(
            f"metric {metric.name!r} has no rollup reading split by {by!r} per {bucket}"
        )
    if source == "raw" or not able or rollup is None:
        return False
    return source == "rollup" or _has_table(con, rollup.table)


def _keys(bucket: str | None, by: str | None) -> tuple[str, ...]:
    if bucket is not None and bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, not {bucket!r}")
    return tuple(k for k in (bucket, "grp" if by else None) if k)


def _rollup_sql(metric: Metric, bucket: str | None, by: str | None) -> str:
    """Histogram rows (quantiles) or sufficient statistics from the rollup, per keys."""
    rollup = metric.rollup
    assert rollup is not None
    keys = []
    if bucket == "hour":
        keys.append("hour")
    elif bucket == "day":
        keys.append("CAST(date_trunc('day', hour) AS TIMESTAMP) AS day")
    if by is not None:
        keys.append(f"{by} AS grp")  # by is one of rollup.groups: catalogue text
    source = f"FROM {rollup.table} WHERE hour >= ? AND hour < ? AND ({rollup.where})"
    if metric.type == "quantile":
        return f"SELECT {', '.join([*keys, 'bucket', 'n'])} {source}"  # noqa: S608 - catalogue identifiers
    grouped = " GROUP BY ALL" if keys else ""
    stats = f"{rollup.n} AS n, {rollup.total} AS total, NULL AS squares, NULL AS denominator"
    return f"SELECT {', '.join([*keys, stats])} {source}{grouped}"  # noqa: S608 - catalogue SQL


def _raw_sql(metric: Metric, bucket: str | None, by: str | None) -> str:
    """Histogram rows (quantiles) or sufficient statistics from the metric's facts SQL."""
    if by is None:
        facts = metric.sql
    elif metric.facts is not None:
        facts = metric.facts.split_sql(by)
    else:
        raise ValueError(f"metric {metric.name!r} cannot be split by {by!r}")
    keys = []
    if bucket is not None:  # one of BUCKETS
        keys.append(f"CAST(date_trunc('{bucket}', ts) AS TIMESTAMP) AS {bucket}")
    if by is not None:
        keys.append("grp")
    source = f"FROM ({facts}) AS f WHERE ts >= ? AND ts < ?"
    if metric.type == "quantile":
        hist = [*keys, f"{bucket_sql('value')} AS bucket", "count(*) AS n"]
        return f"SELECT {', '.join(hist)} {source} AND value IS NOT NULL GROUP BY ALL"  # noqa: S608 - catalogue or checked config SQL
    if metric.type == "ratio":
        stats = "count(*) AS n, sum(numerator) AS total, NULL AS squares, sum(denominator) AS denominator"
    else:
        stats = "count(value) AS n, sum(value) AS total, sum(value * value) AS squares, NULL AS denominator"
    grouped = " GROUP BY ALL" if keys else ""
    return f"SELECT {', '.join([*keys, stats])} {source}{grouped}"  # noqa: S608 - catalogue or checked config SQL


def _values(metric: Metric, df: pd.DataFrame) -> pd.Series:
    n = df["n"].fillna(0).to_numpy(float)
    total = df["total"].fillna(0).to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric.type == "count":
            value = total
        elif metric.type == "ratio":
            den = df["denominator"].fillna(0).to_numpy(float)
            value = np.where(den != 0, total / den, np.nan)
        else:  # proportion, mean
            value = np.where(n > 0, total / n * metric.scale, np.nan)
    return pd.Series(value, index=df.index, dtype=float)


def _histograms(
    con: duckdb.DuckDBPyConnection, hist_sql: str, params: list[Any], keys: tuple[str, ...]
) -> pd.DataFrame:
    """Per keys: the merged histogram as `buckets` and `counts` lists, in bucket order."""
    lead = "".join(f"{k}, " for k in keys)
    grouped = " GROUP BY ALL" if keys else ""
    return con.execute(
        f"SELECT {lead}list(bucket ORDER BY bucket) AS buckets, list(n ORDER BY bucket) AS counts "  # noqa: S608 - the caller's fixed SQL
        f"FROM (SELECT {lead}bucket, sum(n) AS n FROM ({hist_sql}) "
        f"WHERE bucket IS NOT NULL AND n > 0 GROUP BY ALL){grouped}",
        params,
    ).df()


def metric_series(
    con: duckdb.DuckDBPyConnection,
    metric: str | Metric,
    start: datetime,
    end: datetime,
    bucket: str | None = "hour",
    by: str | None = None,
    source: str = "auto",
) -> pd.DataFrame:
    """`metric` (a built-in's name, or any catalogue Metric) over [start, end) per `bucket`
    ("minute", "hour" or "day", a column of that name; None for the whole window) and per `by`
    (a column the metric can be split by, e.g. "release"; a column of that name). Only periods
    and groups with facts have a row. Columns: the keys, n, value, and the sufficient
    statistics: total, squares, denominator for rates, means, ratios and counts (NaN where not
    kept), or the merged histogram as buckets and counts (analysis.sketch indices) for
    quantiles.

    Rollups are hourly: a window that does not start and end on whole hours reads whole hours
    from them (the raw source reads it exactly), and minutes are always read from the facts."""
    m = _metric(metric)
    keys = _keys(bucket, by)
    rollup = _from_rollup(con, m, by, source, bucket)
    sql = _rollup_sql(m, bucket, by) if rollup else _raw_sql(m, bucket, by)
    names = {"grp": by} if by else {}
    params = [start, end]
    if m.type == "quantile":
        q = merged_quantiles(con, sql, params, keys, (m.quantile or 0.5,), ["value"])
        hist = _histograms(con, sql, params, keys)
        if q.empty:  # typed like the histograms' keys, so that callers can merge on them
            q = hist[list(keys)].iloc[:0].assign(n=pd.Series(dtype="int64"), value=np.nan)
        out = q.merge(hist, on=list(keys), how="left") if keys else q.join(hist)
        out = out[[*keys, "n", "value", "buckets", "counts"]]
    else:
        out = con.execute(sql, params).df()
        if not keys:  # an aggregate over no facts is one row of NULLs: no facts, no row
            out = out[out["n"].fillna(0) > 0]
        out = out.assign(value=_values(m, out))[[*keys, "n", "value", *_STATISTICS[1:]]]
        out["n"] = out["n"].fillna(0).astype("int64")
    if keys:
        out = out.sort_values(list(keys))
    return out.rename(columns=names).reset_index(drop=True)


def metric_minutes(
    con: duckdb.DuckDBPyConnection,
    metric: str | Metric,
    start: datetime,
    end: datetime,
    by: str | None = None,
) -> dict[str, np.ndarray]:
    """The metric's facts per minute over [start, end), read from the facts SQL, as numpy
    arrays: `minute` (and `grp` with `by`), then `n`, `total` and `denominator` (NaN where not
    kept) for rates, means, ratios and counts, or unmerged histogram rows `bucket`, `n` for
    quantiles (a minute and bucket may repeat). For callers that sum windows of their own (alert
    rules evaluate dozens of windows a minute: no DataFrame per read)."""
    m = _metric(metric)
    sql = _raw_sql(m, "minute", by)
    # DuckDB's stubs allow a pandas Categorical (what an ENUM column gives); these columns are
    # numbers, timestamps and text, which come as arrays
    return cast(dict[str, np.ndarray], con.execute(sql, [start, end]).fetchnumpy())


def metric_value(
    con: duckdb.DuckDBPyConnection,
    metric: str | Metric,
    start: datetime,
    end: datetime,
    source: str = "auto",
) -> MetricValue:
    """`metric` over the whole window [start, end), with its sufficient statistics."""
    m = _metric(metric)
    frame = metric_series(con, m, start, end, bucket=None, source=source)
    if frame.empty or not math.isfinite(frame["value"].iloc[0]):
        return MetricValue(m.name, None, 0, reason="no data in this period")
    row = frame.iloc[0]

    def stat(name: str) -> float | None:
        value = row.get(name)
        return None if value is None or pd.isna(value) else float(value)

    return MetricValue(
        m.name,
        float(row["value"]),
        int(row["n"]),
        stat("total"),
        stat("squares"),
        stat("denominator"),
    )


def _hours(start: datetime, end: datetime) -> pd.DatetimeIndex:
    first = pd.Timestamp(start).floor("h")
    return pd.date_range(first, pd.Timestamp(end), freq="h", inclusive="left")


def hourly_values(
    con: duckdb.DuckDBPyConnection, metric: str | Metric, start: datetime, end: datetime
) -> pd.Series:
    """`metric` per hour over [start, end) as a series indexed by every hour, for scanning.

    Counts are 0 in hours without events; other kinds are NaN there (nothing to measure). The
    hour still being collected (the latest request falls inside it) is left out: a partial
    hour looks like a drop in volume. An unknown metric name gives an empty series.
    """
    name = metric.name if isinstance(metric, Metric) else metric
    if not isinstance(metric, Metric) and metric not in builtin_metrics():
        return pd.Series(dtype=float, name=name)
    hours = _hours(start, end)
    row = con.execute("SELECT max(started_at) FROM requests").fetchone()
    latest = row[0] if row else None
    if latest is not None and len(hours):
        latest = pd.Timestamp(latest)
        if hours[-1] <= latest < hours[-1] + pd.Timedelta("1h"):
            hours = hours[:-1]
    frame = metric_series(con, metric, start, end, bucket="hour")
    values = frame.set_index("hour")["value"]
    if _metric(metric).type == "count":
        values = values.reindex(hours, fill_value=0)
    values = pd.Series(values, dtype=float).reindex(hours)
    values.index.name = "hour"
    return values.rename(name)
