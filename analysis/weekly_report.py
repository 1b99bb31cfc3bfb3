"""The weekly report a stakeholder reads: the week's numbers with an honest comparison, its
incidents, what changed, the latest release's verdict, the experiments' decisions and the
improvement backlog, as one self-contained HTML page (no scripts, no network).

A week runs Monday 00:00 to Monday 00:00 UTC. Everything is computed by the functions the
pages use (analysis.overview, analysis.changes, analysis.backlog, analysis.benchmarks), so the
report and the pages agree. Every text goes through analysis.report's escaping (HTML-escaped,
no spreadsheet formula at the start of a cell).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

from analysis import backlog as bl
from analysis import changes, overview
from analysis import report as rp
from analysis.benchmarks import BenchmarkComparison, BenchmarkSettings, release_benchmarks
from analysis.benchmarks import releases as release_order

WEEK = dt.timedelta(days=7)
BACKLOG_ROWS = 10
INCIDENT_KINDS = ("incident", "outage", "security")


@dataclass(frozen=True)
class WeeklyReport:
    start: dt.datetime  # naive UTC, a Monday 00:00
    end: dt.datetime
    headline: overview.Headline
    timeline: changes.Timeline
    decisions: tuple[changes.Decision, ...]
    backlog: bl.Backlog
    release: BenchmarkComparison | None  # the latest release against the one before
    threshold: float  # the benchmark's practical threshold
    generated_at: dt.datetime

    @property
    def incidents(self) -> tuple[changes.Change, ...]:
        bad_anomalies = [
            c for c in self.timeline.changes if c.kind == "anomaly" and c.tone == "bad"
        ]
        listed = [c for c in self.timeline.changes if c.kind in INCIDENT_KINDS]
        return tuple(sorted([*listed, *bad_anomalies], key=lambda c: c.at))


def week_ending(data_end: dt.datetime) -> dt.datetime:
    """The end of the last whole week before `data_end`: the Monday 00:00 at or before it."""
    day = data_end.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - dt.timedelta(days=day.weekday())


def weekly_report(
    con: duckdb.DuckDBPyConnection,
    end: dt.datetime,
    episodes: pd.DataFrame | None = None,
    plans: Sequence[changes.ExperimentPlan] = (),
    settings: BenchmarkSettings | None = None,
    generated_at: dt.datetime | None = None,
) -> WeeklyReport:
    """The week [end - 7 days, end). `episodes` are the alert store's (AlertStore.episodes),
    `plans` the experiments to decide (analysis.changes.experiment_plans)."""
    settings = settings or BenchmarkSettings()
    start = end - WEEK
    decisions = tuple(changes.experiment_decisions(con, plans))
    starts = {p.definition.key: p.definition.start for p in plans if p.definition.start}
    parts: dict[str, Callable[[], list[changes.Change]]] = {
        "outages": lambda: changes.outage_changes(con, start, end),
        "anomalies": lambda: changes.anomaly_changes(con, start, end),
        "releases": lambda: changes.release_changes(con, start, end, settings),
        "experiments": lambda: changes.experiment_changes(decisions, starts, end),
        "security": lambda: changes.security_changes(con, start, end),
    }
    if episodes is not None:
        parts["alerts"] = lambda: changes.alert_changes(episodes, start, end)
    timeline = changes.timeline(parts)
    release = _latest_release(con, settings)
    return WeeklyReport(
        start,
        end,
        overview.headline(con, start, end),
        timeline,
        decisions,
        bl.backlog(con, start, end, release, decisions),
        release,
        settings.practical_threshold,
        generated_at or dt.datetime.now(dt.UTC).replace(tzinfo=None),
    )


def _latest_release(
    con: duckdb.DuckDBPyConnection, settings: BenchmarkSettings
) -> BenchmarkComparison | None:
    names = [r for r, _ in release_order(con)]
    if len(names) < 2:
        return None
    found = release_benchmarks(con, settings, only=names[-1:]).comparisons
    return found[0] if found else None


# ------------------------------------------------------------------------------- HTML

_e = rp.escape_cell


def _kpi_value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "ms":
        return rp.readable(value, "ms")
    return f"{value:.2f} {unit}".strip()


def _kpi_change(value: float | None, unit: str, higher_is_better: bool) -> str:
    if value is None:
        return "n/a"
    if abs(value) < 1e-12:
        return "no change"
    way = "up" if value > 0 else "down"
    good = (value > 0) == higher_is_better
    size = {"%": f"{abs(value):.2f} points", "ms": rp.readable(abs(value), "ms")}.get(
        unit, f"{abs(value):.2f} {unit}".strip()
    )
    return f"{way} {size} ({'better' if good else 'worse'})"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return '<p class="muted">None this week.</p>'
    top = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f'<td class="text">{_e(c)}</td>' for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{top}</tr>{body}</table>"


def _when(t: dt.datetime) -> str:
    return f"{t:%a %d %b %H:%M}"


def weekly_html(r: WeeklyReport) -> str:
    """The report as a self-contained page."""
    last_day = r.end - dt.timedelta(days=1)
    title = f"Weekly report: {r.start:%d %b} to {last_day:%d %b %Y}"
    kpis = [
        (
            k.kpi.label,
            _kpi_value(k.kpi.value, k.kpi.unit),
            _kpi_change(k.delta, k.kpi.unit, k.kpi.higher_is_better),
        )
        for k in r.headline.kpis
    ]
    incidents = [(_when(c.at), c.title, c.detail) for c in r.incidents]
    changed = [
        (_when(c.at), c.kind.capitalize(), c.title, c.detail)
        for c in sorted(r.timeline.changes, key=lambda c: c.at)
        if c.kind != "experiment"  # they have their own section, dated by their start
    ]
    experiments = [(d.key, d.decision, d.summary) for d in r.decisions]
    backlog = [
        (str(i + 1), item.title, f"{item.impact:,.0f}", item.trend, item.evidence)
        for i, item in enumerate(r.backlog.items[:BACKLOG_ROWS])
    ]
    if r.release is not None:
        tone, verdict = rp.plain_verdict(r.release, r.threshold)
        listed = "".join(
            f"<li>{_e(rp.key_change_sentence(row))}</li>" for row in rp.key_changes(r.release)
        )
        release = (
            f'<p class="summary {tone}">{_e(verdict)}</p>'
            + (f"<ul>{listed}</ul>" if listed else "")
            + (f'<p class="muted">{_e(r.release.adjustment)}</p>' if r.release.adjustment else "")
        )
    else:
        release = '<p class="muted">Fewer than two releases: nothing to compare.</p>'
    summary = (
        f"{len(r.incidents)} incident(s), {len(r.timeline.changes)} change(s), "
        f"{sum(d.decision in ('ship', 'stop') for d in r.decisions)} experiment(s) ready to "
        f"decide, {len(r.backlog.items)} item(s) in the improvement backlog."
    )
    notes = [*r.timeline.notes, *r.backlog.notes]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{rp.CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f'<p class="muted">Monday 00:00 to Monday 00:00 UTC. Generated '
        f"{r.generated_at:%Y-%m-%d %H:%M} UTC.</p>"
        f'<p class="summary">{_e(summary)}</p>'
        "<h2>The week in numbers</h2>"
        + _table(("Measure", "This week", "Change"), kpis)
        + f'<p class="muted">{_e(r.headline.explanation)}</p>'
        + "<h2>Incidents</h2>"
        + _table(("When (UTC)", "What", "Detail"), incidents)
        + "<h2>What changed</h2>"
        + _table(("When (UTC)", "Kind", "What", "Detail"), changed)
        + "<h2>Latest release</h2>"
        + release
        + "<h2>Experiments</h2>"
        + _table(("Experiment", "Decision", "Summary"), experiments)
        + "<h2>Improvement backlog</h2>"
        + _table(("Rank", "Problem", "Impact", "Trend", "Evidence"), backlog)
        + '<p class="muted">Impact = affected calls × severity; see the Overview page for how '
        "each kind is estimated.</p>"
        + (
            "<ul class='muted'>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"
            if notes
            else ""
        )
        + "</body></html>"
    )
