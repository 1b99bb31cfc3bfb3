"""Time each analysis over 30 days of demo-sized data (target: <= 500 ms each).

Run: .venv/bin/python bench/bench_analysis.py [--days 30] [--repeat 3]
Loads the demo simulator's rows into an in-memory DuckDB with the warehouse migration and builds
the hourly rollups the published snapshot carries, then reports the best of `repeat` wall-clock
runs per analysis over the whole range.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from analysis import (
    errors,
    infrastructure,
    latency,
    metrics,
    overview,
    performance,
    security,
    sketch,
    uptime,
    ux,
    voice_quality,
)
from collectors.rollups import ROLLUPS
from collectors.sources.demo import DemoSimulator

MIGRATION = Path(__file__).resolve().parents[1] / "collectors" / "migrations" / "0001_initial.sql"
TARGET_MS = 500.0


def load(days: int) -> tuple[duckdb.DuckDBPyConnection, datetime, datetime, dict[str, int]]:
    anchor = datetime(2025, 8, 20, 12, 0, tzinfo=UTC)
    start = anchor - timedelta(days=days)
    tables = DemoSimulator(7, anchor, days).window(
        int(start.timestamp() * 1e6), int(anchor.timestamp() * 1e6)
    )
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(MIGRATION.read_text())
    for name, tab in tables.items():
        con.register("src", tab)
        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM src")
        con.unregister("src")
    for rollup in ROLLUPS:  # as the publisher does, over whole tables
        con.execute(f"CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM {rollup.source}")
        con.execute(f"CREATE OR REPLACE TABLE {rollup.name} AS {rollup.select}")
    con.execute("DROP VIEW src")
    sizes = {k: v.num_rows for k, v in tables.items()}
    return con, start.replace(tzinfo=None), anchor.replace(tzinfo=None), sizes


def cases(con, s, e):
    login = {"/v1/auth/login": {"limit": 10, "window": 60}, "*": {"limit": 600, "window": 60}}
    return {
        "uptime.uptime_by_target": lambda: uptime.uptime_by_target(con, s, e),
        "uptime.incidents": lambda: uptime.incidents(con, s, e, retries=2),
        "uptime.slo_status": lambda: uptime.slo_status(con, e),
        "uptime.startup_times": lambda: uptime.startup_times(con, s, e),
        "latency.route_percentiles": lambda: latency.route_percentiles(con, s, e),
        "performance.slow_requests": lambda: performance.slow_requests(con, s, e),
        "performance.db_query_stats": lambda: performance.db_query_stats(con, s, e),
        "infrastructure.resource_usage": lambda: infrastructure.resource_usage(con, s, e),
        "latency.stage_percentiles(release)": lambda: latency.stage_percentiles(
            con, s, e, by="release"
        ),
        "performance.slow_turn_attribution": lambda: performance.slow_turn_attribution(con, s, e),
        "metrics.metric_series(p95_e2e_latency)": lambda: metrics.metric_series(
            con, "p95_e2e_latency", s, e
        ),
        "metrics.metric_series(p95_e2e_latency, raw)": lambda: metrics.metric_series(
            con, "p95_e2e_latency", s, e, source="raw"
        ),
        "overview.kpis": lambda: overview.kpis(con, s, e),
        "sketch.histogram_rollup+quantiles": lambda: sketch.quantiles_from_rollup(
            sketch.histogram_rollup(con, "requests", "duration_ms", s, e, ["route"]).frame,
            (0.5, 0.95, 0.99),
            by=["route"],
        ),
        "errors.error_groups": lambda: errors.error_groups(con, s, e),
        "errors.error_rate_by_release": lambda: errors.error_rate_by_release(con, s, e),
        "voice_quality.quality_trend(hour)": lambda: voice_quality.quality_trend(con, s, e),
        "voice_quality.worst_segments": lambda: voice_quality.worst_segments(con, s, e),
        "security.failed_login_bursts(ip)": lambda: security.failed_login_bursts(
            con, s, e, by="ip"
        ),
        "security.credential_stuffing": lambda: security.credential_stuffing(con, s, e),
        "security.password_spraying": lambda: security.password_spraying(con, s, e),
        "security.rate_limit_violations": lambda: security.rate_limit_violations(con, s, e, login),
        "security.api_usage_anomalies(ip)": lambda: security.api_usage_anomalies(
            con, e - timedelta(days=7), e, by="ip"
        ),
        "ux.session_summary(release)": lambda: ux.session_summary(con, s, e, by="release"),
        "ux.csat": lambda: ux.csat(con, s, e),
        "ux.feature_usage": lambda: ux.feature_usage(con, s, e),
        "ux.feedback_drivers": lambda: ux.feedback_drivers(con, s, e),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    con, s, e, sizes = load(args.days)
    print(f"loaded {args.days} days in {time.perf_counter() - t0:.1f} s: {sizes}")
    slow = 0
    for name, fn in cases(con, s, e).items():
        best = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            fn()
            best = min(best, (time.perf_counter() - t) * 1000)
        flag = "" if best <= TARGET_MS else "  OVER TARGET"
        slow += best > TARGET_MS
        print(f"{name:42s} {best:8.1f} ms{flag}")
    print(f"{slow} of {len(cases(con, s, e))} over {TARGET_MS:.0f} ms")


if __name__ == "__main__":
    main()
