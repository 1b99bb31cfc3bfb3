"""Every page of the navigation opens by its URL in Chromium, shows its title, and shows neither
an exception box nor the workbench's own "failed to load" message. The app runs from the
environment `make run` installs (see conftest), so a page that needs a test-only package fails
here."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import wait_for_app

pytestmark = pytest.mark.e2e

# Every page in app/main.py's navigation, by URL path, with its title.
PAGES = {
    "": "Overview",
    "alerts": "Alerts",
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
    "experiments": "Experiments",
    "benchmarks": "Benchmarks",
    "reports": "Reports",
    "collector_status": "Collectors",
}


def wait_for_first_publish(workbench, timeout_s: float = 150) -> None:
    manifest = workbench["data_dir"] / "serving" / "manifest.json"
    deadline = time.monotonic() + timeout_s
    while not manifest.exists():
        if time.monotonic() > deadline:
            pytest.fail("the demo's first snapshot was not published in time")
        time.sleep(2)


def test_the_navigation_lists_exactly_the_pages_checked_here(workbench, page):
    page.goto(workbench["url"])
    wait_for_app(page)
    links = page.get_by_test_id("stSidebarNavLink")
    paths = {links.nth(i).get_attribute("href").rsplit("/", 1)[-1] for i in range(links.count())}
    assert paths == set(PAGES)


def test_every_page_opens_by_url_without_an_exception(workbench, page):
    wait_for_first_publish(workbench)
    for path, title in PAGES.items():
        page.goto(f"{workbench['url']}/{path}")
        wait_for_app(page)
        heading = page.locator("h1").first
        assert heading.inner_text().strip() == title, path
        assert page.get_by_test_id("stException").count() == 0, path
        failures = page.get_by_test_id("stAlert").filter(has_text="failed to load")
        assert failures.count() == 0, f"{path}: {failures.first.inner_text()}"
