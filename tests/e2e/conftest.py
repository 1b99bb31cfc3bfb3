"""Browser tests: the real workbench started as the README says, driven in Debian's Chromium."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import pytest

from tests.conftest import REPO, chromium_path, free_port

CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


# `make test` builds this environment exactly as `make run` builds .venv (the `workbench` extra
# only), so the app under test cannot lean on a package that only the tests install.
RUN_VENV = os.environ.get("WORKBENCH_RUN_VENV", ".venv-run")


@pytest.fixture(scope="session")
def workbench(tmp_path_factory):
    """`make run` on a free port with its own data folder; stopped as Ctrl-C would."""
    data_dir = tmp_path_factory.mktemp("e2e-data")
    port = free_port()
    env = {**os.environ, "WORKBENCH_DATA_DIR": str(data_dir), "WORKBENCH_PORT": str(port)}
    env.pop("VIRTUAL_ENV", None)
    # Build the run environment first (a no-op when `make test` already did) so that its
    # install does not count against the start-up deadline below.
    subprocess.run(["make", "--no-print-directory", "run-env"], cwd=REPO, check=True, timeout=900)
    log = open(data_dir / "workbench.log", "w")
    proc = subprocess.Popen(
        ["make", "run", f"VENV={RUN_VENV}"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"make run exited: {(data_dir / 'workbench.log').read_text()[-2000:]}")
        time.sleep(0.5)
    else:
        pytest.fail("the app did not answer /_stcore/health within 120 s")
    yield {"url": url, "data_dir": data_dir, "proc": proc, "started": time.monotonic()}
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("make run did not stop within 60 s of Ctrl-C")
    log.close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    yield page
    context.close()


def wait_for_app(page, timeout_ms: int = 60_000) -> None:
    page.wait_for_selector(
        "[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout_ms
    )
