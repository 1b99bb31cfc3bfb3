"""Overview: what is firing, headline KPIs against the previous period, and the hourly trend
with deploys."""

import streamlit as st

from analysis import overview
from analysis.deployments import deployments
from app import data
from app.charts import show, time_chart
from app.failures import fragment
from app.safe_text import markdown_literal
from app.widgets import freshness_banner, period_picker
from collectors.alerts.summaries import firing_strip

st.title("Overview")


def alerts_strip() -> None:
    strip = firing_strip(data.alert_store())
    if strip.firing:
        text = f"{strip.firing} alert(s) firing: {'; '.join(strip.lines)}"
        more = strip.firing - len(strip.lines)
        text += f" and {more} more." if more > 0 else "."
        (st.error if strip.critical else st.warning)(markdown_literal(text))
    elif strip.pending:
        st.caption(f"No alert is firing; {strip.pending} pending (their condition holds).")
    if (strip.firing or strip.pending) and st.button("Open Alerts", key="overview_alerts"):
        st.switch_page("views/alerts.py")


@fragment(run_every="30s")
def body():
    alerts_strip()
    freshness_banner()
    con = data.cursor()
    end = overview.data_end(con)
    if end is None:
        st.caption("No traffic has been collected yet.")
        return
    start, end = period_picker(end)
    kpis = overview.kpis(con, start, end)
    for column, kpi in zip(st.columns(len(kpis)), kpis, strict=True):
        fmt = {"%": "{:.2f} %", "ms": "{:,.0f} ms"}.get(kpi.unit, "{:.2f}")
        value = fmt.format(kpi.value) if kpi.value is not None else "n/a"
        # A change of a percentage is in percentage points, not percent.
        delta_fmt = {"%": "{:+.2f} pp", "ms": "{:+,.0f} ms"}.get(kpi.unit, "{:+.2f}")
        delta = None if kpi.change is None else delta_fmt.format(kpi.change)
        column.metric(
            kpi.label,
            value,
            delta,
            delta_color="normal" if kpi.higher_is_better else "inverse",
            help=kpi.reason or "Change against the previous period of equal length.",
        )
    trend = overview.hourly_trend(con, start, end)
    deploys = deployments(con, start, end)
    show(
        time_chart(
            trend,
            "hour",
            {"p95_e2e_ms": "p95 turn latency (ms)"},
            deploys,
            title="Turn latency and errors per hour",
            secondary={"error_rate_pct": "5xx error rate (%)"},
        )
    )
    show(time_chart(trend, "hour", {"calls": "Calls per hour"}, deploys, title="Call volume"))


body()
