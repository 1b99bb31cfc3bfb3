"""Probe-down rules: a dependency whose latest check is `down`.

The probes apply Uptime Kuma's retries when they record a check (analysis/uptime.py): failed
checks are `pending` until the retries are spent, then `down`. So a target breaches exactly
while its latest check is `down`; a pending check is the probe still retrying, and no alert.
A target with no check within `stale` is no reading (the Collectors page says why).
Flapping (down, up, down...) is one alert, not one per flap: give the rule keep_firing_for.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from analysis.alerts.model import (
    Context,
    Evidence,
    Param,
    Reading,
    Rule,
    RuleKind,
    Timeline,
    labels_of,
    steps,
)

PARAMS = (
    Param("targets", "texts", "Probe targets to watch (default: every target)."),
    Param("stale", "duration", "A check older than this is no reading.", "10m", low=60),
)

_LATEST_SQL = """
SELECT target, arg_max(status, checked_at) AS status, max(checked_at) AS checked_at,
       arg_max(error, checked_at) AS error,
       count(*) FILTER (WHERE status IN ('down', 'pending')) AS failed
FROM probe_results
WHERE checked_at > ? AND checked_at <= ? AND (? IS NULL OR list_contains(?, target))
GROUP BY target
"""
_DOWN_SQL = """
WITH c AS (
  SELECT target, checked_at, status, error,
         lead(checked_at) OVER (PARTITION BY target ORDER BY checked_at) AS next_at
  FROM probe_results
  WHERE checked_at > ? AND checked_at < ? AND (? IS NULL OR list_contains(?, target))
)
SELECT target, checked_at, next_at, error FROM c WHERE status = 'down' ORDER BY checked_at
"""


def _targets(rule: Rule) -> list[object]:
    targets = rule.param("targets")
    return [None, None] if not targets else [list(targets), list(targets)]


def _reading(target: str, error: object, at: datetime) -> Reading:
    missing = error is None or (isinstance(error, float) and math.isnan(error))
    cause = "no error recorded" if missing else str(error)
    return Reading(
        labels_of({"target": target}),
        "breach",
        1.0,
        f"{target} is down: its probe confirmed the failure after its retries ({cause}).",
        Evidence(
            "health",
            f"Uptime and incidents of {target}.",
            at - timedelta(hours=1),
            at,
        ),
    )


def check(ctx: Context, rule: Rule) -> list[Reading]:
    stale = timedelta(seconds=float(rule.param("stale", 600)))
    rows = ctx.con.execute(_LATEST_SQL, [ctx.now - stale, ctx.now, *_targets(rule)]).fetchall()
    return [
        _reading(str(target), error, ctx.now)
        for target, status, _at, error, _failed in rows
        if str(status).lower() == "down"
    ]


def history(ctx: Context, rule: Rule, start: datetime, end: datetime) -> Timeline:
    """Each `down` check holds from its time to the next check (or until stale)."""
    step = timedelta(seconds=rule.every_s)
    stale = timedelta(seconds=float(rule.param("stale", 600)))
    rows = ctx.con.execute(_DOWN_SQL, [start - stale, end, *_targets(rule)]).fetchall()
    out: dict[datetime, list[Reading]] = {}
    for target, checked_at, next_at, error in rows:
        until = checked_at + stale if next_at is None else min(next_at, checked_at + stale)
        for at in steps(max(checked_at, start), min(until, end), step):
            out.setdefault(at, []).append(_reading(str(target), error, at))
    return Timeline(step, out)


PROBE_DOWN = RuleKind(
    "probe_down",
    "Dependency down",
    "A probe target whose latest check is down (after its retries).",
    PARAMS,
    check,
    history,
    lookback=lambda rule: timedelta(seconds=float(rule.param("stale", 600))),
)
