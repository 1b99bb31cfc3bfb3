"""The weekly report (analysis/weekly_report.py, collectors/weekly_reports.py): the week holding
the demo's outage lists it among its incidents; the service's poll task writes the report once
per week; `workbench report --weekly` writes it on demand; the Reports page lists and offers
each report, and says so when there is none yet."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analysis import changes
from analysis import experiments as ex
from analysis.metrics import metric_registry
from analysis.weekly_report import week_ending, weekly_html, weekly_report
from collectors.snapshot import open_snapshot
from collectors.weekly_reports import WeeklyReports, list_reports, report_path
from tests.conftest import REPO
from tests.demo_data import demo_truth_of

REPORTS = REPO / "app" / "views" / "reports.py"


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def _outage_week(truth) -> dt.datetime:
    """The Monday that ends the week holding the demo's outage."""
    return week_ending(truth.outage.start.replace(tzinfo=None) + dt.timedelta(days=7))


def test_the_week_of_the_outage_reports_it_as_an_incident(demo15):
    truth = demo_truth_of(demo15)
    end = _outage_week(truth)
    con = open_snapshot(demo15 / "serving").con
    found = ex.discovered_experiments(con)
    plans = changes.experiment_plans([], {}, {}, {}, {}, found, metric_registry())
    report = weekly_report(con, end, plans=plans)
    assert end.weekday() == 0 and report.start == end - dt.timedelta(days=7)
    outages = [c for c in report.incidents if c.kind == "outage"]
    assert [c.title for c in outages] == [f"Outage: {truth.outage.target}"]
    assert abs(outages[0].at - truth.outage.start.replace(tzinfo=None)) < dt.timedelta(minutes=1)
    assert all(report.start <= c.at < report.end for c in report.incidents)
    page = weekly_html(report)
    parsed = _Text()
    parsed.feed(page)
    text = " ".join(parsed.text)
    for section in ("The week in numbers", "Incidents", "What changed", "Latest release",
                    "Experiments", "Improvement backlog"):  # fmt: skip
        assert section in text
    assert f"Outage: {truth.outage.target}" in text
    assert truth.experiment.key in text  # the demo's A/B test, with its decision
    top = report.backlog.items[0]
    assert top.title in text
    assert "script" not in parsed.tags and not re.search(r"(src|href)=|https?://", page)
    assert not re.search(r"\de[+-]\d", page)


def test_the_service_writes_the_missing_week_once(demo15, tmp_path):
    truth = demo_truth_of(demo15)
    end = _outage_week(truth)
    root = tmp_path / "data"
    root.mkdir()
    (root / "serving").symlink_to(demo15 / "serving")
    shutil.copy(demo15 / "control.sqlite", root / "control.sqlite")
    task = WeeklyReports(root, now=lambda: end + dt.timedelta(days=2, hours=3))
    assert task.due() == end
    task.tick()
    task.join(timeout=300)
    [written] = list_reports(root)
    assert written.path == report_path(root, end) and written.week_end == end.date()
    assert written.title == f"Week of {end - dt.timedelta(days=7):%d %b} to " + (
        f"{end - dt.timedelta(days=1):%d %b %Y}"
    )
    assert "Weekly report" in written.path.read_text()
    before = written.path.stat().st_mtime_ns
    assert task.due() is None
    task.tick()
    task.join(timeout=60)
    assert written.path.stat().st_mtime_ns == before
    assert not list(root.joinpath("reports").glob("*.tmp"))


def test_workbench_report_writes_the_weekly_report(demo15, tmp_path):
    truth = demo_truth_of(demo15)
    end = _outage_week(truth)
    out = tmp_path / "week.html"
    cmd = [sys.executable, "-m", "collectors.cli", "--data-dir", str(demo15), "report"]
    done = subprocess.run(
        [*cmd, "--weekly", str(out), "--weekly-only", "--week-ending", f"{end:%Y-%m-%d}"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"week ending {end:%Y-%m-%d}" in done.stdout
    assert f"Outage: {truth.outage.target}" in out.read_text()
    wrong = subprocess.run(
        [*cmd, "--weekly", str(out), "--week-ending", "last monday"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert wrong.returncode == 2 and "is not a date" in wrong.stderr
    assert "Traceback" not in wrong.stderr


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    import streamlit as st

    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(root))
    st.cache_resource.clear()
    st.cache_data.clear()
    return root


def test_the_reports_page_says_when_there_is_no_report_yet(data_dir):
    at = AppTest.from_file(str(REPORTS), default_timeout=60).run()
    assert not at.exception
    assert any("No weekly report yet" in i.value for i in at.info)
    assert not at.get("download_button")


def test_the_reports_page_lists_each_week_newest_first_to_download(data_dir):
    folder = data_dir / "reports"
    folder.mkdir()
    for day in ("2026-11-23", "2026-11-30"):
        (folder / f"weekly-{day}.html").write_text(f"<html>{day}</html>")
    (folder / "weekly-2026-11-30.html.tmp").write_text("half")  # being written: not listed
    at = AppTest.from_file(str(REPORTS), default_timeout=60).run()
    assert not at.exception
    titles = [m.value for m in at.markdown if m.value.startswith("**Week")]
    assert titles == [
        "**Week of 23 Nov to 29 Nov 2026** (latest)",
        "**Week of 16 Nov to 22 Nov 2026**",
    ]
    assert len(at.get("download_button")) == 2
