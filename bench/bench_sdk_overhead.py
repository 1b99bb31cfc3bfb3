"""The monitoring SDK's cost to the agent, beside a plain prometheus-client middleware and
OpenTelemetry's ASGI middleware (reference/perf_anchors.md section 1 method).

Phase 1, request-path latency: await the ASGI app directly (fresh scope, constant receive,
collecting send), warm up, then interleaved rounds with the variant order shuffled each
round; Δ is against the bare FastAPI app measured in the same rounds.

Phase 2, CPU per request with the SDK's background threads included: per round and variant,
the process's CPU time (every thread) over `--cpu-per-round` requests, for the SDK up to the
moment its workers have shipped those requests' rows to the spool (flush). Rounds interleave
bare, prometheus-client and the SDK; reported per request: p50, p99 and mean over rounds, and
the paired difference to the bare app of the same round.

Phases 3 and 4: the SDK with a sink that takes 1 s per batch and a sink that is down (raises),
against the bare app: latency, queue, drops and RSS.

Phase 5, a hanging Supabase: the real Supabase sink against a local PostgREST-like server
that accepts every write and answers none, for `--hang-seconds` (60) at `--rate` (2,000)
requests per second; then it answers again and the outbox is replayed. Reports rows lost
(requests made minus rows that reached the server), drops, and RSS and queue peaks during the
hang (memory bounded).

Run: .venv/bin/python bench/bench_sdk_overhead.py [--rounds 30] [--per-round 1000]
     [--cpu-rounds 60] [--cpu-per-round 500] [--hang-seconds 60] [--rate 2000] [--only N,..]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psutil
from fastapi import FastAPI

PATH = "/v1/health"


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get(PATH)
    async def health():
        return {"status": "ok", "service": "voice-agent", "version": "1.4.2"}

    return app


class DoNothing:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)


def prometheus_app() -> Any:
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    hist = Histogram(
        "http_request_duration_seconds", "latency", ["route", "method", "status"], registry=registry
    )
    count = Counter(
        "http_requests_total", "requests", ["route", "method", "status"], registry=registry
    )

    class PromMiddleware:
        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http":
                return await self.app(scope, receive, send)
            status = [500]

            async def send_status(message):
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            start = time.perf_counter()
            try:
                await self.app(scope, receive, send_status)
            finally:
                route = getattr(scope.get("route"), "path", "<unmatched>")
                labels = (route, scope["method"], str(status[0]))
                hist.labels(*labels).observe(time.perf_counter() - start)
                count.labels(*labels).inc()

    app = make_app()
    app.add_middleware(PromMiddleware)
    return app


def otel_app() -> tuple[Any, Any]:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class CountingExporter(SpanExporter):
        spans = 0

        def export(self, spans):
            CountingExporter.spans += len(spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(CountingExporter()))
    app = make_app()
    app.add_middleware(OpenTelemetryMiddleware, tracer_provider=provider)
    return app, provider


def sdk_app(sink: Any) -> Any:
    from collectors.instrumentation import configure_monitoring

    app = make_app()
    configure_monitoring(app, {"health": {"resource_interval": 3600}}, sink=sink)
    return app


class SlowSink:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.batches = 0

    def write(self, table, rows):
        self.batches += 1
        time.sleep(self.seconds)

    def tick(self):
        pass

    def flush(self, timeout=None):
        pass

    def close(self, timeout=None):
        pass


class DownSink(SlowSink):
    def write(self, table, rows):
        self.batches += 1
        raise ConnectionError("sink is down")


# -- harness ---------------------------------------------------------------------------------
def scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 50000),
        "server": ("bench", 80),
    }


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def run(app: Callable, n: int) -> list[int]:
    out = []
    pc = time.perf_counter_ns
    for _ in range(n):
        sent: list = []

        async def send(message, sent=sent):
            sent.append(message)

        s = scope()
        t0 = pc()
        await app(s, receive, send)
        out.append(pc() - t0)
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def measure(variants: dict[str, Callable], rounds: int, per_round: int, warmup: int) -> dict:
    loop = asyncio.new_event_loop()
    for app in variants.values():
        loop.run_until_complete(run(app, warmup))
    samples: dict[str, list[int]] = {k: [] for k in variants}
    per_round_p50: dict[str, list[float]] = {k: [] for k in variants}
    order = list(variants)
    for _ in range(rounds):
        random.shuffle(order)
        for name in order:
            lat = loop.run_until_complete(run(variants[name], per_round))
            samples[name] += lat
            per_round_p50[name].append(statistics.median(lat))
    loop.close()
    return {"samples": samples, "round_p50": per_round_p50}


def report(title: str, result: dict, base: str = "a bare FastAPI") -> list[str]:
    s, rp = result["samples"], result["round_p50"]
    b50, b99 = pct(s[base], 0.5) / 1000, pct(s[base], 0.99) / 1000
    bmean = statistics.fmean(s[base]) / 1000
    lines = [
        f"\n{title}",
        f"{'variant':52} {'p50':>7} {'p99':>7} {'mean':>7} {'Δp50':>7} "
        f"{'Δp99':>7} {'Δmean':>7}  Δp50 per round median [p10, p90]",
    ]
    for name, lat in s.items():
        p50, p99, mean = pct(lat, 0.5) / 1000, pct(lat, 0.99) / 1000, statistics.fmean(lat) / 1000
        deltas = sorted((x - y) / 1000 for x, y in zip(rp[name], rp[base], strict=True))
        lines.append(
            f"{name:52} {p50:7.1f} {p99:7.1f} {mean:7.1f} {p50 - b50:+7.1f} {p99 - b99:+7.1f} "
            f"{mean - bmean:+7.1f}  {statistics.median(deltas):+.1f} "
            f"[{pct(deltas, 0.1):+.1f}, {pct(deltas, 0.9):+.1f}]"
        )
    return lines


def cpu_per_request(
    variants: dict[str, Callable], rounds: int, per_round: int, flush: Callable[[], Any]
) -> dict[str, list[float]]:
    """µs of process CPU (all threads) per request, one value per round and variant; the
    SDK's rounds end when its workers have shipped the rows (flush), so their work counts."""
    loop = asyncio.new_event_loop()
    for app in variants.values():
        loop.run_until_complete(run(app, 1000))
    flush()
    out: dict[str, list[float]] = {k: [] for k in variants}
    order = list(variants)
    for _ in range(rounds):
        random.shuffle(order)
        for name in order:
            flush()  # nothing left over from the previous variant's round
            c0 = time.process_time()
            loop.run_until_complete(run(variants[name], per_round))
            if name.startswith("sdk"):
                flush()
            out[name].append((time.process_time() - c0) / per_round * 1e6)
    loop.close()
    return out


def cpu_report(cpu: dict[str, list[float]], base: str) -> list[str]:
    lines = [
        f"{'variant':52} {'p50':>7} {'p99':>7} {'mean':>7} {'Δp50':>7} {'Δp99':>7} "
        f"{'Δmean':>7}  (µs CPU per request, per round; Δ paired with {base} in the round)"
    ]
    for name, values in cpu.items():
        deltas = [v - b for v, b in zip(values, cpu[base], strict=True)]
        lines.append(
            f"{name:52} {pct(values, 0.5):7.1f} {pct(values, 0.99):7.1f} "
            f"{statistics.fmean(values):7.1f} {pct(deltas, 0.5):+7.1f} {pct(deltas, 0.99):+7.1f} "
            f"{statistics.fmean(deltas):+7.1f}"
        )
    return lines


class HangingPostgrest:
    """Accepts POST /rest/v1/<table> and, while `hanging`, answers none; otherwise stores the
    rows by natural key (the first column of the table's key) and answers 201."""

    def __init__(self) -> None:
        from collectors.schema import TABLES

        self.answer = threading.Event()
        self.keys: dict[str, set] = {}
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                table = self.path.split("?")[0].removeprefix("/rest/v1/")
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not stub.answer.wait(600):
                    return
                key = TABLES[table].key
                with stub.lock:
                    got = stub.keys.setdefault(table, set())
                    for r in json.loads(body):
                        got.add(tuple(r[k] for k in key))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, table: str) -> int:
        with self.lock:
            return len(self.keys.get(table, ()))


def hanging_supabase(seconds: float, rate: int, timeout: float) -> list[str]:
    """The SDK through the real Supabase sink while Supabase hangs for `seconds`."""
    from collectors.instrumentation import (
        configure_monitoring,
        monitoring_stats,
        reset_monitoring,
        shutdown_monitoring,
    )
    from collectors.instrumentation.runtime import state
    from collectors.instrumentation.sinks import SupabaseSink

    reset_monitoring()  # the books of this phase only
    stub = HangingPostgrest()
    outbox = tempfile.mkdtemp(prefix="sdk-bench-outbox-")
    sink = SupabaseSink(stub.url, "service-key", outbox, timeout=timeout)
    app = make_app()
    configure_monitoring(app, {"health": {"resource_interval": 3600}}, sink=sink)
    proc = psutil.Process()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(run(app, 2000))  # warm-up, answered
    stub.answer.set()
    state.pipeline.flush(30)
    sink.flush(timeout=30)
    warm = stub.count("requests")
    stub.answer.clear()  # from now on Supabase accepts and never answers
    gc.collect()
    rss0 = proc.memory_info().rss
    rss_peak, queue_peak, outbox_peak = rss0, 0, 0
    tick = 0.05
    per_tick = max(1, round(rate * tick))
    sent = 0
    started = time.monotonic()
    next_tick = started
    while time.monotonic() - started < seconds:
        loop.run_until_complete(run(app, per_tick))
        sent += per_tick
        queue_peak = max(queue_peak, len(state.pipeline.queue))
        outbox_peak = max(outbox_peak, len(state.pipeline.outbox))
        if sent % (per_tick * 20) == 0:
            rss_peak = max(rss_peak, proc.memory_info().rss)
        next_tick += tick
        time.sleep(max(0.0, next_tick - time.monotonic()))
    achieved = sent / (time.monotonic() - started)
    during = monitoring_stats()
    rss1 = proc.memory_info().rss
    stub.answer.set()  # Supabase answers again: the outbox is replayed
    t_release = time.monotonic()
    state.pipeline.flush(60)
    deadline = time.monotonic() + 300
    while stub.count("requests") < warm + sent and time.monotonic() < deadline:
        sink._down_until = 0.0  # skip what is left of the backoff
        sink.flush(timeout=10)
    delivered = stub.count("requests") - warm
    drained_s = time.monotonic() - t_release
    after = monitoring_stats()
    shutdown_monitoring(flush=False)
    loop.close()
    return [
        f"\nPhase 5: Supabase hanging for {seconds:.0f} s (accepts, never answers; sink timeout "
        f"{timeout:g} s) at {achieved:,.0f} requests/s",
        f"requests made {sent:,}; rows that reached Supabase after it answered again "
        f"{delivered:,} (replayed in {drained_s:.1f} s); rows lost {sent - delivered:,}",
        f"during the hang: sink up {during['sink_up']}, spooled {during['spooled']:,}, "
        f"dropped {during['dropped_total']} {_nonzero(during['dropped'])}, queue peak "
        f"{queue_peak:,} (max {state.pipeline.max_queue:,}), outbox peak {outbox_peak:,} "
        f"(max {state.pipeline.max_outbox:,})",
        f"RSS before {rss0 / 2**20:.0f} MiB, peak {rss_peak / 2**20:.0f} MiB, at the end "
        f"{rss1 / 2**20:.0f} MiB",
        f"after: tracked {after['tracked']:,} = shipped {after['shipped']:,} + spooled "
        f"{after['spooled']:,} + dropped {after['dropped_total']} + pending {after['pending']} "
        f"({'balanced' if after['balanced'] else 'NOT balanced'}); replayed {after['replayed']:,}",
    ]


def _nonzero(d: dict[str, int]) -> str:
    return str({k: v for k, v in d.items() if v}) if any(d.values()) else ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--per-round", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=3000)
    ap.add_argument("--cpu-rounds", type=int, default=60)
    ap.add_argument("--cpu-per-round", type=int, default=500)
    ap.add_argument("--hang-seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--only", default="1,2,3,4,5", help="phases to run, e.g. 1,2")
    args = ap.parse_args()
    phases = {int(x) for x in args.only.split(",")}

    from collectors.instrumentation import monitoring_stats, shutdown_monitoring
    from collectors.instrumentation.runtime import state
    from collectors.instrumentation.sinks import SpoolSink

    spool = tempfile.mkdtemp(prefix="sdk-bench-")
    bare = make_app()
    floor = make_app()
    floor.add_middleware(DoNothing)
    prom = prometheus_app()
    sdk = sdk_app(SpoolSink(spool))
    t0 = time.perf_counter()
    lines = [f"CPython {os.sys.version.split()[0]}, {os.cpu_count()} cores"]
    if 1 in phases:
        otel, provider = otel_app()
        variants = {
            "a bare FastAPI": bare,
            "f do-nothing ASGI middleware": floor,
            "sdk MonitoringMiddleware (spool sink)": sdk,
            "b1 prometheus-client Histogram+Counter middleware": prom,
            "c1 OTel ASGI middleware (3 spans/req)": otel,
        }
        main_result = measure(variants, args.rounds, args.per_round, args.warmup)
        lines.append(
            f"{args.rounds} rounds x {args.per_round} requests per variant after "
            f"{args.warmup} warm-up; µs per request"
        )
        lines += report("Phase 1: request-path latency", main_result)
        s = main_result["samples"]
        base = pct(s["a bare FastAPI"], 0.5)
        d_sdk = pct(s["sdk MonitoringMiddleware (spool sink)"], 0.5) - base
        d_prom = pct(s["b1 prometheus-client Histogram+Counter middleware"], 0.5) - base
        if d_prom > 0:
            lines.append(f"SDK Δp50 / prometheus Δp50 = {d_sdk / d_prom:.2f}")
        provider.shutdown()
    if 2 in phases:
        cpu = cpu_per_request(
            {
                "a bare FastAPI": bare,
                "b1 prometheus-client Histogram+Counter middleware": prom,
                "sdk MonitoringMiddleware (spool sink), workers included": sdk,
            },
            args.cpu_rounds,
            args.cpu_per_round,
            lambda: state.pipeline.flush(30),
        )
        lines.append(
            f"\nPhase 2: CPU per request, background threads included ({args.cpu_rounds} "
            f"rounds x {args.cpu_per_round} requests per variant)"
        )
        lines += cpu_report(cpu, "a bare FastAPI")
        d_sdk = statistics.fmean(
            a - b
            for a, b in zip(
                cpu["sdk MonitoringMiddleware (spool sink), workers included"],
                cpu["a bare FastAPI"],
                strict=True,
            )
        )
        d_prom = statistics.fmean(
            a - b
            for a, b in zip(
                cpu["b1 prometheus-client Histogram+Counter middleware"],
                cpu["a bare FastAPI"],
                strict=True,
            )
        )
        lines.append(f"SDK Δmean CPU / prometheus Δmean CPU = {d_sdk / d_prom:.2f}")
    state.pipeline.flush(30)
    st = monitoring_stats()
    lines.append(
        f"spool: tracked {st['tracked']:,}, shipped {st['shipped']:,}, dropped "
        f"{st['dropped_total']}, balanced {st['balanced']}"
    )

    proc = psutil.Process()
    for phase, label, sink in (
        (3, "a sink taking 1 s per batch", SlowSink(1.0)),
        (4, "a sink that is down (raises)", DownSink(0)),
    ):
        if phase not in phases:
            continue
        state.pipeline.sink = sink
        state.pipeline.reset_counters()
        gc.collect()
        rss0 = proc.memory_info().rss
        phase_rounds = max(5, args.rounds // 3)
        res = measure(
            {"a bare FastAPI": bare, "sdk MonitoringMiddleware": sdk},
            phase_rounds,
            args.per_round * 4,
            500,
        )
        rss1 = proc.memory_info().rss
        st = monitoring_stats()
        lines += report(
            f"Phase {phase}: SDK with {label} ({phase_rounds} rounds x {args.per_round * 4})", res
        )
        lines.append(
            f"queue now {st['queued']} (max {state.pipeline.max_queue}), outbox "
            f"{st['outbox']} (max {state.pipeline.max_outbox}), dropped {st['dropped_total']} "
            f"{_nonzero(st['dropped'])}, sink batches {sink.batches}; RSS "
            f"{rss0 / 2**20:.0f} -> {rss1 / 2**20:.0f} MiB"
        )
    shutdown_monitoring(flush=False, timeout=2)
    if 5 in phases:
        lines += hanging_supabase(args.hang_seconds, args.rate, timeout=10.0)
    lines.append(f"\nwall time {time.perf_counter() - t0:.0f} s")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
