"""Overview: what is firing, the headline KPIs with an honest comparison, what changed in the
period (a timeline linking to the page that explains each change), the improvement backlog,
and the hourly trend with deploys."""

from datetime import datetime

import streamlit as st

from analysis import backlog as bl
from analysis import changes, overview
from analysis import experiments as ex
from analysis.benchmarks import BenchmarkComparison, BenchmarkSettings, release_benchmarks
from analysis.benchmarks import releases as release_order
from analysis.deployments import deployments
from analysis.metrics import metric_registry
from app import data
from app.charts import show, time_chart
from app.failures import fragment
from app.safe_text import markdown_literal
from app.widgets import data_table, evidence_link, evidence_url, freshness_banner, period_picker
from collectors.alerts.summaries import firing_strip

st.title("Overview")

TONE_ICONS = {"bad": "🔴", "good": "🟢", "neutral": "⚪"}
CACHED = (
    "Computed once per hour of data (a period ends on a whole hour); the alerts above are live."
)
KIND_LABELS = {
    "incident": "Alert",
    "anomaly": "Anomaly",
    "outage": "Outage",
    "release": "Release",
    "experiment": "Experiment",
    "security": "Security",
}


def alerts_strip() -> None:
    strip = firing_strip(data.alert_store())
    if strip.firing:
        text = f"{strip.firing} alert(s) firing: {'; '.join(strip.lines)}"
        more = strip.firing - len(strip.lines)
        text += f" and {more} more." if more > 0 else "."
        (st.error if strip.critical else st.warning)(markdown_literal(text))
    elif strip.pending:
        st.caption(f"No alert is firing; {strip.pending} pending (their condition holds).")
    if (strip.firing or strip.pending) and st.button("Open Alerts", key="overview_alerts"):
        st.switch_page("views/alerts.py")


# The slow parts (release verdicts, experiment decisions) are kept for the hour: a period ends
# on a whole hour (overview.data_end), so they change when it does, not with every publish.
@st.cache_data(ttl=3600, max_entries=16, show_spinner=False)
def release_verdicts(
    folder: str, names: tuple[str, ...], end: datetime
) -> dict[str, tuple[str, str, str]]:
    return changes.release_verdicts(data.cursor(), names)


@st.cache_data(ttl=3600, max_entries=8, show_spinner=False)
def last_release(folder: str, end: datetime) -> BenchmarkComparison | None:
    con = data.cursor()
    names = [r for r, _ in release_order(con)]
    if len(names) < 2:
        return None
    report = release_benchmarks(con, BenchmarkSettings(), only=names[-1:])
    return report.comparisons[0] if report.comparisons else None


@st.cache_data(ttl=3600, max_entries=8, show_spinner=False)
def decisions(folder: str, end: datetime, revision: str) -> list[changes.Decision]:
    con = data.cursor()
    saved = list(data.control_store().experiments().values())
    plans = changes.saved_experiment_plans(
        saved, ex.discovered_experiments(con), metric_registry(data.custom_metrics())
    )
    return changes.experiment_decisions(con, plans)


def headline(con, start: datetime, end: datetime) -> None:
    head = overview.headline(con, start, end)
    for column, item in zip(st.columns(len(head.kpis)), head.kpis, strict=True):
        kpi = item.kpi
        fmt = {"%": "{:.2f} %", "ms": "{:,.0f} ms"}.get(kpi.unit, "{:.2f}")
        value = fmt.format(kpi.value) if kpi.value is not None else "n/a"
        # A change of a percentage is in percentage points, not percent.
        delta_fmt = {"%": "{:+.2f} pp", "ms": "{:+,.0f} ms"}.get(kpi.unit, "{:+.2f}")
        delta = None if item.delta is None else delta_fmt.format(item.delta)
        column.metric(
            kpi.label,
            value,
            delta,
            delta_color="normal" if kpi.higher_is_better else "inverse",
            help=kpi.reason or head.explanation,
        )
    st.caption(markdown_literal(head.explanation))
    if head.coverage < overview.COVERED:
        st.caption(
            f"This period has data for {head.coverage:.0%} of its hours: it started before the "
            "first data was collected, or collection paused."
        )


@st.cache_data(ttl=3600, max_entries=16, show_spinner="Reading what changed…")
def timeline_for(
    folder: str, start: datetime, end: datetime, revision: str
) -> tuple[changes.Timeline, list[changes.Decision]]:
    con = data.cursor()
    found = decisions(folder, end, revision)
    exposures = {f["key"]: f["first"] for f in ex.discovered_experiments(con)}
    timeline = changes.timeline(
        {
            "alerts": lambda: changes.alert_changes(
                data.alert_store().episodes(start, end), start, end
            ),
            "outages": lambda: changes.outage_changes(con, start, end),
            "anomalies": lambda: changes.anomaly_changes(con, start, end),
            "releases": lambda: changes.release_changes(
                con, start, end, verdicts=lambda names: release_verdicts(folder, tuple(names), end)
            ),
            "experiments": lambda: changes.experiment_changes(found, exposures, end),
            "security": lambda: changes.security_changes(con, start, end),
        }
    )
    return timeline, found


@st.cache_data(ttl=3600, max_entries=16, show_spinner="Ranking the backlog…")
def backlog_for(folder: str, start: datetime, end: datetime, revision: str) -> bl.Backlog:
    found = decisions(folder, end, revision)
    return bl.backlog(data.cursor(), start, end, last_release(folder, end), found)


def what_changed(timeline: changes.Timeline) -> None:
    st.subheader("What changed", help=CACHED)
    for note in timeline.notes:
        st.caption(markdown_literal(note))
    if not timeline.changes:
        st.caption("Nothing changed in this period: no alert, outage, release or detection.")
        return
    counts = {k: sum(c.kind == k for c in timeline.changes) for k in KIND_LABELS}
    st.caption(
        ", ".join(f"{KIND_LABELS[k]}: {n}" for k, n in counts.items() if n)
        + ". Newest first; each links to the page that explains it."
    )
    with st.container(height=420):
        for c in timeline.changes:
            when, what, link = st.columns([2, 8, 2])
            when.caption(f"{c.at:%a %d %b %H:%M}")
            what.markdown(
                # our own markup stays Markdown; only the text from data is made literal
                f"{TONE_ICONS.get(c.tone, '')} **{KIND_LABELS[c.kind]}** · "
                + markdown_literal(c.title)
                + ("  \n" + markdown_literal(c.detail) if c.detail else "")
            )
            with link:
                evidence_link(c.page, "Explain", dict(c.params))


def backlog(result: bl.Backlog) -> None:
    st.subheader("Improvement backlog", help=CACHED)
    for note in result.notes:
        st.caption(markdown_literal(note))
    if not result.items:
        st.caption("No problem stands out in this period.")
        return
    frame = result.frame()
    links = [evidence_url(i.page, dict(i.params)) for i in result.items]
    frame["evidence_link"] = links
    formulas = "; ".join(f"{bl.KIND_TITLES[k]}: {f}" for k, f in bl.FORMULAS.items())
    data_table(
        frame.drop(columns=["page"]),
        hide_index=True,
        width="stretch",
        height=min(420, 38 + 35 * len(frame)),
        column_config={
            "rank": st.column_config.NumberColumn("#", width="small"),
            "kind": st.column_config.TextColumn("Kind"),
            "problem": st.column_config.TextColumn("Problem", width="large"),
            "impact": st.column_config.NumberColumn(
                "Impact", help=f"Affected calls × severity. {formulas}", format="%.0f"
            ),
            "affected_calls": st.column_config.NumberColumn(
                "Affected calls", help="An estimate; see Impact.", format="%d"
            ),
            "severity": st.column_config.NumberColumn(
                "Severity", help="0 to 1: how much it spoils an affected call.", format="%.2f"
            ),
            "trend": st.column_config.TextColumn(
                "Trend", help="This period against the previous one of equal length."
            ),
            "evidence": st.column_config.TextColumn("Evidence", width="large"),
            "evidence_link": st.column_config.LinkColumn("Open", display_text="explain"),
        },
    )
    st.caption(markdown_literal(f"Impact = affected calls × severity. {formulas}."))
    if not result.compared:
        st.caption("Trends need a previous period with data; this one has none yet.")
    st.download_button(
        "Download the backlog (CSV)",
        bl.backlog_csv(result.items, links),
        "improvement-backlog.csv",
        "text/csv",
        key="backlog_csv",
    )


@fragment(run_every="30s")
def body():
    alerts_strip()
    freshness_banner()
    con = data.cursor()
    end = overview.data_end(con)
    if end is None:
        st.caption("No traffic has been collected yet.")
        return
    start, end = period_picker(end)
    headline(con, start, end)
    folder = str(data.serving_dir())
    saved = data.control_store().experiments()
    revision = ",".join(f"{k}:{e.revision}:{e.status}" for k, e in sorted(saved.items()))
    timeline, _ = timeline_for(folder, start, end, revision)
    what_changed(timeline)
    backlog(backlog_for(folder, start, end, revision))
    trend = overview.hourly_trend(con, start, end)
    deploys = deployments(con, start, end)
    show(
        time_chart(
            trend,
            "hour",
            {"p95_e2e_ms": "p95 turn latency (ms)"},
            deploys,
            title="Turn latency and errors per hour",
            secondary={"error_rate_pct": "5xx error rate (%)"},
        )
    )
    show(time_chart(trend, "hour", {"calls": "Calls per hour"}, deploys, title="Call volume"))


body()
