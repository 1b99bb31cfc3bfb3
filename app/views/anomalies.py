"""Anomalies: pick an hourly metric, scan it for spikes, dips and level shifts, and see which
deployment preceded each one."""

from datetime import timedelta

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analysis import overview
from analysis.anomalies import DetectorConfig, detect_anomalies, label_with_deployments
from analysis.deployments import deployment_marks, deployments
from analysis.metrics import hourly_values, metrics_on
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
metrics = metrics_on("anomalies")
metric = left.selectbox(
    "Metric", list(metrics), format_func=lambda k: metrics[k].title, key="metric"
)
z = middle.number_input(
    "Spike threshold (robust z)", min_value=2.0, max_value=20.0, value=4.5, step=0.5
)
lookback = right.number_input(
    "Deployment counts if within (hours) before", min_value=1, max_value=72, value=6
)

series = hourly_values(con, metrics[metric], start, end)
scan = detect_anomalies(series, config=DetectorConfig(z_threshold=z))
deploys = deployments(con, start, end)
# deployments shortly before the window can precede its first anomalies
anomalies = label_with_deployments(
    scan.anomalies,
    deployment_marks(con, start - timedelta(hours=lookback), end),
    lookback=timedelta(hours=lookback),
)
deployed_at = deployments(con, start - timedelta(hours=lookback), end).set_index("deployment_id")[
    "created_at"
]

unit = metrics[metric].unit
frame = series.rename("value").reset_index()
figure = time_chart(
    frame, "hour", {"value": metrics[metric].title}, deploys, title=f"{unit} per hour"
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
