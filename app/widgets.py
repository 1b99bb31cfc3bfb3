"""Small UI pieces shared by pages: the period picker (kept in the URL), links that carry the
shared filters, the freshness banner and formula-safe tables.

The period lives in the URL's query string (`?period=Last+7+days`, or the short `?period=7`),
so a view can be shared as a link, is restored by Back and Forward, and follows the user from
page to page: in the app, main.py draws the picker once in the sidebar for every page
(`shared_filters`), and pages read it through `period_picker`. A page run on its own (AppTest)
draws the picker where it is called.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import urlencode

import streamlit as st
from streamlit.errors import StreamlitAPIException

from app import data
from app.safe_text import markdown_literal, spreadsheet_safe

PERIODS = {"Last 24 hours": 1, "Last 7 days": 7, "Last 14 days": 14, "Last 30 days": 30}
# 30 days by default: the whole of the demo's history, so that every incident it plants (the
# bad release 9 days back, credential stuffing 12, brute force 7, the outage 5) is in view on
# the first page a user opens, and stays in view for two weeks of live running after it.
DEFAULT_PERIOD = "Last 30 days"
PERIOD_KEY = "period"  # the widget's key, its session-state key and the URL parameter
_IN_SIDEBAR = "_period_in_sidebar"


def period_label(value: object) -> str | None:
    """The picker's option for a URL value: its label, or a number of days ('30', '7d')."""
    if value in PERIODS:
        return str(value)
    text = str(value).strip().lower().removesuffix("d").removesuffix("days").strip()
    by_days = {str(days): label for label, days in PERIODS.items()}
    return by_days.get(text)


def _accept_short_period() -> None:
    """`?period=30` as typed by a person: put the matching option in the picker's state before
    the widget reads the URL (which only knows the options' labels)."""
    raw = st.query_params.get(PERIOD_KEY)
    if raw is None or raw in PERIODS:
        return
    label = period_label(raw)
    if label is not None:
        st.session_state[PERIOD_KEY] = label


def _period_widget(where) -> str:
    _accept_short_period()
    # The default only where the state holds no choice (Streamlit warns when given both).
    default = (
        {} if PERIOD_KEY in st.session_state else {"index": list(PERIODS).index(DEFAULT_PERIOD)}
    )
    return str(
        where.selectbox(
            "Period",
            list(PERIODS),
            **default,
            key=PERIOD_KEY,
            bind="query-params",
            help="Shared by every page and kept in the address bar: copy the link to share "
            "this view.",
        )
    )


def shared_filters() -> None:
    """The filters every page shares, drawn once in the sidebar (called by main.py)."""
    st.session_state[_IN_SIDEBAR] = True
    _period_widget(st.sidebar)


def period_picker(end: datetime, key: str = PERIOD_KEY) -> tuple[datetime, datetime]:
    """The period chosen (in the sidebar, or here when the page runs alone) ending at `end`
    (the snapshot's latest data)."""
    if st.session_state.get(_IN_SIDEBAR) and PERIOD_KEY in st.session_state:
        label = str(st.session_state[PERIOD_KEY])
    else:
        label = _period_widget(st)
    return end - timedelta(days=PERIODS.get(label, PERIODS[DEFAULT_PERIOD])), end


def period_covering(start: datetime | None, now: datetime) -> str:
    """The shortest period that shows everything since `start` (the longest when it shows
    nothing or `start` is unknown): an alert's evidence opens on its episode."""
    if start is None:
        return DEFAULT_PERIOD
    for label, days in sorted(PERIODS.items(), key=lambda item: item[1]):
        if now - timedelta(days=days) <= start:
            return label
    return max(PERIODS, key=lambda label: PERIODS[label])


def period_days() -> int:
    """The shared period in days (the default when none was chosen yet)."""
    return PERIODS.get(str(st.session_state.get(PERIOD_KEY, DEFAULT_PERIOD)), 30)


def link_state(params: Mapping[str, str] | None = None) -> dict[str, str]:
    """Query parameters for a link that keeps the shared period, plus a page's own filters."""
    return {PERIOD_KEY: str(st.session_state.get(PERIOD_KEY, DEFAULT_PERIOD)), **(params or {})}


def evidence_url(page: str, params: Mapping[str, str] | None = None) -> str:
    """A link to a page (a view file's stem) with the shared period and the page's filters,
    relative to the app's address, as a person would share it."""
    path = "" if page == "overview" else page
    return f"{path}?{urlencode(link_state(params))}"


def evidence_link(page: str, label: str, params: Mapping[str, str] | None = None) -> None:
    """A link that opens `page` in this session with the shared period and the page's filters;
    a plain link where the page is not in the navigation (a page run alone, in tests)."""
    try:
        st.page_link(f"views/{page}.py", label=label, query_params=link_state(params))
    except StreamlitAPIException:
        st.markdown(f"[{markdown_literal(label)}]({evidence_url(page, params)})")


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


# Units are explicit in column names (DESIGN.md): a header shows them in words.
_UNITS = (("_ms", "ms"), ("_pct", "%"), ("_s", "s"), ("_bytes", "bytes"), ("_mb", "MB"))


def column_label(name: str) -> str:
    """A column's header in words with its unit: 'latency_p95_ms' -> 'latency p95 (ms)'."""
    for suffix, unit in _UNITS:
        if name.endswith(suffix) and len(name) > len(suffix):
            return f"{name[: -len(suffix)].replace('_', ' ')} ({unit})"
    return name.replace("_", " ")


def _whole_numbers(column, dtype) -> bool:
    """Whether a numeric column holds only whole numbers: a count, shown with separators."""
    kind = getattr(dtype, "kind", None)
    if kind in ("i", "u"):
        return True
    if kind != "f":
        return False
    values = column.dropna()
    return bool(len(values)) and bool((values == values.round()).all())


def data_table(frame, **kwargs) -> None:
    """st.dataframe with formula-safe text (its toolbar downloads what it shows as CSV),
    headers in words with units for the columns the page does not label itself, and counts
    with thousands separators (695,037, not 695037)."""
    if hasattr(frame, "columns"):  # a DataFrame (pandas is not imported here for that alone)
        given = dict(kwargs.get("column_config") or {})
        labels: dict[object, object] = {}
        for i, (c, dtype) in enumerate(frame.dtypes.items()):
            if not isinstance(c, str) or c in given:
                continue
            if _whole_numbers(frame.iloc[:, i], dtype):  # counts (DuckDB's sums arrive as floats)
                labels[c] = st.column_config.NumberColumn(column_label(c), format="localized")
            else:
                labels[c] = column_label(c)
        kwargs["column_config"] = {**labels, **given}
    st.dataframe(spreadsheet_safe(frame), **kwargs)
