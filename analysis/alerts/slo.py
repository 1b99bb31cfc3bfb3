"""SLO burn-rate rules: multiwindow, multi-burn-rate alerts (Google SRE workbook, "Alerting on
SLOs", recommended parameters), on any proportion metric of the catalogue.

The SLI is the metric's share of good facts: 1 - value for a metric whose lower value is better
(error_rate: the 5xx share of requests), value otherwise (uptime: the share of up checks).

    burn rate over w = (bad share over w) / (1 - objective)

An alert breaches when, for any pair (long, short, factor), both windows burn faster than the
factor: the long window says enough budget is gone, the short one that it is still going. A
long window that reaches back before the first data is not judged (the first minutes of a new
install, or of a replayed history, would burn on a handful of requests).
"page" is the workbook's paging pair: 2 % of a 30-day budget in 1 h (14.4) and 5 % in 6 h (6),
the same windows as the Health page (analysis.uptime.SRE_WINDOWS); "ticket" is 10 % in 3 days
(1) and in 1 day (3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from analysis.alerts.model import (
    Context,
    Evidence,
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
from analysis.alerts.threshold import metric_of
from analysis.alerts.windows import first_minute, window_values
from analysis.metrics import Metric
from analysis.uptime import SRE_WINDOWS

BurnPair = tuple[timedelta, timedelta, float]
WINDOWS: dict[str, tuple[BurnPair, ...]] = {
    "page": SRE_WINDOWS,
    "ticket": (
        (timedelta(days=1), timedelta(hours=2), 3.0),
        (timedelta(days=3), timedelta(hours=6), 1.0),
    ),
}

PARAMS = (
    Param("metric", "metric", "A proportion metric: its bad share is burned.", "error_rate"),
    Param(
        "objective", "number", "The SLO, e.g. 0.999 (99.9 % good).", 0.999, low=0.5, high=0.99999
    ),
    Param("period", "duration", "The SLO period the budget is for.", "30d", low=86400),
    Param(
        "windows",
        "choice",
        "page: 1 h/5 min at 14.4 and 6 h/30 min at 6; ticket: 1 d/2 h at 3 and 3 d/6 h at 1.",
        "page",
        choices=tuple(WINDOWS),
    ),
    Param("min_n", "integer", "The long window needs at least this many facts.", 100, low=1),
    Param("by", "text", "Split by a column of the metric's table (e.g. target for uptime)."),
)


def _bad_share(metric: Metric, value: float) -> float:
    share = value / metric.scale
    return share if metric.lower_is_better else 1.0 - share


def _burns(
    ctx: Context, rule: Rule, ends: list[datetime]
) -> tuple[Metric, dict[tuple[datetime, object], list[tuple[BurnPair, float, float, int]]]]:
    """Per (step, group): each pair with its long and short burn rates and long-window n."""
    metric = metric_of(ctx, rule)
    budget = 1.0 - float(rule.param("objective", 0.999))
    by = rule.param("by")
    out: dict[tuple[datetime, object], list[tuple[BurnPair, float, float, int]]] = {}
    spans: dict[timedelta, dict[tuple[datetime, object], tuple[float, int]]] = {}
    pairs = WINDOWS[str(rule.param("windows", "page"))]
    for span in sorted({w for pair in pairs for w in pair[:2]}, reverse=True):
        spans[span] = {
            (w.end, w.grp): (_bad_share(metric, w.value) / budget, w.n)
            for w in window_values(ctx, metric, ends, span, by)
        }
    longest = max(pair[0] for pair in pairs)
    covered = first_minute(ctx, metric, by, ends[0] - longest, ends[-1])
    for pair in pairs:
        long_w, short_w, _ = pair
        for key, (burn, n) in spans[long_w].items():
            if covered is None or key[0] - long_w < covered:
                continue  # the long window reaches back before the data: too few facts to judge
            short = spans[short_w].get(key)
            if short is not None:
                out.setdefault(key, []).append((pair, burn, short[0], n))
    return metric, out


def _readings(ctx: Context, rule: Rule, ends: list[datetime]) -> dict[datetime, list[Reading]]:
    metric, burns = _burns(ctx, rule, ends)
    min_n = int(rule.param("min_n", 100))
    objective = float(rule.param("objective", 0.999))
    period = float(rule.param("period", 30 * 86400))
    by = rule.param("by")
    out: dict[datetime, list[Reading]] = {}
    for (end, grp), found in burns.items():
        firing = [
            (pair, long, short)
            for pair, long, short, n in found
            if n >= min_n and math.isfinite(long) and long > pair[2] and short > pair[2]
        ]
        if not firing:
            continue
        (long_w, short_w, factor), long, short = max(firing, key=lambda f: f[1])
        group = None if by is None else str(grp)
        where = "" if group is None else f" ({by} {group})"
        lasts = describe_duration(period / long) if long > 0 else "forever"
        summary = (
            f"{metric.title}{where} burns the {objective:.3%} error budget {long:.1f}x as fast "
            f"as it can last over {describe_duration(long_w.total_seconds())} and {short:.1f}x "
            f"over {describe_duration(short_w.total_seconds())} (alert above {factor:g}x); at "
            f"this rate the {describe_duration(period)} budget lasts {lasts}."
        )
        page: Page = (
            "health" if metric.level == "probe" or metric.name == "error_rate" else "performance"
        )
        out.setdefault(end, []).append(
            Reading(
                labels_of({} if group is None else {str(by): group}),
                "breach",
                long,
                summary,
                Evidence(page, "The SLO and its burn rates.", end - long_w, end),
            )
        )
    return out


def check(ctx: Context, rule: Rule) -> list[Reading]:
    at = floor_minute(ctx.now)
    return _readings(ctx, rule, [at]).get(at, [])


def history(ctx: Context, rule: Rule, start: datetime, end: datetime) -> Timeline:
    step = timedelta(seconds=rule.every_s)
    return Timeline(step, _readings(ctx, rule, steps(start, end, step)))


def problems(params: Mapping[str, Any], metrics: Mapping[str, Metric]) -> list[str]:
    metric = metrics.get(str(params.get("metric", "error_rate")))
    if metric is not None and metric.type != "proportion":
        return [
            f"metric must be a proportion metric (a share of good or bad facts); {metric.name!r} is a {metric.type}"
        ]
    return []


def lookback(rule: Rule) -> timedelta:
    return max(pair[0] for pair in WINDOWS[str(rule.param("windows", "page"))])


SLO_BURN = RuleKind(
    "slo_burn",
    "SLO burn rate",
    "Multiwindow, multi-burn-rate alert on an SLO (Google SRE workbook).",
    PARAMS,
    check,
    history,
    problems,
    lookback=lookback,
)
