"""Errors: groups with first/last seen, per-release counts and flags; one group's detail."""

import streamlit as st

from analysis import errors, overview
from analysis.deployments import deployments
from app import data
from app.charts import show, time_chart
from app.failures import fragment
from app.safe_text import markdown_literal, plain
from app.widgets import data_table, freshness_banner, period_picker

st.title("Errors")
freshness_banner()
end = data.analysed(overview.data_end)
if end is None:
    st.caption("No data has been collected yet.")
    st.stop()
start, end = period_picker(end)
deploys = data.analysed(deployments, start, end)

hourly = data.analysed(errors.errors_hourly, start, end)
show(
    time_chart(
        hourly,
        "hour",
        {"estimated_events": "Errors per hour (sample-corrected)"},
        deploys,
        title="Errors per hour",
        secondary={"events": "Captured events"},
    )
)

st.subheader("Error rate per release")
rates = data.analysed(errors.error_rate_by_release, start, end)
if rates.reason:
    st.caption(f"Error rates: {rates.reason}.")
else:
    data_table(
        rates.frame,
        hide_index=True,
        width="stretch",
        column_config={
            c: st.column_config.NumberColumn(c, format="percent")
            for c in ("http_5xx_rate", "http_5xx_ci_low", "http_5xx_ci_high")
        },
    )

st.subheader("Error groups")
groups = data.analysed(errors.error_groups, start, end)
if groups.reason:
    st.caption(f"Error groups: {groups.reason}.")
    st.stop()
a, b, c = st.columns(3)
only_new = a.checkbox("Only new", key="only_new")
only_regressed = b.checkbox("Only regressed", key="only_regressed")
only_critical = c.checkbox("Only critical", key="only_critical")
table = groups.frame
if only_new:
    table = table[table["is_new"]]
if only_regressed:
    table = table[table["is_regressed"]]
if only_critical:
    table = table[table["is_critical"]]
data_table(
    table,
    hide_index=True,
    width="stretch",
    column_order=[
        "error_type",
        "title",
        "estimated_events",
        "events",
        "first_seen",
        "last_seen",
        "first_release",
        "releases",
        "severity",
        "is_new",
        "is_regressed",
        "is_critical",
        "regression_reason",
        "fingerprint",
    ],
    column_config={
        "estimated_events": st.column_config.NumberColumn(
            "events (corrected)", format="%.0f", help="Each kept event counts 1 / sample rate"
        ),
        "events": st.column_config.NumberColumn("events (captured)"),
        "title": st.column_config.TextColumn("title", width="large"),
        "is_new": st.column_config.CheckboxColumn("new"),
        "is_regressed": st.column_config.CheckboxColumn("regressed"),
        "is_critical": st.column_config.CheckboxColumn("critical"),
    },
)
st.caption("Counts per release (sample-corrected) in the window:")
data_table(
    groups.by_release.pivot_table(
        index="fingerprint", columns="release", values="estimated_events", fill_value=0
    ),
    width="stretch",
)


@fragment
def group_detail():
    st.subheader("Group detail")
    titles = dict(zip(groups.frame["fingerprint"], groups.frame["error_type"], strict=True))
    chosen = st.selectbox(
        "Error group",
        list(groups.frame["fingerprint"]),
        format_func=lambda fp: plain(f"{titles[fp]} ({fp})"),
        key="error_group",
    )
    group = groups.frame.set_index("fingerprint").loc[chosen]
    x, y, z = st.columns(3)
    x.metric("Events (corrected)", f"{group['estimated_events']:,.0f}")
    y.metric("First seen", str(group["first_seen"])[:19])
    z.metric("Last seen", str(group["last_seen"])[:19])
    st.markdown(f"**Latest message:** {markdown_literal(group['example_message'])}")
    found = data.analysed(errors.error_occurrences, start, end, chosen, group["error_type"])
    if found.stack_trace:
        st.code(plain(found.stack_trace, None), language="python")
    if found.reason:
        st.caption(f"Occurrences: {found.reason}.")
    else:
        st.caption(f"The latest {len(found.frame)} of {found.total:,} events in the window.")
        data_table(found.frame, hide_index=True, width="stretch")


group_detail()
