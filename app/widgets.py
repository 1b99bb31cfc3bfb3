"""Small UI pieces shared by pages: the period picker and the freshness banner."""

from __future__ import annotations

from datetime import datetime, timedelta

import streamlit as st

from app import data
from app.safe_text import markdown_literal, spreadsheet_safe

PERIODS = {"Last 24 hours": 1, "Last 7 days": 7, "Last 14 days": 14, "Last 30 days": 30}


def period_picker(end: datetime, key: str = "period") -> tuple[datetime, datetime]:
    """A select box of periods ending at `end` (the snapshot's latest data)."""
    label = st.selectbox("Period", list(PERIODS), index=1, key=key)
    return end - timedelta(days=PERIODS[label]), end


def freshness_banner(stale_after_minutes: float = 10) -> None:
    """Warn when publishing fails, the latest snapshot cannot be read, the snapshot is older
    than expected, or a source's last run failed."""
    manifest = data.manifest()
    age = data.staleness_minutes(manifest)
    failing = data.publish_problem()
    if failing:  # at once, not only once the data has grown old
        st.error(
            markdown_literal(
                f"New data is not being published: {failing['message']} (failing since "
                f"{failing['since']}, {failing['attempts']} attempt(s); the service keeps "
                "retrying). Pages show the last published data. See Operations → Collectors."
            )
        )
    problem = data.snapshot_problem()
    if problem:
        st.warning(markdown_literal(problem))
    if age is None:
        st.info(
            "Collecting the first data: the demo backfills 30 days of history, which takes "
            "about a minute. This page refreshes when it is ready."
        )
        return
    if age > stale_after_minutes and not failing:
        st.warning(
            f"Data is {age:.0f} minutes old: is the collectors service running? "
            "See Operations → Collectors."
        )
    failed = [
        name
        for name, f in manifest.get("freshness", {}).items()
        if f.get("last_status") == "failed"
    ]
    if failed:
        st.warning(
            f"Last run failed for: {', '.join(sorted(failed))}. See Operations → Collectors."
        )


def data_table(frame, **kwargs) -> None:
    """st.dataframe with formula-safe text (its toolbar downloads what it shows as CSV)."""
    st.dataframe(spreadsheet_safe(frame), **kwargs)
