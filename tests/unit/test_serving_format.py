"""The serving snapshot's format, which the writer and the reader share: an empty snapshot has
every table the warehouse serves, with the warehouse's columns and types."""

from __future__ import annotations

from pathlib import Path

import duckdb

from collectors.publish import BOOKKEEPING
from collectors.schema import TABLES
from collectors.serving_format import BOOKKEEPING_TABLES, empty_manifest, served_names
from collectors.snapshot import open_snapshot
from collectors.warehouse import open_warehouse


def columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    return [
        (str(name), str(kind))
        for name, kind in con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
    ]


def test_an_empty_snapshot_has_the_warehouse_tables_with_their_columns(tmp_path: Path) -> None:
    warehouse = open_warehouse(tmp_path / "w.duckdb")
    snapshot = open_snapshot(tmp_path / "serving").con
    for table in (*TABLES, *BOOKKEEPING_TABLES):
        assert columns(snapshot, table) == columns(warehouse, table), table
        assert snapshot.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
    warehouse.close()


def test_the_writer_publishes_exactly_the_bookkeeping_the_reader_knows() -> None:
    assert set(BOOKKEEPING) == set(BOOKKEEPING_TABLES)
    assert set(BOOKKEEPING_TABLES) <= served_names()


def test_an_empty_manifest_opens_as_an_empty_snapshot(tmp_path: Path) -> None:
    snap = open_snapshot(tmp_path, empty_manifest())
    assert snap.version == 0
    assert snap.con.execute("SELECT count(*) FROM requests_hourly").fetchone() == (0,)
