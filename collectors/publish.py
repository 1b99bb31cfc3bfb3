"""Publishing the serving snapshot: Parquet files under data/serving/ and a manifest.

Incremental: the run engine marks each (table, UTC day) it changed in `dirty_partitions`; a
publish rewrites only those days (raw rows and their hourly rollups) into new, uniquely named
files, so its cost follows the new data, not the warehouse. Small bookkeeping tables are
rewritten whole.

Atomic: files are never overwritten. The new manifest is written aside, fsynced and renamed over
`manifest.json`, so a reader sees the old snapshot or the new one, never a mix. Files no manifest
refers to are deleted after a grace period long enough for any reader of an older manifest.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from collectors.engine import WRITE_LOCK
from collectors.rollups import ROLLUPS, rollups_for
from collectors.schema import TABLES

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
GRACE_SECONDS = 600
# Bookkeeping published whole on every run (bounded so publishing stays cheap).
BOOKKEEPING = {
    "collector_runs": "SELECT * FROM collector_runs ORDER BY run_id DESC LIMIT 5000",
    "rejects": "SELECT * FROM rejects ORDER BY reject_id DESC LIMIT 2000",
    "watermarks": "SELECT * FROM watermarks",
    "alerts": "SELECT * FROM alerts ORDER BY fired_at DESC LIMIT 5000",
}


@dataclass
class PublishResult:
    version: int
    days_written: int
    files_written: int
    seconds: float


def read_manifest(serving: Path) -> dict[str, Any] | None:
    try:
        return json.loads((serving / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        log.warning(
            "serving manifest %s is unreadable (%s); republishing everything",
            serving / MANIFEST,
            exc,
        )
        return None


def _write_manifest(serving: Path, manifest: dict[str, Any]) -> None:
    tmp = serving / f".{MANIFEST}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, serving / MANIFEST)
    dir_fd = os.open(serving, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _copy(con: duckdb.DuckDBPyConnection, select: str, params: list, target: Path) -> int:
    """COPY a query to Parquet; returns its row count. The path is ours, never user input."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    con.execute(f"COPY ({select}) TO '{tmp.as_posix()}' (FORMAT parquet, COMPRESSION zstd)", params)
    os.replace(tmp, target)
    row = con.execute(f"SELECT count(*) FROM read_parquet('{target.as_posix()}')").fetchone()
    return int(row[0])


def _mark_everything_dirty(con: duckdb.DuckDBPyConnection) -> None:
    for spec in TABLES.values():
        con.execute(
            f"INSERT INTO dirty_partitions SELECT DISTINCT ?, CAST({spec.time_column} AS DATE) "
            f"FROM {spec.name} ON CONFLICT DO NOTHING",
            [spec.name],
        )


VERSION_IN_NAME = re.compile(r"-v(\d+)\.parquet$")


def _empty_manifest(serving: Path) -> dict[str, Any]:
    """A fresh manifest whose versions continue after any file already on disk, so a rebuilt
    snapshot never reuses a file name or a version a reader may have cached."""
    latest = 0
    for path in serving.rglob("*.parquet"):
        found = VERSION_IN_NAME.search(path.name)
        if found:
            latest = max(latest, int(found.group(1)))
    return {"version": latest, "tables": {}, "rollups": {}, "bookkeeping": {}, "retired": {}}


def snapshot_is_whole(serving: Path, manifest: dict[str, Any]) -> bool:
    """True when every file the manifest names exists (someone may have deleted some)."""
    return all((serving / rel).exists() for rel in referenced_files(manifest))


def publish(con: duckdb.DuckDBPyConnection, serving: str | Path) -> PublishResult:
    """Publish what changed since the last publish; the first call publishes everything."""
    started = time.perf_counter()
    serving = Path(serving)
    serving.mkdir(parents=True, exist_ok=True)
    con = con.cursor()
    with WRITE_LOCK:
        manifest = read_manifest(serving)
        if manifest is not None and not snapshot_is_whole(serving, manifest):
            log.warning("serving snapshot %s is missing files; republishing everything", serving)
            manifest = None
        if manifest is None:
            manifest = _empty_manifest(serving)
            _mark_everything_dirty(con)
        previously = referenced_files(manifest)
        version = int(manifest["version"]) + 1
        dirty = con.execute("SELECT table_name, day FROM dirty_partitions ORDER BY ALL").fetchall()
        files = 0
        for table_name, day in dirty:
            files += _publish_day(con, serving, manifest, table_name, day, version)
        for name, select in BOOKKEEPING.items():
            target = serving / "bookkeeping" / f"{name}-v{version}.parquet"
            rows = _copy(con, select, [], target)
            manifest["bookkeeping"][name] = {"file": _rel(serving, target), "rows": rows}
            files += 1
        manifest["version"] = version
        manifest["published_at"] = datetime.now(UTC).isoformat()
        manifest["freshness"] = _freshness(con)
        # Files the previous manifest named may still be read by its readers: note when they
        # stopped being referenced, and delete them only a grace period after that.
        retired = manifest.setdefault("retired", {})
        now = time.time()
        for rel in previously - referenced_files(manifest):
            retired.setdefault(rel, now)
        expired = {rel for rel, when in retired.items() if now - when > GRACE_SECONDS}
        for rel in expired:
            del retired[rel]
        _write_manifest(serving, manifest)
        # Every write takes WRITE_LOCK, so nothing was marked dirty since we read the list.
        con.execute("DELETE FROM dirty_partitions")
    _collect_garbage(serving, manifest, expired)
    return PublishResult(version, len(dirty), files, time.perf_counter() - started)


def _rel(serving: Path, path: Path) -> str:
    return path.relative_to(serving).as_posix()


def _publish_day(con, serving: Path, manifest: dict, table_name: str, day: date, version: int):
    spec = TABLES[table_name]
    start = datetime.combine(day, datetime.min.time())
    end = start + timedelta(days=1)
    key = day.isoformat()
    t = spec.time_column
    where = f"{t} >= ? AND {t} < ?"
    files = 0
    entry = manifest["tables"].setdefault(table_name, {"days": {}, "latest": None})
    target = serving / "tables" / table_name / f"{key}-v{version}.parquet"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE src AS SELECT * FROM {table_name} WHERE {where} "
        f"ORDER BY {t}",
        [start, end],
    )
    rows = _copy(con, "SELECT * FROM src", [], target)
    files += 1
    if rows:
        entry["days"][key] = {"file": _rel(serving, target), "rows": rows}
        latest = con.execute(f"SELECT max({t}) FROM src").fetchone()[0]
        if entry["latest"] is None or latest.isoformat() > entry["latest"]:
            entry["latest"] = latest.isoformat()
    else:
        entry["days"].pop(key, None)
        target.unlink(missing_ok=True)
    entry["rows"] = sum(d["rows"] for d in entry["days"].values())
    for rollup in rollups_for(table_name):
        r_entry = manifest["rollups"].setdefault(rollup.name, {"days": {}})
        r_target = serving / "rollups" / rollup.name / f"{key}-v{version}.parquet"
        r_rows = _copy(con, rollup.select, [], r_target) if rows else 0
        if r_rows:
            r_entry["days"][key] = {"file": _rel(serving, r_target), "rows": r_rows}
            files += 1
        else:
            r_entry["days"].pop(key, None)
            r_target.unlink(missing_ok=True)
    con.execute("DROP TABLE src")
    return files


def _freshness(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Per source: last run, last success, and its status, for the app's freshness banner."""
    rows = con.execute(
        "SELECT source, max(started_at), max(ended_at) FILTER (WHERE status IN ('ok','partial')), "
        "arg_max(status, run_id), arg_max(error, run_id) FROM collector_runs GROUP BY source"
    ).fetchall()
    return {
        r[0]: {
            "last_run": r[1].isoformat() if r[1] else None,
            "last_success": r[2].isoformat() if r[2] else None,
            "last_status": r[3],
            "last_error": r[4],
        }
        for r in rows
    }


def referenced_files(manifest: dict[str, Any]) -> set[str]:
    refs = set()
    for group in ("tables", "rollups"):
        for entry in manifest.get(group, {}).values():
            refs.update(d["file"] for d in entry["days"].values())
    refs.update(b["file"] for b in manifest.get("bookkeeping", {}).values())
    return refs


def _collect_garbage(serving: Path, manifest: dict[str, Any], expired: set[str]) -> None:
    """Delete files retired more than GRACE_SECONDS ago, and leftovers of interrupted
    publishes (never referenced by a manifest) older than that."""
    keep = referenced_files(manifest) | set(manifest.get("retired", {}))
    cutoff = time.time() - GRACE_SECONDS
    for folder in ("tables", "rollups", "bookkeeping"):
        for path in (serving / folder).rglob("*.parquet*"):
            rel = _rel(serving, path)
            if rel in keep:
                continue
            try:
                if rel in expired or path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:
                pass


def all_rollup_names() -> list[str]:
    return [r.name for r in ROLLUPS]
