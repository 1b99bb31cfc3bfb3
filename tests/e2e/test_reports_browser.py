"""In Chromium: the service writes the weekly report of the demo's last whole week by itself;
the Reports page lists it, and the downloaded file is the self-contained report."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from tests.e2e.test_experiments_browser import _open_when_ready

pytestmark = pytest.mark.e2e


class _Parsed(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_the_weekly_report_is_listed_and_downloads(workbench, page, tmp_path):
    # the backfill's first publish, then the report's ~10 s: the page reloads until it is there
    _open_when_ready(page, workbench["url"] + "/reports", "Download (HTML)", timeout_s=300)
    assert page.get_by_test_id("stException").count() == 0
    listed = sorted((workbench["data_dir"] / "reports").glob("weekly-*.html"))[-1]
    with page.expect_download() as got:
        page.get_by_role("button", name="Download (HTML)").first.click()
    saved = tmp_path / got.value.suggested_filename
    got.value.save_as(saved)
    assert saved.name == listed.name
    parsed = _Parsed()
    parsed.feed(saved.read_text(encoding="utf-8"))
    text = " ".join(parsed.text)
    assert text.strip().startswith("Weekly report:")
    for section in ("Incidents", "What changed", "Experiments", "Improvement backlog"):
        assert section in text
    assert "script" not in parsed.tags
