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


def forest(rows: pd.DataFrame, threshold_pct: float, interval: str) -> go.Figure:
    rows = rows.dropna(subset=["relative_change_pct"]).iloc[::-1]
    color = rows["flag"].map({"Regression": "#cf222e", "Improvement": "#1a7f37"}).fillna("#57606a")
    fig = go.Figure(
        go.Scatter(
            x=rows["relative_change_pct"],
            y=rows["name"],
            mode="markers",
            marker={"color": color, "size": 8},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": rows["relative_ci_high_pct"] - rows["relative_change_pct"],
                "arrayminus": rows["relative_change_pct"] - rows["relative_ci_low_pct"],
            },
            hovertext=rows["verdict"],
            hoverinfo="text",
        )
    )
    for x in (-threshold_pct, threshold_pct):
        fig.add_vline(x=x, line_dash="dash", line_color="#bf8700")
    fig.add_vline(x=0, line_color="#444")
    fig.update_layout(
        title=f"Relative change ({interval}); dashed: practical threshold",
        height=max(300, 18 * len(rows) + 80),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        xaxis_title="change vs baseline (%)",
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
    "Practical threshold (relative change, %)", 0.0, 100.0, 5.0, 1.0, key="bench_threshold"
)
alpha = c2.selectbox("Significance level", (0.05, 0.01, 0.1), key="bench_alpha")
equal_load = c3.checkbox(
    "Compare at equal traffic load",
    value=True,
    key="bench_equal_load",
    help="Latency rises with load. Weight both to the same mix of busy and quiet hours, so "
    "a release is not judged by when it happened to run.",
)
settings = bm.BenchmarkSettings(
    practical_threshold=threshold / 100, alpha=alpha, adjust_for_load=equal_load
)
result = comparison(int(data.manifest().get("version", 0)), baseline, candidate, settings)

records = pd.DataFrame(report.benchmark_records([result]))
if records.empty:
    st.info("Nothing to compare: one of the two has no data.")
    st.stop()
records.insert(0, "name", [r.name for r in result.rows])
regressions = result.regressions
if regressions:
    st.error(
        markdown_literal(
            f"{len(regressions)} regression{'s' if len(regressions) != 1 else ''} flagged in "
            f"{candidate.label} vs {baseline.label}: "
            + "; ".join(r.name for r in regressions[:8])
            + ("…" if len(regressions) > 8 else "")
        )
    )
else:
    st.success(
        markdown_literal(
            f"No regression: nothing in {candidate.label} got significantly worse than "
            f"{baseline.label} by more than {threshold:g} %."
        )
    )
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

show(forest(records, threshold, report.interval_label([result])))
order = records.assign(_o=records["flag"].map({"Regression": 0, "Improvement": 1}).fillna(2))
data_table(
    order.sort_values(["_o", "name"]).drop(columns=["_o", "baseline", "candidate"]),
    hide_index=True,
    width="stretch",
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
