"""Rollups built in a test's warehouse as the publisher builds them: one UTC day at a time."""

from __future__ import annotations

import duckdb

from collectors.rollups import rollups_for
from collectors.schema import TABLES


def build_rollups(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """(Re)create every rollup of `table` from its rows, one UTC day at a time."""
    t = TABLES[table].time_column
    days = [d for (d,) in con.execute(f"SELECT DISTINCT CAST({t} AS DATE) FROM {table}").fetchall()]
    for rollup in rollups_for(table):
        con.execute(f"DROP TABLE IF EXISTS {rollup.name}")
        for i, day in enumerate(sorted(days)):
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE src AS SELECT * FROM {table} "
                f"WHERE CAST({t} AS DATE) = ? ORDER BY {t}",
                [day],
            )
            if i == 0:
                con.execute(f"CREATE TABLE {rollup.name} AS {rollup.select}")
            else:
                con.execute(f"INSERT INTO {rollup.name} {rollup.select}")
        if not days:
            con.execute(f"CREATE OR REPLACE TEMP TABLE src AS SELECT * FROM {table} LIMIT 0")
            con.execute(f"CREATE TABLE {rollup.name} AS {rollup.select}")
        con.execute("DROP TABLE IF EXISTS src")
