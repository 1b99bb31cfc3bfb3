"""The app reads user-defined metrics from the configuration file itself (not through the
control store), again only when the file changes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import streamlit as st

from app import data

SQL = "SELECT call_id, started_at AS ts, 1.0 AS value FROM calls"


def write_metric(path: Path, name: str, mtime_s: int) -> None:
    path.write_text(
        f'[[metrics]]\nname = "{name}"\ntype = "proportion"\nlevel = "call"\nsql = "{SQL}"\n'
    )
    os.utime(path, (mtime_s, mtime_s))  # distinct modification times, however fast the test


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "workbench.toml"
    monkeypatch.setenv("WORKBENCH_CONFIG", str(path))
    st.cache_data.clear()
    return path


def names() -> list[str]:
    return [m["name"] for m in data.custom_metrics()]


def test_metrics_are_read_again_only_when_the_file_changes(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[Any] = []
    real = data.load_config
    monkeypatch.setattr(data, "load_config", lambda: loads.append(1) or real())
    write_metric(config, "long_calls", 1_700_000_000)
    assert names() == ["long_calls"] and data.config_problem() is None
    assert names() == ["long_calls"]
    assert len(loads) == 1
    write_metric(config, "short_calls", 1_700_000_100)
    assert names() == ["short_calls"]
    assert len(loads) == 2


def test_a_broken_file_is_one_sentence_and_no_metrics(config: Path) -> None:
    config.write_text("[[metrics]\nname = ")
    assert names() == []
    problem = data.config_problem()
    assert problem is not None and "is not valid TOML" in problem and "\n" not in problem


def test_a_missing_file_named_by_the_environment_says_so(config: Path) -> None:
    assert names() == []
    assert f"{config} does not exist" in (data.config_problem() or "")
