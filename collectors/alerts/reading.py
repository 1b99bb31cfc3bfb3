"""The published snapshot as alert rules read it: one long-lived, locked-down in-memory DuckDB
per reader whose views follow each new manifest, recreating only the views whose files
changed (a publish rewrites a few days, so most views stay), and optionally only over the
recent days, which the rules of most kinds read (their windows are minutes to hours; a view over
two days' files answers faster than one over thirty).

It reads exactly what collectors.snapshot.open_snapshot reads (the same manifest, files checked
the same way, the same empty tables before data, the same lock-down), kept open across
publishes instead of opened per version.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from analysis.metrics import lock_down
from collectors.serving_format import (
    DAY_GROUPS,
    Manifest,
    files_and_rows,
    parquet_problem,
    served_names,
)
from collectors.snapshot import _create_empty_tables, _create_missing_rollups, without_files

log = logging.getLogger(__name__)


def _files_sql(serving: Path, files: list[str]) -> str:
    # Paths come from our own manifest; quoted as SQL string literals.
    quoted = ", ".join("'" + (serving / f).as_posix().replace("'", "''") + "'" for f in files)
    return f"read_parquet([{quoted}])"


class SnapshotReader:
    def __init__(self, serving: Path, since: date | None = None) -> None:
        self.serving = serving
        self.since = since  # only day partitions from this day on
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET TimeZone = 'UTC'")
        _create_empty_tables(self.con)
        self._views: dict[str, tuple[str, ...]] = {}
        self._tables = self._base_tables()  # empty stand-ins, until a view replaces them
        self._checked: set[str] = set()
        self.version = -1
        self._locked = False

    def close(self) -> None:
        self.con.close()

    def refresh(self, manifest: Manifest) -> None:
        """Follow `manifest`: views whose files changed are recreated. A file that cannot be
        read keeps the previous version of its view (the app does the same with its snapshot)."""
        version = int(manifest.get("version", 0))
        if version == self.version:
            return
        # files are immutable once published: check only the ones this reader has not read yet
        problems = {
            rel: problem
            for rel, rows in files_and_rows(manifest).items()
            if rel not in self._checked and (problem := parquet_problem(self.serving / rel, rows))
        }
        if problems:
            log.warning("alert rules skip %d unreadable snapshot file(s)", len(problems))
            manifest = without_files(manifest, set(problems))
        known = served_names()
        wanted: dict[str, tuple[str, ...]] = {}
        for group in DAY_GROUPS:
            for name, entry in manifest.get(group, {}).items():
                days = sorted(entry["days"].items())
                files = tuple(d["file"] for day, d in days if self._keep(day))
                if name in known and files:
                    wanted[name] = files
        for name, entry in manifest.get("bookkeeping", {}).items():
            if name in known:
                wanted[name] = (entry["file"],)
        for name, files in wanted.items():
            if self._views.get(name) == files:
                continue
            if name in self._tables:  # the empty table that stood in for it
                self.con.execute(f"DROP TABLE {name}")
                self._tables.discard(name)
            source = _files_sql(self.serving, list(files))
            # names are served_names() (our own), files our manifest's
            self.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {source}")  # noqa: S608
            self._views[name] = files
            self._checked.update(files)
        if not self._locked:
            _create_missing_rollups(self.con)
            self._tables = self._base_tables()
            # Metric SQL from the configuration runs here: it may read the snapshot, no more.
            lock_down(self.con, [self.serving.resolve()])
            self._locked = True
        self.version = version

    def _base_tables(self) -> set[str]:
        rows = self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        ).fetchall()
        return {r[0] for r in rows}

    def follow(self, since: date | None) -> None:
        """Read from another first day on (the recent window moves with the clock)."""
        if since != self.since:
            self.since = since
            self.version = -1

    def _keep(self, day: str) -> bool:
        return self.since is None or day >= self.since.isoformat()

    def cursor(self) -> Any:
        return self.con.cursor()
