"""Shared fixtures. In CI (CI=true or WORKBENCH_REQUIRE_ALL=1) a missing system dependency is a
failure, never a skip: browser and PostgreSQL tests must run there."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def must_run_everything() -> bool:
    return os.environ.get("WORKBENCH_REQUIRE_ALL") == "1" or os.environ.get("CI") == "true"


def missing(what: str) -> None:
    """Skip locally with a reason; fail in CI."""
    if must_run_everything():
        pytest.fail(f"{what} is required in CI (make test installs it as root on Debian)")
    pytest.skip(f"{what} is not installed")


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        missing("Debian's chromium")
    return path


def pg_bin_dir() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    missing("PostgreSQL server binaries (initdb, pg_ctl)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Fast tests first, then the ones that build a demo, then real servers, then the browser: a
# failure shows up as early as it can, and the browser's event loop (Playwright's, alive for
# the whole session) starts last.
_ORDER = ("unit", "app", "integration", "golden", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        parts = Path(str(item.path)).relative_to(REPO / "tests").parts
        return _ORDER.index(parts[0]) if parts[0] in _ORDER else len(_ORDER)

    items.sort(key=rank)  # stable: each folder keeps its own order


@pytest.fixture(scope="session")
def demo15(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 15-day demo (its history holds every planted episode: the A/B test of the last 14
    days, the bad release 9 days back, the attacks, the outage), built once per session (~19 s)
    for every test that reads it. Tests that save anything use `with_demo15`."""
    from tests.demo_data import build_demo_data

    return build_demo_data(tmp_path_factory.mktemp("demo15"), history_days=15)


@pytest.fixture
def with_demo15(demo15: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The app on the shared 15-day snapshot with a fresh control store for this test (saved
    experiments and schedules are not shared)."""
    import streamlit as st

    root = tmp_path / "data"
    root.mkdir()
    (root / "serving").symlink_to(demo15 / "serving")
    shutil.copy(demo15 / "control.sqlite", root / "control.sqlite")
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(root))
    # app.data caches the control store per process: point it at this test's folder
    st.cache_resource.clear()
    st.cache_data.clear()
    return root
