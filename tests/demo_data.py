"""Build a small demo warehouse and published snapshot for app and browser tests."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from collectors.demo_truth import DemoTruth, demo_truth
from collectors.service import CollectorService, DataPaths, Job
from collectors.snapshot import open_snapshot
from collectors.sources.demo import DemoSource


def build_demo_data(root: Path, history_days: int = 4) -> Path:
    """Run the demo source once through the real engine and publisher into `root`."""
    jobs = {"demo": Job(DemoSource(history_days=history_days), {"kind": "interval", "seconds": 60})}
    service = CollectorService(DataPaths(root), jobs)
    try:
        service.control.ensure_schedule("demo", "interval", 60, None)
        summary = service.run_job("demo")
        assert summary is not None and summary.status == "ok", summary
    finally:
        service.con.close()
    return root


def demo_truth_of(root: Path) -> DemoTruth:
    """The demo's ground truth for the 15-day snapshot in `root` (its anchor is in the demo
    watermark)."""
    con = open_snapshot(root / "serving").con
    try:
        row = con.execute("SELECT value FROM watermarks WHERE source = 'demo'").fetchone()
    finally:
        con.close()
    assert row is not None, f"no demo watermark in {root}"
    return demo_truth(7, datetime.fromisoformat(json.loads(row[0])["anchor"]), 15)


def simulated_warehouse(
    anchor: datetime, window: timedelta, history_days: int = 30, rollups: bool = True
) -> tuple[duckdb.DuckDBPyConnection, DemoTruth]:
    """An in-memory warehouse holding the demo simulator's rows for the `window` before
    `anchor` (seed 7), with the hourly rollups the snapshot carries unless `rollups` is off."""
    from bench.bench_experiment import build_rollups, create_schema
    from collectors.sources.demo import DemoSimulator

    sim = DemoSimulator(7, anchor, history_days)
    tables = sim.window(int((anchor - window).timestamp() * 1e6), int(anchor.timestamp() * 1e6))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    create_schema(con)
    for name, table in tables.items():
        con.register("src", table)
        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM src")  # noqa: S608 - our tables
        con.unregister("src")
    if rollups:
        build_rollups(con)  # pages read percentiles and rates from the hourly rollups
    return con, sim.truth
