"""The Overview page's numbers: six headline KPIs with their change against the previous period
and an hourly trend, all catalogue metrics read from the hourly rollups (analysis.metrics), so
the cost does not grow with raw rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import pandas as pd

from analysis.deployments import deployments  # noqa: F401 - app/views/experiments.py reads it here
from analysis.metrics import builtin_metrics, metric_series, metric_value


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    value: float | None
    previous: float | None
    unit: str  # "%", "ms", "MOS" ...
    higher_is_better: bool
    reason: str | None = None  # why value is None

    @property
    def change(self) -> float | None:
        if self.value is None or self.previous is None:
            return None
        return self.value - self.previous


# The tiles: KPI key, catalogue metric, and the tile's short label.
KPIS = (
    ("uptime", "uptime", "Uptime"),
    ("p95_e2e", "p95_e2e_latency", "p95 turn latency"),
    ("error_rate", "error_rate", "Error rate (5xx)"),
    ("mos", "mos", "Mean MOS"),
    ("csat", "csat_share", "CSAT"),
    ("resolved", "resolved_rate", "Resolved rate"),
)


def kpis(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> list[Kpi]:
    """The six headline KPIs over [start, end) and over the period of equal length before it."""
    catalogue = builtin_metrics()
    before = start - (end - start)
    out = []
    for key, name, label in KPIS:
        metric = catalogue[name]
        now = metric_value(con, metric, start, end)
        previous = metric_value(con, metric, before, start).value
        higher = not metric.lower_is_better
        out.append(Kpi(key, label, now.value, previous, metric.unit, higher, now.reason))
    return out


def hourly_trend(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pd.DataFrame:
    """Per hour: calls, p95 end-to-end turn latency (ms) and 5xx error rate (%)."""
    frame = None
    for name, column in (
        ("calls", "calls"),
        ("error_rate", "error_rate_pct"),
        ("p95_e2e_latency", "p95_e2e_ms"),
    ):
        series = metric_series(con, name, start, end, "hour")[["hour", "value"]]
        series = series.rename(columns={"value": column})
        frame = series if frame is None else frame.merge(series, on="hour", how="outer")
    # The hour still being collected would read as a sudden drop in volume: leave it out.
    latest = con.execute("SELECT max(started_at) FROM calls").fetchone()[0]
    if latest is not None:
        frame = frame[frame["hour"] < latest.replace(minute=0, second=0, microsecond=0)]
    return frame.sort_values("hour").reset_index(drop=True)


def data_end(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The latest hour with any traffic: the natural 'now' of a snapshot."""
    row = con.execute("SELECT max(hour) FROM calls_hourly").fetchone()
    if row[0] is None:
        row = con.execute("SELECT max(hour) FROM requests_hourly").fetchone()
    return None if row[0] is None else row[0] + timedelta(hours=1)


def latest_request_at(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The newest request: where short windows (the last 5 minutes of an SLO) must end."""
    return con.execute("SELECT max(started_at) FROM requests").fetchone()[0]
