"""Opening the warehouse and applying versioned migrations.

Only the collectors service (or a one-off `workbench collect` when no service runs) opens
data/warehouse.duckdb; DuckDB allows one read-write process and no readers beside it.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)


class WarehouseLocked(RuntimeError):
    """Another process (normally `workbench serve`) holds the warehouse."""


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every file in collectors/migrations, in version order."""
    found = []
    for entry in resources.files("collectors.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)"
    )
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    assert row is not None  # an aggregate returns one row
    return int(row[0])


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply every migration newer than the warehouse, each in its own transaction."""
    current = schema_version(con)
    for version, name, sql in migrations():
        if version <= current:
            continue
        con.execute("BEGIN")
        try:
            con.execute(sql)
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, now()::TIMESTAMP)", [version, name]
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        log.info("warehouse migrated to version %s (%s)", version, name)
        current = version
    return current


def open_warehouse(path: str | Path) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) and migrate the warehouse; WarehouseLocked if held elsewhere."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseLocked(str(exc)) from exc
        raise
    con.execute("SET TimeZone = 'UTC'")
    migrate(con)
    return con
