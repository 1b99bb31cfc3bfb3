"""Analysis results are cached per snapshot version (app.data.analysed): a widget change that
leaves an analysis' arguments alone does not rerun it, and a new publish is shown at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from collectors.engine import run_source
from collectors.publish import publish
from collectors.sources.base import Batch
from collectors.warehouse import open_warehouse

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


class Requests:
    name = "requests-source"

    def __init__(self, rows):
        self.rows = rows

    def fetch(self, marks):
        yield Batch("requests", self.rows)


def _requests(first: int, count: int, hours_ago: int) -> list[dict]:
    at = NOW - timedelta(hours=hours_ago)
    return [
        {
            "request_id": f"r{i}",
            "started_at": (at + timedelta(seconds=i)).isoformat(),
            "route": "/v1/agent/turn",
            "method": "POST",
            "status_code": 200,
            "duration_ms": 100.0,
        }
        for i in range(first, first + count)
    ]


def page() -> None:
    """Two analyses, one of which depends on a widget; each counts its runs."""
    import streamlit as st

    from app import data
    from tests.app import test_analysis_cache as here

    route = st.selectbox("Route", ["/v1/agent/turn", "/other"], key="route")
    st.metric("requests", data.analysed(here.count_requests))
    st.metric("on route", data.analysed(here.count_requests, route=route))


RUNS: list[str | None] = []


def count_requests(con, route: str | None = None) -> int:
    RUNS.append(route)
    sql = "SELECT count(*) FROM requests WHERE ? IS NULL OR route = ?"
    return int(con.execute(sql, [route, route]).fetchone()[0])


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path))
    st.cache_resource.clear()
    st.cache_data.clear()
    RUNS.clear()
    con = open_warehouse(tmp_path / "w.duckdb")
    yield con
    con.close()


def _shown(at: AppTest) -> list[str]:
    return [m.value for m in at.metric]


def test_a_widget_change_reruns_only_the_analyses_it_changes(warehouse, tmp_path):
    run_source(warehouse, Requests(_requests(0, 30, hours_ago=3)))
    publish(warehouse, tmp_path / "serving")
    at = AppTest.from_function(page, default_timeout=60)
    at.run()
    assert _shown(at) == ["30", "30"] and RUNS == [None, "/v1/agent/turn"]
    at.selectbox(key="route").set_value("/other").run()
    assert _shown(at) == ["30", "0"]
    assert RUNS == [None, "/v1/agent/turn", "/other"]  # the first analysis was not rerun
    at.selectbox(key="route").set_value("/v1/agent/turn").run()
    assert RUNS == [None, "/v1/agent/turn", "/other"]  # both read from the cache


def test_a_new_publish_is_shown_on_the_next_rerun(warehouse, tmp_path):
    run_source(warehouse, Requests(_requests(0, 30, hours_ago=3)))
    publish(warehouse, tmp_path / "serving")
    at = AppTest.from_function(page, default_timeout=60)
    at.run()
    assert _shown(at) == ["30", "30"]
    run_source(warehouse, Requests(_requests(30, 12, hours_ago=1)))
    publish(warehouse, tmp_path / "serving")
    at.run()
    assert _shown(at) == ["42", "42"]
