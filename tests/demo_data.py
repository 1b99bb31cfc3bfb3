"""Build a small demo warehouse and published snapshot for app and browser tests."""

from __future__ import annotations

from pathlib import Path

from collectors.service import CollectorService, DataPaths, Job
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
