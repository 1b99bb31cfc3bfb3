"""Feature usage: which features callers use, how often, by how many, and the daily trend."""

from datetime import timedelta

import streamlit as st

from analysis import overview, ux
from analysis.deployments import deployments
from app import data
from app.charts import show, time_chart
from app.widgets import data_table, freshness_banner, period_picker

st.title("Feature usage")
freshness_banner()
end = data.analysed(overview.data_end)
if end is None:
    st.caption("No data has been collected yet.")
    st.stop()
start, end = period_picker(end)
deploys = data.analysed(deployments, start, end)

usage = data.analysed(ux.feature_usage, start, end)
if usage.reason:
    st.caption(f"Feature usage: {usage.reason}.")
    st.stop()
data_table(
    usage.frame,
    hide_index=True,
    width="stretch",
    column_config={
        "share_of_uses": st.column_config.ProgressColumn(
            "share of uses", min_value=0.0, max_value=1.0, format="percent"
        ),
        "mean_duration_s": st.column_config.NumberColumn("mean duration (s)", format="%.1f"),
    },
)
daily = data.analysed(ux.feature_usage_daily, start, end)
features = [c for c in daily.columns if c != "day"]
chart = time_chart(daily, "day", {f: f for f in features}, deploys, title="Uses per day")
chart.update_layout(yaxis_title="uses per day", xaxis_title="day (UTC)")
partial = overview.partial_days(start, end)
for day, share in partial:  # shaded and labelled, so a partial day is not read as a drop
    chart.add_vrect(
        x0=day - timedelta(hours=12),
        x1=day + timedelta(hours=12),
        fillcolor="#8c959f",
        opacity=0.15,
        line_width=0,
        annotation_text=f"partial day ({share:.0%})",
        annotation_position="top left",
    )
show(chart)
if partial:
    st.caption(
        "Shaded days are partial: the period covers only part of them, so their counts are "
        "lower for that alone."
    )
