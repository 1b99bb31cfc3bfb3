"""The serving snapshot's format, shared by its writer (collectors/publish.py) and its reader
(collectors/snapshot.py), so that reading a snapshot never loads the write path.

A snapshot is a folder of Parquet files and `manifest.json`:
  {"version": n, "published_at": iso, "freshness": {source: {...}},
   "tables":  {warehouse table: {"days": {"YYYY-MM-DD": {"file": rel, "rows": n}}, ...}},
   "rollups": {rollup: {"days": {"YYYY-MM-DD": {"file": rel, "rows": n}}}},
   "bookkeeping": {table: {"file": rel, "rows": n}},
   "retired": {rel: unix time}}   (files kept for readers of older manifests; writer only)
`rel` is a path relative to the folder; `rows` is what the writer wrote, which a reader checks.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from collectors.rollups import ROLLUPS
from collectors.schema import TABLES

log = logging.getLogger(__name__)

Manifest = dict[str, Any]

MANIFEST = "manifest.json"
# Manifest groups whose entries are partitioned by UTC day; "bookkeeping" entries are one file.
DAY_GROUPS = ("tables", "rollups")
# Bookkeeping tables published whole, with their columns as the warehouse has them
# (collectors/migrations; a test keeps the two equal), so an empty snapshot has them too.
BOOKKEEPING_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "collector_runs": (
        ("run_id", "BIGINT"),
        ("source", "VARCHAR"),
        ("started_at", "TIMESTAMP"),
        ("ended_at", "TIMESTAMP"),
        ("status", "VARCHAR"),
        ("rows_read", "BIGINT"),
        ("rows_inserted", "BIGINT"),
        ("rows_updated", "BIGINT"),
        ("rows_rejected", "BIGINT"),
        ("attempts", "INTEGER"),
        ("error", "VARCHAR"),
    ),
    "rejects": (
        ("reject_id", "BIGINT"),
        ("run_id", "BIGINT"),
        ("source", "VARCHAR"),
        ("table_name", "VARCHAR"),
        ("row_json", "VARCHAR"),
        ("reason", "VARCHAR"),
        ("rejected_at", "TIMESTAMP"),
    ),
    "watermarks": (
        ("source", "VARCHAR"),
        ("stream", "VARCHAR"),
        ("value", "VARCHAR"),
        ("updated_at", "TIMESTAMP"),
    ),
    "alerts": (
        ("alert_id", "VARCHAR"),
        ("rule", "VARCHAR"),
        ("severity", "VARCHAR"),
        ("fired_at", "TIMESTAMP"),
        ("resolved_at", "TIMESTAMP"),
        ("summary", "VARCHAR"),
        ("labels", "VARCHAR"),
    ),
}
BOOKKEEPING_TABLES = tuple(BOOKKEEPING_COLUMNS)


def empty_manifest() -> Manifest:
    """The manifest of a snapshot nothing was published to yet."""
    return {"version": 0, "tables": {}, "rollups": {}, "bookkeeping": {}}


def served_names() -> frozenset[str]:
    """Every name a manifest may use: they become SQL identifiers, so only our own are."""
    return frozenset(TABLES) | {r.name for r in ROLLUPS} | set(BOOKKEEPING_TABLES)


def read_manifest(serving: Path) -> Manifest | None:
    """The current manifest, or None when there is none or it cannot be read."""
    try:
        manifest: Manifest = json.loads((serving / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        log.warning(
            "serving manifest %s is unreadable (%s); republishing everything",
            serving / MANIFEST,
            exc,
        )
        return None
    return manifest


def files_and_rows(manifest: Manifest) -> dict[str, int | None]:
    """Every file `manifest` names, with the row count written to it (None if not recorded)."""
    found: dict[str, int | None] = {}
    for group in DAY_GROUPS:
        for entry in manifest.get(group, {}).values():
            found.update({d["file"]: d.get("rows") for d in entry["days"].values()})
    found.update({b["file"]: b.get("rows") for b in manifest.get("bookkeeping", {}).values()})
    return found


def referenced_files(manifest: Manifest) -> set[str]:
    return set(files_and_rows(manifest))


# Files already checked in this process, by path: (size, mtime_ns). Files are immutable once
# published, so a file whose size and time have not changed needs no second look. The writer
# records the files it renames into place and forgets the ones it deletes.
CHECKED_FILES: dict[str, tuple[int, int]] = {}


def parquet_problem(path: Path, rows: int | None = None) -> str | None:
    """Why the Parquet file at `path` cannot be served (missing, an unreadable footer, not the
    expected row count), or None when it can."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return "missing"
    key = str(path)
    if CHECKED_FILES.get(key) == (stat.st_size, stat.st_mtime_ns):
        return None
    try:
        found = pq.read_metadata(path).num_rows
    except (OSError, ValueError, pa.ArrowException) as exc:
        return f"unreadable: {str(exc).splitlines()[0][:160]}"
    if rows is not None and found != rows:
        return f"holds {found} rows where {rows} were written"
    CHECKED_FILES[key] = (stat.st_size, stat.st_mtime_ns)
    return None


def unreadable_files(serving: Path, manifest: Manifest) -> dict[str, str]:
    """The files `manifest` names that cannot be served, each with the reason."""
    problems: dict[str, str] = {}
    for rel, rows in files_and_rows(manifest).items():
        problem = parquet_problem(serving / rel, rows)
        if problem:
            problems[rel] = problem
    return problems
