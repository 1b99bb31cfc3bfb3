"""The REST source through real supabase-py against a PostgREST-compatible stub on loopback."""

from __future__ import annotations

import psycopg
import pytest

from collectors.engine import run_source
from collectors.sources.base import SourceConfigError, TransientSourceError
from collectors.sources.supabase_rest import SupabaseRestSource, TableMapping, sdk_mappings
from collectors.warehouse import open_warehouse
from tests.integration.pgcluster import fresh_database, insert_requests
from tests.integration.postgrest_stub import PostgrestStub

pytestmark = pytest.mark.postgres
KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"


@pytest.fixture
def dsn():
    return fresh_database()


@pytest.fixture
def wh(tmp_path):
    con = open_warehouse(tmp_path / "w.duckdb")
    yield con
    con.close()


def source_keys(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as c:
        return {r[0] for r in c.execute("SELECT request_id FROM requests").fetchall()}


def warehouse_keys(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT request_id FROM requests").fetchall()}


def test_pages_through_a_server_whose_max_rows_is_below_the_page_size(dsn, wh):
    insert_requests(dsn, 2_345)
    with PostgrestStub(dsn, KEY, max_rows=300) as stub:
        src = SupabaseRestSource(stub.url, KEY, sdk_mappings(["requests"]), page_size=1000)
        progress = []
        summary = run_source(wh, src, on_progress=lambda r, n, p: progress.append(dict(p)))
    assert summary.status == "ok" and summary.rows_inserted == 2_345
    assert warehouse_keys(wh) == source_keys(dsn)
    assert progress[-1] == {"done": 2_345, "total": 2_345, "table": "requests"}
    assert len(progress) == 8  # short pages (300 rows) did not end the read early


def test_second_run_reads_only_new_rows(dsn, wh):
    insert_requests(dsn, 1_500)
    with PostgrestStub(dsn, KEY) as stub:
        src = SupabaseRestSource(stub.url, KEY, sdk_mappings(["requests", "calls"]))
        run_source(wh, src)
        insert_requests(dsn, 20, start="2026-03-01")
        second = run_source(wh, src)
    # the 20 new rows, and the overlap window before the watermark (2 minutes of rows, one a
    # second) read again without changing anything
    assert second.rows_inserted == 20 and second.rows_updated == 0
    assert second.rows_read == 20 + 121 and warehouse_keys(wh) == source_keys(dsn)


def test_wrong_key_is_one_sentence_naming_the_setting(dsn, wh):
    with PostgrestStub(dsn, KEY) as stub:
        summary = run_source(
            wh, SupabaseRestSource(stub.url, "wrong.key.x", sdk_mappings(["requests"]))
        )
    assert summary.status == "failed"
    assert "SUPABASE_API_KEY" in summary.error and "401" in summary.error
    assert "\n" not in summary.error


def test_429_honours_retry_after(dsn, wh):
    insert_requests(dsn, 50)
    waits = []
    with PostgrestStub(dsn, KEY) as stub:
        stub.inject("status", code=429, headers={"Retry-After": "7"})
        src = SupabaseRestSource(stub.url, KEY, sdk_mappings(["requests"]))
        with pytest.raises(TransientSourceError) as info:
            list(src.fetch({}))
        assert info.value.retry_after_s == 7
        stub.inject("status", code=429, headers={"Retry-After": "3"})
        summary = run_source(wh, src, sleep=waits.append)
    assert summary.status == "ok" and waits == [3.0] and summary.rows_inserted == 50


@pytest.mark.parametrize("fault", [
    {"kind": "status", "code": 503},
    {"kind": "status", "code": 500},
    {"kind": "close"},
    {"kind": "cut"},
])  # fmt: skip
def test_faults_mid_read_resume_from_the_last_committed_page(dsn, wh, fault):
    insert_requests(dsn, 2_500)
    with PostgrestStub(dsn, KEY, max_rows=1000) as stub:
        src = SupabaseRestSource(stub.url, KEY, sdk_mappings(["requests"]), page_size=1000)
        # Let the first page through, then break the second request.
        stub.inject("delay", seconds=0)
        stub.inject(**fault)
        summary = run_source(wh, src, sleep=lambda s: None)
        resumed = [p for p in stub.requests if "id.gt.1000" in p]
    assert summary.status == "ok" and summary.attempts == 2
    assert summary.rows_inserted == 2_500 and summary.rows_updated == 0
    assert warehouse_keys(wh) == source_keys(dsn)
    assert resumed, "the retry did not resume after the committed page"


def test_timeout_is_transient(dsn):
    insert_requests(dsn, 10)
    with PostgrestStub(dsn, KEY) as stub:
        stub.inject("delay", seconds=1.5)
        src = SupabaseRestSource(stub.url, KEY, sdk_mappings(["requests"]), timeout_s=0.5)
        with pytest.raises(TransientSourceError, match="timed out"):
            list(src.fetch({}))


def test_user_table_through_a_column_mapping_and_updated_at_cursor(dsn, wh):
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "CREATE TABLE call_logs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL "
            "DEFAULT now(), session_id text, start_time timestamp, duration_ms double precision, "
            "outcome text, transcript text)"
        )
        c.execute(
            "INSERT INTO call_logs (updated_at, session_id, start_time, duration_ms, outcome, transcript) "
            "SELECT now() - interval '1 day' + g * interval '1 s', 's' || g, "
            "'2026-01-05 10:00'::timestamp + g * interval '1 min', 1500.0, 'resolved', 'long text' "
            "FROM generate_series(1, 40) g"
        )
    mapping = TableMapping("call_logs", "calls", {"call_id": "session_id", "started_at": "start_time",
                           "duration_s": "duration_ms"}, {"duration_s": 0.001}, "updated_at",
                           explicit=True)  # fmt: skip
    with PostgrestStub(dsn, KEY) as stub:
        src = SupabaseRestSource(stub.url, KEY, [mapping], page_size=15)
        assert run_source(wh, src).rows_inserted == 40
        # Only mapped columns are selected (wide columns such as transcripts never travel).
        reads = [r for r in stub.requests if "session_id" in r]
        assert reads and not any("transcript" in r for r in reads)
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(
                "UPDATE call_logs SET outcome = 'abandoned', updated_at = now() WHERE session_id = 's1'"
            )
        assert run_source(wh, src).rows_updated == 1
        missing = SupabaseRestSource(stub.url, KEY, [TableMapping("nope", "calls", explicit=True)])
        with pytest.raises(SourceConfigError, match="no table public.nope"):
            list(missing.fetch({}))
    row = wh.execute(
        "SELECT started_at, duration_s, outcome FROM calls WHERE call_id = 's1'"
    ).fetchone()
    assert str(row[0]) == "2026-01-05 10:01:00" and row[1] == pytest.approx(1.5)
    assert row[2] == "abandoned"


def test_duplicates_and_skewed_sdk_clock(dsn, wh):
    insert_requests(dsn, 300)
    with psycopg.connect(dsn, autocommit=True) as c:
        # The SDK's migration keeps request_id unique, but a user's own log table (or an older
        # SDK table) may not: a retried insert then leaves a second row with newer values.
        c.execute("ALTER TABLE requests DROP CONSTRAINT IF EXISTS requests_natural_key")
        c.execute(
            "INSERT INTO requests (request_id, started_at, route, method, status_code, duration_ms) "
            "SELECT request_id, now() - interval '5 hours', route, method, 502, 1.25 FROM requests "
            "WHERE id <= 5"
        )
    with PostgrestStub(dsn, KEY) as stub:
        summary = run_source(
            wh, SupabaseRestSource(stub.url, KEY, sdk_mappings(["requests"]), page_size=128)
        )
    assert summary.rows_rejected == 0
    assert warehouse_keys(wh) == source_keys(dsn)
    # The later Supabase row of a duplicated request wins, as it would in Supabase itself.
    assert wh.execute("SELECT count(*) FROM requests WHERE status_code = 502").fetchone()[0] == 5


def test_key_never_shown(dsn):
    src = SupabaseRestSource("http://127.0.0.1:9", KEY)
    assert KEY not in repr(src)
