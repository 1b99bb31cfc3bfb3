"""Threshold rules: a catalogue metric (built-in or `[[metrics]]`) over a trailing window,
compared with a threshold, with a recovery threshold against flapping (Grafana's hysteresis:
a firing alert resolves only once the value is back past `recovery`).

    value over [t - window, t)  op  threshold        -> breach
    otherwise, value            op  recovery         -> hold (a firing alert stays firing)

With `baseline` (e.g. 7d) the value compared is its ratio to the same window that long
before: threshold 1.3 is "30 % above the same time last week", which follows the daily and
weekly rhythm of traffic where a fixed number cannot (a quiet Sunday's slow release and a busy
Monday's normal afternoon can share a p95). Windows with fewer than `min_n` facts (now or
then) are no reading at all (a p95 over three turns at night says nothing). The value is the catalogue's own (analysis.alerts.windows, which agrees with
analysis.metrics.metric_value); `by` splits the metric by a column of its table, one alert
per value (a release, a probe target).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from analysis.alerts.model import (
    Context,
    Evidence,
    Level,
    Page,
    Param,
    Reading,
    Rule,
    RuleKind,
    Timeline,
    describe_duration,
    floor_minute,
    labels_of,
    steps,
)
from analysis.alerts.windows import window_values
from analysis.metrics import Metric

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
# Where a metric's facts are explained, by what one fact is.
PAGE_OF_LEVEL: dict[str, Page] = {
    "request": "performance",
    "turn": "performance",
    "sample": "voice_quality",
    "probe": "health",
    "error": "errors",
    "call": "overview",
    "feedback": "overview",
}

PARAMS = (
    Param(
        "metric", "metric", "A metric of the catalogue (built-in or [[metrics]]).", required=True
    ),
    Param(
        "op",
        "choice",
        "Fire when the value is above (>) or below (<) the threshold.",
        ">",
        choices=tuple(OPS),
    ),
    Param(
        "threshold",
        "number",
        "The value that starts an alert, in the metric's unit.",
        required=True,
    ),
    Param(
        "recovery",
        "number",
        "A firing alert resolves only once the value is back past this (default: the threshold).",
    ),
    Param("window", "duration", "The trailing window the value is computed over.", "15m", low=60),
    Param("min_n", "integer", "Windows with fewer facts than this are ignored.", 1, low=1),
    Param(
        "by",
        "text",
        "Split by a column of the metric's table (release, target, ...): one alert per value.",
    ),
    Param(
        "baseline",
        "duration",
        "Compare with the same window this long before (e.g. 7d): threshold and recovery are "
        "then ratios (1.3: 30 % above).",
        low=3600,
    ),
)


def format_value(metric: Metric, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if metric.unit == "%":
        return f"{value:.2f} %"
    if metric.unit == "ms":
        return f"{value:,.0f} ms"
    unit = f" {metric.unit}" if metric.unit else ""
    return f"{value:,.3g}{unit}"


def metric_of(ctx: Context, rule: Rule, name: str = "metric") -> Metric:
    metric = ctx.metrics.get(str(rule.param(name)))
    if metric is None:
        raise ValueError(f"rule {rule.name!r}: unknown metric {rule.param(name)!r}")
    return metric


def evidence_for(
    metric: Metric, by: str | None, group: str | None, start: datetime, end: datetime
) -> Evidence:
    if by == "release" and group is not None:
        return Evidence(
            "benchmarks",
            f"Compare release {group} with the one before it.",
            start,
            end,
            labels_of({"bench_mode": "Two releases", "bench_candidate": group}),
        )
    if by == "target" and group is not None:
        return Evidence("health", f"Checks of {group}.", start, end)
    page = PAGE_OF_LEVEL.get(metric.level, "overview")
    return Evidence(page, f"{metric.title} over time.", start, end)


class Compared(NamedTuple):
    end: datetime
    grp: object
    n: int
    value: float
    then: float  # the baseline's value (nan without one)
    n_then: int
    compared: float  # what the threshold applies to: the value, or its ratio to `then`


def _frame(ctx: Context, rule: Rule, metric: Metric, ends: list[datetime]) -> list[Compared]:
    """Per step and group: n and value, and with a baseline the value then and the ratio."""
    window = timedelta(seconds=float(rule.param("window", 900)))
    by = rule.param("by")
    now = window_values(ctx, metric, ends, window, by)
    baseline = rule.param("baseline")
    if baseline is None:
        return [Compared(w.end, w.grp, w.n, w.value, math.nan, 0, w.value) for w in now]
    shift = timedelta(seconds=float(baseline))
    then = {
        (w.end + shift, w.grp): w
        for w in window_values(ctx, metric, [e - shift for e in ends], window, by)
    }
    out = []
    for w in now:
        before = then.get((w.end, w.grp))
        if before is not None and before.value:
            out.append(
                Compared(w.end, w.grp, w.n, w.value, before.value, before.n, w.value / before.value)
            )
    return out


def _readings(rule: Rule, metric: Metric, frame: list[Compared]) -> dict[datetime, list[Reading]]:
    compare = OPS[str(rule.param("op", ">"))]
    threshold = float(rule.param("threshold"))
    recovery = float(rule.param("recovery", threshold))
    min_n = int(rule.param("min_n", 1))
    window = timedelta(seconds=float(rule.param("window", 900)))
    by = rule.param("by")
    baseline = rule.param("baseline")
    out: dict[datetime, list[Reading]] = {}
    for end, grp, n, value, then, n_then, compared in frame:
        if n < min_n or not math.isfinite(compared):
            continue
        if baseline is not None and n_then < min_n:
            continue
        if compare(compared, threshold):
            level: Level = "breach"
        elif compare(compared, recovery):
            level = "hold"
        else:
            continue
        group = None if by is None else str(grp)
        where = "" if group is None else f" for {by} {group}"
        span = describe_duration(window.total_seconds())
        if baseline is None:
            limit = f"{rule.param('op', '>')} {format_value(metric, threshold)}"
        else:
            limit = (
                f"{compared:.2f}x its {format_value(metric, then)} {describe_duration(float(baseline))} "
                f"earlier; alert {rule.param('op', '>')} {threshold:g}x"
            )
        summary = (
            f"{metric.title}{where} is {format_value(metric, value)} over the last {span} "
            f"({limit}; {n:,} facts)."
        )
        out.setdefault(end, []).append(
            Reading(
                labels_of({} if group is None else {str(by): group}),
                level,
                float(compared),
                summary,
                evidence_for(metric, by, group, end - window, end),
            )
        )
    return out


def check(ctx: Context, rule: Rule) -> list[Reading]:
    metric = metric_of(ctx, rule)
    at = floor_minute(ctx.now)
    return _readings(rule, metric, _frame(ctx, rule, metric, [at])).get(at, [])


def history(ctx: Context, rule: Rule, start: datetime, end: datetime) -> Timeline:
    metric = metric_of(ctx, rule)
    step = timedelta(seconds=rule.every_s)
    frame = _frame(ctx, rule, metric, steps(start, end, step))
    return Timeline(step, _readings(rule, metric, frame))


def problems(params: Mapping[str, Any], metrics: Mapping[str, Metric]) -> list[str]:
    """What is inconsistent between parameters (each: '<key> <text>')."""
    out = []
    metric = metrics.get(str(params.get("metric")))
    threshold, recovery, op = params.get("threshold"), params.get("recovery"), params.get("op", ">")
    if recovery is not None and threshold is not None:
        if op in (">", ">=") and recovery > threshold:
            out.append(
                "recovery must not be above the threshold for op '>' (it is the value a firing alert must fall back to)"
            )
        if op in ("<", "<=") and recovery < threshold:
            out.append(
                "recovery must not be below the threshold for op '<' (it is the value a firing alert must climb back to)"
            )
    by = params.get("by")
    if metric is not None and by is not None:
        groups = metric.facts.groups if metric.facts is not None else ()
        if by not in groups:
            where = ", ".join(groups) or "nothing"
            out.append(f"by cannot split {metric.name!r} by {by!r} (it can be split by {where})")
    return out


def lookback(rule: Rule) -> timedelta | None:
    """The window; with a baseline the whole history (its second window lies days back, which
    the recent reader would have to widen for every rule)."""
    if rule.param("baseline") is not None:
        return None
    return timedelta(seconds=float(rule.param("window", 900)))


THRESHOLD = RuleKind(
    "threshold",
    "Threshold on a metric",
    "A catalogue metric over a trailing window above or below a threshold.",
    PARAMS,
    check,
    history,
    problems,
    lookback=lookback,
)
