"""The app's data layer: the published snapshot, the control store, and where they live.

The snapshot connection is cached per manifest version, so a new publish is picked up on the
next rerun while every session shares one in-memory DuckDB per version.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import streamlit as st

from collectors.control import ControlStore
from collectors.publish import read_manifest
from collectors.snapshot import Snapshot, open_snapshot


def data_dir() -> Path:
    return Path(os.environ.get("WORKBENCH_DATA_DIR", "data")).resolve()


def serving_dir() -> Path:
    return data_dir() / "serving"


@st.cache_resource(max_entries=2, show_spinner=False)
def _snapshot_at(serving: str, version: int, _manifest: dict) -> Snapshot:
    # Keyed on the version; built from the very manifest that version came from.
    return open_snapshot(serving, _manifest or None)


def manifest() -> dict:
    return read_manifest(serving_dir()) or {"version": 0}


def snapshot() -> Snapshot:
    """The latest published snapshot (cached until the next publish)."""
    current = manifest()
    return _snapshot_at(str(serving_dir()), int(current.get("version", 0)), current)


def cursor():
    """A cursor on the shared in-memory snapshot: one per query, safe across sessions."""
    return snapshot().con.cursor()


@st.cache_resource(show_spinner=False)
def _control_store_at(path: str) -> ControlStore:
    return ControlStore(path)


def control_store() -> ControlStore:
    """The control store of the current data folder (cached per folder)."""
    return _control_store_at(str(data_dir() / "control.sqlite"))


def staleness_minutes(manifest_: dict) -> float | None:
    published = manifest_.get("published_at")
    if not published:
        return None
    return (datetime.now(UTC) - datetime.fromisoformat(published)).total_seconds() / 60
