"""Every page renders on demo data without an exception (AppTest), and the two real pages of the
skeleton show what a user comes for."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO

VIEWS = sorted((REPO / "app" / "views").glob("*.py"))


def run_page(path: Path) -> AppTest:
    at = AppTest.from_file(str(path), default_timeout=60)
    at.run()
    return at


@pytest.mark.parametrize("path", VIEWS, ids=[p.stem for p in VIEWS])
def test_every_page_renders_without_an_exception(with_demo, path):
    at = run_page(path)
    assert not at.exception, [e.message for e in at.exception]
    assert not [e.value for e in at.error if "failed to load" in e.value]  # a guarded fragment
    assert at.title, "every page has a title"


def test_overview_shows_six_kpis_with_values_and_changes(with_demo):
    at = run_page(REPO / "app" / "views" / "overview.py")
    labels = [m.label for m in at.metric]
    assert labels == [
        "Uptime",
        "p95 turn latency",
        "Error rate (5xx)",
        "Mean MOS",
        "CSAT",
        "Resolved rate",
    ]
    values = {m.label: m.value for m in at.metric}
    assert values["Uptime"].endswith("%") and float(values["Uptime"].split()[0]) > 90
    assert 300 < float(values["p95 turn latency"].split()[0].replace(",", "")) < 10_000
    assert 1 <= float(values["Mean MOS"]) <= 5
    assert all(m.delta is not None for m in at.metric if m.label != "Uptime")
    # "what changed": each entry opens with its kind in bold, not in literal asterisks
    entries = [m.value for m in at.markdown if " · " in m.value]
    assert entries and all("\\*" not in e for e in entries), entries[:2]
    assert all(e.split(" · ")[0].split(" ", 1)[1].startswith("**") for e in entries), entries[:2]


def test_overview_period_picker_changes_the_window(with_demo):
    from datetime import timedelta

    from analysis import overview
    from collectors.snapshot import open_snapshot

    con = open_snapshot(with_demo / "serving").con
    end = overview.data_end(con)
    assert end is not None

    def p95_shown(days: int) -> str:  # the tile's value over the last `days`, as the page writes it
        kpi = overview.headline(con, end - timedelta(days=days), end).kpis[1].kpi
        assert kpi.label == "p95 turn latency" and kpi.value is not None
        return f"{kpi.value:,.0f} ms"

    assert p95_shown(1) != p95_shown(30)  # the demo's last day differs from its whole history
    at = run_page(REPO / "app" / "views" / "overview.py")
    assert {m.label: m.value for m in at.metric}["p95 turn latency"] == p95_shown(30)
    at.selectbox(key="period").select("Last 24 hours").run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["p95 turn latency"] == p95_shown(1)


def test_overview_without_data_says_it_is_collecting(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path))
    at = run_page(REPO / "app" / "views" / "overview.py")
    assert not at.exception
    assert any("Collecting the first data" in i.value for i in at.info)


def test_collectors_page_lists_the_demo_source_and_saves_a_schedule(with_demo):
    at = run_page(REPO / "app" / "views" / "collector_status.py")
    sources = at.dataframe[0].value
    assert list(sources["source"]) == ["demo"]
    assert sources["last_status"].iloc[0] == "ok"
    at.number_input[0].set_value(120)
    at.button[0].click().run()  # "Save schedule" (form submit)
    assert not at.exception
    from collectors.control import ControlStore

    assert ControlStore(with_demo / "control.sqlite").schedules()["demo"].every_seconds == 120


def test_collectors_run_now_writes_a_request_for_the_service(with_demo):
    from collectors.control import ControlStore

    at = run_page(REPO / "app" / "views" / "collector_status.py")
    run_now = next(b for b in at.button if b.label == "Run now")
    run_now.click().run()
    assert not at.exception
    pending = ControlStore(with_demo / "control.sqlite").recent_requests(1)[0]
    assert pending["job"] == "demo" and pending["status"] == "pending"


def test_main_navigation_runs_the_default_page(with_demo):
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert at.title[0].value == "Overview"


def test_password_gate_blocks_until_the_right_password(with_demo, monkeypatch):
    monkeypatch.setenv("WORKBENCH_PASSWORD", "s3cret-pass")
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=60)
    at.run()
    assert not at.metric  # nothing behind the gate is shown
    at.text_input[0].input("wrong")
    at.button[0].click().run()
    assert any("Wrong password" in e.value for e in at.error)
    at.text_input[0].input("s3cret-pass")
    at.button[0].click().run()
    assert at.title[0].value == "Overview"


@pytest.mark.parametrize(
    ("module", "function", "url", "title"),
    [
        ("ux", "csat", "feedback", "Feedback"),  # fails in the page's own body
        ("overview", "kpis", "", "Overview"),  # fails inside a fragment
    ],
)
def test_a_failing_page_names_itself_and_points_to_the_log_without_internals(
    with_demo, monkeypatch, caplog, module, function, url, title
):
    import importlib

    def broken(*_a, **_k):
        raise RuntimeError("connection to postgres://admin:hunter2@db failed")

    monkeypatch.setattr(importlib.import_module(f"analysis.{module}"), function, broken)
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=60)
    if url:
        at.switch_page(f"views/{url}.py")
    with caplog.at_level("ERROR", logger="workbench.app"):
        at.run()
    assert not at.exception  # no redacted exception box
    message = " ".join(e.value for e in at.error)
    assert f"{title} page failed" in message and "log" in message
    assert "hunter2" not in message and "RuntimeError" not in message
    reference = message.split("reference ")[1].rstrip(".")
    logged = [r for r in caplog.records if reference in r.getMessage()]
    assert logged and "hunter2" in str(logged[0].exc_info[1])  # the traceback is in the log
