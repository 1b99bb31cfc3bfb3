"""When a source runs: an interval or a cron expression, checked by the rule the service runs.

The service schedules with APScheduler (`CronTrigger.from_crontab`), so that is the one test of
a cron expression, here for the configuration file and the control store alike: an expression
either one accepts is one the service can run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# The control store refuses shorter intervals (collectors/control.py validate_schedule), so a
# file that asked for less would load and then stop the service at its first start.
MIN_INTERVAL_S = 5
# Settings every source's section accepts for its schedule.
SCHEDULE_KEYS = frozenset({"interval", "check_interval", "schedule", "run_timeout"})

ScheduleDict = dict[str, Any]  # {"kind": "interval", "seconds": 60} or {"kind": "cron", ...}


ScheduleKind = Literal["interval", "cron"]


@dataclass(frozen=True)
class Schedule:
    kind: ScheduleKind
    seconds: float | None = None
    expr: str | None = None
    # A run without a committed batch for this long is abandoned as hung (the service's
    # default when None); see collectors/service.py.
    timeout_s: int | None = None

    def as_dict(self) -> ScheduleDict:
        out: ScheduleDict
        if self.kind == "cron":
            out = {"kind": "cron", "expr": self.expr}
        else:
            out = {"kind": "interval", "seconds": self.seconds}
        if self.timeout_s is not None:
            out["timeout_s"] = self.timeout_s
        return out


def cron_problem(expr: object) -> str | None:
    """None when the service can run `expr`, else why not, in a few words."""
    if not isinstance(expr, str):
        return f"a cron expression is text, not {type(expr).__name__}"
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(expr, timezone="UTC")
    except ValueError as exc:
        return str(exc)
    return None
