"""Rules about the workbench itself, from what the collectors service reports in the control
store (not from the snapshot, which a failing publish stops updating):

- collector: a source whose last run failed, that is not responding (its run hung), or that
  has not run for `stale_after` or three of its intervals, whichever is longer.
- publish: publishing the snapshot is failing (the pages show older and older data).

They describe the present only: a replay of the past has nothing to replay them on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from analysis.alerts.model import Context, Evidence, Param, Reading, Rule, RuleKind, labels_of

COLLECTOR_PARAMS = (
    Param(
        "stale_after",
        "duration",
        "A source that has not run for this long (or three intervals) is stale.",
        "15m",
        low=60,
    ),
    Param("sources", "texts", "Sources to watch (default: every source)."),
)


def _naive(value: Any) -> datetime | None:
    """A control-store time (ISO, with offset) as naive UTC."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def _last_error(ctx: Context, source: str) -> str:
    try:
        row = ctx.con.execute(
            "SELECT error FROM collector_runs WHERE source = ? AND status = 'failed' "
            "ORDER BY run_id DESC LIMIT 1",
            [source],
        ).fetchone()
    except Exception:  # noqa: BLE001 - a snapshot with no run log yet
        return ""
    return str(row[0]) if row and row[0] else ""


def collector_check(ctx: Context, rule: Rule) -> list[Reading]:
    stale_after = float(rule.param("stale_after", 900))
    watched = set(rule.param("sources") or ctx.progress)
    evidence = Evidence("collector_status", "The source's runs and errors.", end=ctx.now)
    out = []
    for source, progress in sorted(ctx.progress.items()):
        if source not in watched:
            continue
        state = str(progress.get("state") or "")
        updated = _naive(progress.get("updated_at"))
        interval = ctx.intervals.get(source)
        limit = max(stale_after, 3 * interval) if interval else stale_after
        if state == "hung":
            problem = "hung"
            text = f"{source} is not responding: {progress.get('message') or 'its run stopped'}."
        elif state == "failed":
            problem = "failing"
            error = _last_error(ctx, source)
            text = f"{source}'s last run failed" + (f": {error}" if error else ".")
        elif (
            source in ctx.intervals
            and state != "running"
            and updated is not None
            and (ctx.now - updated).total_seconds() > limit
        ):
            problem = "stale"
            text = f"{source} has not run since {updated:%Y-%m-%d %H:%M} UTC."
        else:
            continue
        out.append(
            Reading(
                labels_of({"source": source, "problem": problem}), "breach", None, text, evidence
            )
        )
    return out


def publish_check(ctx: Context, rule: Rule) -> list[Reading]:
    failing = ctx.service.get("publish_error")
    if not failing:
        return []
    since = _naive(failing.get("since"))
    attempts = int(failing.get("attempts") or 1)
    return [
        Reading(
            (),
            "breach",
            float(attempts),
            f"Publishing the snapshot has failed {attempts} time(s) since "
            f"{since:%Y-%m-%d %H:%M} UTC: {failing.get('message')}. Pages show older data."
            if since
            else f"Publishing the snapshot is failing: {failing.get('message')}.",
            Evidence(
                "collector_status",
                "The publishing error and the service's retries.",
                since,
                ctx.now,
            ),
        )
    ]


COLLECTOR = RuleKind(
    "collector",
    "Collector failing or stale",
    "A source whose last run failed, hung, or that stopped running.",
    COLLECTOR_PARAMS,
    collector_check,
    lookback=lambda rule: timedelta(0),  # the control store, and the run log (bookkeeping)
)
PUBLISH = RuleKind(
    "publish",
    "Publishing failing",
    "The service cannot publish the snapshot the pages read.",
    (),
    publish_check,
    lookback=lambda rule: timedelta(0),
)
