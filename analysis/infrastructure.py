"""Infrastructure: host resources (CPU, memory, disk, cache hit) per host, against thresholds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

RESOURCE_METRICS = ("cpu_pct", "memory_pct", "disk_pct", "cache_hit_pct")
# The spec's health.thresholds: cpu/memory/disk usage 80 %.
DEFAULT_RESOURCE_THRESHOLDS = {"cpu_pct": 80.0, "memory_pct": 80.0, "disk_pct": 80.0}


@dataclass(frozen=True)
class Table:
    """A result table and, when it could not be computed, the reason in one sentence."""

    frame: pd.DataFrame
    reason: str | None = None


_RESOURCE_SQL = """
SELECT host, metric, value FROM (
  UNPIVOT (SELECT host, cpu_pct, memory_pct, disk_pct, cache_hit_pct
           FROM resource_samples WHERE sampled_at >= ? AND sampled_at < ?)
  ON cpu_pct, memory_pct, disk_pct, cache_hit_pct INTO NAME metric VALUE value)
WHERE NOT isnan(value)
"""


def resource_usage(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    thresholds: dict[str, float] | None = None,
) -> Table:
    """Per host and metric: samples, mean, p95, max and the share of samples over threshold."""
    th = dict(DEFAULT_RESOURCE_THRESHOLDS if thresholds is None else thresholds)
    df = con.execute(_RESOURCE_SQL, [start, end]).df()
    cols = ["host", "metric", "samples", "mean", "p95", "max", "threshold", "share_over"]
    if df.empty:
        return Table(pd.DataFrame(columns=cols), "no resource samples in this window")
    rows = []
    for (host, metric), g in df.groupby(["host", "metric"], sort=True):
        v = g["value"].to_numpy(float)
        limit = th.get(str(metric))
        over = float((v > limit).mean()) if limit is not None else np.nan
        rows.append([host, metric, v.size, v.mean(), np.percentile(v, 95), v.max(), limit, over])
    return Table(pd.DataFrame(rows, columns=cols))


def resources_hourly(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime
) -> pd.DataFrame:
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
