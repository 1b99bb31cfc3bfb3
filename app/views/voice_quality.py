"""Voice quality: E-model R and MOS beside the reported MOS, trends, worst segments."""

import streamlit as st

from analysis import overview, voice_quality
from analysis.deployments import deployments
from app import data
from app.charts import show, time_chart
from app.widgets import data_table, freshness_banner, period_picker

st.title("Voice quality")
freshness_banner()
end = data.analysed(overview.data_end)
if end is None:
    st.caption("No data has been collected yet.")
    st.stop()
start, end = period_picker(end)
deploys = data.analysed(deployments, start, end)

grain = st.radio("Resolution", ["hour", "day"], horizontal=True, key="grain")
trend = data.analysed(voice_quality.quality_trend, start, end, grain=grain)
if trend.reason:
    st.caption(f"Voice quality: {trend.reason}.")
    st.stop()
frame = trend.frame
latest = frame.iloc[-1]
a, b, c, d = st.columns(4)
a.metric(f"E-model R (last {grain})", f"{latest['r']:.1f}")
b.metric(f"Estimated MOS (last {grain})", f"{latest['mos_estimated']:.2f}")
c.metric(f"Reported MOS (last {grain})", f"{latest['mos_reported']:.2f}")
d.metric(
    f"Poor calls (last {grain})", f"{latest['poor_share'] * 100:.1f} %", help="Estimated MOS < 3.5"
)
show(
    time_chart(
        frame,
        "period",
        {"mos_estimated": "MOS estimated (E-model)", "mos_reported": "MOS reported"},
        deploys,
        title="MOS: ITU-T G.107 estimate from network figures beside the reported MOS",
        secondary={"r": "R factor (right axis)"},
    )
)
show(
    time_chart(
        frame,
        "period",
        {"latency_ms": "Latency (ms)", "jitter_ms": "Jitter (ms)"},
        deploys,
        title="Network: one-way latency, jitter and packet loss",
        secondary={"packet_loss_pct": "Packet loss (%, right axis)"},
    )
)
st.caption(
    "R = Ro - Is - Id - Ie,eff + A with ITU-T G.107 defaults; delay = latency + 2 x jitter "
    "(de-jitter buffer). Opus has no G.113 impairment entry: its values are an assumption."
)

st.subheader("Worst segments")
min_samples = st.number_input("Minimum samples per segment", min_value=1, value=20, step=10)
segments = data.analysed(
    voice_quality.worst_segments,
    start,
    end,
    dimensions=("release", "network", "region"),
    min_samples=int(min_samples),
)
if segments.reason:
    st.caption(f"Segments: {segments.reason}.")
else:
    data_table(
        segments.frame,
        hide_index=True,
        width="stretch",
        column_config={
            "poor_share": st.column_config.NumberColumn("poor share", format="percent"),
            **{
                c: st.column_config.NumberColumn(c, format="%.2f")
                for c in ("r", "mos_estimated", "mos_reported", "latency_ms", "jitter_ms")
            },
        },
    )
