"""The app's data layer: the published snapshot, the control store, the configuration's
metrics, and where they live.

The snapshot connection is cached per manifest version, so a new publish is picked up on the
next rerun while every session shares one in-memory DuckDB per version. When a file of the
latest version cannot be read, pages keep the last snapshot that opened (or, before any did,
the readable part of this one) and the freshness banner says so.

Pages call analysis functions through `analysed`, which caches each result on the snapshot's
version and the arguments, so a widget change reruns only what it changes.

User-defined metrics (`[[metrics]]`) are read from the configuration file itself, cached on its
modification time, so an edit shows on the next rerun without a restart.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import duckdb
import streamlit as st

from collectors.alerts.store import AlertStore
from collectors.config import ConfigError, config_path, load_config
from collectors.control import ControlStore, ControlStoreError
from collectors.serving_format import read_manifest
from collectors.snapshot import Snapshot, SnapshotUnreadable, open_snapshot, without_files


def data_dir() -> Path:
    return Path(os.environ.get("WORKBENCH_DATA_DIR", "data")).resolve()


def serving_dir() -> Path:
    return data_dir() / "serving"


@st.cache_resource(max_entries=2, show_spinner=False)
def _snapshot_at(serving: str, version: int, _manifest: dict[str, Any]) -> Snapshot:
    # Keyed on the version; built from the very manifest that version came from.
    return open_snapshot(serving, _manifest or None)


def manifest() -> dict[str, Any]:
    return read_manifest(serving_dir()) or {"version": 0}


@st.cache_resource(max_entries=2, show_spinner=False)
def _readable_part_at(
    serving: str, version: int, _manifest: dict[str, Any], skip: tuple[str, ...]
) -> Snapshot:
    return open_snapshot(serving, without_files(_manifest, set(skip)))


@st.cache_resource(show_spinner=False)
def _served(serving: str) -> dict[str, Any]:
    """Per snapshot folder: the last snapshot that opened, and the version that did not."""
    return {}


def _snapshot_and_problem() -> tuple[Snapshot, str | None]:
    current = manifest()
    serving, version = str(serving_dir()), int(current.get("version", 0))
    served = _served(serving)
    failed = served.get("failed")
    if failed is None or failed.version != version:
        try:
            snap = _snapshot_at(serving, version, current)
        except SnapshotUnreadable as exc:
            failed = served["failed"] = exc
        else:
            served["good"] = snap
            return snap, None
    good = served.get("good")
    if good is not None and good.version < version:
        instead = f"showing snapshot v{good.version}"
    else:
        good = _readable_part_at(serving, version, current, tuple(sorted(failed.problems)))
        instead = "showing the rest of it"
    return good, (
        f"The latest data (snapshot v{version}) could not be read ({failed}); {instead} "
        "until the collectors service rewrites it, which its next publish does."
    )


def snapshot() -> Snapshot:
    """The latest published snapshot that can be read (cached until the next publish)."""
    return _snapshot_and_problem()[0]


def snapshot_problem() -> str | None:
    """One sentence when pages are not showing the latest published snapshot, else None."""
    return _snapshot_and_problem()[1]


def cursor() -> duckdb.DuckDBPyConnection:
    """A cursor on the shared in-memory snapshot: one per query, safe across sessions."""
    return snapshot().con.cursor()


P = ParamSpec("P")
R = TypeVar("R")
# analysed()'s functions by name: the cached runner is keyed on the name, not the function.
_ANALYSES: dict[str, Callable[..., Any]] = {}


def analysed(
    fn: Callable[Concatenate[duckdb.DuckDBPyConnection, P], R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """fn(cursor, *args, **kwargs) for an analysis function of the snapshot, cached on the
    snapshot's version and the arguments: a widget change reruns only the analyses whose
    arguments it changes, and a new publish recomputes them all. Only for functions that read
    nothing but the snapshot (not the control store or the clock)."""
    name = f"{fn.__module__}.{fn.__qualname__}"
    _ANALYSES.setdefault(name, fn)
    snap = snapshot()
    result: R = _analysed_at(str(serving_dir()), snap.version, name, args, kwargs)
    return result


@st.cache_data(ttl=3600, max_entries=512, show_spinner=False)
def _analysed_at(
    serving: str, version: int, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    # Keyed on the snapshot folder and version; computed on the snapshot of that version.
    return _ANALYSES[name](cursor(), *args, **kwargs)


@st.cache_resource(show_spinner=False)
def _control_store_at(path: str) -> ControlStore:
    return ControlStore(path)


def control_store() -> ControlStore:
    """The control store of the current data folder (cached per folder)."""
    return _control_store_at(str(data_dir() / "control.sqlite"))


@st.cache_resource(show_spinner=False)
def _alert_store_at(path: str) -> AlertStore:
    return AlertStore(path)


def alert_store() -> AlertStore:
    """The control store with alerting's tables (collectors/alerts/store.py)."""
    return _alert_store_at(str(data_dir() / "control.sqlite"))


def staleness_minutes(manifest_: dict[str, Any]) -> float | None:
    published = manifest_.get("published_at")
    if not published:
        return None
    return (datetime.now(UTC) - datetime.fromisoformat(published)).total_seconds() / 60


def publish_problem() -> dict[str, Any] | None:
    """The service's report of a failing publish (since, message, attempts, retry_at)."""
    try:
        return control_store().service_info().get("publish_error") or None
    except ControlStoreError:
        return None


@st.cache_data(max_entries=4, show_spinner=False)
def _configured_metrics_at(
    path: str | None, mtime_ns: int | None
) -> tuple[list[dict[str, Any]], str | None]:
    # Keyed on the file and its modification time; loaded as the service loads it.
    try:
        return load_config().metrics, None
    except ConfigError as exc:
        return [], " ".join(exc.problems)


def _configured_metrics() -> tuple[list[dict[str, Any]], str | None]:
    path, _ = config_path(None, os.environ)
    try:
        mtime_ns = path.stat().st_mtime_ns if path is not None else None
    except OSError:
        mtime_ns = None  # missing: load_config says so
    return _configured_metrics_at(None if path is None else str(path), mtime_ns)


def custom_metrics() -> list[dict[str, Any]]:
    """The `[[metrics]]` definitions of the configuration; none when it has a problem."""
    return _configured_metrics()[0]


def config_problem() -> str | None:
    """What is wrong with the configuration, in its own words, or None."""
    return _configured_metrics()[1]
