"""Pages when things go wrong behind them: a corrupted control store, a source that hangs, a
publish that fails, a damaged snapshot file, two people saving one experiment."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from collectors.control import ControlStore
from collectors.engine import run_source
from collectors.publish import publish, read_manifest
from collectors.sources.base import Batch
from collectors.warehouse import open_warehouse
from tests.conftest import REPO

VIEWS = REPO / "app" / "views"


@pytest.fixture
def data_root(demo_dir, monkeypatch, tmp_path) -> Path:
    """The shared demo snapshot with a control store of this test's own."""
    import streamlit as st

    root = tmp_path / "data"
    root.mkdir()
    (root / "serving").symlink_to(demo_dir / "serving")
    shutil.copy(demo_dir / "control.sqlite", root / "control.sqlite")
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(root))
    st.cache_resource.clear()
    st.cache_data.clear()
    return root


def run(page: str, at: AppTest | None = None) -> AppTest:
    at = at or AppTest.from_file(str(VIEWS / page), default_timeout=120)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert not [e.value for e in at.error if "failed to load" in e.value]
    return at


def shown(at: AppTest) -> str:
    parts = [m.value for m in (*at.info, *at.warning, *at.success, *at.error, *at.caption)]
    return "\n".join(str(p).replace("\\", "") for p in parts)


@pytest.mark.parametrize("page", ["collector_status.py", "experiments.py"])
def test_pages_keep_working_when_the_control_store_is_corrupted_under_them(data_root, page):
    at = run(page)
    (data_root / "control.sqlite").write_bytes(b"not a database " * 500)
    run(page, at)
    assert at.title


def test_run_now_twice_says_already_queued(data_root):
    at = run("collector_status.py")
    at.button(key="run-demo").click().run()
    at.button(key="run-demo").click().run()
    assert "already queued" in shown(at)
    pending = [
        r
        for r in ControlStore(data_root / "control.sqlite").recent_requests()
        if r["status"] == "pending"
    ]
    assert len(pending) == 1


def test_a_hung_source_is_named_on_the_collectors_page(data_root):
    ControlStore(data_root / "control.sqlite").set_progress(
        "demo", "hung", message="timed out after 300 s without committing a batch"
    )
    at = run("collector_status.py")
    assert "demo is not responding" in shown(at)
    assert "timed out after 300 s" in shown(at)


def test_a_failing_publish_is_shown_at_once_with_its_reason(data_root):
    ControlStore(data_root / "control.sqlite").set_service_info(
        publish_error={
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
            "message": "No space left on device",
            "attempts": 1,
            "retry_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    for page in ("collector_status.py", "overview.py"):
        at = run(page)
        assert "No space left on device" in shown(at), page


def test_two_people_saving_one_experiment_the_second_is_told_it_changed(data_root):
    from collectors.control import SavedExperiment

    store = ControlStore(data_root / "control.sqlite")
    store.save_experiment(
        SavedExperiment(
            "greeting-v3",
            "Greeting",
            ("control", "short"),
            (1, 1),
            primary_metrics=("resolved_rate",),
        )
    )
    first, second = run("experiments.py"), run("experiments.py")
    for at in (first, second):
        at.selectbox(key="experiment_choice").select("greeting-v3").run()
    first.text_input(key="def_greeting-v3_name").input("Saved first")
    next(b for b in first.button if b.label == "Save experiment").click().run()
    second.text_input(key="def_greeting-v3_name").input("Saved second")
    next(b for b in second.button if b.label == "Save experiment").click().run()
    assert "Saved experiment greeting-v3" in shown(first)
    assert "changed since you opened it" in shown(second)
    assert store.experiments()["greeting-v3"].name == "Saved first"


def test_a_new_experiment_with_an_existing_key_is_refused(data_root):
    from collectors.control import SavedExperiment

    store = ControlStore(data_root / "control.sqlite")
    store.save_experiment(
        SavedExperiment(
            "greeting-v3",
            "Greeting",
            ("control", "short"),
            (1, 1),
            primary_metrics=("resolved_rate",),
        )
    )
    store.set_experiment_status("greeting-v3", "running")
    at = run("experiments.py")
    at.selectbox(key="experiment_choice").select("+ New experiment").run()
    at.text_input(key="def_new_key").input("greeting-v3")
    at.text_input(key="def_new_variants").input("a, b, c")
    at.text_input(key="def_new_weights").input("1, 1, 1")
    next(b for b in at.button if b.label == "Save experiment").click().run()
    assert "already exists" in shown(at)
    assert store.experiments()["greeting-v3"].variants == ("control", "short")


NOW = datetime.now(UTC).replace(microsecond=0)


class Rows:
    name = "rows"

    def __init__(self, rows):
        self.rows = rows

    def fetch(self, marks):
        yield Batch("requests", self.rows)


def requests_rows(first: int, n: int) -> list[dict]:
    return [
        {
            "request_id": f"r{i}",
            "started_at": (NOW - timedelta(minutes=10 * (i - first))).isoformat(),
            "route": "/v1/agent/turn",
            "method": "POST",
            "status_code": 200,
            "duration_ms": 100.0,
        }
        for i in range(first, first + n)
    ]


def test_a_damaged_snapshot_file_keeps_the_last_good_data_and_says_so(tmp_path, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path))
    st.cache_resource.clear()
    con = open_warehouse(tmp_path / "warehouse.duckdb")
    serving = tmp_path / "serving"
    run_source(con, Rows(requests_rows(0, 50)))
    publish(con, serving)
    at = run("overview.py")
    run_source(con, Rows(requests_rows(100, 50)))
    publish(con, serving)
    con.close()
    today = NOW.date().isoformat()
    damaged = serving / read_manifest(serving)["tables"]["requests"]["days"][today]["file"]
    damaged.write_bytes(b"PAR1 cut short")
    for _ in range(2):  # and on every later load, until the service rewrites it
        run("overview.py", at)
        assert "could not be read" in shown(at)
        assert "showing snapshot v1" in shown(at)


def test_a_damaged_file_before_any_snapshot_opened_shows_the_rest(tmp_path, monkeypatch):
    import streamlit as st

    from app import data

    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path))
    st.cache_resource.clear()
    con = open_warehouse(tmp_path / "warehouse.duckdb")
    run_source(con, Rows(requests_rows(0, 300)))  # about two days
    publish(con, tmp_path / "serving")
    con.close()
    days = read_manifest(tmp_path / "serving")["tables"]["requests"]["days"]
    damaged = tmp_path / "serving" / days[NOW.date().isoformat()]["file"]
    damaged.write_bytes(b"garbage")
    at = run("overview.py")
    assert "showing the rest of it" in shown(at)
    rows = data.cursor().execute("SELECT count(*) FROM requests").fetchone()[0]
    assert 0 < rows < 300  # the readable days, without the damaged one
