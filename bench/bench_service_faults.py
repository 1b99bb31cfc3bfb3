"""The collectors service under faults: does every other source keep its schedule while one
source hangs and 10,000 run requests wait, and how long does SIGTERM take to stop it?

Run: .venv/bin/python bench/bench_service_faults.py [duration_s] [sigterm_repeats]

1. Schedule under a hang: one source whose fetch never answers (the default 300 s timeout is
   not reached), 10,000 pending "run now" requests on it and 10,000 on a healthy source, and
   three healthy sources every 5 s (the shortest schedule allowed). Reports, per healthy
   source, how many runs started and the longest gap between two starts (5 s is on time).
2. SIGTERM to exit: a `workbench serve`-like child (the same signal handling) with a hung run
   and 20 queued requests; the time from SIGTERM to the process having exited.
"""

from __future__ import annotations

import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.control import ControlStore  # noqa: E402
from collectors.service import CollectorService, DataPaths, Job  # noqa: E402
from collectors.sources.base import Batch  # noqa: E402

EVERY_5S = {"kind": "interval", "seconds": 5}


class Hanging:
    def __init__(self) -> None:
        self.name = "hanging"
        self.release = threading.Event()

    def fetch(self, marks):
        self.release.wait()
        return
        yield


class Timed:
    """One row per run; remembers when each run started."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.starts: list[float] = []

    def fetch(self, marks):
        self.starts.append(time.monotonic())
        i = int(marks.get("requests", "0"))
        row = {
            "request_id": f"{self.name}-{i}",
            "started_at": datetime.now(UTC).isoformat(),
            "route": "/healthz",
            "method": "GET",
            "status_code": 200,
            "duration_ms": 1.0,
        }
        yield Batch("requests", [row], watermark=str(i + 1))


def queue_backlog(control_path: Path, job: str, n: int) -> None:
    with sqlite3.connect(control_path) as con:
        con.executemany(
            "INSERT INTO run_requests (job, requested_at) VALUES (?, ?)",
            [(job, "2026-01-01T00:00:00+00:00")] * n,
        )


def schedule_under_a_hang(duration: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        hanging = Hanging()
        healthy = [Timed(f"healthy-{i}") for i in range(3)]
        jobs = {"hanging": Job(hanging, EVERY_5S)}
        jobs.update({s.name: Job(s, EVERY_5S) for s in healthy})
        control = ControlStore(root / "control.sqlite")
        queue_backlog(root / "control.sqlite", "hanging", 10_000)
        queue_backlog(root / "control.sqlite", "healthy-0", 10_000)
        service = CollectorService(DataPaths(root), jobs, poll_seconds=2.0)
        thread = threading.Thread(target=service.serve_forever, daemon=True)
        started = time.monotonic()
        thread.start()
        time.sleep(duration)
        requests = control.recent_requests(30_000)
        hanging.release.set()
        service.stop()
        thread.join(timeout=30)
        waiting = sum(
            r["status"] in ("pending", "running") for r in requests if r["job"] != "hanging"
        )
        print(f"schedule under a hang ({duration:.0f} s, 10,000 requests on the hung source "
              f"and 10,000 on healthy-0, every source every 5 s):")  # fmt: skip
        for source in healthy:
            starts = [s - started for s in source.starts]
            gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
            print(
                f"  {source.name}: {len(starts)} runs, first at {starts[0]:.1f} s, "
                f"gap between run starts max {max(gaps):.2f} s, median "
                f"{statistics.median(gaps):.2f} s"
            )
        print(f"  healthy-0's 10,000 requests still waiting at the end: {waiting}")


CHILD = """
import signal, sys, threading
sys.path.insert(0, {root!r})
from pathlib import Path
from bench.bench_service_faults import Hanging, Timed
from collectors.service import CollectorService, DataPaths, Job
hourly = {{"kind": "interval", "seconds": 3600}}
jobs = {{"hanging": Job(Hanging(), hourly), "healthy": Job(Timed("healthy"), hourly)}}
service = CollectorService(DataPaths(Path({data!r})), jobs, poll_seconds=2.0)
signal.signal(signal.SIGTERM, lambda *_: service.stop())
service.serve_forever()
"""


def sigterm_to_exit(repeats: int) -> None:
    root = str(Path(__file__).resolve().parents[1])
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            child = subprocess.Popen([sys.executable, "-c", CHILD.format(root=root, data=tmp)])
            control_path = Path(tmp) / "control.sqlite"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                progress = ControlStore(control_path).progress() if control_path.exists() else {}
                if (progress.get("hanging") or {}).get("state") == "running" and (
                    progress.get("healthy") or {}
                ).get("state") == "ok":
                    break
                time.sleep(0.2)
            control = ControlStore(control_path)
            for _ in range(20):
                control.request_run("hanging")
            time.sleep(2.5)  # claimed by the service
            sent = time.monotonic()
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=120)
            times.append(time.monotonic() - sent)
    print(
        f"SIGTERM to exit with a hung run and 20 queued requests ({repeats} runs): "
        f"median {statistics.median(times):.2f} s, max {max(times):.2f} s"
    )


if __name__ == "__main__":
    duration = float(sys.argv[1]) if len(sys.argv) > 1 else 40
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    schedule_under_a_hang(duration)
    sigterm_to_exit(repeats)
