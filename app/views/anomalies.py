"""Anomalies: pick an hourly metric, scan it for spikes, dips and level shifts, and see which
deployment preceded each one."""

from datetime import timedelta

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analysis import overview, page_queries
from analysis.anomalies import DetectorConfig, detect_anomalies, label_with_deployments
from app import data
from app.charts import show, time_chart
from app.widgets import data_table, freshness_banner, period_picker

st.title("Anomalies")
freshness_banner()
con = data.cursor()
end = overview.data_end(con)
if end is None:
    st.caption("No data has been collected yet.")
    st.stop()
start, end = period_picker(end)

left, middle, right = st.columns(3)
metric = left.selectbox(
    "Metric",
    list(page_queries.METRICS),
    format_func=lambda k: page_queries.METRICS[k].label,
    key="metric",
)
z = middle.number_input(
    "Spike threshold (robust z)", min_value=2.0, max_value=20.0, value=4.5, step=0.5
)
lookback = right.number_input(
    "Deployment counts if within (hours) before", min_value=1, max_value=72, value=6
)

series = page_queries.metric_series(con, metric, start, end)
scan = detect_anomalies(series, config=DetectorConfig(z_threshold=z))
deploys = overview.deployments(con, start, end)
# deployments shortly before the window can precede its first anomalies
anomalies = label_with_deployments(
    scan.anomalies,
    page_queries.deployment_marks(con, start - timedelta(hours=lookback), end),
    lookback=timedelta(hours=lookback),
)
deployed_at = page_queries.deployment_table(con, start - timedelta(hours=lookback), end).set_index(
    "deployment_id"
)["created_at"]

unit = page_queries.METRICS[metric].unit
frame = series.rename("value").reset_index()
figure = time_chart(
    frame, "hour", {"value": page_queries.METRICS[metric].label}, deploys, title=f"{unit} per hour"
)
for a in anomalies:
    color = "#ff7f0e" if a.kind == "level_shift" else "#d62728"
    figure.add_vrect(x0=a.start, x1=a.end, fillcolor=color, opacity=0.15, line_width=0)
if anomalies:
    figure.add_trace(
        go.Scatter(
            x=[a.peak for a in anomalies],
            y=[a.value for a in anomalies],
            mode="markers",
            marker={"color": "#d62728", "size": 10, "symbol": "x"},
            name="anomaly",
        )
    )
show(figure)

if scan.reason:
    st.caption(f"Not scanned: {scan.reason}.")
elif not anomalies:
    st.caption(
        f"No anomaly in this period (season: {scan.season or 'none'}, interval {scan.interval})."
    )
else:
    st.caption(
        f"{len(anomalies)} anomalous episodes (season: {scan.season or 'none'}). A deployment "
        f"is named when one started within {lookback} h before the episode's first hour."
    )
    data_table(
        pd.DataFrame(
            [
                {
                    "start": a.start,
                    "end": a.end,
                    "peak": a.peak,
                    "kind": a.kind,
                    "direction": a.direction,
                    "value": a.value,
                    "expected": a.expected,
                    "score": a.score,
                    "preceding release": a.release,
                    "deployed at": deployed_at.get(a.deployment_id),
                }
                for a in anomalies
            ]
        ),
        hide_index=True,
        width="stretch",
        column_config={
            c: st.column_config.NumberColumn(c, format="%.2f")
            for c in ("value", "expected", "score")
        },
    )
