"""Postgres backfill rate into the warehouse beside a bare COPY ... TO STDOUT of the same rows.

Run: .venv/bin/python bench/bench_pg_backfill.py [rows]   (default 1,000,000; needs PostgreSQL 15)
Prints rows/s for (a) a bare `COPY (SELECT <same columns>) TO STDOUT (FORMAT CSV)` read into
memory and discarded, (b) the SupabasePgSource fetch alone (COPY -> Arrow), and (c) the full
backfill through collectors.engine.run_source into a fresh file-backed warehouse. One table only;
bench_pg_collect.py measures every SDK table, the CLI and publishing.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

from collectors.engine import run_source  # noqa: E402
from collectors.sources.supabase_pg import SupabasePgSource  # noqa: E402
from collectors.sources.supabase_rest import sdk_mappings  # noqa: E402
from collectors.warehouse import open_warehouse  # noqa: E402
from tests.integration.pgcluster import fresh_database, insert_requests  # noqa: E402


def main(n: int) -> None:
    dsn = fresh_database()
    t = time.perf_counter()
    insert_requests(dsn, n)
    print(f"generated {n:,} rows in {time.perf_counter() - t:.1f} s")
    src = SupabasePgSource(dsn, sdk_mappings(["requests"]))
    with psycopg.connect(dsn) as con:
        # Same select list (UTC conversion, casts, cursor columns) as the source uses.
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'requests'").fetchall())  # fmt: skip
        select = src.select_list(src.mappings[0], types)
        query = psycopg.sql.SQL(
            "COPY (SELECT {} FROM requests ORDER BY updated_at, id) TO STDOUT (FORMAT CSV)"
        ).format(select)
        t = time.perf_counter()
        size = 0
        with con.cursor() as cur, cur.copy(query) as copy:
            for block in copy:
                size += len(block)
        bare = time.perf_counter() - t
    t = time.perf_counter()
    fetched = sum(b.rows.num_rows for b in src.fetch({}))
    fetch_only = time.perf_counter() - t
    wh = open_warehouse(Path(tempfile.mkdtemp()) / "w.duckdb")
    t = time.perf_counter()
    summary = run_source(wh, src)
    full = time.perf_counter() - t
    assert fetched == n and summary.rows_inserted == n, summary
    print(
        f"bare COPY CSV -> discard : {bare:6.2f} s  {n / bare:>10,.0f} rows/s  ({size / 1e6:.0f} MB)"
    )
    print(f"source fetch (COPY->Arrow): {fetch_only:6.2f} s  {n / fetch_only:>10,.0f} rows/s")
    print(f"backfill via run_source   : {full:6.2f} s  {n / full:>10,.0f} rows/s  "
          f"({full / bare:.1f}x the bare COPY)")  # fmt: skip


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
