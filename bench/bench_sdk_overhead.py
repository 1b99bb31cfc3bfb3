"""Added latency per request of the monitoring SDK's middleware, beside a plain
prometheus-client middleware and OpenTelemetry's ASGI middleware (reference/perf_anchors.md
section 1 method): await the ASGI app directly (fresh scope, constant receive, collecting send),
warm up, then interleaved rounds with the variant order shuffled each round; Δ is against the
bare FastAPI app measured in the same rounds.

Then two more phases compare the SDK with a sink that takes 1 s per batch and a sink that is
down (raises), against the bare app, and report queue length, drops and RSS (memory bounded).

Run: .venv/bin/python bench/bench_sdk_overhead.py [--rounds 30] [--per-round 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
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

    def flush(self):
        pass

    def close(self):
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--per-round", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=3000)
    args = ap.parse_args()

    from collectors.instrumentation import monitoring_stats, shutdown_monitoring
    from collectors.instrumentation.runtime import state
    from collectors.instrumentation.sinks import SpoolSink

    spool = tempfile.mkdtemp(prefix="sdk-bench-")
    bare = make_app()
    floor = make_app()
    floor.add_middleware(DoNothing)
    otel, provider = otel_app()
    variants = {
        "a bare FastAPI": bare,
        "f do-nothing ASGI middleware": floor,
        "sdk MonitoringMiddleware (spool sink)": sdk_app(SpoolSink(spool)),
        "b1 prometheus-client Histogram+Counter middleware": prometheus_app(),
        "c1 OTel ASGI middleware (3 spans/req)": otel,
    }
    t0 = time.perf_counter()
    main_result = measure(variants, args.rounds, args.per_round, args.warmup)
    lines = [
        f"CPython {os.sys.version.split()[0]}, {os.cpu_count()} cores; "
        f"{args.rounds} rounds x {args.per_round} requests per variant after "
        f"{args.warmup} warm-up; µs per request"
    ]
    lines += report("Phase 1: middleware overhead", main_result)
    s = main_result["samples"]
    d_sdk = pct(s["sdk MonitoringMiddleware (spool sink)"], 0.5) - pct(s["a bare FastAPI"], 0.5)
    d_prom = pct(s["b1 prometheus-client Histogram+Counter middleware"], 0.5) - pct(
        s["a bare FastAPI"], 0.5
    )
    lines.append(f"SDK Δp50 / prometheus Δp50 = {d_sdk / d_prom:.2f}" if d_prom > 0 else "")
    provider.shutdown()
    state.pipeline.flush()
    lines.append(f"rows shipped to the spool: {monitoring_stats().get('rows_shipped', 0)}")

    proc = psutil.Process()
    sdk = variants["sdk MonitoringMiddleware (spool sink)"]
    for label, sink in (
        ("a sink taking 1 s per batch", SlowSink(1.0)),
        ("a sink that is down (raises)", DownSink(0)),
    ):
        state.pipeline.sink = sink
        state.pipeline.stats.clear()
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
            f"Phase: SDK with {label} ({phase_rounds} rounds x {args.per_round * 4})", res
        )
        lines.append(
            f"queue now {st['queued']} (max {state.pipeline.max_queue}), outbox "
            f"{st['outbox']} (max {state.pipeline.max_outbox}), dropped at queue "
            f"{st.get('dropped_queue', 0)}, dropped at outbox "
            f"{st.get('dropped_outbox', 0)}, lost by sink "
            f"{st.get('rows_lost_sink', 0)}, sink batches {sink.batches}; RSS "
            f"{rss0 / 2**20:.0f} -> {rss1 / 2**20:.0f} MiB"
        )
    shutdown_monitoring(flush=False)
    lines.append(f"\nwall time {time.perf_counter() - t0:.0f} s")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
