"""When each release was first seen in traffic, and the newest row of a table, read from the
`<table>_release_span` rollups (collectors/rollups.py: per hour and release, the first and last
time, exact) when the snapshot has them, so their cost does not grow with retention; from the
raw table otherwise (a warehouse without rollups, in tests and tools)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb

# Raw table -> (its time column, its release-span rollup).
TRAFFIC: dict[str, tuple[str, str]] = {
    "calls": ("started_at", "calls_release_span"),
    "requests": ("started_at", "requests_release_span"),
    "errors": ("occurred_at", "errors_release_span"),
}


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchone()
    return bool(row and row[0])


def _source(con: duckdb.DuckDBPyConnection, table: str) -> tuple[str, str, str]:
    """(relation, first-time column, last-time column) to read `table`'s span from."""
    time_column, rollup = TRAFFIC[table]
    if _has_table(con, rollup):
        return rollup, "first_at", "last_at"
    return table, time_column, time_column


def release_first_seen(
    con: duckdb.DuckDBPyConnection, tables: Sequence[str]
) -> dict[str, datetime]:
    """Per release: the first time a row of `tables` (keys of TRAFFIC) carries it."""
    parts = []
    for table in tables:
        relation, first, _ = _source(con, table)
        parts.append(f"SELECT release, min({first}) AS t FROM {relation} GROUP BY release")  # noqa: S608
    sql = (
        f"SELECT release, min(t) FROM ({' UNION ALL '.join(parts)}) "  # noqa: S608 - fixed names
        "WHERE release IS NOT NULL GROUP BY release"
    )
    return {release: t for release, t in con.execute(sql).fetchall() if t is not None}


def latest(con: duckdb.DuckDBPyConnection, table: str) -> datetime | None:
    """The newest time in `table` (a key of TRAFFIC)."""
    relation, _, last = _source(con, table)
    row = con.execute(f"SELECT max({last}) FROM {relation}").fetchone()  # noqa: S608
    return row[0] if row else None
