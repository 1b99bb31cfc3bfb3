"""REST ingest rate: SupabaseRestSource (real supabase-py) against the PostgREST stub on loopback.

Run: .venv/bin/python bench/bench_rest_ingest.py [rows] [page_size]   (defaults 100,000 and 1000)
Prints rows/s for the fetch alone and for the full run through collectors.engine.run_source.
The stub renders pages with PostgreSQL's json_agg as PostgREST does, so the figure is an upper
bound for a hosted project, where network round trips dominate.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.engine import run_source  # noqa: E402
from collectors.sources.supabase_rest import SupabaseRestSource, sdk_mappings  # noqa: E402
from collectors.warehouse import open_warehouse  # noqa: E402
from tests.integration.pgcluster import fresh_database, insert_requests  # noqa: E402
from tests.integration.postgrest_stub import PostgrestStub  # noqa: E402

KEY = "bench.key.x"


def main(n: int, page: int) -> None:
    dsn = fresh_database()
    insert_requests(dsn, n)
    with PostgrestStub(dsn, KEY, max_rows=page) as stub:
        src = SupabaseRestSource(stub.url, KEY, sdk_mappings(["requests"]), page_size=page)
        t = time.perf_counter()
        fetched = sum(len(b.rows) for b in src.fetch({}))
        fetch_s = time.perf_counter() - t
        wh = open_warehouse(Path(tempfile.mkdtemp()) / "w.duckdb")
        t = time.perf_counter()
        summary = run_source(wh, src)
        full_s = time.perf_counter() - t
    assert fetched == n and summary.rows_inserted == n, summary
    print(f"{n:,} rows, pages of {page}: {len(stub.requests)} requests in total")
    print(f"fetch only          : {fetch_s:6.2f} s  {n / fetch_s:>9,.0f} rows/s")
    print(f"ingest via run_source: {full_s:6.2f} s  {n / full_s:>9,.0f} rows/s")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*(args + [100_000, 1000][len(args) :]))
