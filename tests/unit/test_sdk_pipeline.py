"""The pipeline under stress: flush from any thread at any time, rows in order, exact
counters, dead workers restarted, one bad row never costing its neighbours, timeouts kept
(shutdown, flush, the app's shutdown off the event loop) and books that add up."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time

import pytest

from collectors.instrumentation import (
    configure_monitoring,
    flush_monitoring,
    monitoring_stats,
    performance_monitor,
    reset_monitoring,
    shutdown_monitoring,
)
from collectors.instrumentation.runtime import state
from collectors.instrumentation.sinks import MemorySink, SpoolSink
from collectors.instrumentation.spool import read_committed


@pytest.fixture(autouse=True)
def fresh_sdk():
    reset_monitoring()
    yield
    reset_monitoring()


@pytest.fixture
def tiny_switch_interval():
    """Threads switch after about a microsecond: races that need an unlucky switch show up."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def requests_of(sink: MemorySink) -> list[str]:
    return [r["route"] for r in sink.table("requests")]


def assert_books_add_up(stats: dict) -> None:
    assert stats["balanced"], stats
    total = stats["shipped"] + stats["spooled"] + stats["dropped_total"] + stats["pending"]
    assert stats["tracked"] == total, stats


def test_flush_from_many_threads_at_any_time_never_raises_or_loses_a_row(tiny_switch_interval):
    sink = MemorySink()
    configure_monitoring(None, {"sink": {"flush_interval": 0.01}}, sink=sink)
    errors: list[BaseException] = []
    producers, per_producer = 3, 1500

    def produce(p: int) -> None:
        for i in range(per_producer):
            performance_monitor.track_request(f"/p{p}/{i}", "GET", 0.01, 200)

    def flush_often() -> None:
        for _ in range(150):
            try:
                assert flush_monitoring(timeout=10)
            except BaseException as exc:  # noqa: BLE001 - the test wants to see any
                errors.append(exc)

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    threads += [threading.Thread(target=flush_often) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert flush_monitoring(timeout=30)
    assert errors == []
    routes = requests_of(sink)
    assert len(routes) == producers * per_producer
    for p in range(producers):  # each producer's rows left in the order it recorded them
        mine = [r for r in routes if r.startswith(f"/p{p}/")]
        assert mine == [f"/p{p}/{i}" for i in range(per_producer)]
    stats = monitoring_stats()
    assert stats["processed"] == producers * per_producer  # no lost counter updates
    assert stats["worker_restarts"] == 0
    assert state.pipeline._processor.is_alive() and state.pipeline._shipper.is_alive()
    assert_books_add_up(stats)


def test_a_flush_never_drains_the_queue_on_the_callers_thread_while_the_workers_run():
    seen: set[int] = set()

    class Recording(MemorySink):
        def write(self, table, rows):
            seen.add(threading.get_ident())
            super().write(table, rows)

    configure_monitoring(None, sink=Recording())
    for i in range(1000):
        performance_monitor.track_request(f"/{i}", "GET", 0.01, 200)
    assert flush_monitoring()
    assert threading.get_ident() not in seen  # the shipper wrote every batch


def test_a_worker_that_dies_is_restarted_counted_and_logged_once(caplog):
    sink = MemorySink()
    configure_monitoring(None, sink=sink)

    def die() -> None:
        raise SystemExit  # not an Exception: it ends the thread, as a fatal fault would

    state.pipeline.processors["die"] = die
    state.pipeline.submit(("die",))
    deadline = time.monotonic() + 5
    while state.pipeline._processor.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    with caplog.at_level(logging.ERROR, logger="collectors.instrumentation"):
        performance_monitor.track_request("/after", "GET", 0.01, 200)
        assert flush_monitoring()
    assert requests_of(sink) == ["/after"]
    assert monitoring_stats()["worker_restarts"] == 1
    died = [r for r in caplog.records if "died and was restarted" in r.getMessage()]
    assert len(died) == 1


def test_a_fault_in_a_worker_loop_restarts_the_loop(caplog, monkeypatch):
    sink = MemorySink()
    configure_monitoring(None, {"sink": {"flush_interval": 0.02}}, sink=sink)
    original = state.pipeline.ship_pending
    calls = []

    def fails_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the shipper loop")
        return original(*args, **kwargs)

    monkeypatch.setattr(state.pipeline, "ship_pending", fails_once)
    with caplog.at_level(logging.ERROR, logger="collectors.instrumentation"):
        performance_monitor.track_request("/x", "GET", 0.01, 200)
        assert flush_monitoring()
    assert requests_of(sink) == ["/x"]
    assert monitoring_stats()["worker_restarts"] == 1
    assert sum("died and was restarted" in r.getMessage() for r in caplog.records) == 1


def test_a_row_the_sink_refuses_is_dropped_alone():
    class Picky(MemorySink):
        def write(self, table, rows):
            if any(r["route"] == "/poison" for r in rows):
                raise ValueError("refused")
            super().write(table, rows)

    sink = Picky()
    configure_monitoring(None, {"sink": {"batch_size": 200}}, sink=sink)
    for i in range(200):
        performance_monitor.track_request("/poison" if i == 77 else f"/{i}", "GET", 0.01, 200)
    assert flush_monitoring()
    assert len(requests_of(sink)) == 199
    stats = monitoring_stats()
    assert stats["dropped"]["sink_error"] == 1
    assert_books_add_up(stats)


def test_a_sink_that_is_down_costs_a_few_calls_per_batch_not_one_per_row():
    class Down(MemorySink):
        calls = 0

        def write(self, table, rows):
            Down.calls += 1
            raise ConnectionError("down")

    configure_monitoring(None, {"sink": {"batch_size": 500}}, sink=Down())
    for i in range(500):
        performance_monitor.track_request(f"/{i}", "GET", 0.01, 200)
    assert flush_monitoring()
    assert Down.calls <= 2 * 9 + 3
    stats = monitoring_stats()
    assert stats["dropped"]["sink_error"] == 500
    assert_books_add_up(stats)


def test_a_row_that_cannot_be_serialised_costs_only_itself(tmp_path):
    class Unprintable:
        def __str__(self):
            raise RuntimeError("no text")

    sink = SpoolSink(tmp_path)
    configure_monitoring(None, sink=sink)
    for i in range(200):
        state.pipeline.emit("feature_usage", {"usage_id": f"u{i}", "feature_name": "f"})
    state.pipeline.emit("feature_usage", {"usage_id": "bad", "feature_name": Unprintable()})
    assert flush_monitoring()
    sink.close()
    got = [r for c in read_committed(tmp_path / "feature_usage", None, now=time.time() + 10)
           for r in c.rows]  # fmt: skip
    assert len(got) == 200
    stats = monitoring_stats()
    assert stats["dropped"]["unserialisable"] == 1
    assert_books_add_up(stats)


class SlowSink(MemorySink):
    """Takes `seconds` per write and ignores timeouts (its flush and close take none)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def write(self, table, rows):
        time.sleep(self.seconds)
        super().write(table, rows)

    def flush(self):
        time.sleep(self.seconds)

    def close(self):
        time.sleep(self.seconds)


def test_shutdown_honours_its_timeout_with_a_slow_sink():
    configure_monitoring(
        None, {"sink": {"batch_size": 10, "flush_interval": 0.05}}, sink=SlowSink(1.0)
    )
    for i in range(300):
        performance_monitor.track_request(f"/{i}", "GET", 0.01, 200)
    started = time.monotonic()
    assert shutdown_monitoring(timeout=2.0) is False  # not everything could be shipped
    assert time.monotonic() - started < 2.6


def test_shipping_stops_at_its_deadline_even_when_nobody_else_holds_the_lock():
    # Shutdown ships what is left by itself once the workers have stopped; a free lock was
    # granted past the deadline (a timeout of 0 still acquires), so it shipped all 30 batches.
    from collectors.instrumentation.pipeline import Pipeline

    sink = SlowSink(0.2)
    pipeline = Pipeline(sink, batch_size=10)
    pipeline.outbox.extend(("requests", {"n": i}) for i in range(300))
    pipeline.ship_pending(deadline=time.monotonic() + 0.5)
    assert 0 < len(sink.rows["requests"]) <= 40  # the batches begun before the deadline
    assert len(pipeline.outbox) >= 260  # the rest waits (the spool or the next start has it)


def test_flush_honours_its_timeout_with_a_slow_sink():
    configure_monitoring(None, {"sink": {"batch_size": 10}}, sink=SlowSink(0.5))
    for i in range(100):
        performance_monitor.track_request(f"/{i}", "GET", 0.01, 200)
    started = time.monotonic()
    assert flush_monitoring(timeout=1.0) is False
    assert time.monotonic() - started < 1.5


def test_the_apps_shutdown_flush_runs_off_the_event_loop():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    flushed_on: list[int] = []
    loop_threads: list[int] = []

    class Recording(MemorySink):
        def flush(self, timeout=None):
            flushed_on.append(threading.get_ident())
            time.sleep(0.3)

    app = FastAPI()

    @app.get("/x")
    async def x():
        loop_threads.append(threading.get_ident())
        return {}

    configure_monitoring(app, sink=Recording())
    with TestClient(app) as client:
        client.get("/x")
    assert flushed_on and loop_threads
    assert loop_threads[0] not in flushed_on


def test_the_event_loop_keeps_running_while_the_app_shuts_down():
    """A lifespan shutdown with a sink whose flush takes 0.5 s: the loop ticks meanwhile."""
    from fastapi import FastAPI

    class SlowFlush(MemorySink):
        def flush(self, timeout=None):
            time.sleep(0.5)

    app = FastAPI()
    wrapped = configure_monitoring(app, sink=SlowFlush())

    async def main() -> int:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        messages = asyncio.Queue()
        await messages.put({"type": "lifespan.startup"})
        await messages.put({"type": "lifespan.shutdown"})
        sent = []

        async def send(message):
            sent.append(message["type"])

        task = asyncio.create_task(ticker())
        await wrapped({"type": "lifespan", "asgi": {"version": "3.0"}}, messages.get, send)
        stop.set()
        await task
        assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
        return ticks

    assert asyncio.run(main()) >= 20  # 0.5 s of flushing did not stop the loop


def test_the_books_add_up_with_drops_of_every_kind():
    sink = MemorySink()
    configure_monitoring(None, {"sink": {"max_queue": 50}}, sink=sink)
    shutdown_monitoring(flush=False)  # nothing drains the queue: it fills
    for i in range(80):
        performance_monitor.track_request(f"/{i}", "GET", 0.01, 200)
    performance_monitor.track_request(None, "GET", 0.01, 200)  # invalid
    assert flush_monitoring()
    stats = monitoring_stats()
    assert stats["dropped"]["queue_full"] == 30 and stats["dropped"]["invalid"] == 1
    assert stats["shipped"] == 50 and stats["tracked"] == 81 and stats["pending"] == 0
    assert_books_add_up(stats)
