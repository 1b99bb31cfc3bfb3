"""Benchmarks: did a release (or a period) make the agent better or worse? Download the report."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analysis import benchmarks as bm
from analysis import overview, report
from analysis.deployments import deployments
from app import data
from app.charts import show, time_chart
from app.safe_text import markdown_literal, plain
from app.widgets import data_table, freshness_banner

st.title("Benchmarks")


@st.cache_data(ttl=600, show_spinner="Comparing…", max_entries=32)
def comparison(
    version: int, baseline: bm.Slice, candidate: bm.Slice, settings: bm.BenchmarkSettings
) -> bm.BenchmarkComparison:
    return bm.compare_periods(data.cursor(), baseline, candidate, settings)


def release_slices(names: list[str]) -> tuple[bm.Slice, bm.Slice]:
    c1, c2 = st.columns(2)
    baseline = c1.selectbox(
        "Baseline release",
        names,
        index=len(names) - 2,
        format_func=plain,
        key="bench_baseline",
        bind="query-params",
    )
    candidate = c2.selectbox(
        "Candidate release",
        names,
        index=len(names) - 1,
        format_func=plain,
        key="bench_candidate",
        bind="query-params",
    )
    return bm.Slice(baseline, release=baseline), bm.Slice(candidate, release=candidate)


def period_slices(end: dt.datetime) -> tuple[bm.Slice, bm.Slice]:
    last = end.date()
    c1, c2 = st.columns(2)
    base = c1.date_input(
        "Baseline period",
        (last - dt.timedelta(days=13), last - dt.timedelta(days=7)),
        key="bench_base_period",
    )
    cand = c2.date_input(
        "Candidate period", (last - dt.timedelta(days=6), last), key="bench_cand_period"
    )

    def as_slice(label: str, days) -> bm.Slice:
        first, final = (days[0], days[-1]) if days else (last, last)
        start = dt.datetime.combine(first, dt.time())
        return bm.Slice(
            label, start=start, end=dt.datetime.combine(final, dt.time()) + dt.timedelta(days=1)
        )

    return as_slice("baseline", base), as_slice("candidate", cand)


def forest(result: bm.BenchmarkComparison, threshold_pct: float, interval: str) -> go.Figure:
    """Relative change per measure; the axis stops at ±100 % and a change beyond it is an
    arrow at the edge labelled with its value, so one huge change does not squash the rest."""
    points = pd.DataFrame(report.chart_points(result.rows)).iloc[::-1]
    colors = {"Regression": "#cf222e", "Improvement": "#1a7f37"}
    color = points["flag"].map(colors).fillna("#57606a")
    pct = points[["rel", "lo", "hi"]].astype(float) * 100
    fig = go.Figure(
        go.Scatter(
            x=pct["rel"],
            y=points["title"],
            mode="markers+text",
            marker={
                "color": color,
                "size": [14 if c else 8 for c in points["clipped"]],
                "symbol": [
                    ("triangle-right" if r > 0 else "triangle-left") if c else "circle"
                    for c, r in zip(points["clipped"], points["rel"], strict=True)
                ],
            },
            text=[
                f"off scale: {t}" if c else ""
                for c, t in zip(points["clipped"], points["label"], strict=True)
            ],
            textposition="middle left",
            error_x={
                "type": "data",
                "symmetric": False,
                "array": (pct["hi"] - pct["rel"]).fillna(0),
                "arrayminus": (pct["rel"] - pct["lo"]).fillna(0),
            },
            hovertext=points["verdict"],
            hoverinfo="text",
        )
    )
    for x in (-threshold_pct, threshold_pct):
        fig.add_vline(x=x, line_dash="dash", line_color="#bf8700")
    fig.add_vline(x=0, line_color="#444")
    fig.update_layout(
        title=f"Relative change per measure ({interval}); dashed: practical threshold",
        height=max(300, 18 * len(points) + 80),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        xaxis_title="change against the baseline (%), axis cut at ±100 %",
        yaxis_title=None,
    )
    return fig


freshness_banner()
con = data.cursor()
end = overview.data_end(con)
names = [r for r, _ in bm.releases(con)]
if end is None or not names:
    st.info("No traffic has been collected yet: benchmarks need at least some calls.")
    st.stop()

mode = st.radio(
    "Compare",
    ("Two releases", "Two periods"),
    horizontal=True,
    key="bench_mode",
    bind="query-params",
)
if mode == "Two releases" and len(names) < 2:
    st.info("Only one release so far: compare two periods instead.")
    st.stop()
baseline, candidate = release_slices(names) if mode == "Two releases" else period_slices(end)
c1, c2, c3 = st.columns(3)
threshold = c1.number_input(
    "Practical threshold (relative change, %)",
    0.0,
    100.0,
    5.0,
    1.0,
    key="bench_threshold",
    help="Changes smaller than this are reported but not flagged: a real but tiny change "
    "is not worth an alarm.",
)
alpha = c2.selectbox(
    "Significance level",
    (0.05, 0.01, 0.1),
    key="bench_alpha",
    help="How sure a change must be before it is flagged: at 0.05, when a release changed "
    "nothing, at most one comparison in twenty flags anything by chance (the level holds for "
    "all measures together: Holm's correction).",
)
equal_load = c3.checkbox(
    "Compare at equal traffic load",
    value=True,
    key="bench_equal_load",
    help="Latency rises with load. Weight both to the same mix of busy and quiet hours, so "
    "a release is not judged by when it happened to run.",
)
without_outages = st.checkbox(
    "Leave out the hours of dependency outages",
    value=True,
    key="bench_without_outages",
    help="An outage raises the error rate of the release that was live during it; the release "
    "after it would be credited with the outage ending. Both releases are compared without "
    "those hours.",
)
settings = bm.BenchmarkSettings(
    practical_threshold=threshold / 100,
    alpha=alpha,
    adjust_for_load=equal_load,
    exclude_outages=without_outages,
)
result = comparison(int(data.manifest().get("version", 0)), baseline, candidate, settings)

if not result.rows:
    st.info("Nothing to compare: one of the two has no data.")
    st.stop()
tone, verdict = report.plain_verdict(result, settings.practical_threshold)
{"bad": st.error, "good": st.success}.get(tone, st.info)(markdown_literal(verdict))
for row in report.key_changes(result):
    st.markdown("- " + markdown_literal(report.key_change_sentence(row)))
if result.adjustment:
    st.caption(markdown_literal(result.adjustment))
if equal_load and min(result.kept) < bm.LOW_COVERAGE:
    st.warning(
        f"Much of one slice ran at loads the other never saw: only {min(result.kept):.0%} of "
        "it could be compared at equal load. Compare longer periods for a fuller picture."
    )
mix = bm.traffic_mix(con, baseline, candidate)
if not equal_load and mix.confounded:
    st.warning(
        markdown_literal(
            f"{candidate.label} and {baseline.label} ran at different times of day (their calls' "
            f"hour-of-day mix differs by {mix.distance:.0%}). Latency rises with load, so latency "
            "changes may come from when each ran rather than from the release: tick "
            "'Compare at equal traffic load'."
        )
    )

show(forest(result, threshold, report.interval_label([result])))
data_table(
    pd.DataFrame(report.readable_rows(result)),
    hide_index=True,
    width="stretch",
    column_config={
        "Change": st.column_config.TextColumn(help="Rates change in percentage points."),
        "Interval": st.column_config.TextColumn(
            help=f"Of the relative change: {report.interval_label([result])}."
        ),
    },
)

html_report = report.benchmark_html(
    [result], settings, title=f"Benchmark: {candidate.label} vs {baseline.label}"
)
c1, c2 = st.columns(2)
c1.download_button(
    "Download report (HTML)", html_report, "benchmark.html", "text/html", key="bench_html"
)
c2.download_button(
    "Download table (CSV)", report.benchmark_csv([result]), "benchmark.csv", "text/csv",
    key="bench_csv",
)  # fmt: skip

span_start = end - dt.timedelta(days=30)
trend = overview.hourly_trend(con, span_start, end)
show(
    time_chart(
        trend,
        "hour",
        {"p95_e2e_ms": "p95 turn latency (ms)"},
        deployments(con, span_start, end),
        title="Turn latency per hour, with releases",
        secondary={"error_rate_pct": "5xx error rate (%)"},
    )
)
