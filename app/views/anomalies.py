"""Anomalies: pick a metric (built-in or from the configuration), see its hourly values with the
band the online detector accepted as normal, the episodes it confirmed (spikes, dips, level
shifts, and whether they recovered) and the deployment that preceded each one. The verdicts are
the ones an anomaly alert rule on the same metric reaches: each hour is judged on the data up
to it."""

from datetime import timedelta

import plotly.graph_objects as go
import streamlit as st

from analysis import overview
from analysis.anomalies import (
    LEAD_IN,
    SENSITIVITY,
    SENSITIVITY_LABELS,
    anomaly_view,
    chart_title,
    episode_span,
    episodes_table,
    unit_words,
)
from analysis.deployments import deployments
from analysis.metrics import metrics_on
from app import data
from app.charts import show, time_chart
from app.widgets import data_table, freshness_banner, period_picker

# The metric the page opens on: the 5xx error rate shows an outage or a bad release at once.
DEFAULT_METRIC = "error_rate"

st.title("Anomalies")
freshness_banner()
end = data.analysed(overview.data_end)
if end is None:
    st.caption("No data has been collected yet.")
    st.stop()
start, end = period_picker(end)

left, middle, right = st.columns(3)
metrics = metrics_on("anomalies", data.custom_metrics())
names = list(metrics)
metric = left.selectbox(
    "Metric",
    names,
    index=names.index(DEFAULT_METRIC) if DEFAULT_METRIC in names else 0,
    format_func=lambda k: metrics[k].title,
    key="metric",
    bind="query-params",  # an anomaly alert's evidence links here with its metric
)
sensitivity = middle.select_slider(
    "Sensitivity",
    options=list(SENSITIVITY),
    value="normal",
    format_func=lambda k: SENSITIVITY_LABELS[k],
    key="sensitivity",
    bind="query-params",
)
lookback = right.number_input(
    "Deployment counts if within (hours) before", min_value=1, max_value=72, value=6
)
timezone = st.context.timezone or "UTC"

chosen = metrics[metric]
view = data.analysed(
    anomaly_view,
    chosen,
    start,
    end,
    timezone=timezone,
    sensitivity=sensitivity,
    deploy_lookback=timedelta(hours=lookback),
)

frame = view.frame
figure = time_chart(
    frame,
    "hour",
    {"value": chosen.title},
    data.analysed(deployments, start, end),
    title=chart_title(chosen),
)
if not frame.empty and frame["status"].ne("learning").any():
    judged = frame[frame["status"] != "learning"]
    figure.add_trace(
        go.Scatter(
            x=list(judged["hour"]) + list(judged["hour"][::-1]),
            y=list(judged["upper"]) + list(judged["lower"][::-1]),
            fill="toself",
            fillcolor="rgba(31, 119, 180, 0.12)",
            line={"width": 0},
            hoverinfo="skip",
            name="expected range",
        )
    )
last_hour = frame["hour"].max() if not frame.empty else None
for e in view.episodes:
    if view.interval is None or last_hour is None:
        break
    color = "#ff7f0e" if e.kind == "level_shift" else "#d62728"
    x1 = episode_span(e, view.interval, last_hour)
    figure.add_vrect(
        x0=max(e.start, frame["hour"].min()), x1=x1, fillcolor=color, opacity=0.15, line_width=0
    )
flagged = frame[frame["status"] == "anomalous"]
if not flagged.empty:
    figure.add_trace(
        go.Scatter(
            x=flagged["hour"],
            y=flagged["value"],
            mode="markers",
            marker={"color": "#d62728", "size": 9, "symbol": "x"},
            name="anomalous hour",
        )
    )
figure.update_layout(yaxis_title=unit_words(chosen) or chosen.title)
show(figure)

days = LEAD_IN.days
if view.reason:
    st.caption(f"Not judged: {view.reason}.")
elif not view.episodes:
    st.caption(
        f"No anomaly in this period (season: {view.season or 'none'}; the detector learnt from "
        f"the {days} days before it; time zone {timezone})."
    )
else:
    ongoing = sum(e.end is None for e in view.episodes)
    st.caption(
        f"{len(view.episodes)} anomalous episode(s), {ongoing} still going on (season: "
        f"{view.season or 'none'}; learnt from the {days} days before the period; time zone "
        f"{timezone}). Each hour is judged on the data up to it, as an alert rule would. A "
        f"deployment is named when one started within {lookback} h before the episode."
    )
    data_table(
        episodes_table(view.episodes),
        hide_index=True,
        width="stretch",
        column_config={
            c: st.column_config.NumberColumn(c, format="%.2f")
            for c in ("value", "expected", "score")
        },
    )
