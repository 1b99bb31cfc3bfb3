"""The event pipeline: a bounded in-memory queue and two background workers.

The request path only appends a tuple to a deque (a few hundred nanoseconds). A processor
thread turns those tuples into warehouse rows (ids, ISO timestamps, fingerprints, alerts), and
a shipper thread sends rows to the sink in batches. The two are separate so a slow or dead sink
never delays alerting, and both queues are bounded: when full, events are dropped and counted,
so memory stays bounded whatever the sink does.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import os
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from collectors.schema import TABLES

log = logging.getLogger("collectors.instrumentation")

# Timestamp columns per table, so rows can carry epoch floats until the worker formats them.
_TIME_COLUMNS: dict[str, tuple[str, ...]] = {
    t.name: tuple(c.name for c in t.columns if c.type == "TIMESTAMP") for t in TABLES.values()
}


def iso_utc(epoch_s: float) -> str:
    """Epoch seconds as ISO 8601 with an explicit +00:00 offset."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat()


_id_prefix = ("", 0)
_id_counter = itertools.count()


def new_id() -> str:
    """A 32-hex-digit id unique across processes: a random per-process prefix and a counter
    (about 10x cheaper than uuid4, which reads the OS random source every time)."""
    global _id_prefix
    pid = os.getpid()
    if _id_prefix[1] != pid:  # first call, or a forked child: new random prefix
        _id_prefix = (uuid.uuid4().hex[:20], pid)
    return f"{_id_prefix[0]}{next(_id_counter) & 0xFFFFFFFFFFFF:012x}"


class Clock:
    """Wall time from perf_counter readings: the hot path reads one clock only."""

    def __init__(self) -> None:
        self.reanchor()

    def reanchor(self) -> None:
        self.wall0 = time.time()
        self.perf0 = time.perf_counter()

    def wall(self, perf: float) -> float:
        return self.wall0 + (perf - self.perf0)


class Pipeline:
    def __init__(
        self,
        sink: Any,
        *,
        max_queue: int = 10_000,
        max_outbox: int = 20_000,
        batch_size: int = 500,
        flush_interval: float = 1.0,
    ) -> None:
        self.sink = sink
        self.max_queue = max_queue
        self.max_outbox = max_outbox
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.queue: deque[tuple] = deque()
        self.outbox: deque[tuple[str, dict[str, Any]]] = deque()
        self.stats: Counter[str] = Counter()
        self.clock = Clock()
        self.processors: dict[str, Callable[..., None]] = {"row": self._process_row}
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._pid = 0
        self._busy = 0

    # -- hot path ---------------------------------------------------------------------------
    def submit(self, item: tuple) -> None:
        """Queue one raw event; never blocks, never raises."""
        q = self.queue
        if len(q) < self.max_queue:
            q.append(item)
        else:
            self.stats["dropped_queue"] += 1

    def emit(self, table: str, row: dict[str, Any]) -> None:
        """Queue one row (timestamp columns may be epoch floats; the worker formats them)."""
        self.submit(("row", table, row))

    # -- processor side ---------------------------------------------------------------------
    def _process_row(self, table: str, row: dict[str, Any]) -> None:
        for col in _TIME_COLUMNS.get(table, ()):
            v = row.get(col)
            if isinstance(v, float | int) and not isinstance(v, bool):
                row[col] = iso_utc(float(v))
        self.output(table, row)

    def output(self, table: str, row: dict[str, Any]) -> None:
        """Hand a finished row to the shipper (bounded)."""
        if len(self.outbox) < self.max_outbox:
            self.outbox.append((table, row))
        else:
            self.stats["dropped_outbox"] += 1

    def process_pending(self) -> int:
        n = 0
        q = self.queue
        while q:
            item = q.popleft()
            n += 1
            if not n & 127:
                # Hand the GIL back every 128 events (about 1 ms) so the event loop never waits for a whole
                # switch interval (5 ms) behind this thread: that would show up in p99.
                time.sleep(0)
            try:
                self.processors[item[0]](*item[1:])
            except Exception:  # noqa: BLE001 - one bad event must not stop the worker
                self.stats["processing_errors"] += 1
                log.exception("monitoring: could not process an event of kind %r", item[0])
        self.stats["processed"] += n
        return n

    def ship_pending(self, limit: int | None = None) -> int:
        """Send queued rows in per-table batches; returns rows handed to the sink."""
        sent = 0
        while self.outbox and (limit is None or sent < limit):
            by_table: dict[str, list[dict[str, Any]]] = {}
            take = min(len(self.outbox), self.batch_size)
            for _ in range(take):
                table, row = self.outbox.popleft()
                by_table.setdefault(table, []).append(row)
            for table, rows in by_table.items():
                try:
                    self.sink.write(table, rows)
                    self.stats["rows_shipped"] += len(rows)
                except Exception as exc:  # noqa: BLE001 - a sink failure must not stop shipping
                    self.stats["rows_lost_sink"] += len(rows)
                    log.warning("monitoring: sink lost %d %s rows: %s", len(rows), table, exc)
            sent += take
        return sent

    def _processor_loop(self) -> None:
        last_anchor = time.monotonic()
        while not self._stop.is_set():
            if not self.queue:
                self._stop.wait(0.05)
            self.process_pending()
            if time.monotonic() - last_anchor > 60:
                self.clock.reanchor()
                last_anchor = time.monotonic()
        self.process_pending()

    def _shipper_loop(self) -> None:
        while not self._stop.wait(self.flush_interval):
            self.ship_pending()
            try:
                self.sink.tick()
            except Exception:  # noqa: BLE001
                log.exception("monitoring: sink maintenance failed")

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        import os

        if self._threads and self._pid == os.getpid() and all(t.is_alive() for t in self._threads):
            return
        self._stop.clear()
        self._pid = os.getpid()
        self._threads = [
            threading.Thread(target=self._processor_loop, name="monitoring-processor", daemon=True),
            threading.Thread(target=self._shipper_loop, name="monitoring-shipper", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def flush(self, timeout: float = 10.0) -> None:
        """Process and ship everything queued so far (used at shutdown and in tests)."""
        deadline = time.monotonic() + timeout
        while (self.queue or self.outbox) and time.monotonic() < deadline:
            self.process_pending()
            self.ship_pending()
        try:
            flush = self.sink.flush
            if "timeout" in inspect.signature(flush).parameters:  # a user's sink may not take it
                flush(timeout=max(0.0, deadline - time.monotonic()))
            else:
                flush()
        except Exception:  # noqa: BLE001
            log.exception("monitoring: sink flush failed")

    def stop(self, flush: bool = True) -> None:
        self._stop.set()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=5)
        self._threads = []
        if flush:
            self.flush()
        try:
            self.sink.close()
        except Exception:  # noqa: BLE001
            log.exception("monitoring: sink close failed")
