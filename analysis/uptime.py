"""Health and uptime: uptime per target, incidents, SLOs with burn rates, start-up times.

Semantics follow Uptime Kuma (louislam/uptime-kuma, read at commit 005a8c2):
- `server/model/monitor.js`: with `maxretries = N`, the first N failed beats are PENDING and the
  (N+1)-th consecutive failure is DOWN. `incidents()` applies this to the raw statuses, so a
  target is down only after `retries + 1` consecutive failed checks (retries = 0: first failure).
- `server/uptime-calculator.js` `flatStatus()`: UP -> up; DOWN and PENDING -> down; MAINTENANCE
  is counted apart and left out of the ratio. So a pending beat counts *against* uptime in Kuma.
  `uptime_by_target(pending_counts_as_up=False)` is that default; pass True for the lenient view.
SLO burn rates follow the Google SRE workbook, "Alerting on SLOs", multiwindow multi-burn-rate
alerts: page when both the 1 h and 5 min burn rates exceed 14.4, or both the 6 h and 30 min
burn rates exceed 6 (a 30-day budget).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

FAILED = ("down", "pending")

_PROBES_SQL = """
SELECT target, checked_at, status, latency_ms, error
FROM probe_results
WHERE checked_at >= ? AND checked_at < ?
  AND (? IS NULL OR list_contains(?, target))
ORDER BY target, checked_at
"""


_UPTIME_SQL = """
WITH p AS (
  SELECT DISTINCT target, checked_at, lower(status) AS s
  FROM probe_results
  WHERE checked_at >= ? AND checked_at < ? AND (? IS NULL OR list_contains(?, target))
), g AS (
  SELECT *, epoch(checked_at) - epoch(lag(checked_at) OVER (PARTITION BY target
                                                             ORDER BY checked_at)) AS gap
  FROM p
), m AS (
  SELECT target, median(gap) AS med, count(gap) AS n_gaps FROM g GROUP BY target
), c AS (
  SELECT target, count(*) AS checks,
         count(*) FILTER (WHERE s = 'up') AS up,
         count(*) FILTER (WHERE s = 'pending') AS pending,
         count(*) FILTER (WHERE s = 'down') AS down,
         count(*) FILTER (WHERE s = 'maintenance') AS maintenance,
         coalesce(sum(gap) FILTER (WHERE gap > ? * med AND med > 0 AND n_gaps >= 2), 0.0)
           AS unknown_s
  FROM g JOIN m USING (target) GROUP BY target
)
SELECT target, checks, up, pending, down, maintenance,
       CASE WHEN up + pending + down = 0 THEN NULL
            ELSE (up + CASE WHEN ? THEN pending ELSE 0 END) / (up + pending + down) END AS uptime,
       unknown_s
FROM c ORDER BY target
"""


@dataclass(frozen=True)
class UptimeReport:
    """One row per target: checks by status, uptime share, covered time and unknown gaps."""

    frame: pd.DataFrame
    reason: str | None = None


@dataclass(frozen=True)
class Incident:
    target: str
    start: datetime  # first failed check of the run
    down_at: datetime  # the check that confirmed DOWN (after `retries` pending beats)
    end: datetime | None  # first successful check after the run; None while still down
    duration_s: float  # end - start (or last check - start while ongoing)
    failed_checks: int
    cause: str  # the most frequent error text in the run


@dataclass(frozen=True)
class IncidentReport:
    incidents: list[Incident]
    reason: str | None = None

    def frame(self) -> pd.DataFrame:
        cols = ["target", "start", "down_at", "end", "duration_s", "failed_checks", "cause"]
        return pd.DataFrame([i.__dict__ for i in self.incidents], columns=cols)


@dataclass(frozen=True)
class BurnWindow:
    long_window: timedelta
    short_window: timedelta
    threshold: float
    long_burn: float | None
    short_burn: float | None
    firing: bool


@dataclass(frozen=True)
class SloStatus:
    objective: float
    period_days: int
    good: int
    total: int
    sli: float | None  # good / total over the period
    error_budget_remaining: float | None  # 1 - bad / allowed bad; negative when overspent
    windows: list[BurnWindow] = field(default_factory=list)
    reason: str | None = None

    @property
    def firing(self) -> bool:
        return any(w.firing for w in self.windows)


def _span(t: timedelta) -> str:
    hours = t.total_seconds() / 3600
    return f"{hours:g} h" if hours >= 1 else f"{t.total_seconds() / 60:g} min"


def budget_explanation(slo: SloStatus) -> str:
    """Why the error budget and the burn-rate alert can disagree, in words: the budget is the
    whole period's, the alert watches only its recent windows (Google SRE workbook)."""
    if slo.sli is None or slo.error_budget_remaining is None:
        return ""
    bad = slo.total - slo.good
    allowed = (1 - slo.objective) * slo.total
    spent = (
        f"The period had {bad:,} bad events of {slo.total:,}, where the "
        f"{slo.objective * 100:g} % objective allows {allowed:,.0f}"
    )
    windows = ", ".join(_span(w.long_window) for w in slo.windows) or "recent"
    if slo.firing:
        return (
            f"{spent}. The burn-rate alert is firing: bad events are arriving now fast enough "
            f"to spend the budget early (its windows: the last {windows})."
        )
    if slo.error_budget_remaining < 0:
        return (
            f"{spent}: the budget is overspent by {-slo.error_budget_remaining:.0%}. The "
            f"burn-rate alert is quiet because it watches only the last {windows}, where bad "
            "events are below its thresholds: the budget was spent earlier (an outage or a bad "
            "release) and is not being spent fast now."
        )
    return (
        f"{spent}: {slo.error_budget_remaining:.0%} of the budget is left, and the burn-rate "
        f"alert (the last {windows}) is quiet."
    )


@dataclass(frozen=True)
class StartupReport:
    frame: pd.DataFrame  # per release: starts, p50/p95/max of startup_ms and init_ms
    reason: str | None = None


def _targets_param(targets: list[str] | None) -> list[list[str] | None]:
    return [None, None] if not targets else [list(targets), list(targets)]


def uptime_by_target(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    targets: list[str] | None = None,
    pending_counts_as_up: bool = False,
    gap_factor: float = 3.0,
) -> UptimeReport:
    """Uptime share per target over [start, end).

    uptime = up / (up + down [+ pending]) with maintenance excluded (Kuma's flatStatus).
    `unknown_s` sums the gaps between consecutive checks longer than `gap_factor` times the
    target's median interval: time when nobody was looking (Kuma issue #5710 asks for this).
    """
    df = con.execute(
        _UPTIME_SQL, [start, end, *_targets_param(targets), gap_factor, pending_counts_as_up]
    ).df()
    if df.empty:
        return UptimeReport(df, "no probe results in this window")
    return UptimeReport(df)


def incidents(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    retries: int | None = None,
    targets: list[str] | None = None,
) -> IncidentReport:
    """Outages per target with Kuma's retry semantics.

    A failed check is a status of down or pending. With `retries=None` (the default) the probes'
    own states decide, since our probes already apply Kuma's rule when they record a check: a
    run of failed checks is an incident when it reaches a `down`, which is its down_at. With an
    integer, the rule is re-applied to the statuses: a run becomes an incident when it reaches
    `retries + 1` checks (Kuma: `maxretries` beats are PENDING, then DOWN); use this for sources
    that record no pending state. The incident starts at the first failed check and ends at
    the next up check; a maintenance check closes a run too (Kuma leaves DOWN for MAINTENANCE).
    """
    df = con.execute(_PROBES_SQL, [start, end, *_targets_param(targets)]).df()
    if df.empty:
        return IncidentReport([], "no probe results in this window")
    df = df.drop_duplicates(["target", "checked_at"])
    needed = None if retries is None else max(int(retries), 0) + 1
    found: list[Incident] = []
    for target, g in df.groupby("target", sort=True):
        times = g["checked_at"].reset_index(drop=True)
        statuses = g["status"].str.lower().to_numpy()
        failed = g["status"].str.lower().isin(FAILED).to_numpy()
        errors = g["error"].reset_index(drop=True)
        # run boundaries of consecutive failed checks
        edges = np.diff(np.concatenate([[0], failed.astype(np.int8), [0]]))
        for i, j in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            run = int(j - i)
            if needed is None:
                down = np.flatnonzero(statuses[i:j] == "down")
                if not len(down):
                    continue  # pending checks that recovered: never down
                first_down = i + int(down[0])
            elif run < needed:
                continue
            else:
                first_down = i + needed - 1
            ended = j < len(g)  # the check at j is up or maintenance
            stop = times[j] if ended else times[j - 1]
            errs = errors[i:j]
            errs = errs[errs.notna() & (errs.astype(str) != "")]
            found.append(
                Incident(
                    target=str(target),
                    start=times[i].to_pydatetime(),
                    down_at=times[first_down].to_pydatetime(),
                    end=stop.to_pydatetime() if ended else None,
                    duration_s=float((stop - times[i]).total_seconds()),
                    failed_checks=run,
                    cause=str(errs.value_counts().index[0]) if len(errs) else "unknown",
                )
            )
    reason = (
        None
        if found
        else (
            "no incidents: no run of failed checks reached a down state"
            if needed is None
            else "no incidents: no run of failed checks reached the retry count"
        )
    )
    return IncidentReport(found, reason)


# SRE workbook table "Recommended parameters": (long window, short window, burn-rate factor).
SRE_WINDOWS: tuple[tuple[timedelta, timedelta, float], ...] = (
    (timedelta(hours=1), timedelta(minutes=5), 14.4),
    (timedelta(hours=6), timedelta(minutes=30), 6.0),
)

_SLO_REQUESTS_SQL = """
SELECT
  count(*) FILTER (WHERE started_at >= ?) AS total,
  count(*) FILTER (WHERE started_at >= ? AND status_code < 500
                   AND (? IS NULL OR duration_ms <= ?)) AS good
FROM requests
WHERE started_at >= ? AND started_at < ?
  AND (? IS NULL OR route = ?)
"""

_SLO_PROBES_SQL = """
SELECT
  count(*) FILTER (WHERE checked_at >= ? AND lower(status) <> 'maintenance') AS total,
  count(*) FILTER (WHERE checked_at >= ? AND lower(status) = 'up') AS good
FROM probe_results
WHERE checked_at >= ? AND checked_at < ?
  AND (? IS NULL OR target = ?)
"""


def _good_total(
    con: duckdb.DuckDBPyConnection,
    source: str,
    since: datetime,
    end: datetime,
    latency_ms: float | None,
    subject: str | None,
) -> tuple[int, int]:
    if source == "requests":
        params = [since, since, latency_ms, latency_ms, since, end, subject, subject]
        row = con.execute(_SLO_REQUESTS_SQL, params).fetchone()
    else:
        row = con.execute(_SLO_PROBES_SQL, [since, since, since, end, subject, subject]).fetchone()
    if row is None:  # an aggregate always returns its one row
        return 0, 0
    return int(row[1] or 0), int(row[0] or 0)


def slo_status(
    con: duckdb.DuckDBPyConnection,
    end: datetime,
    objective: float = 0.999,
    period_days: int = 30,
    source: str = "requests",
    subject: str | None = None,
    latency_threshold_ms: float | None = None,
    windows: tuple[tuple[timedelta, timedelta, float], ...] = SRE_WINDOWS,
) -> SloStatus:
    """Error budget and multiwindow burn rates at `end`.

    source="requests": good = status < 500 (and duration <= latency_threshold_ms when given),
    subject = a route. source="probes": good = up checks, subject = a target.
    Burn rate = (bad / total over the window) / (1 - objective) (SRE workbook); budget
    remaining = 1 - bad / ((1 - objective) * total) over the period.
    """
    if source not in ("requests", "probes"):
        return SloStatus(objective, period_days, 0, 0, None, None, [], f"unknown source {source}")
    if not 0 < objective < 1:
        return SloStatus(
            objective, period_days, 0, 0, None, None, [], "objective must be in (0, 1)"
        )
    good, total = _good_total(
        con, source, end - timedelta(days=period_days), end, latency_threshold_ms, subject
    )
    if total == 0:
        return SloStatus(
            objective, period_days, 0, 0, None, None, [], "no events in the SLO period"
        )
    allowed = 1 - objective
    bad = total - good
    budget_left = 1 - bad / (allowed * total)

    def burn(span: timedelta) -> float | None:
        g, t = _good_total(con, source, end - span, end, latency_threshold_ms, subject)
        return None if t == 0 else ((t - g) / t) / allowed

    out = []
    for long_w, short_w, factor in windows:
        lb, sb = burn(long_w), burn(short_w)
        firing = lb is not None and sb is not None and lb > factor and sb > factor
        out.append(BurnWindow(long_w, short_w, factor, lb, sb, firing))
    return SloStatus(objective, period_days, good, total, good / total, budget_left, out)


_STARTS_SQL = """
SELECT coalesce(release, '(unknown)') AS release,
       count(*) AS starts,
       quantile_cont(startup_ms, 0.5) AS startup_p50_ms,
       quantile_cont(startup_ms, 0.95) AS startup_p95_ms,
       max(startup_ms) AS startup_max_ms,
       quantile_cont(init_ms, 0.5) AS init_p50_ms,
       quantile_cont(init_ms, 0.95) AS init_p95_ms,
       max(init_ms) AS init_max_ms,
       min(started_at) AS first_start
FROM app_starts
WHERE started_at >= ? AND started_at < ?
GROUP BY 1
ORDER BY first_start
"""


def startup_times(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> StartupReport:
    """Application start-up and initialisation time percentiles per release."""
    df = con.execute(_STARTS_SQL, [start, end]).df()
    if df.empty:
        return StartupReport(df, "no application starts in this window")
    return StartupReport(df.reset_index(drop=True))


def probe_uptime_hourly(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime
) -> pd.DataFrame:
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


def probe_status(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pd.DataFrame:
    """Per target: its kind, last check, last status and the last check's error (none when it
    is up: an old error on a probe that is up misleads), the last failure and its error, checks
    in the window, share up and latency p50/p95 (exact, over the window's raw checks)."""
    return con.execute(
        """
        SELECT target, any_value(kind) AS kind,
               max(checked_at) AS last_checked,
               arg_max(status, checked_at) AS last_status,
               arg_max_null(error, checked_at) AS last_error,
               max(checked_at) FILTER (WHERE status IN ('down', 'pending')) AS last_failure_at,
               arg_max(error, checked_at) FILTER (WHERE status IN ('down', 'pending'))
                   AS last_failure_error,
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
