"""Every monitoring page opens by its URL in Chromium, shows its title and no exception."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import wait_for_app

pytestmark = pytest.mark.e2e

PAGES = {
    "health": "Health & uptime",
    "performance": "Performance",
    "errors": "Errors",
    "infrastructure": "Infrastructure",
    "voice_quality": "Voice quality",
    "conversations": "Conversations",
    "feedback": "Feedback",
    "feature_usage": "Feature usage",
    "security": "Security",
    "anomalies": "Anomalies",
}


def wait_for_first_publish(workbench, timeout_s: float = 150) -> None:
    manifest = workbench["data_dir"] / "serving" / "manifest.json"
    deadline = time.monotonic() + timeout_s
    while not manifest.exists():
        if time.monotonic() > deadline:
            pytest.fail("the demo's first snapshot was not published in time")
        time.sleep(2)


def test_every_monitoring_page_opens_by_url_without_an_exception(workbench, page):
    wait_for_first_publish(workbench)
    for path, title in PAGES.items():
        page.goto(f"{workbench['url']}/{path}")
        wait_for_app(page)
        heading = page.locator("h1").first
        assert heading.inner_text().strip() == title, path
        assert page.get_by_test_id("stException").count() == 0, path
