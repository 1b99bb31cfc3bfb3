"""In Chromium, every page and every download on a snapshot whose every text column holds hostile
values (tests/hostile_data.py): no request leaves 127.0.0.1 (Playwright's request log), no link,
image, script, math, colour or icon comes from data, no bidirectional control reaches the page, and
no table download (the toolbar's CSV) or report download holds a cell a spreadsheet would run.
tests/app/test_hostile_pages.py checks the same with AppTest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import REPO, free_port
from tests.e2e.conftest import RUN_VENV, wait_for_app
from tests.e2e.test_pages_browser import PAGES
from tests.hostile_data import (
    BIDI,
    build_hostile_data,
    formula_cells_in_csv,
    formula_cells_in_html,
)

pytestmark = pytest.mark.e2e

# What the page shows that came from data and is more than text. The page's own links are its
# navigation and heading anchors, on its own origin.
FINDINGS = """() => {
  const found = [];
  // a relative link (a page's filters in its query) resolves to this origin: still its own
  const own = (u) => {
    if (!u || u.startsWith('#')) return true;
    try {
      const url = new URL(u, location.href);
      return url.origin === location.origin || url.protocol === 'data:' || url.protocol === 'blob:';
    } catch (e) { return false; }
  };
  for (const a of document.querySelectorAll('a')) {
    const href = a.getAttribute('href') || a.getAttribute('xlink:href') || '';
    if (!own(href)) found.push('link ' + href.slice(0, 60));
  }
  for (const e of document.querySelectorAll('img, image, iframe, video, audio, source, object, embed')) {
    const src = e.getAttribute('src') || e.getAttribute('href') || e.getAttribute('xlink:href')
      || e.getAttribute('data') || '';
    if (!own(src)) found.push(e.tagName.toLowerCase() + ' ' + src.slice(0, 60));
  }
  for (const s of document.querySelectorAll('script')) {
    if (s.textContent.includes('__pwned')) found.push('script element from data');
  }
  if (window.__pwned) found.push('a script from data ran');
  const md = '[data-testid="stMarkdownContainer"]';
  for (const e of document.querySelectorAll('.katex')) found.push('math ' + e.textContent.slice(0, 30));
  for (const e of document.querySelectorAll(
      `${md} [data-testid="stIconMaterial"], ${md} [data-testid="stIconEmoji"]`)) {
    found.push('icon ' + e.textContent);
  }
  for (const e of document.querySelectorAll(
      `${md} [class*="ColoredText"], ${md} [class*="ColoredBackground"], ${md} [class*="Badge"]`)) {
    found.push('colour ' + e.textContent.slice(0, 30));
  }
  return found;
}"""
BIDI_COUNT = (
    "() => (document.documentElement.outerHTML.match("
    "/[\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]/g) || []).length"
)


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory):
    """The app alone (no collectors service) on the hostile snapshot, from the `make run`
    environment, on a free port."""
    data_dir = build_hostile_data(tmp_path_factory.mktemp("hostile-e2e"))
    subprocess.run(["make", "--no-print-directory", "run-env"], cwd=REPO, check=True, timeout=900)
    python = REPO / RUN_VENV / "bin" / "python"
    port = free_port()
    env = {**os.environ, "WORKBENCH_DATA_DIR": str(data_dir)}
    env.pop("WORKBENCH_PASSWORD", None)
    log = open(data_dir / "app.log", "w")
    proc = subprocess.Popen(
        [str(python if python.exists() else sys.executable), "-m", "streamlit", "run",
         "app/main.py", "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the app did not start: {(data_dir / 'app.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield url
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=30)
    log.close()


def settle(page, timeout_s: float = 60) -> None:
    """Wait until the page's tables and charts stop appearing and none is loading."""
    wait_for_app(page)
    parts = "[data-testid='stDataFrame'], [data-testid='stPlotlyChart'], [data-testid='stMetric']"
    last, deadline = -1, time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        count = page.locator(parts).count()
        if count == last and page.locator("[data-testid='stSkeleton']").count() == 0:
            return
        last = count
        time.sleep(1.5)


def test_every_page_and_download_shows_hostile_data_as_plain_text(hostile_app, browser, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    # Without the File System Access API the table toolbar downloads through a link, which
    # Playwright sees as a download.
    context.add_init_script("delete window.showSaveFilePicker;")
    outside: list[str] = []

    def local(url: str) -> bool:
        return url.startswith(("data:", "blob:")) or urlsplit(url).hostname == "127.0.0.1"

    context.on("request", lambda r: None if local(r.url) else outside.append(r.url))
    # nothing leaves the machine while the walk runs; each attempt is still logged above
    context.route(
        "**/*", lambda route: route.continue_() if local(route.request.url) else route.abort()
    )  # noqa: E501
    page = context.new_page()
    live: list[str] = []
    bidi: list[str] = []
    formulas: list[str] = []
    downloaded: list[str] = []

    def check(where: str) -> None:
        live.extend(f"{where}: {f}" for f in page.evaluate(FINDINGS))
        count = page.evaluate(BIDI_COUNT)
        bidi.extend([f"{where}: {count} bidirectional controls"] if count else [])

    def download(where: str, click) -> None:
        with page.expect_download(timeout=30_000) as got:
            click()
        text = got.value.path().read_text(encoding="utf-8")
        found = formula_cells_in_html(text) if "<html" in text else formula_cells_in_csv(text)
        formulas.extend(f"{where}: {c[:60]!r}" for c in found)
        bidi.extend([f"{where} download"] if BIDI.search(text) else [])
        downloaded.append(where)

    for path in PAGES:
        page.goto(f"{hostile_app}/{path}")
        settle(page)
        assert page.get_by_test_id("stException").count() == 0, path
        tabs = page.get_by_role("tab")
        for i in range(max(tabs.count(), 1)):
            if tabs.count():
                tabs.nth(i).click()
                settle(page)
            check(path or "overview")
            tables = page.locator("[data-testid='stElementContainer']").filter(
                has=page.locator("[data-testid='stDataFrame']:visible")
            )
            for t in range(tables.count()):
                table = tables.nth(t)
                table.scroll_into_view_if_needed()
                table.hover()
                button = table.get_by_role("button", name="Download as CSV")
                time.sleep(0.5)  # the toolbar appears on hover
                if not button.count():  # Streamlit offers no download of an empty table
                    continue
                # the toolbar can sit under the table above it: click it, not what covers it
                download(f"{path} table {t}", lambda b=button: b.dispatch_event("click"))
        for label in ("Download report (HTML)", "Download table (CSV)"):
            button = page.get_by_role("button", name=label)
            if button.count():
                download(f"{path} {label}", button.click)

    figures = {
        "outside requests": len(outside),
        "live links or scripts from data": len(live),
        "formula cells": len(formulas),
        "bidirectional controls": len(bidi),
        "downloads checked": len(downloaded),
    }
    print(f"hostile walk of {len(PAGES)} pages: {figures}")
    assert sorted(set(outside)) == []
    assert live == []
    assert bidi == []
    assert formulas == []
    assert {"benchmarks Download report (HTML)", "benchmarks Download table (CSV)"} <= set(
        downloaded
    )
    assert len(downloaded) > 20  # every table's CSV was checked, not just the reports
    context.close()
