"""Entry point: login gate, then navigation by section."""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run app/main.py` puts only app/ on sys.path; the packages live one level up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st  # noqa: E402

from app.auth import require_login  # noqa: E402
from app.failures import PAGE_KEY, reported_failures  # noqa: E402
from app.widgets import shared_filters  # noqa: E402

# An emoji favicon is drawn in the browser; a :material/...: one is fetched from fonts.gstatic.com,
# and the workbench makes no request outside its own server.
st.set_page_config(page_title="Voice Agent Workbench", page_icon="🎙️", layout="wide")
require_login()

VIEWS = Path(__file__).parent / "views"


def page(file: str, title: str, icon: str, default: bool = False) -> st.Page:
    return st.Page(VIEWS / file, title=title, icon=f":material/{icon}:", default=default)


navigation = st.navigation(
    {
        "Overview": [
            page("overview.py", "Overview", "dashboard", default=True),
            page("alerts.py", "Alerts", "notifications_active"),
        ],
        "Reliability": [
            page("health.py", "Health & uptime", "monitor_heart"),
            page("performance.py", "Performance", "speed"),
            page("errors.py", "Errors", "bug_report"),
            page("infrastructure.py", "Infrastructure", "dns"),
        ],
        "Voice & UX": [
            page("voice_quality.py", "Voice quality", "graphic_eq"),
            page("conversations.py", "Conversations", "forum"),
            page("feedback.py", "Feedback", "reviews"),
            page("feature_usage.py", "Feature usage", "touch_app"),
        ],
        "Security": [page("security.py", "Security", "shield")],
        "Improvement": [
            page("anomalies.py", "Anomalies", "troubleshoot"),
            page("experiments.py", "Experiments", "science"),
            page("benchmarks.py", "Benchmarks", "compare_arrows"),
            page("reports.py", "Reports", "summarize"),
        ],
        "Operations": [page("collector_status.py", "Collectors", "sync")],
    },
    # every page listed: collapsed, Streamlit shows ten and hides the rest behind "View more"
    expanded=True,
)
st.session_state[PAGE_KEY] = navigation.title
shared_filters()  # the period, in the sidebar and the URL, the same on every page
with reported_failures(f"The {navigation.title} page"):
    navigation.run()
