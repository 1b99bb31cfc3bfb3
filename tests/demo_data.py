"""Build a small demo warehouse and published snapshot for app and browser tests."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

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
