"""Health & uptime: uptime per target, incidents, the SLO with its burn rates, start-up times."""

import pandas as pd
import streamlit as st

from analysis import overview, uptime
from analysis.deployments import deployments
from app import data
from app.charts import show, time_chart
from app.safe_text import markdown_literal
from app.widgets import data_table, freshness_banner, period_picker

st.title("Health & uptime")
freshness_banner()
end = data.analysed(overview.data_end)
if end is None:
    st.caption("No data has been collected yet.")
    st.stop()
start, end = period_picker(end)
deploys = data.analysed(deployments, start, end)

st.subheader("Uptime per target")
lenient = st.toggle(
    "Count pending checks as up",
    value=False,
    help="Uptime Kuma counts a pending beat (a failure not yet confirmed) against uptime.",
)
report = data.analysed(uptime.uptime_by_target, start, end, pending_counts_as_up=lenient)
if report.reason:
    st.caption(f"Uptime: {report.reason}.")
else:
    table = report.frame.assign(uptime_pct=report.frame["uptime"] * 100)
    for column, row in zip(st.columns(len(table)), table.itertuples(), strict=True):
        value = "n/a" if pd.isna(row.uptime_pct) else f"{row.uptime_pct:.3f} %"
        column.metric(markdown_literal(row.target, 80), value)
    data_table(
        table.drop(columns="uptime"),
        hide_index=True,
        width="stretch",
        column_config={
            "uptime_pct": st.column_config.NumberColumn("uptime", format="%.3f %%"),
            "unknown_s": st.column_config.NumberColumn("unknown (s)", help="Gaps with no checks"),
        },
    )
    hourly = data.analysed(uptime.probe_uptime_hourly, start, end)
    wide = hourly.pivot(index="hour", columns="target", values="uptime_pct").reset_index()
    targets = [c for c in wide.columns if c != "hour"]
    show(time_chart(wide, "hour", {t: t for t in targets}, deploys, title="Uptime per hour (%)"))

st.subheader("Incidents")
reapply = st.checkbox(
    "Re-apply a retry count",
    help="By default an incident is what the probes recorded: pending checks, then down, as "
    "in Uptime Kuma. Re-apply a count for sources that record no pending state.",
)
retries = (
    st.number_input("Retries before down", min_value=0, max_value=10, value=2) if reapply else None
)
found = data.analysed(
    uptime.incidents, start, end, retries=None if retries is None else int(retries)
)
if found.reason:
    st.caption(f"Incidents: {found.reason}.")
else:
    incidents = found.frame().sort_values("start", ascending=False)
    data_table(
        incidents.assign(duration_min=incidents["duration_s"] / 60).drop(columns="duration_s"),
        hide_index=True,
        width="stretch",
        column_order=[
            "target",
            "start",
            "end",
            "duration_min",
            "failed_checks",
            "cause",
            "down_at",
        ],
        column_config={
            "end": st.column_config.DatetimeColumn("end", help="Empty while still down"),
            "duration_min": st.column_config.NumberColumn("duration (min)", format="%.1f"),
            "cause": st.column_config.TextColumn("cause", help="Most frequent error of the run"),
        },
    )

st.subheader("Service level objective")
left, middle, right = st.columns(3)
source = left.selectbox(
    "Measured on",
    ["requests", "probes"],
    format_func={"requests": "Requests (non-5xx)", "probes": "Probe checks (up)"}.get,
)
objective = middle.number_input(
    "Objective (%)", min_value=90.0, max_value=99.999, value=99.9, step=0.1, format="%.3f"
)
latency = right.number_input(
    "Also slower than (ms) counts as bad",
    min_value=0,
    value=0,
    step=100,
    help="0: only errors count as bad. Applies to requests.",
    disabled=source != "requests",
)
period_days = max(1, round((end - start).total_seconds() / 86400))
slo = data.analysed(
    uptime.slo_status,
    data.analysed(overview.latest_request_at) or end,  # short burn windows end at the newest data
    objective=objective / 100,
    period_days=period_days,
    source=source,
    latency_threshold_ms=float(latency) if latency and source == "requests" else None,
)
if slo.reason:
    st.caption(f"SLO: {slo.reason}.")
else:
    a, b, c = st.columns(3)
    a.metric(f"SLI over {period_days} days", f"{slo.sli * 100:.3f} %")
    b.metric(
        "Error budget remaining",
        f"{slo.error_budget_remaining * 100:.1f} %",
        help="The share of the bad events the objective allows over the period that is not "
        "used yet; negative when more went bad than it allows.",
    )
    c.metric("Burn-rate alert", "firing" if slo.firing else "quiet")
    st.info(uptime.budget_explanation(slo))
    data_table(
        [
            {
                "long window": str(w.long_window),
                "short window": str(w.short_window),
                "threshold": w.threshold,
                "long burn rate": w.long_burn,
                "short burn rate": w.short_burn,
                "firing": w.firing,
            }
            for w in slo.windows
        ],
        hide_index=True,
        width="stretch",
    )
    st.caption(
        "Burn rate = share of bad events in the window / (1 - objective); an alert fires when "
        "both windows exceed the threshold (Google SRE workbook, multiwindow multi-burn-rate)."
    )

st.subheader("Application start-up")
starts = data.analysed(uptime.startup_times, start, end)
if starts.reason:
    st.caption(f"Start-up times: {starts.reason}.")
else:
    data_table(starts.frame, hide_index=True, width="stretch")
