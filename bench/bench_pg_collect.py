"""`workbench collect` over Postgres, publish included, beside a bare COPY of the same rows.

Run: .venv/bin/python bench/bench_pg_collect.py [--rows 1000000] [--rounds 3] [--dsn DSN]
(needs PostgreSQL 15; without --dsn a throwaway cluster is started and filled.)

Fills the SDK tables with about `--rows` rows in a voice agent's proportions (per call: ~17
requests, 14 turns, 4 quality samples, an exposure, feature uses; errors, feedback, logins,
security events, statements; a host sample a minute; a few start-ups), spread over 30 days, every
value valid for collectors/schema.py. Then, each round in a rotated order, measures:

  bare COPY     `COPY (SELECT <the source's select list> FROM t ORDER BY updated_at, id) TO
                STDOUT (FORMAT CSV)` of every table, read into memory and discarded: the floor
  fetch only    SupabasePgSource.fetch (COPY -> Arrow), nothing written
  engine        collectors.engine.run_source into a fresh file-backed warehouse
  cli (subproc) `workbench collect supabase` then `workbench publish`, each a fresh process, from
                a fresh data dir (workbench.toml: [supabase] mode = "postgres", demo off,
                SUPABASE_DB_URL in the environment); collect publishes itself
  cli (in-proc) the same two commands through collectors.cli.main in this process, so the
                difference from the subprocess figure is interpreter start-up and imports

Each line gives the median, min and max seconds over the rounds, rows/s at the median and the
median (min..max) of the per-round ratio to that round's bare COPY. `--dsn` reuses a database
filled by an earlier run (`--keep` prints its DSN and leaves the cluster running).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

# jobs and service: imported here because cli imports them inside its commands, and the
# in-process figure is meant to leave imports out.
from collectors import cli, jobs, service  # noqa: E402, F401
from collectors.engine import run_source  # noqa: E402
from collectors.sources.supabase_pg import SupabasePgSource  # noqa: E402
from collectors.sources.supabase_rest import SDK_TABLES  # noqa: E402
from collectors.warehouse import open_warehouse  # noqa: E402

# Rows per call of each table (a voice agent's mix: requests and turns dominate).
PER_CALL = {
    "requests": 17,
    "voice_turns": 14,
    "voice_quality": 4,
    "calls": 1,
    "experiment_exposures": 1,
    "feature_usage": 1.5,
    "errors": 0.4,
    "auth_events": 0.4,
    "feedback": 0.2,
    "db_queries": 0.2,
    "security_events": 0.05,
}
DAYS = 30
HOST_SAMPLE_S = 60  # resource_samples: one host, a sample a minute
APP_STARTS = 60

# Per table: the INSERT's column list and SELECT over generate_series g (1..n). In scope: t0
# (start of the 30 days), step (time between calls), nc (number of calls), c (the row's call,
# 1..nc), cs (its call's start) and call_id (its call's id) -- see generate().
GEN: dict[str, tuple[str, str]] = {
    "calls": (
        "call_id, caller_id, started_at, ended_at, duration_s, outcome, turns, interruptions, "
        "release, experiment_key, variant, region, network",
        """call_id, '+1555' || lpad((c % 9000)::text, 7, '0'), cs,
           CASE WHEN c <= nc - 20 THEN cs + dur END,
           CASE WHEN c <= nc - 20 THEN extract(epoch FROM dur) END,
           CASE WHEN c > nc - 20 THEN NULL WHEN r < 0.72 THEN 'resolved'
                WHEN r < 0.86 THEN 'escalated' WHEN r < 0.97 THEN 'abandoned' ELSE 'failed' END,
           CASE WHEN c <= nc - 20 THEN 14 END, CASE WHEN c <= nc - 20 THEN (r * 4)::int END,
           rel, 'greeting-v2', variant, region, network""",
    ),
    "voice_turns": (
        "turn_id, call_id, turn_index, started_at, eou_delay_ms, stt_ms, llm_ttft_ms, "
        "tts_ttfb_ms, e2e_ms, interrupted, llm_prompt_tokens, llm_completion_tokens, "
        "tts_characters, release, variant",
        """md5('turn' || g)::uuid::text, call_id, j, cs + j * interval '7 s',
           150 + r * 500, 80 + r2 * 300, 250 + exp(r * 7), 90 + r2 * 250,
           600 + r * 500 + exp(r * 7), r2 < 0.08, 400 + (r * 2000)::int, 20 + (r2 * 180)::int,
           40 + (r * 300)::int, rel, variant""",
    ),
    "requests": (
        "request_id, started_at, route, method, status_code, duration_ms, release, service, "
        "user_id, ip, call_id",
        """md5('req' || g)::uuid::text, cs + j * interval '6 s',
           (ARRAY['/v1/agent/turn', '/v1/stt/stream', '/v1/tts/synthesize', '/v1/calls/{call_id}',
                  '/v1/tools/{tool}', '/healthz'])[1 + g % 6],
           CASE WHEN g % 5 = 0 THEN 'GET' ELSE 'POST' END,
           CASE WHEN r < 0.005 THEN 503 WHEN r < 0.01 THEN 500 WHEN r < 0.03 THEN 404
                WHEN r < 0.04 THEN 422 ELSE 200 END,
           exp(2.5 + r2 * 5), rel, 'voice-agent', 'u' || (c % 5000),
           '10.' || (c % 250) || '.' || (c % 200) || '.' || (g % 250), call_id""",
    ),
    "voice_quality": (
        "sample_id, call_id, measured_at, latency_ms, jitter_ms, packet_loss_pct, audio_level, "
        "noise_level, mos_reported, codec, region, network, release",
        """md5('vq' || g)::uuid::text, call_id, cs + j * interval '25 s', 60 + r * 200,
           r2 * 30, r * r * 5, -30 + r2 * 20, -65 + r * 25, 3.2 + r2 * 1.3, 'opus', region,
           network, rel""",
    ),
    "experiment_exposures": (
        "experiment_key, unit_id, unit_type, variant, exposed_at",
        "'greeting-v2', call_id, 'call', variant, cs",
    ),
    "feature_usage": (
        "usage_id, used_at, feature_name, user_id, session_id, call_id, duration_s",
        """md5('fu' || g)::uuid::text, cs + j * interval '11 s',
           (ARRAY['transfer_to_human', 'lookup_order', 'book_appointment', 'send_sms',
                  'knowledge_search'])[1 + g % 5],
           'u' || (c % 5000), 's' || c, call_id, r * 4""",
    ),
    "errors": (
        "error_id, occurred_at, error_type, message, stack_trace, fingerprint, severity, route, "
        "method, release, request_id, call_id, user_id, sample_rate",
        """md5('err' || g)::uuid::text, cs + interval '3 s',
           (ARRAY['TimeoutError', 'LLMRateLimited', 'TTSStreamClosed', 'KeyError'])[1 + g % 4],
           'upstream did not answer within 5.0 s (attempt ' || (g % 3 + 1) || ' of 3)',
           'Traceback (most recent call last):' || chr(10) ||
           '  File "/app/agent/pipeline.py", line 214, in on_user_turn' || chr(10) ||
           '    reply = await self.llm.complete(messages, timeout=5.0)' || chr(10) ||
           '  File "/app/agent/llm.py", line 88, in complete' || chr(10) ||
           '    raise TimeoutError("upstream did not answer")',
           md5('fp' || g % 4),
           (ARRAY['error', 'error', 'warning', 'critical'])[1 + g % 4],
           '/v1/agent/turn', 'POST', rel, md5('req' || g)::uuid::text, call_id,
           'u' || (c % 5000), 1.0""",
    ),
    "auth_events": (
        "event_id, occurred_at, event_type, success, user_id, ip, user_agent, path",
        """md5('auth' || g)::uuid::text, cs,
           (ARRAY['login', 'login', 'token_refresh', 'logout', 'password_reset'])[1 + g % 5],
           r > 0.05, 'u' || (c % 5000), '10.' || (c % 250) || '.' || (g % 250) || '.7',
           'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like '
           || 'Gecko) Version/17.4 Safari/605.1.15', '/auth/v1/token'""",
    ),
    "feedback": (
        "feedback_id, submitted_at, rating, category, comment, user_id, session_id, call_id, "
        "release",
        """md5('fb' || g)::uuid::text, cs + interval '2 min', 1 + floor(r * 5)::int,
           (ARRAY['latency', 'accuracy', 'voice', 'other'])[1 + g % 4],
           CASE WHEN g % 3 = 0 THEN 'The agent paused too long before answering.' END,
           'u' || (c % 5000), 's' || c, call_id, rel""",
    ),
    "db_queries": (
        "query_id, observed_at, statement, calls, total_ms, mean_ms, rows, database, release",
        """md5('q' || g)::uuid::text, cs,
           'SELECT id, status FROM orders WHERE customer_id = $1 AND created_at > $2',
           1 + (r * 50)::int, r * 400, 2 + r2 * 8, (r2 * 100)::int, 'postgres', rel""",
    ),
    "security_events": (
        "event_id, occurred_at, event_type, severity, user_id, ip, path, details",
        """md5('sec' || g)::uuid::text, cs,
           (ARRAY['rate_limited', 'blocked_ip', 'invalid_token'])[1 + g % 3],
           (ARRAY['warning', 'info'])[1 + g % 2], 'u' || (c % 5000),
           '203.0.113.' || (g % 250), '/v1/agent/turn',
           '{"limit": 60, "window_s": 60, "count": ' || (60 + g % 40) || '}'""",
    ),
}


def generate(dsn: str, rows: int) -> dict[str, int]:
    """Fill the SDK tables; returns rows per table. created_at = updated_at = when the row was
    written (its event time plus a second; a call's end for calls), as a live agent's would be."""
    host_samples = DAYS * 86400 // HOST_SAMPLE_S
    calls = int((rows - host_samples - APP_STARTS) / sum(PER_CALL.values()))
    counts = {t: int(calls * k) for t, k in PER_CALL.items()}
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute("SELECT setseed(0.42)")
        # t0: 30 days before an hour ago, so no value is in the future (a call lasts ~2 min).
        t0 = con.execute(
            "SELECT date_trunc('second', now()) - interval '30 days 1 hour'"
        ).fetchone()[0]
        for name, (cols, select) in GEN.items():
            n = counts[name]
            per = max(1, round(n / calls))  # rows of this table per call
            con.execute(
                f"""
                INSERT INTO {name} ({cols}, created_at, updated_at)
                SELECT {select.replace("%", "%%")}, w, w FROM (
                    SELECT *, CASE WHEN %(name)s = 'calls' AND c <= nc - 20 THEN cs + dur
                                   ELSE cs END + interval '1 s' AS w
                    FROM (
                        SELECT g, c, nc, (g - 1) %% %(per)s AS j, random() AS r, random() AS r2,
                               %(t0)s::timestamptz + c * %(step)s::interval AS cs,
                               md5('call' || c)::uuid::text AS call_id,
                               'v1.' || (c * 6 / (nc + 1)) AS rel,
                               CASE WHEN c %% 2 = 0 THEN 'control' ELSE 'treatment' END
                                   AS variant,
                               (ARRAY['us-east', 'us-west', 'eu-west'])[1 + c %% 3] AS region,
                               (ARRAY['wifi', '4g', '5g', 'pstn'])[1 + c %% 4] AS network,
                               interval '90 s' + (c %% 60) * interval '1 s' AS dur
                        FROM (SELECT g, %(nc)s AS nc,
                                     least(%(nc)s, 1 + (g - 1)::bigint * %(nc)s / %(n)s) AS c
                              FROM generate_series(1, %(n)s) g) s
                    ) s
                ) s ORDER BY w
                """.replace("%(name)s", f"'{name}'"),  # name is ours, from GEN
                {
                    "per": per,
                    "t0": t0,
                    "step": f"{DAYS * 86400 / calls:.6f} seconds",
                    "nc": calls,
                    "n": n,
                },
            )
        con.execute(
            """
            INSERT INTO resource_samples (host, sampled_at, cpu_pct, memory_pct, disk_pct,
                net_in_bytes, net_out_bytes, db_connections, cache_hit_pct, db_size_bytes,
                created_at, updated_at)
            SELECT 'agent-1', ts, 20 + random() * 60, 40 + random() * 30, 55 + g / 1e5,
                   (random() * 1e7)::bigint, (random() * 2e7)::bigint, 5 + g %% 20,
                   95 + random() * 5, 2000000000 + g * 1000, ts + interval '1 s',
                   ts + interval '1 s'
            FROM (SELECT g, %s::timestamptz + g * %s::interval AS ts
                  FROM generate_series(1, %s) g) s
            """,
            [t0, f"{HOST_SAMPLE_S} seconds", host_samples],
        )
        con.execute(
            """
            INSERT INTO app_starts (host, started_at, startup_ms, init_ms, release,
                                    created_at, updated_at)
            SELECT 'agent-' || (g %% 2), ts, 800 + random() * 1500, 300 + random() * 500,
                   'v1.' || (g * 6 / (%s + 1)), ts, ts
            FROM (SELECT g, %s::timestamptz + g * %s::interval AS ts
                  FROM generate_series(1, %s) g) s
            """,
            [APP_STARTS, t0, f"{DAYS * 86400 // APP_STARTS} seconds", APP_STARTS],
        )
        for name in SDK_TABLES:
            con.execute(f"VACUUM ANALYZE {name}")
        return {
            name: con.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in SDK_TABLES
        }


def bare_copy(dsn: str) -> tuple[int, int]:
    """Every table through the source's own select list, read into memory, discarded.
    Returns (rows, bytes)."""
    src = SupabasePgSource(dsn)
    rows = size = 0
    with psycopg.connect(dsn) as con:
        for mapping in src.mappings:
            select = src.select_list(mapping, src.describe(con, mapping))
            query = sql.SQL(
                "COPY (SELECT {} FROM {} ORDER BY updated_at, id) TO STDOUT (FORMAT CSV)"
            ).format(select, sql.Identifier(mapping.source_table))
            buf = io.BytesIO()
            with con.cursor() as cur:
                with cur.copy(query) as copy:
                    for block in copy:
                        buf.write(block)
                rows += cur.rowcount
            con.commit()
            size += buf.tell()
            del buf
    return rows, size


def fetch_only(dsn: str) -> int:
    return sum(b.rows.num_rows for b in SupabasePgSource(dsn).fetch({}))


def engine(dsn: str, folder: Path) -> int:
    wh = open_warehouse(folder / "warehouse.duckdb")
    try:
        summary = run_source(wh, SupabasePgSource(dsn))
    finally:
        wh.close()
    assert summary.status == "ok", summary
    return summary.rows_inserted


def write_config(folder: Path) -> Path:
    config = folder / "workbench.toml"
    config.write_text('[supabase]\nmode = "postgres"\n\n[demo]\nenabled = false\n')
    return config


def published_rows(data_dir: Path) -> int:
    manifest = json.loads((data_dir / "serving" / "manifest.json").read_text())
    return sum(entry["rows"] for entry in manifest["tables"].values())


def cli_subprocess(dsn: str, folder: Path) -> tuple[float, float, int]:
    """(collect s, publish s, rows published), each command as its own `workbench` process."""
    config, data = write_config(folder), folder / "data"
    exe = Path(sys.executable).parent / "workbench"  # the console script a user runs
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "collectors.cli"]
    base += ["--data-dir", str(data), "--config", str(config)]
    # PYTHONPATH: this checkout's code, even when the venv's editable install points elsewhere.
    env = {**os.environ, "SUPABASE_DB_URL": dsn, "PYTHONPATH": str(REPO)}
    times = []
    for command in ("collect", "publish"):
        args = [command, "supabase"] if command == "collect" else [command]
        t = time.perf_counter()
        subprocess.run(base + args, env=env, check=True, capture_output=True, cwd=folder)
        times.append(time.perf_counter() - t)
    published = published_rows(data)
    return times[0], times[1], published


def cli_in_process(dsn: str, folder: Path) -> tuple[float, float, int]:
    config, data = write_config(folder), folder / "data"
    base = ["--data-dir", str(data), "--config", str(config)]
    old = os.environ.get("SUPABASE_DB_URL")
    os.environ["SUPABASE_DB_URL"] = dsn
    try:
        times = []
        for args in (["collect", "supabase"], ["publish"]):
            t = time.perf_counter()
            assert cli.main(base + args) == 0
            times.append(time.perf_counter() - t)
    finally:
        if old is None:
            os.environ.pop("SUPABASE_DB_URL", None)
        else:
            os.environ["SUPABASE_DB_URL"] = old
    return times[0], times[1], published_rows(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dsn", help="a database already filled by this script")
    parser.add_argument("--keep", action="store_true", help="keep the cluster; print its DSN")
    parser.add_argument("--json", help="also append the raw timings to this file (JSON lines)")
    parser.add_argument(
        "--only",
        default="bare,fetch,engine,subproc,inproc",
        help="measures to run, comma-separated",
    )
    args = parser.parse_args()
    import logging

    logging.disable(logging.INFO)  # the in-process CLI's log lines would drown the figures

    dsn = args.dsn
    if dsn is None:
        from tests.integration import pgcluster

        if args.keep:
            cluster = pgcluster.PgCluster().start()
            pgcluster._SHARED = cluster  # not stopped at exit
        dsn = pgcluster.fresh_database()
        t = time.perf_counter()
        counts = generate(dsn, args.rows)
        print(f"generated {sum(counts.values()):,} rows in {time.perf_counter() - t:.0f} s: "
              + ", ".join(f"{k} {v:,}" for k, v in counts.items() if v))  # fmt: skip
        if args.keep:
            print(f"DSN: {dsn}  (cluster in {cluster.root}; stop it with pg_ctl -m immediate)")
    total, size = bare_copy(dsn)  # warms the cache; not counted
    print(f"{total:,} rows, {size / 1e6:.0f} MB of CSV; {args.rounds} rounds\n")

    measures = [m for m in args.only.split(",") if m]
    results: dict[str, list[float]] = {}
    for rnd in range(args.rounds):
        order = measures[rnd % len(measures) :] + measures[: rnd % len(measures)]
        if "bare" in order:  # the round's floor first, then the others in a rotated order
            order.remove("bare")
            order.insert(0, "bare")
        for m in order:
            folder = Path(tempfile.mkdtemp(prefix="bench-pg-collect-"))
            try:
                t = time.perf_counter()
                if m == "bare":
                    got = bare_copy(dsn)[0]
                    results.setdefault("bare COPY", []).append(time.perf_counter() - t)
                elif m == "fetch":
                    got = fetch_only(dsn)
                    results.setdefault("fetch only", []).append(time.perf_counter() - t)
                elif m == "engine":
                    got = engine(dsn, folder)
                    results.setdefault("engine", []).append(time.perf_counter() - t)
                else:
                    run = cli_subprocess if m == "subproc" else cli_in_process
                    collect, publish, got = run(dsn, folder)
                    results.setdefault(f"{m}: collect", []).append(collect)
                    results.setdefault(f"{m}: publish", []).append(publish)
                    results.setdefault(f"{m}: whole", []).append(collect + publish)
                assert got == total, f"{m}: {got:,} rows, expected {total:,}"
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        print(f"round {rnd + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in results.items()))

    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps({"repo": str(REPO), "rows": total, "results": results}) + "\n")
    bare = results.get("bare COPY")
    print(f"\n{'measure':<18} {'median s':>9} {'min..max s':>13} {'rows/s':>11}  x bare COPY")
    for name, times in results.items():
        med = statistics.median(times)
        line = f"{name:<18} {med:9.2f} {min(times):6.2f}..{max(times):<6.2f} {total / med:>11,.0f}"
        if bare and name != "bare COPY":
            ratios = [t / b for t, b in zip(times, bare, strict=True)]
            line += f"  {statistics.median(ratios):5.2f} ({min(ratios):.2f}..{max(ratios):.2f})"
        print(line)


if __name__ == "__main__":
    main()
