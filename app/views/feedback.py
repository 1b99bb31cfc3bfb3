"""Feedback: CSAT and its trend, ratings by category, drivers of negative feedback, comments."""

import plotly.graph_objects as go
import streamlit as st

from analysis import overview, ux
from analysis.deployments import deployments
from app import data
from app.charts import show, time_chart
from app.safe_text import markdown_literal, quote_block
from app.widgets import data_table, freshness_banner, period_picker

st.title("Feedback")
freshness_banner()
end = data.analysed(overview.data_end)
if end is None:
    st.caption("No data has been collected yet.")
    st.stop()
start, end = period_picker(end)
deploys = data.analysed(deployments, start, end)

overall = data.analysed(ux.csat, start, end, by=None)
if overall.reason:
    st.caption(f"Feedback: {overall.reason}.")
else:
    row = overall.frame.iloc[0]
    a, b, c = st.columns(3)
    a.metric(
        "CSAT",
        f"{row['csat'] * 100:.1f} %",
        help=f"Share of ratings 4-5; Wilson 95 % interval "
        f"{row['csat_ci_low'] * 100:.1f}-{row['csat_ci_high'] * 100:.1f} %",
    )
    b.metric("Ratings", f"{row['ratings']:,}")
    c.metric("Mean rating", f"{row['mean_rating']:.2f} / 5")
    daily = data.analysed(ux.csat_daily, start, end)
    show(
        time_chart(
            daily,
            "day",
            {"csat_pct": "CSAT (%)"},
            deploys,
            title="CSAT per day",
            secondary={"ratings": "Ratings (right axis)"},
        )
    )

    st.subheader("Ratings by category")
    by_category = data.analysed(ux.csat, start, end, by="category")
    ratings = by_category.frame
    figure = go.Figure(
        [go.Bar(x=ratings["category"], y=ratings[f"r{k}"], name=f"{k} ★") for k in range(1, 6)]
    )
    figure.update_layout(
        barmode="group",
        height=340,
        title="Rating distribution per category",
        legend={"orientation": "h", "y": -0.2},
    )
    show(figure)
    data_table(
        ratings,
        hide_index=True,
        width="stretch",
        column_config={
            c: st.column_config.NumberColumn(c, format="percent")
            for c in ("csat", "csat_ci_low", "csat_ci_high")
        },
    )

st.subheader("What drives negative feedback")
drivers = data.analysed(ux.feedback_drivers, start, end)
if drivers.reason:
    st.caption(f"Drivers: {drivers.reason}.")
else:
    st.caption(
        f"Logistic regression of a rating of 1-2 on each rated call ({drivers.calls:,} calls, "
        f"{drivers.negatives:,} negative). Odds ratio > 1: more of it, more negative ratings."
        + (f" Left out (no variation): {', '.join(drivers.dropped)}." if drivers.dropped else "")
    )
    frame = drivers.frame
    figure = go.Figure(
        go.Scatter(
            x=frame["odds_ratio"],
            y=frame["description"],
            mode="markers",
            error_x={
                "type": "data",
                "symmetric": False,
                "array": frame["ci_high"] - frame["odds_ratio"],
                "arrayminus": frame["odds_ratio"] - frame["ci_low"],
            },
        )
    )
    figure.add_vline(x=1, line_dash="dot")
    figure.update_layout(
        height=260, xaxis={"type": "log", "title": "odds ratio (95 % interval, log scale)"}
    )
    show(figure)
    data_table(frame, hide_index=True, width="stretch")

st.subheader("Recent comments")
comments = data.analysed(ux.recent_feedback, start, end, limit=30)
if comments.empty:
    st.caption("No comments in this period.")
for item in comments.itertuples():
    stars = "★" * int(item.rating) if item.rating == item.rating else "no rating"
    with st.container(border=True):
        st.markdown(
            f"{stars} · {markdown_literal(item.category)} · "
            f"{markdown_literal(str(item.submitted_at)[:16])} · call "
            f"{markdown_literal(item.call_id)}"
        )
        st.markdown(quote_block(item.comment))
