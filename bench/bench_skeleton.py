"""Walking-skeleton numbers: demo backfill, publish after one live minute, Overview first render.

Targets (issue 2): 30-day demo backfill (>= 2 million rows) in 60 s or less; publishing after one
live minute in 1 s or less and no slower with 30 days in the warehouse than with one; Overview
first render 2 s or less. Figures are printed, never asserted.

    python bench/bench_skeleton.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.engine import run_source  # noqa: E402
from collectors.publish import publish  # noqa: E402
from collectors.schema import TABLES  # noqa: E402
from collectors.sources.demo import DemoSource  # noqa: E402
from collectors.warehouse import open_warehouse  # noqa: E402

ANCHOR = datetime.now(UTC).replace(second=0, microsecond=0)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def backfill(root: Path, days: int):
    clock = Clock(ANCHOR)
    con = open_warehouse(root / "warehouse.duckdb")
    source = DemoSource(history_days=days, now=clock)
    t0 = time.perf_counter()
    summary = run_source(con, source)
    ingest = time.perf_counter() - t0
    t0 = time.perf_counter()
    publish(con, root / "serving")
    first_publish = time.perf_counter() - t0
    assert summary.status == "ok", summary
    return con, clock, source, ingest, first_publish


def live_minutes(con, clock: Clock, source, root: Path, minutes: int = 10) -> list[float]:
    """Advance the simulated clock one minute at a time: run the demo, then publish."""
    times = []
    for _ in range(minutes):
        clock.now += timedelta(minutes=1)
        run_source(con, source)
        t0 = time.perf_counter()
        publish(con, root / "serving")
        times.append(time.perf_counter() - t0)
    return times


def overview_first_render(root: Path) -> float:
    from streamlit.testing.v1 import AppTest

    os.environ["WORKBENCH_DATA_DIR"] = str(root)
    at = AppTest.from_file(
        str(Path(__file__).resolve().parents[1] / "app/views/overview.py"), default_timeout=60
    )
    t0 = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - t0
    assert not at.exception, at.exception
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "one-day"
        con1, clock1, src1, _, _ = backfill(one, 1)
        one_day_publish = live_minutes(con1, clock1, src1, one)
        con1.close()

        thirty = Path(tmp) / "thirty-days"
        con, clock, src, ingest, first_publish = backfill(thirty, 30)
        rows = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        total = sum(rows.values())
        thirty_day_publish = live_minutes(con, clock, src, thirty)
        con.close()
        render = overview_first_render(thirty)

    print("Demo backfill, 30 days")
    for table, n in sorted(rows.items(), key=lambda kv: -kv[1]):
        print(f"  {table:22s} {n:>10,}")
    print(f"  {'total':22s} {total:>10,} rows")
    print(
        f"  ingest (generate + validate + upsert): {ingest:6.1f} s  ({total / ingest:,.0f} rows/s)"
    )
    print(f"  first full publish:                    {first_publish:6.1f} s")
    print(
        f"  ingest + publish:                      {ingest + first_publish:6.1f} s (target <= 60 s)"
    )
    print("Publish after one live minute (10 minutes each, median / max)")
    print(
        f"  1 day in warehouse:   {statistics.median(one_day_publish):.3f} s / "
        f"{max(one_day_publish):.3f} s"
    )
    print(
        f"  30 days in warehouse: {statistics.median(thirty_day_publish):.3f} s / "
        f"{max(thirty_day_publish):.3f} s (target <= 1 s, no slower than 1 day)"
    )
    print(f"Overview first render on 30 days (AppTest, cold cache): {render:.2f} s (target <= 2 s)")


if __name__ == "__main__":
    main()
