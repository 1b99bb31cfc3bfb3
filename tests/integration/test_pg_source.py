"""The Postgres (COPY) source and pg_stat_statements against a real throwaway PostgreSQL 15."""

from __future__ import annotations

import psycopg
import pytest

from collectors.engine import run_source
from collectors.sources.base import SourceConfigError
from collectors.sources.pg_stats import PgStatsSource
from collectors.sources.supabase_pg import SupabasePgSource, check_conninfo
from collectors.sources.supabase_rest import TableMapping, sdk_mappings
from collectors.warehouse import open_warehouse
from tests.integration.pgcluster import fresh_database, insert_requests

pytestmark = pytest.mark.postgres


@pytest.fixture
def dsn():
    return fresh_database()


@pytest.fixture
def wh(tmp_path):
    con = open_warehouse(tmp_path / "w.duckdb")
    yield con
    con.close()


def source_fingerprint(dsn: str) -> tuple:
    """Distinct natural keys and sums over the latest row per key, computed by Postgres."""
    with psycopg.connect(dsn) as c:
        return c.execute(
            "SELECT count(*), round(sum(duration_ms)::numeric, 3), sum(status_code) FROM "
            "(SELECT DISTINCT ON (request_id) * FROM requests ORDER BY request_id, updated_at DESC, id DESC) t"
        ).fetchone()


def warehouse_fingerprint(con) -> tuple:
    n, dur, status = con.execute(
        "SELECT count(*), round(sum(duration_ms), 3), sum(status_code) FROM requests"
    ).fetchone()
    return n, dur, status


def no_sleep(_: float) -> None:
    pass


def test_backfill_lands_every_row_and_resumes_from_the_watermark(dsn, wh):
    insert_requests(dsn, 25_000)
    src = SupabasePgSource(dsn, sdk_mappings(["requests"]), chunk_rows=10_000)
    progress = []
    first = run_source(wh, src, on_progress=lambda run, n, p: progress.append(dict(p)))
    assert first.status == "ok" and first.rows_inserted == 25_000
    assert [p["done"] for p in progress] == [10_000, 20_000, 25_000]
    assert {p["total"] for p in progress} == {25_000}
    again = run_source(wh, src)
    # Only the overlap window before the watermark (2 minutes of rows, one a second) is read
    # again, and it changes nothing.
    assert again.rows_read == 121 and again.rows_inserted == again.rows_updated == 0
    insert_requests(dsn, 500, start="2026-02-01")
    more = run_source(wh, src)
    assert more.rows_inserted == 500
    assert warehouse_fingerprint(wh)[0] == source_fingerprint(dsn)[0] == 25_500
    ts = wh.execute("SELECT min(started_at) FROM requests").fetchone()[0]
    assert ts.tzinfo is None and str(ts) == "2025-12-31 23:59:59.995000"  # stored as naive UTC


@pytest.mark.slow
def test_a_million_rows_arrive_intact(dsn, wh):
    insert_requests(dsn, 1_000_000)
    summary = run_source(wh, SupabasePgSource(dsn, sdk_mappings(["requests"])))
    assert summary.status == "ok" and summary.rows_inserted == 1_000_000
    assert warehouse_fingerprint(wh) == tuple(
        float(x) if i == 1 else x for i, x in enumerate(source_fingerprint(dsn))
    )


def test_source_dying_mid_read_resumes_from_last_committed_chunk(dsn, wh):
    insert_requests(dsn, 30_000)
    inner = SupabasePgSource(dsn, sdk_mappings(["requests"]), chunk_rows=10_000)

    class KillAfterFirstChunk:
        name = inner.name
        killed = False

        def fetch(self, watermarks):
            for batch in inner.fetch(watermarks):
                yield batch
                if not self.killed:
                    self.killed = True
                    with psycopg.connect(dsn, autocommit=True) as c:
                        c.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        )

    summary = run_source(wh, KillAfterFirstChunk(), sleep=no_sleep)
    assert summary.status == "ok" and summary.attempts == 2
    assert summary.rows_inserted == 30_000  # the first chunk was not read twice into new rows
    assert warehouse_fingerprint(wh)[0] == 30_000


def test_duplicate_rows_and_late_updates_leave_exactly_the_source_rows(dsn, wh):
    insert_requests(dsn, 1_000)
    with psycopg.connect(dsn, autocommit=True) as c:
        # The SDK's migration keeps request_id unique, but a user's own log table (or an older
        # SDK table) may not: a retried insert then leaves a second row with newer values.
        c.execute("ALTER TABLE requests DROP CONSTRAINT IF EXISTS requests_natural_key")
        c.execute(
            "INSERT INTO requests (created_at, request_id, started_at, route, method, status_code, "
            "duration_ms) SELECT created_at + interval '1 hour', request_id, started_at, route, "
            "method, 503, 999.5 FROM requests WHERE id <= 10"
        )
    src = SupabasePgSource(dsn, sdk_mappings(["requests"]), chunk_rows=300, overlap_s=120)
    run_source(wh, src)
    assert warehouse_fingerprint(wh) == tuple(
        float(x) if i == 1 else x for i, x in enumerate(source_fingerprint(dsn))
    )
    # A row changed after it was read, inside the overlap window, is picked up on the next run.
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("UPDATE requests SET status_code = 201 WHERE id = (SELECT max(id) FROM requests)")
    second = run_source(wh, src)
    assert second.rows_updated == 1
    assert warehouse_fingerprint(wh) == tuple(
        float(x) if i == 1 else x for i, x in enumerate(source_fingerprint(dsn))
    )


def test_updated_at_cursor_picks_up_updates_of_old_rows(dsn, wh):
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "CREATE TABLE call_logs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "updated_at timestamptz NOT NULL DEFAULT now(), session_id text, start_time timestamp, "
            "duration_ms double precision, outcome text)"
        )
        c.execute(
            "INSERT INTO call_logs (updated_at, session_id, start_time, duration_ms, outcome) "
            "SELECT now() - interval '1 day' + g * interval '1 s', 's' || g, "
            "'2026-01-05 10:00'::timestamp + g * interval '1 min', 1000.0 * g, 'resolved' "
            "FROM generate_series(1, 50) g"
        )
    mapping = TableMapping("call_logs", "calls", {"call_id": "session_id", "started_at": "start_time",
                           "duration_s": "duration_ms"}, {"duration_s": 0.001}, "updated_at",
                           explicit=True)  # fmt: skip
    src = SupabasePgSource(dsn, [mapping])
    assert run_source(wh, src).rows_inserted == 50
    row = wh.execute("SELECT started_at, duration_s FROM calls WHERE call_id = 's2'").fetchone()
    assert str(row[0]) == "2026-01-05 10:02:00" and row[1] == pytest.approx(2.0)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "UPDATE call_logs SET outcome = 'escalated', updated_at = now() WHERE session_id = 's3'"
        )
    assert run_source(wh, src).rows_updated == 1
    assert wh.execute("SELECT outcome FROM calls WHERE call_id = 's3'").fetchone()[0] == "escalated"


def test_skewed_source_clock_does_not_lose_rows(dsn, wh):
    """SDK timestamps hours behind (or a little ahead of) the collector still land; paging uses
    the database's created_at, never the collector's clock."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "INSERT INTO requests (request_id, started_at, route, method, status_code, duration_ms) "
            "SELECT 'skew' || g, now() + CASE WHEN g % 2 = 0 THEN interval '-3 hours' "
            "ELSE interval '2 minutes' END, '/x', 'GET', 200, 1.0 FROM generate_series(1, 200) g"
        )
    summary = run_source(wh, SupabasePgSource(dsn, sdk_mappings(["requests"]), chunk_rows=64))
    assert summary.rows_inserted == 200 and summary.rows_rejected == 0


def test_missing_explicit_table_and_transaction_pooler_are_config_errors(dsn):
    src = SupabasePgSource(dsn, [TableMapping("nope", "calls", explicit=True)])
    with pytest.raises(SourceConfigError, match="no table public.nope"):
        list(src.fetch({}))
    with pytest.raises(SourceConfigError, match="port 6543"):
        check_conninfo(
            "postgresql://postgres.ref:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres"
        )
    assert "pw" not in repr(SupabasePgSource("postgresql://u:pw@127.0.0.1:5432/db"))


def test_pg_stat_statements_deltas_and_reset(dsn, wh):
    src = PgStatsSource(dsn)
    failed = run_source(wh, src)
    assert failed.status == "failed" and "create extension pg_stat_statements" in failed.error
    assert (
        wh.execute("SELECT count(*) FROM resource_samples WHERE host = 'supabase-db'").fetchone()[0]
        == 1
    )
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE EXTENSION pg_stat_statements")
    assert run_source(wh, src).status == "ok"  # baseline
    with psycopg.connect(dsn, autocommit=True) as c:
        for i in range(40):
            c.execute("SELECT count(*) FROM requests WHERE id > %s", [i])
    run_source(wh, src)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SELECT pg_stat_statements_reset()")
        for i in range(3):
            c.execute("SELECT count(*) FROM requests WHERE id > %s", [i])
    run_source(wh, src)
    calls = wh.execute(
        "SELECT calls, rows, mean_ms * calls - total_ms FROM db_queries "
        "WHERE statement LIKE 'SELECT count(*) FROM requests%' ORDER BY observed_at"
    ).fetchall()
    assert [c[:2] for c in calls] == [(40, 40), (3, 3)]
    assert all(abs(c[2]) < 1e-9 for c in calls)
    sample = wh.execute(
        "SELECT db_connections, cache_hit_pct, db_size_bytes FROM resource_samples "
        "ORDER BY sampled_at DESC LIMIT 1"
    ).fetchone()
    assert sample[0] >= 1 and 0 < sample[1] <= 100 and sample[2] > 1_000_000


def test_a_malformed_connection_string_never_echoes_the_password():

    with pytest.raises(SourceConfigError) as caught:
        check_conninfo("postgresql://user:p%zzsecret@db.example.supabase.co:5432/postgres")
    assert "zzsecret" not in str(caught.value)
    assert "SUPABASE_DB_URL is not a valid connection string" in str(caught.value)
