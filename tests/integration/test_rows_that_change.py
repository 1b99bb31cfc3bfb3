"""Rows committed late and rows that change at the source reach the warehouse, over Postgres
and over REST, with the default settings: the SDK tables are read by updated_at with an
overlap window, and calls arrive in parts that the Supabase migration merges."""

from __future__ import annotations

from contextlib import contextmanager

import psycopg
import pytest

from collectors.engine import run_source
from collectors.sources.supabase_pg import SupabasePgSource
from collectors.sources.supabase_rest import SupabaseRestSource, sdk_mappings
from collectors.warehouse import open_warehouse
from tests.integration.pgcluster import fresh_database
from tests.integration.postgrest_stub import PostgrestStub

pytestmark = pytest.mark.postgres
KEY = "service-role-key"


@pytest.fixture
def dsn():
    return fresh_database()


@pytest.fixture
def wh(tmp_path):
    con = open_warehouse(tmp_path / "w.duckdb")
    yield con
    con.close()


@contextmanager
def source(kind: str, dsn: str, tables: list[str], **kw):
    if kind == "postgres":
        yield SupabasePgSource(dsn, sdk_mappings(tables), **kw)
        return
    with PostgrestStub(dsn, KEY) as stub:
        yield SupabaseRestSource(stub.url, KEY, sdk_mappings(tables), **kw)


def insert_request(con, request_id: str) -> None:
    con.execute(
        "INSERT INTO requests (request_id, started_at, route, method, status_code, duration_ms) "
        "VALUES (%s, now(), '/x', 'GET', 200, 1)",
        [request_id],
    )


def request_ids(wh) -> set[str]:
    return {r[0] for r in wh.execute("SELECT request_id FROM requests").fetchall()}


@pytest.mark.parametrize("kind", ["postgres", "rest"])
@pytest.mark.parametrize("overlap_s", [None, 0])
def test_rows_whose_transaction_commits_after_a_collect_passed_them(dsn, wh, kind, overlap_s):
    """10 transactions open while a collect runs (their rows carry an earlier now()); rows
    written after them commit first and move the watermark past them."""
    kw = {} if overlap_s is None else {"overlap_s": overlap_s}
    late = [psycopg.connect(dsn) for _ in range(10)]
    try:
        for i, con in enumerate(late):
            insert_request(con, f"late{i}")  # not committed yet
        with psycopg.connect(dsn, autocommit=True) as con:
            for i in range(5):
                insert_request(con, f"early{i}")
        with source(kind, dsn, ["requests"], **kw) as src:
            run_source(wh, src)
            assert request_ids(wh) == {f"early{i}" for i in range(5)}
            for con in late:
                con.commit()
            run_source(wh, src)
    finally:
        for con in late:
            con.close()
    found = {f"late{i}" for i in range(10)} & request_ids(wh)
    if overlap_s is None:  # the default overlap window finds every one
        assert len(found) == 10
    else:  # without it, all ten are lost: why the window is on by default
        assert found == set()


CALL_START = (
    "INSERT INTO calls (call_id, started_at, release) VALUES (%s, now() - interval '1 min', 'v1') "
    "ON CONFLICT (call_id) DO UPDATE SET started_at = excluded.started_at, "
    "release = excluded.release, ended_at = excluded.ended_at, outcome = excluded.outcome, "
    "turns = excluded.turns"
)
CALL_END = (
    "INSERT INTO calls (call_id, started_at, release, ended_at, outcome, turns) "
    "VALUES (%s, now() - interval '1 min', 'v1', now(), 'resolved', 6) "
    "ON CONFLICT (call_id) DO UPDATE SET started_at = excluded.started_at, "
    "release = excluded.release, ended_at = excluded.ended_at, outcome = excluded.outcome, "
    "turns = excluded.turns"
)


@pytest.mark.parametrize("kind", ["postgres", "rest"])
def test_a_call_that_ends_after_it_was_collected_is_complete_in_the_warehouse(dsn, wh, kind):
    """The merge-duplicates upsert PostgREST runs for the SDK: the start is collected alone,
    then the end arrives (and, for one call, a redelivered start after its end)."""
    with psycopg.connect(dsn, autocommit=True) as con, source(kind, dsn, ["calls"]) as src:
        for i in range(3):
            con.execute(CALL_START, [f"c{i}"])
        run_source(wh, src)
        assert wh.execute("SELECT count(*) FROM calls WHERE outcome IS NULL").fetchone() == (3,)
        for i in range(3):
            con.execute(CALL_END, [f"c{i}"])
        con.execute(CALL_START, ["c0"])  # a start delivered again after the end
        stored = con.execute("SELECT outcome, turns FROM calls WHERE call_id = 'c0'").fetchone()
        assert stored == ("resolved", 6)  # the migration's trigger kept the known values
        second = run_source(wh, src)
    assert second.rows_updated == 3
    rows = wh.execute("SELECT call_id, outcome, turns FROM calls ORDER BY call_id").fetchall()
    assert rows == [(f"c{i}", "resolved", 6) for i in range(3)]


@pytest.mark.parametrize("kind", ["postgres", "rest"])
def test_calls_written_by_the_sdk_sink_end_up_complete(dsn, wh, tmp_path, kind):
    """The real Supabase sink (supabase-py) against the PostgREST-compatible server: starts,
    a collect, then ends (one end before its start), a redelivered batch, another collect."""
    from collectors.instrumentation.sinks import SupabaseSink

    def call(i: int, ended: bool) -> dict:
        row = {"call_id": f"c{i}", "started_at": "2026-01-01T10:00:00+00:00", "release": "v1",
               "ended_at": None, "duration_s": None, "outcome": None, "turns": None}  # fmt: skip
        if ended:
            row |= {"ended_at": "2026-01-01T10:02:00+00:00", "duration_s": 120.0,
                    "outcome": "escalated", "turns": 9}  # fmt: skip
        return row

    with PostgrestStub(dsn, KEY) as stub, source(kind, dsn, ["calls"]) as src:
        sink = SupabaseSink(stub.url, KEY, tmp_path / "outbox")
        sink.write("calls", [call(i, False) for i in range(1, 20)])
        sink.write("calls", [call(0, True)])  # this call's end arrives before its start
        sink.write("calls", [call(0, False)])
        sink.flush()
        run_source(wh, src)
        sink.write("calls", [call(i, True) for i in range(1, 20)])
        sink.write("calls", [call(i, True) for i in range(1, 20)])  # delivered twice
        sink.flush()
        sink.close()
        run_source(wh, src)
    rows = wh.execute(
        "SELECT count(*), count(DISTINCT call_id), count(*) FILTER (WHERE outcome = 'escalated' "
        "AND turns = 9 AND duration_s = 120) FROM calls"
    ).fetchone()
    assert rows == (20, 20, 20)
