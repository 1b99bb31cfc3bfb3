"""Performance: route percentiles, slow requests, DB statements, resources, voice stage latency."""

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analysis import infrastructure, latency, overview, performance
from analysis.deployments import deployments
from analysis.vocabulary import STAGES
from app import data
from app.charts import show, time_chart
from app.widgets import column_label, data_table, freshness_banner, period_picker

st.title("Performance")
freshness_banner()
end = data.analysed(overview.data_end)
if end is None:
    st.caption("No data has been collected yet.")
    st.stop()
start, end = period_picker(end)
deploys = data.analysed(deployments, start, end)

st.subheader("Requests per route")
routes = data.analysed(latency.route_percentiles, start, end)
data_table(
    routes,
    hide_index=True,
    width="stretch",
    column_config={
        c: st.column_config.NumberColumn(column_label(c), format="%.1f")
        for c in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")
    }
    | {
        c: st.column_config.NumberColumn(column_label(c), format="%.2f %%")
        for c in ("error_5xx_pct", "error_4xx_pct")
    },
)
st.caption("Percentiles from hourly latency histograms (about 1 % relative error).")
hourly = data.analysed(latency.requests_hourly, start, end)
show(
    time_chart(
        hourly,
        "hour",
        {"p95_ms": "p95 request latency (ms)"},
        deploys,
        title="Request latency and volume per hour",
        secondary={"requests": "Requests per hour"},
    )
)

st.subheader("Slow requests")
threshold = st.number_input("Slower than (ms)", min_value=1, value=2000, step=100, key="slow_ms")
slow = data.analysed(
    performance.slow_requests, start, end, threshold_ms=float(threshold), limit=200
)
if slow.reason:
    st.caption(f"Slow requests: {slow.reason}.")
else:
    st.caption(f"The {len(slow.frame)} slowest requests over {threshold:,} ms (at most 200).")
    data_table(slow.frame, hide_index=True, width="stretch")

st.subheader("Database statements")
statements = data.analysed(performance.db_query_stats, start, end)
if statements.reason:
    st.caption(f"Database statements: {statements.reason}.")
else:
    data_table(
        statements.frame,
        hide_index=True,
        width="stretch",
        column_config={
            "statement": st.column_config.TextColumn("statement", width="large"),
            "share_of_time": st.column_config.ProgressColumn(
                "share of time", min_value=0.0, max_value=1.0, format="percent"
            ),
        },
    )

st.subheader("Resources")
resources = data.analysed(infrastructure.resource_usage, start, end)
if resources.reason:
    st.caption(f"Resources: {resources.reason}.")
else:
    data_table(
        resources.frame,
        hide_index=True,
        width="stretch",
        column_config={
            "share_over": st.column_config.NumberColumn(
                "share over threshold", format="percent", help="Samples above the threshold"
            )
        },
    )
    usage = data.analysed(infrastructure.resources_hourly, start, end)
    cpu = usage.pivot(index="hour", columns="host", values="cpu_pct").reset_index()
    hosts = [c for c in cpu.columns if c != "hour"]
    figure = time_chart(
        cpu, "hour", {h: h for h in hosts}, deploys, title="CPU per host (%, hourly mean)"
    )
    figure.add_hline(
        y=infrastructure.DEFAULT_RESOURCE_THRESHOLDS["cpu_pct"],
        line_dash="dot",
        line_color="#d62728",
        annotation_text="threshold",
    )
    show(figure)

st.subheader("Voice pipeline latency")
st.caption(
    "The stages overlap in time (transcription runs during the end-of-utterance wait), so "
    "each is shown on its own beside end to end, never added up."
)
stages = data.analysed(latency.stage_percentiles, start, end)
data_table(stages, hide_index=True, width="stretch")
distributions = data.analysed(latency.stage_distributions, start, end)
if not distributions.empty:
    figure = px.line(
        distributions,
        x="latency_ms",
        y="share",
        color="label",
        log_x=True,
        title="Latency distribution per stage (share of turns per histogram bucket)",
        labels={"latency_ms": "latency (ms, log scale)", "share": "share of turns", "label": ""},
    )
    figure.update_layout(height=360, legend={"orientation": "h", "y": -0.2})
    show(figure)
stage_p95 = data.analysed(latency.stage_quantile_hourly, start, end, q=0.95)
show(
    time_chart(
        stage_p95,
        "hour",
        {s: latency.STAGE_LABELS[s] for s in STAGES},
        deploys,
        title="p95 per stage per hour (ms)",
    )
)

st.subheader("What makes slow turns slow")
attribution = data.analysed(performance.slow_turn_attribution, start, end)
if attribution.reason:
    st.caption(f"Slow-turn attribution: {attribution.reason}.")
else:
    st.caption(
        f"{attribution.slow_turns:,} of {attribution.turns:,} turns are slower than their "
        f"day's p90 end to end ({attribution.threshold_ms:,.0f} ms on average). Per stage: the "
        "share of slow turns where the stage is above its own p90 of the day (about 10 % if it "
        "played no part), and the share where it is the stage furthest above its typical value."
    )
    shares = attribution.frame
    figure = go.Figure(
        [
            go.Bar(x=shares["stage"], y=shares["share_over_own_p90"], name="above its own p90"),
            go.Bar(x=shares["stage"], y=shares["share_dominant"], name="furthest above typical"),
            go.Bar(x=shares["stage"], y=shares["baseline_share"], name="above p90, all turns"),
        ]
    )
    figure.update_layout(
        barmode="group",
        height=340,
        yaxis={"tickformat": ".0%", "title": "share of slow turns"},
        legend={"orientation": "h", "y": -0.2},
    )
    show(figure)
    data_table(shares, hide_index=True, width="stretch")
