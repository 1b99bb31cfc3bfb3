"""Benchmark: evaluate one A/B experiment (SQL included) over 1 million exposed calls, and a
release benchmark over 30 days of synthetic traffic.

    .venv/bin/python bench/bench_experiment.py [--exposures 1000000]

The synthetic warehouse is built with DuckDB SQL from a deterministic hash (no RNG state), so
the same arguments always give the same data; tests reuse `build_synthetic_warehouse` with a
small size and a planted effect.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import time
from importlib import resources

import duckdb

START = dt.datetime(2026, 1, 1)


def _exec(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> None:
    """Execute with only the named parameters the statement uses (DuckDB rejects extras)."""
    used = set(re.findall(r"\$([a-z_]+)", sql))
    con.execute(sql, {k: v for k, v in (params or {}).items() if k in used})


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    sql = resources.files("collectors.migrations").joinpath("0001_initial.sql").read_text()
    con.execute(sql)


def build_synthetic_warehouse(
    con: duckdb.DuckDBPyConnection,
    calls: int = 20_000,
    callers: int | None = None,
    days: int = 30,
    pre_days: int = 14,
    resolved_lift: float = 0.03,
    experiment_key: str = "exp-prompt-v2",
    requests_per_call: int = 2,
) -> dt.datetime:
    """Fill an empty warehouse. Calls spread over `pre_days` of history then `days` of
    experiment; each experiment call is exposed (unit_type 'call') to control or treatment
    50/50. Treatment adds `resolved_lift` to the resolved probability and nothing to latency.
    Callers have a persistent propensity, so their pre-period predicts their calls (CUPED).
    Returns the experiment start."""
    callers = callers or max(calls // 4, 1)
    total_days = pre_days + days
    exp_start = START + dt.timedelta(days=pre_days)
    con.execute(
        "CREATE OR REPLACE TEMP MACRO u(i, k) AS "
        "((hash(hash(i, k)) % 2147483647)::DOUBLE + 0.5) / 2147483647.0"
    )
    con.execute(
        "CREATE OR REPLACE TEMP MACRO gauss(i, k) AS "
        "sqrt(-2 * ln(u(i, k || 'a'))) * cos(2 * pi() * u(i, k || 'b'))"
    )
    params = {
        "n": calls,
        "callers": callers,
        "total_days": total_days,
        "start": START,
        "exp_start": exp_start,
        "lift": resolved_lift,
        "key": experiment_key,
    }
    _exec(
        con,
        """
        CREATE OR REPLACE TEMP TABLE syn AS
        SELECT i,
               'c' || i AS call_id,
               hash(i, 'caller') % $callers AS caller_no,
               $start + to_microseconds(
                   CAST(i::DOUBLE / $n * $total_days * 86400e6 AS BIGINT)) AS started_at,
               u(i, 'arm') < 0.5 AS is_control,
               u(i, 'outcome') AS r_outcome,
               3 + CAST(floor(u(i, 'turns') * 8) AS INTEGER) AS turns
        FROM range($n) t(i)
        """,
        params,
    )
    _exec(
        con,
        """
        INSERT INTO calls
        SELECT s.call_id, 'u' || s.caller_no, s.started_at,
               s.started_at + to_seconds(CAST(d.dur AS BIGINT)), d.dur,
               CASE WHEN s.r_outcome < d.p THEN 'resolved'
                    WHEN s.r_outcome < d.p + 0.2 THEN 'escalated'
                    WHEN s.r_outcome < d.p + 0.35 THEN 'abandoned' ELSE 'failed' END,
               s.turns,
               CAST(floor(s.turns * u(s.i, 'intr') * 0.4) AS INTEGER),
               'v1.' || CAST(floor(date_diff('day', $start, s.started_at) / 5) AS INTEGER),
               CASE WHEN s.started_at >= $exp_start THEN $key END,
               CASE WHEN s.started_at >= $exp_start
                    THEN CASE WHEN s.is_control THEN 'control' ELSE 'treatment' END END,
               'eu', 'wifi'
        FROM syn s,
        LATERAL (SELECT
            0.45 + 0.3 * u(s.caller_no, 'skill')
              + CASE WHEN s.started_at >= $exp_start AND NOT s.is_control THEN $lift ELSE 0 END
              AS p,
            greatest(10.0, 150 + 80 * u(s.caller_no, 'slow') + 45 * gauss(s.i, 'dur')) AS dur
        ) d
        """,
        params,
    )
    _exec(
        con,
        """
        INSERT INTO experiment_exposures
        SELECT experiment_key, call_id, 'call', variant, started_at
        FROM calls WHERE experiment_key = $key
        """,
        params,
    )
    _exec(
        con,
        """
        INSERT INTO voice_turns
        SELECT s.call_id || '-' || k, s.call_id, k, s.started_at + to_seconds(k * 8),
               80 + 30 * u(s.i * 16 + k, 'eou'),
               exp(5.0 + 0.3 * gauss(s.i * 16 + k, 'stt')),
               exp(6.0 + 0.35 * gauss(s.i * 16 + k, 'ttft')),
               exp(5.3 + 0.3 * gauss(s.i * 16 + k, 'tts')),
               exp(6.9 + 0.3 * gauss(s.i * 16 + k, 'e2e')),
               u(s.i * 16 + k, 'int') < 0.1,
               NULL, NULL, NULL,
               'v1.' || CAST(floor(date_diff('day', $start, s.started_at) / 5) AS INTEGER),
               NULL
        FROM syn s, range(s.turns) r(k)
        """,
        params,
    )
    _exec(
        con,
        """
        INSERT INTO feedback
        SELECT 'f' || c.call_id, c.ended_at,
               CASE WHEN c.outcome = 'resolved'
                    THEN 3 + CAST(floor(u(s.i, 'rating') * 3) AS INTEGER)
                    ELSE 1 + CAST(floor(u(s.i, 'rating') * 3) AS INTEGER) END,
               NULL, NULL, c.caller_id, NULL, c.call_id, c.release
        FROM calls c JOIN syn s USING (call_id)
        WHERE u(s.i, 'fb') < 0.2
        """,
    )
    _exec(
        con,
        """
        INSERT INTO requests
        SELECT s.call_id || '-r' || k, s.started_at + to_seconds(k),
               CASE WHEN k % 2 = 0 THEN '/v1/session' ELSE '/v1/respond' END, 'POST',
               CASE WHEN u(s.i * 8 + k, 'status') < 0.01 THEN 500 ELSE 200 END,
               exp(4.0 + 0.5 * gauss(s.i * 8 + k, 'req')),
               'v1.' || CAST(floor(date_diff('day', $start, s.started_at) / 5) AS INTEGER),
               'agent', NULL, NULL, s.call_id
        FROM syn s, range($per_call) r(k)
        """,
        {**params, "per_call": requests_per_call},
    )
    _exec(
        con,
        """
        INSERT INTO errors (error_id, occurred_at, error_type, route, release, request_id, call_id)
        SELECT 'e' || request_id, started_at, 'HTTPError', route, release, request_id, call_id
        FROM requests WHERE status_code >= 500
        """,
    )
    _exec(
        con,
        """
        INSERT INTO voice_quality (sample_id, call_id, measured_at, mos_reported, release)
        SELECT 'q' || s.call_id, s.call_id, s.started_at,
               least(4.5, greatest(1.0, 4.1 + 0.3 * gauss(s.i, 'mos'))), c.release
        FROM syn s JOIN calls c USING (call_id)
        """,
    )
    _exec(
        con,
        """
        INSERT INTO deployments (deployment_id, created_at, service, environment, release, status)
        SELECT 'd' || k, $start + to_days(CAST(k * 5 AS INTEGER)), 'agent', 'production',
               'v1.' || k, 'SUCCESS'
        FROM range(CAST(ceil($total_days / 5) AS INTEGER)) r(k)
        """,
        params,
    )
    con.execute("DROP TABLE syn")
    return exp_start


def build_rollups(con: duckdb.DuckDBPyConnection) -> None:
    """The hourly rollups the published snapshot carries, computed over whole tables."""
    from collectors.rollups import ROLLUPS

    for rollup in ROLLUPS:
        con.execute(f"CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM {rollup.source}")
        con.execute(f"CREATE OR REPLACE TABLE {rollup.name} AS {rollup.select}")
    con.execute("DROP VIEW src")


def main() -> None:
    from analysis.benchmarks import BenchmarkSettings, release_benchmarks
    from analysis.experiments import ExperimentDefinition, evaluate_experiment, verdict
    from analysis.metrics import builtin_metrics

    parser = argparse.ArgumentParser()
    parser.add_argument("--exposures", type=int, default=1_000_000)
    parser.add_argument("--method", default="sequential")
    parser.add_argument(
        "--snapshot",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also publish the warehouse and measure on the Parquet snapshot (the app's path)",
    )
    args = parser.parse_args()

    con = duckdb.connect()
    create_schema(con)
    t0 = time.perf_counter()
    # 14 pre-period days + 30 experiment days: scale calls so the experiment has N exposures.
    calls = args.exposures * 44 // 30
    start = build_synthetic_warehouse(con, calls=calls, days=30, pre_days=14)
    build_rollups(con)
    built = time.perf_counter() - t0
    counts = {
        t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("calls", "experiment_exposures", "voice_turns", "feedback", "requests")
    }
    print(f"built synthetic warehouse in {built:.1f} s: {counts}")

    registry = builtin_metrics()
    names = ["resolved_rate", "handle_time", "csat", "interruptions_per_turn", "p95_e2e_latency"]
    definition = ExperimentDefinition("exp-prompt-v2", "control", start=start)
    for label, metrics in (
        ("5 metrics", [registry[n] for n in names]),
        ("4 metrics, no quantile", [registry[n] for n in names[:4]]),
    ):
        timings, cpu = [], []
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            result = evaluate_experiment(con, definition, metrics, method=args.method)
            timings.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        # CPU time over all of DuckDB's threads: comparable when the machine is busy
        print(
            f"evaluate_experiment ({label}, {args.method}, CUPED on): "
            f"best {min(timings):.3f} s, first {timings[0]:.3f} s "
            f"(CPU {min(cpu):.2f}-{max(cpu):.2f} s)"
        )
    print(verdict(result, names[:1], names[1:]))

    for source in ("rollup", "raw"):
        for equal_load in (True, False):
            t0 = time.perf_counter()
            settings = BenchmarkSettings(quantile_source=source, adjust_for_load=equal_load)
            report = release_benchmarks(con, settings)
            print(
                f"release_benchmarks ({source} percentiles, "
                f"{'equal load' if equal_load else 'as they ran'}) over {counts['calls']:,} "
                f"calls / {counts['voice_turns']:,} turns / {counts['requests']:,} requests: "
                f"{time.perf_counter() - t0:.3f} s, {len(report.comparisons)} comparisons, "
                f"{sum(r.regression for r in report.rows)} regressions flagged"
            )
    if args.snapshot:
        on_snapshot(con, definition, [registry[n] for n in names], args.method)


def on_snapshot(con, definition, metrics, method: str) -> None:
    """The app's path: publish the warehouse as Parquet and evaluate on the snapshot."""
    import tempfile

    from analysis.benchmarks import release_benchmarks
    from analysis.experiments import evaluate_experiment
    from collectors.publish import publish
    from collectors.snapshot import open_snapshot

    with tempfile.TemporaryDirectory() as serving:
        t0 = time.perf_counter()
        publish(con, serving)
        print(f"published the snapshot in {time.perf_counter() - t0:.1f} s")
        snap = open_snapshot(serving).con
        timings, cpu = [], []
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            evaluate_experiment(snap.cursor(), definition, metrics, method=method)
            timings.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        print(
            f"evaluate_experiment on the snapshot (5 metrics): best {min(timings):.3f} s, "
            f"median {sorted(timings)[1]:.3f} s (CPU, all threads: {min(cpu):.2f}-{max(cpu):.2f} s)"
        )
        t0 = time.perf_counter()
        release_benchmarks(snap.cursor())
        print(f"release_benchmarks on the snapshot: {time.perf_counter() - t0:.3f} s")


if __name__ == "__main__":
    main()
