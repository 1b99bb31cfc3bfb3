"""In Chromium: define an experiment on the Experiments page and read its verdict; on the
Benchmarks page compare the demo's bad release with the one before and download the report
(HTML and CSV), checking what the files contain."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import datetime

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from analysis.report import CSV_COLUMNS
from tests.e2e.conftest import wait_for_app

pytestmark = pytest.mark.e2e


def _demo_truth(data_dir):
    from collectors.demo_truth import demo_truth
    from collectors.snapshot import open_snapshot

    # The demo writes its watermark with the backfill's last chunk: pages show data before it.
    deadline = time.monotonic() + 300
    while True:
        con = open_snapshot(data_dir / "serving").con
        row = con.execute("SELECT value FROM watermarks WHERE source = 'demo'").fetchone()
        con.close()
        if row is not None or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert row is not None, "the demo's backfill never finished"
    return demo_truth(7, datetime.fromisoformat(json.loads(row[0])["anchor"]), 30)


def _open_when_ready(page, url: str, marker: str, timeout_s: float = 180) -> None:
    """Reload until the demo backfill is published and the page shows `marker`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page.goto(url)
        wait_for_app(page)
        try:
            page.get_by_text(marker).first.wait_for(timeout=20_000)
            return
        except PlaywrightTimeout:
            time.sleep(2)
    body = page.inner_text("body")[-1500:]
    pytest.fail(f"{url} never showed {marker!r}; the page shows: {body}")


def _choose(page, label: str, option: str) -> None:
    """Pick `option` and wait until the select box shows it: a rerun started by an earlier
    choice can redraw the box and swallow a click, so try again until it holds."""
    box = page.get_by_label(label, exact=True)
    shown = ""
    for _ in range(3):
        box.click()
        # typing filters the list, so the option is drawn even in a long, virtualised one
        page.keyboard.type(option)
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=15_000)
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
        wait_for_app(page)
        shown = box.input_value()
        if shown == option:
            return
    pytest.fail(f"{label!r} never showed {option!r}; it shows {shown!r}")


def test_define_an_experiment_and_see_its_verdict(workbench, page):
    url = workbench["url"] + "/experiments"
    _open_when_ready(page, url, "Units in control")
    _choose(page, "Experiment", "+ New experiment")
    page.get_by_label("Key (what the agent's SDK assigns by)").fill("prompt-v2")
    page.get_by_label("Name", exact=True).fill("Shorter prompt")
    page.get_by_role("button", name="Save experiment").click()
    wait_for_app(page)
    page.get_by_text("Saved experiment prompt-v2").wait_for(timeout=60_000)
    page.get_by_text("Resolved rate: treatment improved it by").first.wait_for(timeout=60_000)
    assert page.get_by_test_id("stException").count() == 0
    page.get_by_role("button", name="Start").click()
    wait_for_app(page)
    page.get_by_role("button", name="Pause").wait_for(timeout=60_000)
    from collectors.control import ControlStore

    saved = ControlStore(workbench["data_dir"] / "control.sqlite").experiments()["prompt-v2"]
    assert saved.status == "running" and saved.name == "Shorter prompt"


def test_benchmark_report_downloads_with_the_regression(workbench, page, tmp_path):
    truth = _demo_truth(workbench["data_dir"])  # once published: the watermark holds the anchor
    bad, previous = truth.bad_release.release, truth.bad_release.previous_release
    # the comparison opened from a shared link (the releases are bound to the URL)
    link = f"/benchmarks?bench_baseline={previous}&bench_candidate={bad}"
    _open_when_ready(page, workbench["url"] + link, "Download report (HTML)")
    assert page.get_by_label("Baseline release", exact=True).input_value() == previous
    assert page.get_by_label("Candidate release", exact=True).input_value() == bad
    page.get_by_text(f"Worse: {bad} made").first.wait_for(timeout=60_000)
    assert page.get_by_test_id("stException").count() == 0
    # the chart draws its points (its numbers reach Plotly whole), the huge change off scale
    chart = page.locator(".js-plotly-plot").first
    chart.evaluate("e => e.scrollIntoView()")
    chart.locator("path.point").first.wait_for(timeout=30_000)
    assert chart.get_by_text("off scale:").count() >= 1

    with page.expect_download() as got:
        page.get_by_role("button", name="Download report (HTML)").click()
    html_path = tmp_path / "report.html"
    got.value.save_as(html_path)
    report = html_path.read_text(encoding="utf-8")
    assert bad in report and previous in report
    assert f"Worse: {bad} made" in report and "Regression" in report
    assert "<script" not in report

    with page.expect_download() as got:
        page.get_by_role("button", name="Download table (CSV)").click()
    csv_path = tmp_path / "report.csv"
    got.value.save_as(csv_path)
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8"))))
    assert rows and tuple(rows[0]) == CSV_COLUMNS
    assert {r["candidate"] for r in rows} == {bad}
    assert any(r["flag"] == "Regression" and r["group"] == "llm_ttft_ms" for r in rows)
