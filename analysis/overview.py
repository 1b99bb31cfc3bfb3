"""The Overview page's numbers: six headline KPIs with their change against the previous period,
an hourly trend, and deployments for the chart's markers. Everything reads the hourly rollups,
so the cost does not grow with raw rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import pandas as pd

from analysis.sketch import quantiles_from_buckets


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    value: float | None
    previous: float | None
    unit: str  # "%", "ms", "" ...
    higher_is_better: bool
    reason: str | None = None  # why value is None

    @property
    def change(self) -> float | None:
        if self.value is None or self.previous is None:
            return None
        return self.value - self.previous


def _ratio(con, sql: str, start: datetime, end: datetime) -> float | None:
    num, den = con.execute(sql, [start, end]).fetchone()
    return None if not den else float(num) / float(den)


def _kpi_values(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> dict:
    values = {
        "uptime": _ratio(
            con,
            "SELECT sum(n_up), sum(n) - sum(n_maintenance) FROM probes_hourly "
            "WHERE hour >= ? AND hour < ?",
            start,
            end,
        ),
        "error_rate": _ratio(
            con,
            "SELECT sum(n_5xx), sum(n) FROM requests_hourly WHERE hour >= ? AND hour < ?",
            start,
            end,
        ),
        "mos": _ratio(
            con,
            "SELECT sum(sum_mos), sum(n_mos) FROM quality_hourly WHERE hour >= ? AND hour < ?",
            start,
            end,
        ),
        "csat": _ratio(
            con,
            "SELECT sum(n_positive), sum(n) FROM feedback_hourly WHERE hour >= ? AND hour < ?",
            start,
            end,
        ),
        "resolved": _ratio(
            con,
            # over calls that have ended: a call still in progress has no outcome yet
            "SELECT sum(n) FILTER (WHERE outcome = 'resolved'), "
            "sum(n) FILTER (WHERE outcome IS NOT NULL) "
            "FROM calls_hourly WHERE hour >= ? AND hour < ?",
            start,
            end,
        ),
    }
    hist = con.execute(
        "SELECT bucket, sum(n) FROM turn_latency_hist "
        "WHERE stage = 'e2e_ms' AND hour >= ? AND hour < ? GROUP BY bucket",
        [start, end],
    ).fetchall()
    q = quantiles_from_buckets([b for b, _ in hist], [n for _, n in hist], [0.95])
    values["p95_e2e"] = q.values.get(0.95)
    return values


KPI_DEFS = [
    ("uptime", "Uptime", "%", True),
    ("p95_e2e", "p95 turn latency", "ms", False),
    ("error_rate", "Error rate (5xx)", "%", False),
    ("mos", "Mean MOS", "", True),
    ("csat", "CSAT", "%", True),
    ("resolved", "Resolved rate", "%", True),
]


def kpis(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> list[Kpi]:
    """The six headline KPIs over [start, end) and over the period of equal length before it."""
    now = _kpi_values(con, start, end)
    before = _kpi_values(con, start - (end - start), start)
    out = []
    for key, label, unit, higher in KPI_DEFS:
        scale = 100.0 if unit == "%" else 1.0
        value = None if now[key] is None else now[key] * scale
        previous = None if before[key] is None else before[key] * scale
        reason = None if value is not None else "no data in this period"
        out.append(Kpi(key, label, value, previous, unit, higher, reason))
    return out


def hourly_trend(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pd.DataFrame:
    """Per hour: calls, p95 end-to-end turn latency (ms) and 5xx error rate (%)."""
    calls = con.execute(
        "SELECT hour, sum(n) AS calls FROM calls_hourly WHERE hour >= ? AND hour < ? GROUP BY hour",
        [start, end],
    ).df()
    errors = con.execute(
        "SELECT hour, 100.0 * sum(n_5xx) / sum(n) AS error_rate_pct FROM requests_hourly "
        "WHERE hour >= ? AND hour < ? GROUP BY hour",
        [start, end],
    ).df()
    hist = con.execute(
        "SELECT hour, bucket, sum(n) AS n FROM turn_latency_hist WHERE stage = 'e2e_ms' "
        "AND hour >= ? AND hour < ? GROUP BY hour, bucket",
        [start, end],
    ).df()
    p95 = [
        (hour, quantiles_from_buckets(g["bucket"], g["n"], [0.95]).values.get(0.95))
        for hour, g in hist.groupby("hour")
    ]
    latency = pd.DataFrame(p95, columns=["hour", "p95_e2e_ms"])
    frame = calls.merge(errors, on="hour", how="outer").merge(latency, on="hour", how="outer")
    # The hour still being collected would read as a sudden drop in volume: leave it out.
    latest = con.execute("SELECT max(started_at) FROM calls").fetchone()[0]
    if latest is not None:
        frame = frame[frame["hour"] < latest.replace(minute=0, second=0, microsecond=0)]
    return frame.sort_values("hour").reset_index(drop=True)


def deployments(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pd.DataFrame:
    """Deployments in the window, for chart markers."""
    return con.execute(
        "SELECT created_at, release, status, coalesce(is_rollback, false) AS is_rollback "
        "FROM deployments WHERE created_at >= ? AND created_at < ? ORDER BY created_at",
        [start, end],
    ).df()


def data_end(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The latest hour with any traffic: the natural 'now' of a snapshot."""
    row = con.execute("SELECT max(hour) FROM calls_hourly").fetchone()
    if row[0] is None:
        row = con.execute("SELECT max(hour) FROM requests_hourly").fetchone()
    return None if row[0] is None else row[0] + timedelta(hours=1)


def latest_request_at(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The newest request: where short windows (the last 5 minutes of an SLO) must end."""
    return con.execute("SELECT max(started_at) FROM requests").fetchone()[0]
