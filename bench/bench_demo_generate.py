"""Benchmark: the demo source's 30-day backfill, generation alone and (optionally) full ingest.

    .venv/bin/python bench/bench_demo_generate.py [--days 30] [--seed 7] [--ingest]

Generation: consume every batch of a first run of DemoSource (no watermark) and report rows per
table and seconds. --ingest also runs the real engine (validate, upsert, watermarks) into a
temporary warehouse and reports its wall time and rejects. Targets: generation well under 20 s
and at least 2 million rows for 30 days; ingest, engine included, under 60 s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from collectors.sources.demo import DemoSource

NOW = datetime(2026, 3, 2, 13, 37, 42, tzinfo=UTC)


def generate(days: int, seed: int) -> tuple[Counter, int, float]:
    source = DemoSource(seed=seed, history_days=days, now=lambda: NOW)
    rows: Counter = Counter()
    batches = 0
    t = time.perf_counter()
    for batch in source.fetch({}):
        rows[batch.table] += batch.rows.num_rows
        batches += 1
    return rows, batches, time.perf_counter() - t


def ingest(days: int, seed: int) -> None:
    from collectors.engine import run_source
    from collectors.warehouse import open_warehouse

    with tempfile.TemporaryDirectory() as tmp:
        con = open_warehouse(Path(tmp) / "warehouse.duckdb")
        source = DemoSource(seed=seed, history_days=days, now=lambda: NOW)
        t = time.perf_counter()
        summary = run_source(con, source)
        took = time.perf_counter() - t
        print(
            f"ingest: {took:.1f} s, status {summary.status}, read {summary.rows_read:,}, "
            f"inserted {summary.rows_inserted:,}, rejected {summary.rows_rejected:,}"
        )
        if summary.error:
            print("error:", summary.error)
        con.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--ingest", action="store_true", help="also run the engine into a temp warehouse"
    )
    args = p.parse_args()
    rows, batches, took = generate(args.days, args.seed)
    for name, n in sorted(rows.items(), key=lambda kv: -kv[1]):
        print(f"{name:22s} {n:>10,}")
    total = sum(rows.values())
    print(f"{'total':22s} {total:>10,}")
    print(
        f"generation: {took:.1f} s for {args.days} days, {batches} batches, {total / took:,.0f} rows/s"
    )
    if args.ingest:
        ingest(args.days, args.seed)


if __name__ == "__main__":
    main()
