"""Security detections over auth_events and requests.

Each detector returns `Detections`: a list of `Detection(kind, entity, start, end, count,
evidence)` where evidence is a DataFrame of the rows that triggered it.

- Failed logins per account and per IP (OWASP Authentication Cheat Sheet: count per account,
  and separately per IP) in a sliding window: a fail2ban-style rule, "banned if it has
  generated maxretry during the last findtime" (fail2ban `config/jail.conf`). Defaults are the
  spec's `max_failed_logins = 5` and `failed_login_window = 300` s. Overlapping windows merge
  into one episode.
- Credential stuffing (OWASP Credential Stuffing Prevention Cheat Sheet; OAT-008): one IP
  failing against many distinct accounts in a short sliding window (default >= 20 accounts in
  10 min, the starting point in reference/monitoring_peers.md section 4).
- Password spraying (same cheat sheet): one IP trying many accounts, each only a few times,
  slowly: in a tumbling window (default 1 h) an IP fails on >= `min_accounts` accounts with at
  most `max_attempts_per_account` attempts on average, and never reaches the stuffing rate.
- Rate-limit violations: requests per IP per route in fixed windows (slowapi's default
  strategy, `limits` fixed-window: one counter per window) over the configured limit.
- Black-listed IPs: any activity from the spec's `ip_blacklist`; `ip_whitelist` IPs are left
  out of every detector.
- API usage far outside the entity's own history: modified z-score of daily request counts,
  0.6745 (x - median) / MAD over the entity's previous days (Iglewicz & Hoaglin, 1993;
  threshold 3.5), with a floor on the MAD so quantised counts cannot make it zero.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import duckdb
import numpy as np
import pandas as pd

# What a detection found, one per detector (failed logins counted per account and per IP).
Kind = Literal[
    "failed_logins_account",
    "failed_logins_ip",
    "credential_stuffing",
    "password_spraying",
    "rate_limit",
    "blacklisted_ip",
    "api_usage_spike",
]


@dataclass(frozen=True)
class Detection:
    kind: Kind
    entity: str
    start: datetime
    end: datetime
    count: int
    evidence: pd.DataFrame = field(repr=False)
    detail: str = ""


@dataclass(frozen=True)
class Detections:
    items: list[Detection]
    reason: str | None = None

    def frame(self) -> pd.DataFrame:
        cols = ["kind", "entity", "start", "end", "count", "detail"]
        return pd.DataFrame([[getattr(d, c) for c in cols] for d in self.items], columns=cols)


_ATTEMPTS_SQL = """
SELECT event_id, occurred_at, event_type, success, user_id, ip, user_agent, path
FROM auth_events
WHERE occurred_at >= ? AND occurred_at < ?
  AND lower(event_type) <> 'logout'
  AND NOT list_contains(?, coalesce(ip, ''))
ORDER BY occurred_at
"""


def _attempts(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, whitelist: tuple[str, ...]
) -> pd.DataFrame:
    df = con.execute(_ATTEMPTS_SQL, [start, end, list(whitelist or [])]).df()
    return df.drop_duplicates("event_id")


def _failed(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["success"].eq(False)]


def _ns(ts: pd.Series) -> np.ndarray:
    return ts.to_numpy("datetime64[ns]").astype("int64")


def _episodes(t: np.ndarray, lo: np.ndarray, flagged: np.ndarray) -> list[tuple[int, int]]:
    """Merge the flagged windows [lo[i], i] (indices into sorted events) into episodes."""
    out: list[list[int]] = []
    for i in np.flatnonzero(flagged):
        a = int(lo[i])
        if out and a <= out[-1][1]:
            out[-1][1] = int(i)
        else:
            out.append([a, int(i)])
    return [(a, b) for a, b in out]


def failed_login_bursts(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    by: str = "user_id",
    max_failed_logins: int = 5,
    failed_login_window_s: float = 300,
    whitelist: tuple[str, ...] = (),
) -> Detections:
    """Episodes where an account (by="user_id") or an IP (by="ip") reached the failure limit.

    A failure at time t is flagged when the failures in (t - window, t] number at least
    `max_failed_logins`; the flagged windows of an entity merge into one episode.
    """
    if by not in ("user_id", "ip"):
        return Detections([], f"cannot count failed logins by {by!r}")
    failed = _failed(_attempts(con, start, end, whitelist))
    failed = failed[failed[by].notna()]
    if failed.empty:
        return Detections([], "no failed logins in this window")
    kind: Kind = "failed_logins_account" if by == "user_id" else "failed_logins_ip"
    window = int(failed_login_window_s * 1e9)
    found = []
    for entity, g in failed.groupby(by, sort=True):
        if len(g) < max_failed_logins:
            continue
        g = g.sort_values("occurred_at").reset_index(drop=True)
        t = _ns(g["occurred_at"])
        lo = np.searchsorted(t, t - window, side="right")
        flagged = (np.arange(len(t)) - lo + 1) >= max_failed_logins
        for a, b in _episodes(t, lo, flagged):
            ev = g.iloc[a : b + 1]
            other = "ip" if by == "user_id" else "user_id"
            found.append(
                Detection(
                    kind,
                    str(entity),
                    ev["occurred_at"].iloc[0].to_pydatetime(),
                    ev["occurred_at"].iloc[-1].to_pydatetime(),
                    len(ev),
                    ev,
                    f"{len(ev)} failed logins; {ev[other].nunique()} distinct {other}",
                )
            )
    return Detections(found, None if found else "no entity reached the failed-login limit")


def _peak_distinct(users: list[str], t: np.ndarray, window: float) -> tuple[np.ndarray, np.ndarray]:
    """Distinct users in (t_i - window, t_i] for each i (two pointers), and the window starts."""
    counts = np.zeros(len(t), dtype=np.int64)
    lo = np.zeros(len(t), dtype=np.int64)
    seen: Counter[str] = Counter()
    j = 0
    for i in range(len(t)):
        seen[users[i]] += 1
        while t[j] <= t[i] - window:
            seen[users[j]] -= 1
            if seen[users[j]] == 0:
                del seen[users[j]]
            j += 1
        counts[i], lo[i] = len(seen), j
    return counts, lo


def credential_stuffing(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    min_accounts: int = 20,
    window_s: float = 600,
    whitelist: tuple[str, ...] = (),
) -> Detections:
    """One IP failing against at least `min_accounts` distinct accounts within `window_s`.

    Evidence holds every attempt from that IP during the episode, successes included: a
    success among them is an account that was probably taken over.
    """
    attempts = _attempts(con, start, end, whitelist)
    failed = _failed(attempts)
    failed = failed[failed["ip"].notna() & failed["user_id"].notna()]
    if failed.empty:
        return Detections([], "no failed logins in this window")
    window = int(window_s * 1e9)
    found = []
    for ip, g in failed.groupby("ip", sort=True):
        if g["user_id"].nunique() < min_accounts:
            continue
        g = g.sort_values("occurred_at").reset_index(drop=True)
        t = _ns(g["occurred_at"])
        distinct, lo = _peak_distinct(list(g["user_id"]), t, window)
        for a, b in _episodes(t, lo, distinct >= min_accounts):
            s, e = g["occurred_at"].iloc[a], g["occurred_at"].iloc[b]
            ev = attempts[(attempts["ip"] == ip) & attempts["occurred_at"].between(s, e)]
            ok = sorted(ev.loc[ev["success"].eq(True), "user_id"].dropna().unique())
            accounts = g.iloc[a : b + 1]["user_id"].nunique()
            found.append(
                Detection(
                    "credential_stuffing",
                    str(ip),
                    s.to_pydatetime(),
                    e.to_pydatetime(),
                    int(accounts),
                    ev.reset_index(drop=True),
                    f"{accounts} accounts, {b - a + 1} failures, {len(ok)} successful logins"
                    + (f": {', '.join(map(str, ok[:10]))}" if ok else ""),
                )
            )
    return Detections(found, None if found else "no IP tried that many accounts that fast")


def password_spraying(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    min_accounts: int = 10,
    max_attempts_per_account: float = 2.0,
    window_s: float = 3600,
    stuffing_accounts: int = 20,
    stuffing_window_s: float = 600,
    whitelist: tuple[str, ...] = (),
) -> Detections:
    """Low-and-slow: many accounts, few attempts each, from one IP, below the stuffing rate."""
    failed = _failed(_attempts(con, start, end, whitelist))
    failed = failed[failed["ip"].notna() & failed["user_id"].notna()].copy()
    if failed.empty:
        return Detections([], "no failed logins in this window")
    step = pd.Timedelta(seconds=window_s)
    failed["bucket"] = failed["occurred_at"].dt.floor(step)
    found = []
    for (ip, _), g in failed.groupby(["ip", "bucket"], sort=True):
        accounts = g["user_id"].nunique()
        if accounts < min_accounts or len(g) / accounts > max_attempts_per_account:
            continue
        g = g.sort_values("occurred_at").reset_index(drop=True)
        peak, _ = _peak_distinct(list(g["user_id"]), _ns(g["occurred_at"]), stuffing_window_s * 1e9)
        if peak.max() >= stuffing_accounts:
            continue  # that is credential stuffing, reported by its own detector
        found.append(
            Detection(
                "password_spraying",
                str(ip),
                g["occurred_at"].iloc[0].to_pydatetime(),
                g["occurred_at"].iloc[-1].to_pydatetime(),
                int(accounts),
                g.drop(columns="bucket"),
                f"{accounts} accounts, {len(g) / accounts:.1f} attempts each",
            )
        )
    return Detections(found, None if found else "no spraying pattern found")


_RATE_SQL = """
SELECT ip, route, time_bucket(to_seconds(?), started_at) AS window_start,
       count(*) AS requests, min(started_at) AS first_at, max(started_at) AS last_at
FROM requests
WHERE started_at >= ? AND started_at < ? AND ip IS NOT NULL
  AND (? = '*' OR route = ?)
  AND NOT list_contains(?, ip)
GROUP BY ip, route, window_start
HAVING count(*) > ?
ORDER BY ip, route, window_start
"""


def _limit(spec: Mapping[str, float] | tuple[float, float]) -> tuple[int, float]:
    if isinstance(spec, dict):
        return int(spec["limit"]), float(spec["window"])
    limit, window = spec
    return int(limit), float(window)


def rate_limit_violations(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    rate_limits: Mapping[str, Mapping[str, float] | tuple[float, float]],
    whitelist: tuple[str, ...] = (),
) -> Detections:
    """Fixed windows where one IP exceeded a route's limit; consecutive windows merge.

    `rate_limits` is the spec's mapping {route: {"limit": 10, "window": 60}} (or a
    (limit, window_s) tuple); the route "*" applies the limit to every route separately.
    """
    found = []
    for path, spec in (rate_limits or {}).items():
        try:
            limit, window = _limit(spec)
        except (KeyError, TypeError, ValueError):
            continue
        params = [window, start, end, path, path, list(whitelist or []), limit]
        df = con.execute(_RATE_SQL, params).df()
        for (ip, route), g in df.groupby(["ip", "route"], sort=True):
            w = g["window_start"]
            gap = w.diff() != pd.Timedelta(seconds=window)
            for _, run in g.groupby(gap.cumsum()):
                found.append(
                    Detection(
                        "rate_limit",
                        str(ip),
                        run["first_at"].iloc[0].to_pydatetime(),
                        run["last_at"].iloc[-1].to_pydatetime(),
                        int(run["requests"].sum()),
                        run.reset_index(drop=True),
                        f"{route}: up to {int(run['requests'].max())} requests per "
                        f"{window:g} s (limit {limit})",
                    )
                )
    return Detections(found, None if found else "no rate limit was exceeded")


_BLACKLIST_SQL = """
SELECT 'request' AS source, started_at AS occurred_at, ip, user_id, route AS path,
       CAST(status_code AS VARCHAR) AS detail
FROM requests WHERE started_at >= ? AND started_at < ? AND list_contains(?, ip)
UNION ALL
SELECT 'auth', occurred_at, ip, user_id, path,
       event_type || CASE WHEN success THEN ' ok' ELSE ' failed' END
FROM auth_events WHERE occurred_at >= ? AND occurred_at < ? AND list_contains(?, ip)
UNION ALL
SELECT 'security', occurred_at, ip, user_id, path, event_type
FROM security_events WHERE occurred_at >= ? AND occurred_at < ? AND list_contains(?, ip)
ORDER BY occurred_at
"""


def blacklisted_ip_activity(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, blacklist: tuple[str, ...] = ()
) -> Detections:
    """Every request, auth attempt and security event from a black-listed IP, per IP."""
    if not blacklist:
        return Detections([], "no IPs are black-listed")
    bl = list(blacklist)
    df = con.execute(_BLACKLIST_SQL, [start, end, bl] * 3).df()
    found = []
    for ip, g in df.groupby("ip", sort=True):
        found.append(
            Detection(
                "blacklisted_ip",
                str(ip),
                g["occurred_at"].iloc[0].to_pydatetime(),
                g["occurred_at"].iloc[-1].to_pydatetime(),
                len(g),
                g.reset_index(drop=True),
                ", ".join(f"{k}: {v}" for k, v in g["source"].value_counts().items()),
            )
        )
    return Detections(found, None if found else "no activity from black-listed IPs")


_DAILY_SQL = """
SELECT CAST(date_trunc('day', started_at) AS TIMESTAMP) AS day, {entity} AS entity,
       count(*) AS requests
FROM requests
WHERE started_at >= ? AND started_at < ? AND {entity} IS NOT NULL
  AND NOT list_contains(?, coalesce(ip, ''))
GROUP BY ALL
"""
_DAILY_QUERIES = {e: _DAILY_SQL.replace("{entity}", e) for e in ("user_id", "ip")}
_HOURLY_SQL = """
SELECT date_trunc('hour', started_at) AS hour, route, count(*) AS requests
FROM requests
WHERE started_at >= ? AND started_at < ? AND {entity} = ?
GROUP BY ALL ORDER BY hour, requests DESC
"""
_HOURLY_QUERIES = {e: _HOURLY_SQL.replace("{entity}", e) for e in ("user_id", "ip")}


def api_usage_anomalies(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    by: str = "user_id",
    history_days: int = 28,
    min_history_days: int = 7,
    z_threshold: float = 3.5,
    min_requests: int = 50,
    whitelist: tuple[str, ...] = (),
) -> Detections:
    """Days in [start, end) when an entity's request count is far above its own past.

    For each day, the baseline is the entity's counts over the previous `history_days` days
    (days without requests after its first request count as 0). z = 0.6745 (x - median) / MAD,
    with the MAD floored at max(1, 0.6745 * sqrt(median)), about the MAD of a Poisson count
    with that median. A day is flagged when z > z_threshold and x >= min_requests. Entities
    seen on fewer than `min_history_days` earlier days are skipped: no past to compare with.
    start/end are the hours of that day above twice the day's flat hourly rate (the whole day
    when no hour stands out); evidence is the day's hourly counts per route.
    """
    if by not in _DAILY_QUERIES:
        return Detections([], f"cannot profile API usage by {by!r}")
    day0 = pd.Timestamp(start).floor("D")
    hist_start = (day0 - pd.Timedelta(days=history_days)).to_pydatetime()
    df = con.execute(_DAILY_QUERIES[by], [hist_start, end, list(whitelist or [])]).df()
    if df.empty:
        return Detections([], "no requests in this window")
    m = df.pivot_table(index="entity", columns="day", values="requests", aggfunc="sum")
    days = pd.date_range(m.columns.min(), m.columns.max(), freq="D")
    m = m.reindex(columns=days)
    x = m.to_numpy(float)
    seen = np.cumsum(~np.isnan(x), axis=1) > 0
    x = np.where(seen, np.nan_to_num(x), np.nan)  # zeros after first appearance only
    found = []
    for k, day in enumerate(days):
        if day < day0 or day >= pd.Timestamp(end):
            continue
        base = x[:, max(0, k - history_days) : k]
        n_hist = np.sum(~np.isnan(base), axis=1)
        ok = n_hist >= min_history_days
        if not ok.any():
            continue
        with np.errstate(all="ignore"):
            med = np.nanmedian(base[ok], axis=1)
            mad = np.nanmedian(np.abs(base[ok] - med[:, None]), axis=1)
        # floor: a count process has spread about sqrt(mean); never let MAD fall below
        # the MAD of a Poisson with that median (~0.6745 sqrt(median)) or below 1 request
        mad = np.maximum(mad, np.maximum(1.0, 0.6745 * np.sqrt(med)))
        z = 0.6745 * (x[ok, k] - med) / mad
        hit = (z > z_threshold) & (x[ok, k] >= min_requests)
        for idx in np.flatnonzero(hit):
            row = np.flatnonzero(ok)[idx]
            entity = str(m.index[row])
            d0 = day.to_pydatetime()
            ev = con.execute(_HOURLY_QUERIES[by], [d0, d0 + timedelta(days=1), entity]).df()
            hourly = ev.groupby("hour")["requests"].sum()
            busy = hourly[hourly > 2 * hourly.sum() / 24]
            busy = busy if len(busy) else hourly
            found.append(
                Detection(
                    "api_usage_spike",
                    entity,
                    busy.index.min().to_pydatetime(),
                    (busy.index.max() + pd.Timedelta(hours=1)).to_pydatetime(),
                    int(x[row, k]),
                    ev,
                    f"{int(x[row, k])} requests on {day.date()} vs median {med[idx]:.0f} "
                    f"(robust z {z[idx]:.1f})",
                )
            )
    return Detections(found, None if found else "no usage far outside its own history")


def security_event_summary(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime
) -> pd.DataFrame:
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


def auth_failures_hourly(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime
) -> pd.DataFrame:
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
