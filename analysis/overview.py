"""The Overview page's numbers: six headline KPIs with an honest comparison, an hourly trend,
and "what changed" (analysis.changes), all catalogue metrics read from the hourly rollups
(analysis.metrics), so the cost does not grow with raw rows.

An honest comparison: the previous period of equal length only when it holds data for most of
its hours (`COVERED`); otherwise the latest release against the release before it, each over
the hours it served, and the page says which one it shows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import cast

import duckdb
import pandas as pd

from analysis import first_seen
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


@dataclass(frozen=True)
class ComparedKpi:
    """A KPI over the period, and its change under the headline's comparison (`delta`:
    `now` minus `baseline`, both measured the way `Headline.basis` says)."""

    kpi: Kpi
    now: float | None
    baseline: float | None

    @property
    def delta(self) -> float | None:
        if self.now is None or self.baseline is None:
            return None
        return self.now - self.baseline


@dataclass(frozen=True)
class Headline:
    """The tiles and what their deltas compare: `basis` is "previous period", "release" or
    "none"; `explanation` says it in a sentence; coverages are shares of hours with calls."""

    kpis: tuple[ComparedKpi, ...]
    basis: str
    explanation: str
    coverage: float
    previous_coverage: float


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


# The previous period is compared only when it holds calls in at least this share of its hours.
COVERED = 0.9


def coverage(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> float:
    """The share of the whole hours in [start, end) with at least one call (calls_hourly)."""
    hours = max(1.0, (end - start).total_seconds() / 3600.0)
    row = con.execute(
        "SELECT count(DISTINCT hour) FROM calls_hourly WHERE hour >= ? AND hour < ? AND n > 0",
        [start, end],
    ).fetchone()
    return min(1.0, (row[0] if row else 0) / hours)


@dataclass(frozen=True)
class ReleaseWindow:
    release: str
    start: datetime
    end: datetime


def release_windows(con: duckdb.DuckDBPyConnection, end: datetime) -> list[ReleaseWindow]:
    """Who served when, up to `end`: one window per successful deployment (a rollback is one
    too), from its finish to the next one's, oldest first."""
    rows = con.execute(
        "SELECT release, finished_at FROM deployments WHERE finished_at IS NOT NULL "
        "AND finished_at < ? AND upper(coalesce(status, 'SUCCESS')) = 'SUCCESS' "
        "ORDER BY finished_at",
        [end],
    ).fetchall()
    windows = []
    for i, (release, finished) in enumerate(rows):
        until = rows[i + 1][1] if i + 1 < len(rows) else end
        windows.append(ReleaseWindow(str(release), finished, until))
    return windows


def _when(t: datetime) -> str:
    return f"{t:%d %b %H:%M}"


def headline(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> Headline:
    """The six KPIs over [start, end) with the comparison that has data behind it."""
    plain = kpis(con, start, end)
    now_cov = coverage(con, start, end)
    before_cov = coverage(con, start - (end - start), start)
    if before_cov >= COVERED:
        compared = tuple(ComparedKpi(k, k.value, k.previous) for k in plain)
        text = (
            f"Changes compare with the previous {_span(end - start)}, which has data for "
            f"{before_cov:.0%} of its hours."
        )
        return Headline(compared, "previous period", text, now_cov, before_cov)
    gap = (
        "the previous period has no data"
        if before_cov == 0
        else "the previous period has data for less than 1% of its hours"
        if before_cov < 0.01  # not "only 0%"
        else f"the previous period has data for only {before_cov:.0%} of its hours"
    )
    windows = [w for w in release_windows(con, end) if w.end > w.start]
    current = windows[-1] if windows else None
    before = next(
        (w for w in reversed(windows[:-1]) if current and w.release != current.release), None
    )
    if current is None or before is None:
        compared = tuple(replace_none(k) for k in plain)
        text = f"No change is shown: {gap}, and there is no earlier release to compare with."
        return Headline(compared, "none", text, now_cov, before_cov)
    catalogue = builtin_metrics()
    out = []
    for k in plain:
        metric = catalogue[dict((key, name) for key, name, _ in KPIS)[k.key]]
        now = metric_value(con, metric, current.start, current.end).value
        base = metric_value(con, metric, before.start, before.end).value
        out.append(ComparedKpi(k, now, base))
    text = (
        f"Changes compare the latest release, {current.release} (since {_when(current.start)} "
        f"UTC), with the release before it, {before.release} ({_when(before.start)} to "
        f"{_when(before.end)} UTC), because {gap}. The values are over the whole period."
    )
    return Headline(tuple(out), "release", text, now_cov, before_cov)


def replace_none(k: Kpi) -> ComparedKpi:
    return ComparedKpi(replace(k, previous=None), k.value, None)


def _span(length: timedelta) -> str:
    days = length.total_seconds() / 86400
    if days < 1.5:
        return f"{length.total_seconds() / 3600:.0f} hours"
    return f"{days:.0f} days"


def hourly_trend(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pd.DataFrame:
    """Per hour: calls, p95 end-to-end turn latency (ms) and 5xx error rate (%)."""
    frame: pd.DataFrame | None = None
    for name, column in (
        ("calls", "calls"),
        ("error_rate", "error_rate_pct"),
        ("p95_e2e_latency", "p95_e2e_ms"),
    ):
        series = metric_series(con, name, start, end, "hour")[["hour", "value"]]
        series = series.rename(columns={"value": column})
        frame = series if frame is None else frame.merge(series, on="hour", how="outer")
    assert frame is not None  # the loop read three series
    # The hour still being collected would read as a sudden drop in volume: leave it out.
    latest = first_seen.latest(con, "calls")
    if latest is not None:
        frame = frame[frame["hour"] < latest.replace(minute=0, second=0, microsecond=0)]
    return frame.sort_values("hour").reset_index(drop=True)


def data_end(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The latest hour with any traffic: the natural 'now' of a snapshot."""
    row = con.execute("SELECT max(hour) FROM calls_hourly").fetchone()
    if row is None or row[0] is None:
        row = con.execute("SELECT max(hour) FROM requests_hourly").fetchone()
    if row is None or row[0] is None:
        return None
    return cast(datetime, row[0] + timedelta(hours=1))


def latest_request_at(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The newest request: where short windows (the last 5 minutes of an SLO) must end."""
    return first_seen.latest(con, "requests")


def partial_days(start: datetime, end: datetime) -> list[tuple[datetime, float]]:
    """The days (their midnight, UTC) a daily chart of [start, end) shows only in part, with
    the share of the day inside the period: a partial first or last day reads as a drop."""
    out = []
    for day in {start.replace(hour=0, minute=0, second=0, microsecond=0),
                (end - timedelta(microseconds=1)).replace(hour=0, minute=0, second=0,
                                                          microsecond=0)}:  # fmt: skip
        inside = min(end, day + timedelta(days=1)) - max(start, day)
        share = inside / timedelta(days=1)
        if 0 < share < 1:
            out.append((day, share))
    return sorted(out)
