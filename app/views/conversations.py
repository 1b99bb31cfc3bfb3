"""Conversations: outcomes, interruptions, repeat callers and per-turn latency; drill into one
call's turns."""

import plotly.graph_objects as go
import streamlit as st

from analysis import backlog, conversations, overview, ux
from analysis.deployments import deployments
from analysis.latency import STAGE_LABELS, stage_percentiles
from analysis.vocabulary import OUTCOMES, STAGES
from app import data
from app.charts import show, time_chart
from app.failures import fragment
from app.safe_text import plain
from app.widgets import data_table, freshness_banner, period_picker

st.title("Conversations")
freshness_banner()
end = data.analysed(overview.data_end)
if end is None:
    st.caption("No data has been collected yet.")
    st.stop()
start, end = period_picker(end)
deploys = data.analysed(deployments, start, end)

summary = data.analysed(ux.session_summary, start, end)
if summary.reason:
    st.caption(f"Conversations: {summary.reason}.")
    st.stop()
overall = summary.frame.iloc[0]
a, b, c, d, e = st.columns(5)
a.metric("Calls", f"{overall['sessions']:,}")
b.metric("Resolved", f"{overall['resolved_share'] * 100:.1f} %")
c.metric("Abandoned", f"{overall['abandoned_share'] * 100:.1f} %")
d.metric("Mean duration", f"{overall['mean_duration_s']:.0f} s")
e.metric("Interruptions per call", f"{overall['mean_interruptions']:.2f}")

outcomes = data.analysed(conversations.outcomes_hourly, start, end)
show(
    time_chart(
        outcomes,
        "hour",
        {o: o for o in OUTCOMES},
        deploys,
        title="Call outcomes per hour",
    )
)
turns = data.analysed(conversations.turns_hourly, start, end)
show(
    time_chart(
        turns,
        "hour",
        {"interrupted_pct": "Interrupted turns (%)"},
        deploys,
        title="Interruptions (caller barge-in) per hour",
        secondary={"turns": "Turns per hour (right axis)"},
    )
)

st.subheader("Outcomes by release")
by_release = data.analysed(ux.session_summary, start, end, by="release")
data_table(
    by_release.frame,
    hide_index=True,
    width="stretch",
    column_config={
        c: st.column_config.NumberColumn(c.replace("_", " "), format="percent")
        for c in by_release.frame.columns
        if c.endswith("_share")
    },
)

st.subheader("Repeat callers")
repeats = data.analysed(backlog.repeat_callers, start, end)
repeats = repeats[repeats["repeats"] > 0]
if repeats.empty:
    st.caption("No caller called back within 24 hours of a previous call in this period.")
else:
    st.caption(
        f"{int(repeats['repeats'].sum()):,} calls came within 24 hours of the same caller's "
        f"previous call, from {len(repeats):,} callers: calls the first one should have settled. "
        "The callers who call back most often:"
    )
    data_table(
        repeats.head(20),
        hide_index=True,
        width="stretch",
        column_config={
            "caller_id": "Caller",
            "calls": st.column_config.NumberColumn("Calls in the period", format="%d"),
            "repeats": st.column_config.NumberColumn("Called back within 24 h", format="%d"),
            "resolved": st.column_config.NumberColumn("Resolved calls", format="%d"),
        },
    )

st.subheader("Per-turn latency")
st.caption("Each stage beside end to end; the stages overlap, so they do not add up.")
data_table(data.analysed(stage_percentiles, start, end), hide_index=True, width="stretch")


@fragment
def call_drilldown():
    st.subheader("Calls")
    outcome = st.selectbox("Outcome", ["all", *OUTCOMES], key="outcome", bind="query-params")
    calls = data.analysed(
        conversations.recent_calls,
        start,
        end,
        outcome=None if outcome == "all" else outcome,
        limit=200,
    )
    if calls.empty:
        st.caption("No calls with this outcome in the period.")
        return
    st.caption(f"The latest {len(calls)} calls (at most 200).")
    data_table(calls, hide_index=True, width="stretch")
    call_id = st.selectbox("Open a call", list(calls["call_id"]), format_func=plain, key="call_id")
    call_turns = data.analysed(conversations.call_turns, call_id)
    if call_turns.empty:
        st.caption("This call has no recorded turns.")
        return
    figure = go.Figure(
        [go.Bar(x=call_turns["turn_index"], y=call_turns[s], name=STAGE_LABELS[s]) for s in STAGES]
    )
    figure.update_layout(
        barmode="group",
        height=340,
        title=f"Latency per turn of {call_id} (ms; stages overlap, not stacked)",
        xaxis_title="turn",
        legend={"orientation": "h", "y": -0.2},
    )
    show(figure)
    data_table(call_turns, hide_index=True, width="stretch")


call_drilldown()
