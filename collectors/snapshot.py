"""Reading the published snapshot: an in-memory DuckDB with one view per table and rollup.

The app never opens the warehouse. It reads manifest.json once (it is replaced atomically, so it
is always whole), checks that every Parquet file it names can be read, then points views at
them. Tables with no data yet are empty tables of the warehouse schema, so every analysis runs
on a fresh install.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import duckdb

from analysis.metrics import lock_down
from collectors.rollups import ROLLUPS
from collectors.schema import TABLES
from collectors.serving_format import (
    BOOKKEEPING_COLUMNS,
    DAY_GROUPS,
    Manifest,
    empty_manifest,
    read_manifest,
    served_names,
    unreadable_files,
)

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    con: duckdb.DuckDBPyConnection
    manifest: Manifest

    @property
    def version(self) -> int:
        return int(self.manifest.get("version", 0))


class SnapshotUnreadable(Exception):
    """Files a manifest names cannot be read: `problems` maps each to the reason."""

    def __init__(self, version: int, problems: dict[str, str]) -> None:
        first = min(problems)
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        super().__init__(f"{first} is {problems[first]}{more}")
        self.version = version
        self.problems = problems


def without_files(manifest: Manifest, files: set[str]) -> Manifest:
    """A copy of `manifest` without the days (and bookkeeping) stored in `files`."""
    copy = {**manifest}
    for group in DAY_GROUPS:
        copy[group] = {
            name: {
                **entry,
                "days": {k: d for k, d in entry["days"].items() if d["file"] not in files},
            }
            for name, entry in manifest.get(group, {}).items()
        }
    copy["bookkeeping"] = {
        name: b for name, b in manifest.get("bookkeeping", {}).items() if b["file"] not in files
    }
    return copy


def _files_sql(serving: Path, files: list[str]) -> str:
    # Paths come from our own manifest; quote them as SQL string literals.
    quoted = ", ".join("'" + (serving / f).as_posix().replace("'", "''") + "'" for f in files)
    return f"read_parquet([{quoted}])"


def open_snapshot(serving: str | Path, manifest: Manifest | None = None) -> Snapshot:
    """A read-only view of a published snapshot: `manifest` if given (so a caller that keyed a
    cache on its version gets exactly that version), else the latest one, else an empty one.
    Raises SnapshotUnreadable when a file it names is missing or damaged."""
    serving = Path(serving)
    manifest = manifest or read_manifest(serving) or empty_manifest()
    problems = unreadable_files(serving, manifest)
    if problems:
        raise SnapshotUnreadable(int(manifest.get("version", 0)), problems)
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    _create_empty_tables(con)
    known = served_names()
    for group in (*DAY_GROUPS, "bookkeeping"):
        unknown = set(manifest.get(group, {})) - known
        if unknown:  # names become SQL identifiers: only our own are accepted
            raise ValueError(f"serving manifest names unknown tables: {sorted(unknown)}")
    for name, entry in manifest.get("tables", {}).items():
        files = [d["file"] for _, d in sorted(entry["days"].items())]
        if files:
            con.execute(f"DROP TABLE {name}")
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM {_files_sql(serving, files)}")
    for name, entry in manifest.get("rollups", {}).items():
        files = [d["file"] for _, d in sorted(entry["days"].items())]
        if files:
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM {_files_sql(serving, files)}")
    for name, entry in manifest.get("bookkeeping", {}).items():
        con.execute(f"DROP TABLE IF EXISTS {name}")
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM {_files_sql(serving, [entry['file']])}")
    _create_missing_rollups(con)
    # Metric SQL from the configuration runs here: it may read the snapshot and nothing else.
    lock_down(con, [serving.resolve()])
    return Snapshot(con, manifest)


def _create_empty_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Every warehouse table and bookkeeping table the snapshot serves, empty, with the
    warehouse's columns and types (views replace those the manifest has files for)."""
    columns = {
        **{t.name: tuple((c.name, c.type) for c in t.columns) for t in TABLES.values()},
        **BOOKKEEPING_COLUMNS,
    }
    for name, cols in columns.items():
        # Names and types are our own schema's, never input.
        con.execute(f"CREATE TABLE {name} ({', '.join(f'{c} {t}' for c, t in cols)})")


def _create_missing_rollups(con: duckdb.DuckDBPyConnection) -> None:
    """Rollups with no data yet become empty tables with the right columns."""
    existing = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    for rollup in ROLLUPS:
        if rollup.name not in existing:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE src AS SELECT * FROM {rollup.source} LIMIT 0"
            )
            con.execute(f"CREATE TABLE {rollup.name} AS {rollup.select}")
            con.execute("DROP TABLE src")
