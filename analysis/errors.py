"""Sentry-like error grouping: normalised messages and stack traces, fingerprints, releases.

Grouping follows Sentry's documented order ("Issue Grouping", docs.sentry.io: the stack trace
first, then the exception, then the message) and its normalisation
(getsentry/sentry `src/sentry/grouping/parameterization.py`: an ordered regex list replacing
emails, URLs, IPs, UUIDs, hashes, dates, durations, hex and numbers by placeholders;
`strategies/newstyle.py`: only in-app frames, filename reduced to a lowercased basename, line
numbers ignored, recursion collapsed).

fingerprint = sha1(error_type + "\\n" + in-app frames) when the trace has frames, otherwise
sha1(error_type + "\\n" + normalised message); the first 16 hex digits are kept.

Counts are corrected for client-side sampling (Sentry's `sample_rate`, the spec's
error_sample_rate): each kept event stands for 1 / sample_rate events (Horvitz-Thompson).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from analysis.error_fingerprint import (
    GROUPING_VERSION,
    SEVERITY_RANK,
    fingerprint,
    normalise_frames,
    normalise_message,
)
from analysis.first_seen import release_first_seen
from analysis.stats.frequentist import wilson_interval

__all__ = [
    "GROUPING_VERSION",
    "SEVERITY_RANK",
    "fingerprint",
    "normalise_frames",
    "normalise_message",
]

_HISTORY_SQL = """
SELECT error_type, message, stack_trace, lower(coalesce(severity, 'error')) AS severity,
       coalesce(release, '(unknown)') AS release,
       date_trunc('hour', occurred_at) AS hour,
       count(*) AS events,
       sum(CASE WHEN sample_rate > 0 AND sample_rate <= 1 THEN 1.0 / sample_rate
                ELSE 1.0 / ? END) AS estimated,
       min(occurred_at) AS first_seen, max(occurred_at) AS last_seen,
       bool_or(occurred_at >= ?) AS in_window,
       count(*) FILTER (WHERE occurred_at >= ?) AS events_in_window,
       sum(CASE WHEN occurred_at < ? THEN 0.0
                WHEN sample_rate > 0 AND sample_rate <= 1 THEN 1.0 / sample_rate
                ELSE 1.0 / ? END) AS estimated_in_window
FROM errors
WHERE occurred_at >= ? AND occurred_at < ?
  AND NOT list_contains(?, error_type)
GROUP BY ALL
"""

_DEPLOYED_SQL = """
SELECT release, min(coalesce(finished_at, created_at)) FROM deployments
WHERE release IS NOT NULL AND coalesce(upper(status), '') NOT IN ('FAILED', 'CRASHED', 'REMOVED')
GROUP BY release
"""


def release_order(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Releases in the order they went live (deployments first, else first seen in errors or
    requests, read from the rollups: analysis.first_seen)."""
    first: dict[str, datetime] = {r: t for r, t in con.execute(_DEPLOYED_SQL).fetchall() if t}
    for release, t in release_first_seen(con, ("errors", "requests")).items():
        first[release] = min(t, first.get(release, t))
    return sorted(first, key=lambda r: (first[r], r))


@dataclass(frozen=True)
class ErrorGroups:
    """One row per fingerprint with events in the window (see `error_groups`)."""

    frame: pd.DataFrame
    by_release: pd.DataFrame  # fingerprint, release, events, estimated_events (window)
    reason: str | None = None


_GROUP_COLS = [
    "fingerprint",
    "error_type",
    "title",
    "example_message",
    "frames",
    "events",
    "estimated_events",
    "first_seen",
    "last_seen",
    "first_release",
    "releases",
    "severity",
    "is_critical",
    "is_new",
    "is_regressed",
    "regression_reason",
]


def error_groups(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    critical_types: tuple[str, ...] = (),
    ignored_types: tuple[str, ...] = (),
    quiet_period: timedelta = timedelta(days=7),
    history: timedelta = timedelta(days=90),
    default_sample_rate: float = 1.0,
) -> ErrorGroups:
    """Groups with events in [start, end), with first/last seen over `history` before `end`.

    - is_new: the group's first event (within the history) falls in the window; first_release
      is the release of that event, so "new in release R" is first_release == R.
    - is_regressed: an event in the window follows a silence of at least `quiet_period`
      (hour resolution), or the group is seen in a release after being absent from the
      release before it while present in an earlier one (Sentry's "regressed" substatus).
    - is_critical: severity critical/fatal, or the type is in `critical_types`.
    - estimated_events: sum of 1 / sample_rate (rows without a valid rate use
      `default_sample_rate`).
    """
    rate = default_sample_rate if 0 < default_sample_rate <= 1 else 1.0
    params = [rate, start, start, start, rate, end - history, end, list(ignored_types)]
    hist = con.execute(_HISTORY_SQL, params).df()
    empty = ErrorGroups(pd.DataFrame(columns=_GROUP_COLS), pd.DataFrame())
    if hist.empty or not hist["in_window"].any():
        return ErrorGroups(empty.frame, empty.by_release, "no errors in this window")
    frames_of: dict[str | None, list[str]] = {}
    message_of: dict[str | None, str] = {}

    def key_of(error_type: str | None, message: str | None, stack: str | None) -> tuple[str, str]:
        # frames decide when the trace has any; the message is normalised only otherwise
        if stack not in frames_of:
            frames_of[stack] = normalise_frames(stack)
        frames = frames_of[stack]
        if frames:
            body = "\n".join(frames)
        else:
            if message not in message_of:
                message_of[message] = normalise_message(message)
            body = message_of[message]
        raw = f"{GROUPING_VERSION}\n{error_type or ''}\n{body}"
        return hashlib.sha1(raw.encode()).hexdigest()[:16], " > ".join(frames)

    keys = [
        key_of(t, m, st)
        for t, m, st in zip(hist["error_type"], hist["message"], hist["stack_trace"], strict=True)
    ]
    hist["fingerprint"] = [k[0] for k in keys]
    hist["frames"] = [k[1] for k in keys]
    order = release_order(con)
    rank = {r: i for i, r in enumerate(order)}
    crit = {t for t in critical_types}
    rows = []
    for fp, g in hist.groupby("fingerprint", sort=False):
        win = g[g["in_window"]]
        if win.empty:
            continue
        g = g.sort_values("first_seen")
        first = g.iloc[0]
        sev = max(g["severity"], key=lambda s: SEVERITY_RANK.get(s, 3))
        releases_all = sorted(set(g["release"]), key=lambda r: rank.get(r, len(rank)))
        releases_win = sorted(set(win["release"]), key=lambda r: rank.get(r, len(rank)))
        reason = _regression(g, start, quiet_period, releases_win, set(releases_all), order)
        example = win.sort_values("last_seen").iloc[-1]
        rows.append(
            [
                fp,
                first.error_type,
                normalise_message(first.message),
                example.message,
                first.frames,
                int(win["events_in_window"].sum()),
                float(win["estimated_in_window"].sum()),
                first.first_seen,
                g["last_seen"].max(),
                first.release,
                releases_win,
                sev,
                SEVERITY_RANK.get(sev, 3) >= 4 or first.error_type in crit,
                bool(first.first_seen >= start),
                reason is not None,
                reason or "",
            ]
        )
    frame = pd.DataFrame(rows, columns=_GROUP_COLS).sort_values(
        ["is_critical", "estimated_events"], ascending=[False, False]
    )
    w = hist[hist["in_window"]]
    by_release = (
        w.groupby(["fingerprint", "release"], as_index=False)
        .agg(events=("events_in_window", "sum"), estimated_events=("estimated_in_window", "sum"))
        .sort_values(["fingerprint", "release"])
    )
    return ErrorGroups(frame.reset_index(drop=True), by_release.reset_index(drop=True))


def _regression(
    g: pd.DataFrame,
    start: datetime,
    quiet_period: timedelta,
    releases_win: list[str],
    seen_in: set[str],
    order: list[str],
) -> str | None:
    hours = np.sort(g["hour"].unique())
    if len(hours) >= 2:
        gaps = np.diff(hours)
        after = hours[1:]
        quiet = (gaps >= np.timedelta64(quiet_period)) & (after >= np.datetime64(start))
        if quiet.any():
            return f"reappeared after {pd.Timedelta(gaps[quiet].max())} without events"
    for rel in releases_win:
        if rel not in order:
            continue
        i = order.index(rel)
        if i >= 2 and order[i - 1] not in seen_in and any(r in seen_in for r in order[: i - 1]):
            return f"absent in {order[i - 1]}, back in {rel}"
    return None


# Requests per release from the requests_hourly rollup when the snapshot has it (the same
# counts for the hours that start in the window; a page's window is whole hours), else from
# the requests themselves. Errors are few: they are read raw, with the sample-rate rule below.
_REQUESTS_BY_RELEASE = {
    True: """
  SELECT coalesce(release, '(unknown)') AS release, CAST(sum(n) AS BIGINT) AS requests,
         CAST(sum(n_5xx) AS BIGINT) AS http_5xx
  FROM requests_hourly WHERE hour >= ? AND hour < ? GROUP BY 1
""",
    False: """
  SELECT coalesce(release, '(unknown)') AS release, count(*) AS requests,
         count(*) FILTER (WHERE status_code >= 500) AS http_5xx
  FROM requests WHERE started_at >= ? AND started_at < ? GROUP BY 1
""",
}
_RATE_SQL = """
WITH r AS ({requests}), e AS (
  SELECT coalesce(release, '(unknown)') AS release, count(*) AS errors,
         sum(CASE WHEN sample_rate > 0 AND sample_rate <= 1 THEN 1.0 / sample_rate
                  ELSE 1.0 / ? END) AS estimated_errors
  FROM errors WHERE occurred_at >= ? AND occurred_at < ? GROUP BY 1
)
SELECT coalesce(r.release, e.release) AS release, coalesce(requests, 0) AS requests,
       coalesce(http_5xx, 0) AS http_5xx, coalesce(errors, 0) AS errors,
       coalesce(estimated_errors, 0) AS estimated_errors
FROM r FULL OUTER JOIN e ON r.release = e.release
"""


@dataclass(frozen=True)
class ErrorRates:
    frame: pd.DataFrame
    reason: str | None = None


def error_rate_by_release(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, default_sample_rate: float = 1.0
) -> ErrorRates:
    """Per release: requests, 5xx share, captured and sample-corrected errors per request.

    The 5xx share carries a Wilson 95 % interval. Requests are counted from the hourly rollup
    when the snapshot has it (the hours that start in [start, end)).
    """
    rate = default_sample_rate if 0 < default_sample_rate <= 1 else 1.0
    rollup = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'requests_hourly'"
    ).fetchone()
    sql = _RATE_SQL.replace("{requests}", _REQUESTS_BY_RELEASE[bool(rollup and rollup[0])])
    df = con.execute(sql, [start, end, rate, start, end]).df()
    if df.empty:
        return ErrorRates(df, "no requests or errors in this window")
    n = df["requests"].to_numpy(float)
    k = df["http_5xx"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        df["http_5xx_rate"] = np.where(n > 0, k / n, np.nan)
        df["errors_per_request"] = np.where(n > 0, df["estimated_errors"] / n, np.nan)
    lo, hi = wilson_interval(k, np.maximum(n, 1), alpha=0.05)
    df["http_5xx_ci_low"] = np.where(n > 0, lo, np.nan)
    df["http_5xx_ci_high"] = np.where(n > 0, hi, np.nan)
    order = {r: i for i, r in enumerate(release_order(con))}
    df["_o"] = df["release"].map(lambda r: order.get(r, len(order)))
    return ErrorRates(df.sort_values("_o").drop(columns="_o").reset_index(drop=True))


def errors_hourly(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pd.DataFrame:
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
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    group: str,
    error_type: str,
    limit: int = 100,
) -> ErrorOccurrences:
    """Events in [start, end) of the group whose fingerprint is `group`.

    Candidates are the window's events of `error_type`; each distinct (message, stack trace)
    pair is fingerprinted once, as error_groups does.
    """
    rows = con.execute(
        f"SELECT {', '.join(_OCCURRENCE_COLS)}, stack_trace FROM errors "  # noqa: S608 (fixed list)
        "WHERE occurred_at >= ? AND occurred_at < ? AND error_type = ? "
        "ORDER BY occurred_at DESC",
        [start, end, error_type],
    ).df()
    keys = {
        pair: fingerprint(error_type, pair[0], pair[1])
        for pair in set(zip(rows["message"], rows["stack_trace"], strict=True))
    }
    match = [keys[pair] == group for pair in zip(rows["message"], rows["stack_trace"], strict=True)]
    hits = rows[np.asarray(match, dtype=bool)] if len(rows) else rows
    if hits.empty:
        return ErrorOccurrences(
            pd.DataFrame(columns=_OCCURRENCE_COLS), 0, None, "no events of this group here"
        )
    traces = hits["stack_trace"].dropna()
    trace = str(traces.iloc[0]) if len(traces) else None
    frame = hits[_OCCURRENCE_COLS].head(limit).reset_index(drop=True)
    return ErrorOccurrences(frame, len(hits), trace)
