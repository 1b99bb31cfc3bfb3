"""Infrastructure: deployments, dependency probes, host resources and collector freshness."""

from datetime import UTC, datetime

import streamlit as st

from analysis import collector_health, infrastructure, overview, uptime
from analysis.deployments import deployments
from app import data
from app.charts import show, time_chart
from app.safe_text import markdown_literal
from app.widgets import data_table, freshness_banner, period_picker

st.title("Infrastructure")
freshness_banner()
end = data.analysed(overview.data_end)
if end is None:
    st.caption("No data has been collected yet.")
    st.stop()
start, end = period_picker(end)
deploys = data.analysed(deployments, start, end)

st.subheader("Deployments")
shipped = data.analysed(deployments, start, end, newest_first=True)
if shipped.empty:
    st.caption("No deployments in this period.")
else:
    data_table(
        shipped.drop(columns="deployment_id"),
        hide_index=True,
        width="stretch",
        column_config={"message": st.column_config.TextColumn("message", width="large")},
    )

st.subheader("Dependency probes")
probes = data.analysed(uptime.probe_status, start, end)
if probes.empty:
    st.caption("No probe results in this period.")
else:
    for column, row in zip(st.columns(len(probes)), probes.itertuples(), strict=True):
        # the p95 latency is a level, not a change: a caption, not an arrow delta
        column.metric(
            markdown_literal(f"{row.target} ({row.kind})", 80),
            markdown_literal(row.last_status, 80),
            help=f"Last checked {row.last_checked} UTC",
        )
        column.caption(f"p95 latency {row.latency_p95_ms:,.0f} ms over the period")
    data_table(
        probes,
        hide_index=True,
        width="stretch",
        column_config={
            "target": "Target",
            "kind": "Kind",
            "last_checked": st.column_config.DatetimeColumn("Last check (UTC)"),
            "last_status": "Status now",
            "last_error": st.column_config.TextColumn(
                "Error now", help="The last check's error; empty when the target is up."
            ),
            "last_failure_at": st.column_config.DatetimeColumn("Last failure (UTC)"),
            "last_failure_error": st.column_config.TextColumn("Its error", width="large"),
            "checks": st.column_config.NumberColumn("Checks", format="%d"),
            "up_pct": st.column_config.NumberColumn("Up (%)", format="%.3f %%"),
            "latency_p50_ms": st.column_config.NumberColumn("Latency p50 (ms)", format="%.0f"),
            "latency_p95_ms": st.column_config.NumberColumn("Latency p95 (ms)", format="%.0f"),
        },
    )
    hourly = data.analysed(uptime.probe_uptime_hourly, start, end)
    latency = hourly.pivot(index="hour", columns="target", values="mean_latency_ms").reset_index()
    targets = [c for c in latency.columns if c != "hour"]
    show(
        time_chart(
            latency,
            "hour",
            {t: t for t in targets},
            deploys,
            title="Probe latency (ms, hourly mean)",
        )
    )

st.subheader("Host resources")
usage = data.analysed(infrastructure.resources_hourly, start, end)
if usage.empty:
    st.caption("No resource samples in this period.")
else:
    for metric, label in (("cpu_pct", "CPU"), ("memory_pct", "Memory"), ("disk_pct", "Disk")):
        wide = usage.pivot(index="hour", columns="host", values=metric).reset_index()
        hosts = [c for c in wide.columns if c != "hour"]
        figure = time_chart(
            wide, "hour", {h: h for h in hosts}, deploys, title=f"{label} use (%, hourly mean)"
        )
        limit = infrastructure.DEFAULT_RESOURCE_THRESHOLDS.get(metric)
        if limit is not None:
            figure.add_hline(y=limit, line_dash="dot", line_color="#d62728")
        show(figure)

st.subheader("Collector freshness")
now = datetime.now(UTC).replace(tzinfo=None)
sources = collector_health.source_status(data.cursor(), now)  # depends on the clock
if sources.empty:
    st.caption("No collector has run yet.")
else:
    data_table(
        sources,
        hide_index=True,
        width="stretch",
        column_config={
            "lag_minutes": st.column_config.NumberColumn(
                "minutes since last success", format="%.1f"
            ),
            "last_error": st.column_config.TextColumn("last error", width="large"),
        },
    )
    st.caption("Schedules, run-now and rejected rows: Operations → Collectors.")
