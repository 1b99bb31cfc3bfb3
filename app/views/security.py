"""Security: brute force, credential stuffing, spraying, rate-limit violations and API usage
spikes, each with the rows that triggered it; events the SDK reported."""

import pandas as pd
import streamlit as st

from analysis import overview, security
from analysis.deployments import deployments
from app import data
from app.charts import show, time_chart
from app.failures import fragment
from app.safe_text import plain
from app.widgets import data_table, freshness_banner, period_picker

st.title("Security")
freshness_banner()
end = data.analysed(overview.data_end)
if end is None:
    st.caption("No data has been collected yet.")
    st.stop()
start, end = period_picker(end)
deploys = data.analysed(deployments, start, end)

with st.expander("Detection settings"):
    a, b, c = st.columns(3)
    max_failed = a.number_input("Failed logins before flagging", min_value=2, value=5)
    failed_window = b.number_input("... within (seconds)", min_value=10, value=300, step=30)
    stuffing_accounts = c.number_input(
        "Stuffing: distinct accounts in 10 min", min_value=2, value=20
    )
    d, e, f = st.columns(3)
    rate_route = d.text_input("Rate limit route ('*' = each route)", value="*")
    rate_limit = e.number_input("Requests per IP allowed", min_value=1, value=30)
    rate_window = f.number_input("... per window (seconds)", min_value=1, value=60)

KINDS = {
    "failed_logins_ip": "Brute force (per IP)",
    "failed_logins_account": "Brute force (per account)",
    "credential_stuffing": "Credential stuffing",
    "password_spraying": "Password spraying",
    "rate_limit": "Rate-limit violation",
    "api_usage_spike": "API usage spike",
}
results = [
    data.analysed(
        security.failed_login_bursts,
        start,
        end,
        by="ip",
        max_failed_logins=max_failed,
        failed_login_window_s=failed_window,
    ),
    data.analysed(
        security.failed_login_bursts,
        start,
        end,
        by="user_id",
        max_failed_logins=max_failed,
        failed_login_window_s=failed_window,
    ),
    data.analysed(security.credential_stuffing, start, end, min_accounts=stuffing_accounts),
    data.analysed(security.password_spraying, start, end, stuffing_accounts=stuffing_accounts),
    data.analysed(
        security.rate_limit_violations,
        start,
        end,
        {rate_route: {"limit": rate_limit, "window": rate_window}},
    ),
    data.analysed(security.api_usage_anomalies, start, end, by="user_id"),
]
detections = [d for r in results for d in r.items]

counts = pd.Series([d.kind for d in detections], dtype=object).value_counts()
for column, (kind, label) in zip(st.columns(len(KINDS)), KINDS.items(), strict=True):
    column.metric(label, int(counts.get(kind, 0)))

st.subheader("Detections")
if not detections:
    st.caption("Nothing detected in this period with these settings.")
else:
    table = pd.DataFrame(
        [
            {
                "detection": KINDS.get(d.kind, d.kind),
                "entity": d.entity,
                "start": d.start,
                "end": d.end,
                "count": d.count,
                "detail": d.detail,
            }
            for d in detections
        ]
    ).sort_values("start", ascending=False)
    data_table(
        table,
        hide_index=True,
        width="stretch",
        column_config={"detail": st.column_config.TextColumn("detail", width="large")},
    )

    @fragment
    def evidence():
        index = st.selectbox(
            "Evidence for",
            list(table.index),
            format_func=lambda i: plain(
                f"{table.loc[i, 'detection']}: {table.loc[i, 'entity']} "
                f"at {str(table.loc[i, 'start'])[:16]}"
            ),
            key="detection",
        )
        st.caption(f"The {len(detections[index].evidence):,} rows behind this detection.")
        data_table(detections[index].evidence, hide_index=True, width="stretch")

    evidence()

st.subheader("Login attempts")
logins = data.analysed(security.auth_failures_hourly, start, end)
if logins.empty:
    st.caption("No login attempts in this period.")
else:
    show(
        time_chart(
            logins,
            "hour",
            {"failed": "Failed logins"},
            deploys,
            title="Failed logins per hour",
            secondary={"failing_accounts": "Accounts with failures (right axis)"},
        )
    )

st.subheader("Events reported by the SDK")
events = data.analysed(security.security_event_summary, start, end)
if events.empty:
    st.caption("No security events in this period.")
else:
    data_table(events, hide_index=True, width="stretch")
