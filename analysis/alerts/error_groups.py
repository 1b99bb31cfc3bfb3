"""New and regressed error groups (Sentry's "new issue" and "regressed" alerts), grouped by
analysis.errors' fingerprint, the one the Errors page shows.

A group's run starts at an event with no event of the group in the `quiet_period` before it.
The run is *new* when the group was never seen before it (within `history`), *regressed*
otherwise (Sentry: an issue seen again after it went quiet). For `novel_for` after its start a
run is novel, and it breaches while it keeps happening: at least `min_events` events
(sample-corrected, as the Errors page counts them) in the trailing `window`; a firing alert holds
while the group has any event in the window (the recovery threshold). So one stray event is no
page, a new group that keeps happening is, and the alert resolves when the group stops.
A group cannot be new until the workbench has seen errors for `warmup`: before that, every
group would be.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from analysis.alerts.model import (
    Context,
    Evidence,
    Level,
    Param,
    Reading,
    Rule,
    RuleKind,
    Timeline,
    describe_duration,
    labels_of,
    steps,
)
from analysis.error_fingerprint import fingerprint, normalise_message

PARAMS = (
    Param("window", "duration", "Events are counted over this trailing window.", "15m", low=60),
    Param(
        "min_events",
        "number",
        "A novel group alerts while it has this many events (sample-corrected) in the window.",
        3,
        low=0,
    ),
    Param(
        "novel_for",
        "duration",
        "How long after its first event (or its return) a group counts as new or regressed.",
        "1d",
        low=60,
    ),
    Param(
        "quiet_period",
        "duration",
        "A group back after this long without events has regressed.",
        "7d",
        low=3600,
    ),
    Param(
        "warmup",
        "duration",
        "No group is new before the workbench has seen errors for this long.",
        "1d",
        low=0,
    ),
    Param(
        "include",
        "choice",
        "Which groups alert.",
        "new+regressed",
        choices=("new+regressed", "new", "regressed"),
    ),
    Param("history", "duration", "How far back a group is looked for.", "90d", low=86400),
)

_EVENTS_SQL = """
SELECT error_type, message, stack_trace, coalesce(release, '(unknown)') AS release, occurred_at,
       CASE WHEN sample_rate > 0 AND sample_rate <= 1 THEN 1.0 / sample_rate ELSE 1.0 END AS weight
FROM errors
WHERE occurred_at >= ? AND occurred_at < ? AND (? IS NULL OR list_contains(?, error_type))
ORDER BY occurred_at
"""
_SEEN_SQL = """
SELECT error_type, message, stack_trace, max(occurred_at) AS last_seen
FROM errors
WHERE occurred_at >= ? AND occurred_at < ? AND (? IS NULL OR list_contains(?, error_type))
GROUP BY ALL
"""


@lru_cache(maxsize=200_000)
def _fingerprint(error_type: str | None, message: str | None, stack: str | None) -> str:
    # normalising a message runs a dozen regular expressions; the same messages recur
    return fingerprint(error_type, message, stack)


@dataclass
class _Group:
    fingerprint: str
    error_type: str
    message: str
    times: list[datetime]
    weights: list[float]
    releases: list[str]

    def events_between(self, start: datetime, end: datetime) -> float:
        lo = bisect.bisect_left(self.times, start)
        hi = bisect.bisect_left(self.times, end)
        return float(sum(self.weights[lo:hi]))


def _groups(rows: Sequence[tuple[Any, ...]]) -> dict[str, _Group]:
    groups: dict[str, _Group] = {}
    for error_type, message, stack, release, at, weight in rows:
        fp = _fingerprint(error_type, message, stack)
        g = groups.get(fp)
        if g is None:
            g = groups[fp] = _Group(fp, str(error_type), str(message or ""), [], [], [])
        g.times.append(at)
        g.weights.append(float(weight))
        g.releases.append(str(release))
    return groups


def _seen_before(
    ctx: Context, types: list[str] | None, start: datetime, end: datetime
) -> dict[str, datetime]:
    """Fingerprints with events in [start, end), with their last one."""
    params = [start, end, types, types]
    out: dict[str, datetime] = {}
    for error_type, message, stack, last in ctx.con.execute(_SEEN_SQL, params).fetchall():
        fp = _fingerprint(error_type, message, stack)
        out[fp] = max(out.get(fp, last), last)
    return out


def _data_start(ctx: Context) -> datetime | None:
    key = ("errors data start",)
    if key not in ctx.memo:
        row = ctx.con.execute(
            "SELECT least((SELECT min(occurred_at) FROM errors), "
            "(SELECT min(started_at) FROM requests))"
        ).fetchone()
        ctx.memo[key] = row[0] if row else None
    start: datetime | None = ctx.memo[key]
    return start


def _run_starts(
    group: _Group, quiet: timedelta, earlier: datetime | None
) -> list[tuple[int, bool]]:
    """(index of the event that starts a run, whether the group was seen before it) for each
    run: an event with no event of the group in the quiet period before it. `earlier` is the
    group's last event before the first of `times` (None: none in the history)."""
    out = []
    previous = earlier
    seen = earlier is not None
    for i, at in enumerate(group.times):
        if previous is None or at - previous >= quiet:
            out.append((i, seen))
        previous = at
        seen = True
    return out


def _reading(
    rule: Rule, group: _Group, start: int, regressed: bool, at: datetime, events: float
) -> Reading:
    window = float(rule.param("window", 900))
    since = group.times[start]
    release = group.releases[start]
    title = normalise_message(group.message)[:160]
    what = "Regressed" if regressed else "New"
    summary = (
        f"{what} error group {group.error_type} in {release}: {title}. {events:,.0f} events "
        f"in the last {describe_duration(window)}; "
        f"{'back' if regressed else 'first seen'} at {since:%Y-%m-%d %H:%M} UTC."
    )
    level: Level = "breach" if events >= float(rule.param("min_events", 3)) else "hold"
    return Reading(
        labels_of({"fingerprint": group.fingerprint, "error_type": group.error_type}),
        level,
        events,
        summary,
        Evidence(
            "errors",
            f"The error group {group.error_type} ({group.fingerprint}).",
            since,
            at,
            labels_of({"error_group": group.fingerprint}),
        ),
    )


def _alerting(rule: Rule, regressed: bool, since: datetime, data_start: datetime | None) -> bool:
    include = str(rule.param("include", "new+regressed"))
    if regressed:
        return include != "new"
    warmup = timedelta(seconds=float(rule.param("warmup", 86400)))
    return include != "regressed" and data_start is not None and since - data_start >= warmup


def check(ctx: Context, rule: Rule) -> list[Reading]:
    window = timedelta(seconds=float(rule.param("window", 900)))
    novel_for = timedelta(seconds=float(rule.param("novel_for", 86400)))
    quiet = timedelta(seconds=float(rule.param("quiet_period", 7 * 86400)))
    history_span = timedelta(seconds=float(rule.param("history", 90 * 86400)))
    t = ctx.now
    recent = _groups(ctx.con.execute(_EVENTS_SQL, [t - window, t, None, None]).fetchall())
    # a group below min_events may still hold its firing alert
    candidates = {fp for fp, g in recent.items() if sum(g.weights) > 0}
    if not candidates:
        return []
    types = sorted({recent[fp].error_type for fp in candidates})
    lo = t - novel_for - quiet
    rows = ctx.con.execute(_EVENTS_SQL, [lo, t, types, types]).fetchall()
    groups = {fp: g for fp, g in _groups(rows).items() if fp in candidates}
    data_start = _data_start(ctx)
    out = []
    for fp, group in groups.items():
        runs = _run_starts(group, quiet, None)
        start, _ = runs[-1]
        since = group.times[start]
        if since < t - novel_for:
            continue
        earlier = _seen_before(ctx, [group.error_type], t - history_span, since - quiet)
        regressed = fp in earlier
        if _alerting(rule, regressed, since, data_start):
            out.append(
                _reading(rule, group, start, regressed, t, group.events_between(t - window, t))
            )
    return out


def history(ctx: Context, rule: Rule, start: datetime, end: datetime) -> Timeline:
    step = timedelta(seconds=rule.every_s)
    window = timedelta(seconds=float(rule.param("window", 900)))
    novel_for = timedelta(seconds=float(rule.param("novel_for", 86400)))
    quiet = timedelta(seconds=float(rule.param("quiet_period", 7 * 86400)))
    history_span = timedelta(seconds=float(rule.param("history", 90 * 86400)))
    lo = start - novel_for - quiet
    groups = _groups(ctx.con.execute(_EVENTS_SQL, [lo, end, None, None]).fetchall())
    earlier = _seen_before(ctx, None, start - history_span, lo)
    data_start = _data_start(ctx)
    out: dict[datetime, list[Reading]] = {}
    for fp, group in groups.items():
        runs = _run_starts(group, quiet, earlier.get(fp))
        for i, (first, seen) in enumerate(runs):
            since = group.times[first]
            # a run is novel until novel_for has passed or the next run starts
            until = since + novel_for
            if i + 1 < len(runs):
                until = min(until, group.times[runs[i + 1][0]])
            if until <= start or not _alerting(rule, seen, since, data_start):
                continue
            for at in steps(max(since, start), min(until, end), step):
                events = group.events_between(at - window, at)
                if events > 0:
                    out.setdefault(at, []).append(_reading(rule, group, first, seen, at, events))
    return Timeline(step, out)


ERROR_GROUP = RuleKind(
    "error_group",
    "New or regressed error group",
    "An error group seen for the first time, or again after a quiet period, that keeps happening.",
    PARAMS,
    check,
    history,
)
