"""The event pipeline: a bounded in-memory queue and two background workers.

The request path only appends a tuple to a deque (a few hundred nanoseconds). A processor
thread turns those tuples into warehouse rows (ids, ISO timestamps, fingerprints, alerts), and
a shipper thread sends rows to the sink in batches. The two are separate so a slow or dead sink
never delays alerting, and both queues are bounded: when full, events are dropped and counted,
so memory stays bounded whatever the sink does.

Each queue has exactly one consumer, so rows leave in the order they were recorded:
`flush()` from any thread never drains a queue itself while the workers run; it puts a marker
through both and waits (with its timeout) until the shipper has handed everything before the
marker to the sink. Counters are written by one thread each, or under a lock. A worker that
dies is restarted (by the other worker, by `flush()` or by a full queue); each death is
counted and logged.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import math
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from collectors.schema import TABLES

log = logging.getLogger("collectors.instrumentation")

FLUSH = "flush"  # the kind of a flush marker in both queues
# How long the processor waits for room in a full outbox before it drops (a sink that does not
# return): long enough for the shipper to move a few batches to disk, short enough that a slow
# custom sink does not hold back alerts for long.
OUTBOX_WAIT_S = 0.5

# Timestamp columns per table, so rows can carry epoch floats until the worker formats them.
_TIME_COLUMNS: dict[str, tuple[str, ...]] = {
    t.name: tuple(c.name for c in t.columns if c.type == "TIMESTAMP") for t in TABLES.values()
}

_iso_second = (-1, "")


def iso_utc(epoch_s: float) -> str:
    """Epoch seconds as ISO 8601 with microseconds and an explicit +00:00 offset. The text of
    the whole second is reused while it lasts (most rows of a busy agent share it), and
    %-formatting is used: it is about three times faster here than an f-string."""
    global _iso_second
    whole = int(epoch_s) if epoch_s >= 0 else math.floor(epoch_s)
    cached = _iso_second
    if cached[0] != whole:
        cached = (whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S."))
        _iso_second = cached
    return "%s%06d+00:00" % (cached[1], (epoch_s - whole) * 1e6)  # noqa: UP031


_id_counter = itertools.count()
_id_prefix = ""


def _new_id_prefix() -> None:
    global _id_prefix
    _id_prefix = uuid.uuid4().hex[:20]


_new_id_prefix()
os.register_at_fork(after_in_child=_new_id_prefix)  # a forked child never repeats our ids


def new_id() -> str:
    """A 32-hex-digit id unique across processes: a random per-process prefix and a counter
    (about 10x cheaper than uuid4, which reads the OS random source every time)."""
    return "%s%012x" % (_id_prefix, next(_id_counter))  # noqa: UP031 - the fastest here


class Clock:
    """Wall time from perf_counter readings: the hot path reads one clock only."""

    def __init__(self) -> None:
        self.reanchor()

    def reanchor(self) -> None:
        self.wall0 = time.time()
        self.perf0 = time.perf_counter()

    def wall(self, perf: float) -> float:
        return self.wall0 + (perf - self.perf0)


class FlushMarker:
    """Travels through both queues behind everything queued before it."""

    __slots__ = ("shipped",)

    def __init__(self) -> None:
        self.shipped = threading.Event()


def call_within(fn: Callable[..., Any], deadline: float, what: str) -> bool:
    """Call a sink's `flush` or `close`, giving it the time left. A method that takes a
    `timeout` is trusted with it; one that does not runs on a helper thread, and is left
    running at the deadline. True if it returned in time without raising."""
    remaining = max(0.0, deadline - time.monotonic())
    try:
        takes_timeout = "timeout" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes_timeout = False
    if takes_timeout:
        try:
            fn(timeout=remaining)
            return True
        except Exception:  # noqa: BLE001 - a failing sink must not fail the caller
            log.exception("monitoring: sink %s failed", what)
            return False
    outcome: list[bool] = []

    def run() -> None:
        try:
            fn()
            outcome.append(True)
        except Exception:  # noqa: BLE001
            log.exception("monitoring: sink %s failed", what)
            outcome.append(False)

    helper = threading.Thread(target=run, name=f"monitoring-sink-{what}", daemon=True)
    helper.start()
    helper.join(remaining)
    if helper.is_alive():
        log.warning("monitoring: sink %s did not return within its %.1f s", what, remaining)
        return False
    return outcome == [True]


class _Throttle:
    """Log each occurrence of a recurring problem, up to `burst` a minute; beyond that, one
    line a minute with the count of those not logged."""

    def __init__(self, burst: int = 1) -> None:
        self.burst = burst
        self.window_start = -1e9
        self.in_window = 0
        self.quiet = 0

    def ready(self) -> int | None:
        """None while quiet; else how many occurrences went unlogged since the last line."""
        now = time.monotonic()
        if now - self.window_start >= 60.0:
            self.window_start, self.in_window = now, 0
        self.in_window += 1
        if self.in_window > self.burst:
            self.quiet += 1
            return None
        skipped, self.quiet = self.quiet, 0
        return skipped


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
        self.queue: deque[tuple[Any, ...]] = deque()
        self.outbox: deque[tuple[str, Any]] = deque()  # (table, row) or (FLUSH, marker)
        self.clock = Clock()
        self.processors: dict[str, Callable[..., None]] = {
            "row": self._process_row,
            FLUSH: self._forward_marker,
        }
        self.row_observers: dict[str, Callable[[dict[str, Any]], None]] = {}
        self.http_processor: Callable[[tuple[Any, ...]], None] = self._no_http
        # Counters. Each is written by the thread that holds the lock named beside it.
        self.processed = 0  # events processed (_process_lock)
        self.rows_built = 0  # rows put in the outbox (_process_lock)
        self.processing_errors = 0  # events that failed to process: dropped (_process_lock)
        self.dropped_outbox = 0  # rows dropped, the outbox full (_process_lock)
        self.rows_written = 0  # rows a sink's write() took (_ship_lock)
        self.in_write = 0  # rows inside a sink's write() now (_ship_lock)
        self.dropped_sink_error = 0  # rows a sink's write() refused (_ship_lock)
        self.dropped_queue = 0  # events dropped, the queue full (_count_lock)
        self.worker_restarts = 0  # workers found dead and restarted (_count_lock)
        self._count_lock = threading.Lock()
        self._process_lock = threading.Lock()  # one consumer of the queue at a time
        self._ship_lock = threading.Lock()  # one consumer of the outbox at a time
        self._lifecycle = threading.RLock()
        self._process_wake = threading.Event()
        self._ship_wake = threading.Event()
        self._stop = threading.Event()  # a new one per start: old threads keep theirs
        self._running = False
        self._outbox_stuck_until = 0.0
        self._final_drain = True
        self._pid = 0
        self._processor: threading.Thread | None = None
        self._shipper: threading.Thread | None = None
        self._processing_log = _Throttle()
        self._sink_log = _Throttle()
        self._death_log = _Throttle(burst=5)

    # -- hot path ---------------------------------------------------------------------------
    def submit(self, item: tuple[Any, ...]) -> None:
        """Queue one raw event; never blocks, never raises."""
        q = self.queue
        if len(q) < self.max_queue:
            q.append(item)
        else:
            self._queue_full()

    def _queue_full(self) -> None:
        with self._count_lock:
            self.dropped_queue += 1
        if self._running:
            self.ensure_workers()  # a dead processor is the likeliest reason

    def emit(self, table: str, row: dict[str, Any]) -> None:
        """Queue one row (timestamp columns may be epoch floats; the worker formats them)."""
        self.submit(("row", table, row))

    # -- processor side ---------------------------------------------------------------------
    @staticmethod
    def _no_http(item: tuple[Any, ...]) -> None:
        raise LookupError("no processor for http events")

    def _process_row(self, table: str, row: dict[str, Any]) -> None:
        observe = self.row_observers.get(table)
        if observe is not None:
            try:
                observe(row)  # sees epoch floats, before they become text
            except Exception:  # noqa: BLE001 - the dashboard's counters never cost a row
                log.debug("monitoring: a row observer failed", exc_info=True)
        for col in _TIME_COLUMNS.get(table, ()):
            v = row.get(col)
            if isinstance(v, float | int) and not isinstance(v, bool):
                row[col] = iso_utc(float(v))
        self.output(table, row)

    def output(self, table: str, row: dict[str, Any]) -> None:
        """Hand a finished row to the shipper (bounded). Processor side only."""
        self.rows_built += 1
        if len(self.outbox) < self.max_outbox or self._make_room():
            self.outbox.append((table, row))
        else:
            self.dropped_outbox += 1

    def _make_room(self) -> bool:
        """The outbox is full. The processor waits for the shipper, which keeps handing rows
        to the sink (Supabase's goes to its disk outbox while Supabase is slow), so nothing
        is dropped here while the sink takes rows; the queue in front keeps the request path
        from ever waiting. Only a sink that does not return for OUTBOX_WAIT_S costs rows
        here, counted, and then without waiting again for as long. Without workers (an
        inline flush), the caller ships here."""
        if threading.current_thread() is not self._processor:
            self.ship_pending(time.monotonic() + OUTBOX_WAIT_S)
            return len(self.outbox) < self.max_outbox
        now = time.monotonic()
        if now < self._outbox_stuck_until:
            return False
        deadline = now + OUTBOX_WAIT_S
        while len(self.outbox) >= self.max_outbox:
            self._ship_wake.set()
            if time.monotonic() >= deadline:
                self._outbox_stuck_until = time.monotonic() + OUTBOX_WAIT_S
                return False
            time.sleep(0.001)
        return True

    def _forward_marker(self, marker: FlushMarker) -> None:
        self.outbox.append((FLUSH, marker))  # never dropped: one per waiting flush() call
        self.processed -= 1  # a marker is not an event
        self._ship_wake.set()

    def process_pending(self, deadline: float | None = None) -> int:
        """Process queued events in order, 128 at a time under the queue's lock."""
        n = 0
        q = self.queue
        processors = self.processors
        http = self.http_processor
        while q:
            if deadline is None:
                self._process_lock.acquire()
            elif not self._acquired_before(self._process_lock, deadline):
                break
            try:
                done = 0
                for _ in range(128):
                    try:
                        item = q.popleft()
                    except IndexError:
                        break
                    done += 1
                    try:
                        if item[0] == "http":  # most events: called with the tuple, unsliced
                            http(item)
                        else:
                            processors[item[0]](*item[1:])
                    except Exception as exc:  # noqa: BLE001 - one bad event must not stop the worker
                        self.processing_errors += 1
                        self._log_processing_error(item[0], exc)
                self.processed += done
                n += done
            finally:
                self._process_lock.release()
            if len(self.outbox) >= self.max_outbox // 2:
                self._ship_wake.set()  # keep the outbox from filling between ticks
            if q:
                # Hand the GIL back between chunks so the event loop never waits a whole
                # switch interval (5 ms) behind this thread: that would show up in p99.
                time.sleep(0)
        return n

    def _log_processing_error(self, kind: Any, exc: Exception) -> None:
        skipped = self._processing_log.ready()
        if skipped is not None:
            log.error(
                "monitoring: dropped an event of kind %r (%d more since the last line): %s: %s",
                str(kind)[:40],
                skipped,
                type(exc).__name__,
                _safe_str(exc),
            )

    # -- shipper side -----------------------------------------------------------------------
    @staticmethod
    def _acquired_before(lock: threading.Lock, deadline: float) -> bool:
        """`lock`, if it can be had before `deadline`. Past it, no: a free lock is granted even
        with a timeout of 0, and shutdown would then ship batch after batch to a slow sink."""
        remaining = deadline - time.monotonic()
        return remaining > 0 and lock.acquire(timeout=remaining)

    def ship_pending(self, deadline: float | None = None) -> int:
        """Hand queued rows to the sink in per-table batches; returns the rows handed."""
        sent = 0
        while self.outbox:
            if deadline is None:
                self._ship_lock.acquire()
            elif not self._acquired_before(self._ship_lock, deadline):
                break
            markers: list[FlushMarker] = []
            try:
                by_table: dict[str, list[dict[str, Any]]] = {}
                taken = 0
                while taken < self.batch_size:
                    try:
                        table, row = self.outbox.popleft()
                    except IndexError:
                        break
                    if table == FLUSH:
                        markers.append(row)
                        break  # ship what came before it, then tell its caller
                    by_table.setdefault(table, []).append(row)
                    taken += 1
                self.in_write = taken
                for table, rows in by_table.items():
                    self._write_isolated(table, rows)
                self.in_write = 0
                sent += taken
            finally:
                self._ship_lock.release()
            for marker in markers:
                marker.shipped.set()
        return sent

    def _write_isolated(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Write rows; a batch the sink refuses is halved until the rows it refuses are alone
        (dropped and counted), so one bad row never costs its neighbours. Failures in a row
        longer than halving explains mean the sink itself fails: the rest is dropped."""
        parts = [rows]
        failures = 0
        limit = 2 * len(rows).bit_length() + 2
        while parts:
            part = parts.pop()
            try:
                self.sink.write(table, part)
            except Exception as exc:  # noqa: BLE001 - a sink failure must not stop shipping
                failures += 1
                if failures > limit or len(part) == 1:
                    lost = len(part) + (sum(len(p) for p in parts) if failures > limit else 0)
                    if failures > limit:
                        parts = []
                    self.dropped_sink_error += lost
                    self.in_write -= lost
                    skipped = self._sink_log.ready()
                    if skipped is not None:
                        log.warning(
                            "monitoring: dropped %d %s rows: %s (%d more failures since the "
                            "last line): %s: %s",
                            lost,
                            table,
                            "the sink fails every write" if failures > limit else "refused",
                            skipped,
                            type(exc).__name__,
                            _safe_str(exc),
                        )
                    continue
                mid = len(part) // 2
                parts.append(part[mid:])
                parts.append(part[:mid])
                continue
            failures = 0
            self.rows_written += len(part)
            self.in_write -= len(part)

    def _tick_sink(self) -> None:
        try:
            self.sink.tick()
        except Exception:  # noqa: BLE001
            skipped = self._sink_log.ready()
            if skipped is not None:
                log.exception("monitoring: sink maintenance failed")

    # -- workers ----------------------------------------------------------------------------
    def _processor_loop(self, stop: threading.Event) -> None:
        last_anchor = time.monotonic()
        while not stop.is_set():
            if not self.queue:
                self._process_wake.wait(0.05)
                self._process_wake.clear()
            self.process_pending()
            if time.monotonic() - last_anchor > 60:
                self.clock.reanchor()
                last_anchor = time.monotonic()
            self.ensure_workers()  # the shipper may have died
        if self._final_drain:
            self.process_pending()

    def _shipper_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._ship_wake.wait(self.flush_interval)
            self._ship_wake.clear()
            self.ship_pending()
            self._tick_sink()
            self.ensure_workers()  # the processor may have died
        if self._final_drain:
            self.ship_pending()

    def _run_worker(self, loop: Callable[[threading.Event], None], stop: threading.Event) -> None:
        """Run a worker loop until stopped; a fault in the loop itself (each event and batch
        is already isolated) is counted, logged and the loop restarted."""
        while True:
            try:
                loop(stop)
                return
            except Exception:  # noqa: BLE001
                self._count_death(threading.current_thread().name, traceback=True)
                if stop.wait(0.1):  # a loop that faults at once must not spin
                    return

    def _count_death(self, name: str, traceback: bool = False) -> None:
        with self._count_lock:
            self.worker_restarts += 1
            n = self.worker_restarts
        skipped = self._death_log.ready()
        if skipped is not None:
            log.error(
                "monitoring: the %s thread died and was restarted (%d restarts so far)",
                name,
                n,
                exc_info=traceback,
            )

    def _spawn(self, role: str, stop: threading.Event) -> threading.Thread:
        loop = self._processor_loop if role == "processor" else self._shipper_loop
        t = threading.Thread(
            target=self._run_worker, args=(loop, stop), name=f"monitoring-{role}", daemon=True
        )
        t.start()
        return t

    def ensure_workers(self) -> None:
        """Restart a worker that is no longer alive (counted), or both after a fork."""
        if not self._running:
            return
        p, s = self._processor, self._shipper
        if self._pid == os.getpid() and p is not None and s is not None:
            if p.is_alive() and s.is_alive():
                return
        with self._lifecycle:
            if not self._running:
                return
            stop = self._stop
            if self._pid != os.getpid():  # a forked child: the parent's threads are not here
                self._pid = os.getpid()
                self._processor = self._spawn("processor", stop)
                self._shipper = self._spawn("shipper", stop)
                return
            if self._processor is None or not self._processor.is_alive():
                self._count_death("monitoring-processor")
                self._processor = self._spawn("processor", stop)
            if self._shipper is None or not self._shipper.is_alive():
                self._count_death("monitoring-shipper")
                self._shipper = self._spawn("shipper", stop)

    def workers_running(self) -> bool:
        return self._running and self._pid == os.getpid()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        with self._lifecycle:
            if self.workers_running():
                self.ensure_workers()
                return
            self._stop = threading.Event()
            self._final_drain = True
            self._pid = os.getpid()
            self._running = True
            self._processor = self._spawn("processor", self._stop)
            self._shipper = self._spawn("shipper", self._stop)

    def flush(self, timeout: float = 10.0) -> bool:
        """Process and ship everything queued so far, then flush the sink; at most `timeout`
        seconds. True if everything was handed over and the sink's flush returned in time."""
        deadline = time.monotonic() + timeout
        if threading.current_thread() in (self._processor, self._shipper):
            return False  # a worker cannot wait for itself (a flush from a sink's write)
        if self.workers_running():
            self.ensure_workers()
            marker = FlushMarker()
            self.queue.append((FLUSH, marker))  # not bounded: one per waiting caller
            self._process_wake.set()
            while not marker.shipped.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    log.warning("monitoring: flush timed out after %.1f s", timeout)
                    return False
                self.ensure_workers()
        else:  # no workers (not started, stopped, or a forked child): do it here, in order
            self.process_pending(deadline)
            self.ship_pending(deadline)
            if self.queue or any(t != FLUSH for t, _ in list(self.outbox)):
                return False
        return call_within(self.sink.flush, deadline, "flush")

    def stop(self, flush: bool = True, timeout: float = 10.0) -> bool:
        """Stop the workers (with `flush`, after they hand over what is queued), flush and
        close the sink; at most `timeout` seconds in all. True if everything finished."""
        deadline = time.monotonic() + timeout
        with self._lifecycle:
            self._running = False
            self._final_drain = flush
            self._stop.set()
            threads = [t for t in (self._processor, self._shipper) if t is not None]
            self._processor = self._shipper = None
        self._process_wake.set()
        self._ship_wake.set()
        here = os.getpid() == self._pid
        for t in threads:
            if here and t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        finished = not (here and any(t.is_alive() for t in threads))
        if flush:
            self.process_pending(deadline)
            self.ship_pending(deadline)
            finished = call_within(self.sink.flush, deadline, "flush") and finished
        return call_within(self.sink.close, deadline, "close") and finished

    def clear(self) -> None:
        """Forget queued events and rows (tests); waiting flush() callers are released."""
        for entry in [*self.queue, *self.outbox]:
            if entry[0] == FLUSH and isinstance(entry[-1], FlushMarker):
                entry[-1].shipped.set()
        self.queue.clear()
        self.outbox.clear()

    def reset_counters(self) -> None:
        self._processing_log, self._sink_log, self._death_log = (
            _Throttle(),
            _Throttle(),
            _Throttle(5),
        )
        with self._process_lock, self._ship_lock, self._count_lock:
            self.processed = self.rows_built = self.processing_errors = 0
            self.dropped_outbox = self.rows_written = self.in_write = 0
            self.dropped_sink_error = self.dropped_queue = self.worker_restarts = 0

    # -- books ------------------------------------------------------------------------------
    def books(self) -> dict[str, Any]:
        """Where every row went, read while no worker is between two counters (or, if a
        sink write takes longer than 0.2 s, as the counters stand)."""
        got_p = self._process_lock.acquire(timeout=0.2)
        got_s = self._ship_lock.acquire(timeout=0.2)
        try:
            sink_books = sink_books_of(self.sink, self.rows_written)
            return {
                "queued": sum(1 for item in list(self.queue) if item[0] != FLUSH),
                "processed": self.processed,
                "rows_built": self.rows_built,
                "outbox": sum(1 for t, _ in list(self.outbox) if t != FLUSH),
                "in_write": self.in_write,
                "dropped_queue": self.dropped_queue,
                "dropped_outbox": self.dropped_outbox,
                "processing_errors": self.processing_errors,
                "dropped_sink_error": self.dropped_sink_error,
                "worker_restarts": self.worker_restarts,
                "sink": sink_books,
                "consistent": got_p and got_s,
            }
        finally:
            if got_s:
                self._ship_lock.release()
            if got_p:
                self._process_lock.release()


def sink_books_of(sink: Any, rows_written: int) -> dict[str, Any]:
    """A sink's own account of the rows handed to it (`books()`), or, for a sink without
    one, every row its write() took counted as shipped."""
    books = getattr(sink, "books", None)
    if callable(books):
        try:
            out = dict(books())
            out.setdefault("dropped", {})
            return out
        except Exception:  # noqa: BLE001
            log.exception("monitoring: the sink's books() failed")
    return {"shipped": rows_written, "spooled": 0, "pending": 0, "dropped": {}, "up": True}


def _safe_str(exc: BaseException, limit: int = 300) -> str:
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - an exception whose __str__ raises
        return "<unprintable>"
    return text if len(text) <= limit else text[:limit] + "..."
