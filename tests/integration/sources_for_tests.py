"""Deterministic sources for service tests: the 'truth' is a pure function of the row index."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from collectors.sources.base import Batch

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def truth(n: int) -> pa.Table:
    """Rows 0..n-1 of the source, every value derived from the index."""
    idx = list(range(n))
    return pa.table(
        {
            "request_id": [f"req-{i:07d}" for i in idx],
            "started_at": pa.array(
                [EPOCH + timedelta(seconds=i) for i in idx], pa.timestamp("us", tz="UTC")
            ),
            "route": [f"/v1/route/{i % 7}" for i in idx],
            "method": ["GET"] * n,
            "status_code": pa.array([500 if i % 50 == 0 else 200 for i in idx], pa.int64()),
            "duration_ms": [float(i % 997) for i in idx],
        }
    )


class SlowSource:
    """`total` rows in batches of `batch_size`, sleeping between batches; resumes from its
    watermark (the next row index)."""

    name = "slow"

    def __init__(self, total: int = 20_000, batch_size: int = 1000, pause_s: float = 0.05):
        self.total, self.batch_size, self.pause_s = total, batch_size, pause_s
        self.all_rows = truth(total)

    def fetch(self, marks):
        start = int(marks.get("requests", "0"))
        for lo in range(start, self.total, self.batch_size):
            hi = min(lo + self.batch_size, self.total)
            # Re-send the previous batch's last row too: overlap must not double anything.
            lo_overlap = max(0, lo - 1)
            yield Batch(
                "requests",
                self.all_rows.slice(lo_overlap, hi - lo_overlap),
                watermark=str(hi),
                progress={"done": hi, "total": self.total},
            )
            time.sleep(self.pause_s)


class CountingSource:
    """One new row per run: shows how often the service ran it."""

    name = "counting"

    def __init__(self):
        self.runs = 0

    def fetch(self, marks):
        self.runs += 1
        i = int(marks.get("requests", "0"))
        row = {
            "request_id": f"count-{i}",
            "started_at": datetime.now(UTC).isoformat(),
            "route": "/healthz",
            "method": "GET",
            "status_code": 200,
            "duration_ms": 1.0,
        }
        yield Batch("requests", [row], watermark=str(i + 1))


class HangingSource:
    """A source whose fetch never answers until `release` is set: a server that accepts the
    connection and then says nothing."""

    name = "hanging"

    def __init__(self):
        self.release = threading.Event()
        self.runs = 0

    def fetch(self, marks):
        self.runs += 1
        self.release.wait()
        return
        yield  # a generator, like every source
