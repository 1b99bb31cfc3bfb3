from __future__ import annotations

import pytest

from tests.demo_data import build_demo_data


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    return build_demo_data(tmp_path_factory.mktemp("demo"))


@pytest.fixture
def with_demo(demo_dir, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(demo_dir))
    return demo_dir
