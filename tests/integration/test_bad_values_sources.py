"""Bad values in a real PostgreSQL behind the Supabase schema cost only their rows, read over
Postgres (COPY -> Arrow) and over REST (the PostgREST stub on the same database): the good rows
of the batch and of every later table land, each bad row is in `rejects` with a reason naming
the column and the value, the run ends partial with the count, and the next run reads nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from collectors.engine import run_source
from collectors.sources.supabase_pg import SupabasePgSource
from collectors.sources.supabase_rest import SupabaseRestSource, sdk_mappings
from collectors.warehouse import open_warehouse
from tests.integration.pgcluster import fresh_database
from tests.integration.postgrest_stub import PostgrestStub

pytestmark = pytest.mark.postgres
KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
NAN, INF = float("nan"), float("inf")

GOOD = {
    "requests": {"started_at": NOW, "route": "/v1/calls", "method": "GET", "status_code": 200,
                 "duration_ms": 12.5},
    "errors": {"occurred_at": NOW, "error_type": "KeyError", "severity": "error"},
    "calls": {"started_at": NOW, "outcome": "resolved", "duration_s": 31.0},
    "voice_quality": {"measured_at": NOW, "packet_loss_pct": 0.5, "mos_reported": 4.2},
    "feedback": {"submitted_at": NOW, "rating": 4},
}  # fmt: skip
KEYS = {"requests": "request_id", "errors": "error_id", "calls": "call_id",
        "voice_quality": "sample_id", "feedback": "feedback_id"}  # fmt: skip
GOOD_PER_TABLE = 3

# (table, column, value stored in Postgres, reason over Postgres, reason over REST). Over REST
# PostgreSQL's JSON spells non-finite doubles as strings ("NaN"), so they arrive as text.
BAD = [
    ("requests", "duration_ms", NAN, "duration_ms is not a finite number: nan",
     "duration_ms is a str, not a number: 'NaN'"),
    ("requests", "duration_ms", INF, "duration_ms is not a finite number: inf",
     "duration_ms is a str, not a number: 'Infinity'"),
    ("requests", "duration_ms", -INF, "duration_ms is not a finite number: -inf",
     "duration_ms is a str, not a number: '-Infinity'"),
    ("requests", "duration_ms", -3.0, "duration_ms is below 0: -3", "duration_ms is below 0: -3"),
    ("requests", "status_code", 42, "status_code is outside 100..599: 42",
     "status_code is outside 100..599: 42"),
    ("requests", "started_at", "infinity", "started_at is not an ISO 8601 timestamp: 'infinity'",
     "started_at is not an ISO 8601 timestamp: 'infinity'"),
    ("requests", "started_at", "-infinity",
     "started_at is not an ISO 8601 timestamp: '-infinity'",
     "started_at is not an ISO 8601 timestamp: '-infinity'"),
    ("requests", "started_at", "0044-03-15 00:00:00+00 BC",
     "started_at is not an ISO 8601 timestamp: '0044-03-15", "started_at is not an ISO 8601"),
    ("requests", "started_at", "1999-06-30 12:00:00+00", "started_at is before 2000-01-01: '1999-",
     "started_at is before 2000-01-01: '1999-"),
    ("requests", "started_at", NOW + timedelta(days=2), "started_at is in the future: '",
     "started_at is in the future: '"),
    ("requests", "route", "/x" * 300, "route is longer than 512 characters",
     "route is longer than 512 characters"),
    ("errors", "severity", "catastrophic",
     "severity is not one of debug|info|warning|error|critical: 'catastrophic'",
     "severity is not one of debug|info|warning|error|critical: 'catastrophic'"),
    ("calls", "outcome", "exploded",
     "outcome is not one of resolved|escalated|abandoned|failed: 'exploded'",
     "outcome is not one of resolved|escalated|abandoned|failed: 'exploded'"),
    ("voice_quality", "packet_loss_pct", 140.0, "packet_loss_pct is outside 0..100: 140",
     "packet_loss_pct is outside 0..100: 140"),
    ("voice_quality", "mos_reported", 0.5, "mos_reported is outside 1..5: 0.5",
     "mos_reported is outside 1..5: 0.5"),
    ("feedback", "rating", 42, "rating is outside 1..5: 42", "rating is outside 1..5: 42"),
]  # fmt: skip


@pytest.fixture
def dsn():
    """The SDK tables holding, per table, good rows around the bad ones (in id order)."""
    dsn = fresh_database()
    with psycopg.connect(dsn, autocommit=True) as con:
        for table, good in GOOD.items():
            rows = [{**good, KEYS[table]: "good-0"}]
            rows += [
                {**good, KEYS[table]: f"bad-{n}", column: value}
                for n, (t, column, value, _, _) in enumerate(BAD)
                if t == table
            ]
            rows += [{**good, KEYS[table]: f"good-{i}"} for i in range(1, GOOD_PER_TABLE)]
            for row in rows:
                con.execute(
                    sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                        sql.Identifier(table),
                        sql.SQL(", ").join(map(sql.Identifier, row)),
                        sql.SQL(", ").join(sql.Placeholder() * len(row)),
                    ),
                    list(row.values()),
                )
    return dsn


@pytest.fixture
def wh(tmp_path):
    con = open_warehouse(tmp_path / "w.duckdb")
    yield con
    con.close()


def assert_bad_rows_rejected_and_good_rows_kept(wh, path: int) -> None:
    for table in GOOD:
        kept = {r[0] for r in wh.execute(f"SELECT {KEYS[table]} FROM {table}").fetchall()}
        assert kept == {f"good-{i}" for i in range(GOOD_PER_TABLE)}, table
    # Good rows that shared a chunk with 'infinity' (read as text there) keep their time.
    times = wh.execute("SELECT DISTINCT started_at FROM requests").fetchall()
    assert times == [(NOW.replace(tzinfo=None),)]
    stored = {}
    for table, row_json, reason in wh.execute(
        "SELECT table_name, row_json, reason FROM rejects"
    ).fetchall():
        stored[(table, json.loads(row_json)[KEYS[table]])] = reason
    assert len(stored) == len(BAD)
    for n, case in enumerate(BAD):
        reason = stored[(case[0], f"bad-{n}")]
        assert reason.startswith(case[1]) and case[path] in reason, (case, reason)


def test_postgres_source_rejects_bad_values_row_by_row(dsn, wh):
    src = SupabasePgSource(dsn, sdk_mappings(list(GOOD)), overlap_s=0)
    first = run_source(wh, src)
    assert (first.status, first.error, first.rows_rejected) == ("partial", None, len(BAD))
    assert first.rows_inserted == GOOD_PER_TABLE * len(GOOD)
    assert_bad_rows_rejected_and_good_rows_kept(wh, path=3)
    second = run_source(wh, src)
    assert (second.status, second.rows_read, second.error) == ("ok", 0, None)


def test_postgres_source_with_its_default_overlap_does_not_stumble_either(dsn, wh):
    src = SupabasePgSource(dsn, sdk_mappings(list(GOOD)))  # re-reads the last 120 s each run
    assert run_source(wh, src).rows_inserted == GOOD_PER_TABLE * len(GOOD)
    again = run_source(wh, src)
    # The window reads the bad rows again; they are filed once, and the run is clean.
    assert again.rows_read > 0 and (again.rows_inserted, again.rows_updated) == (0, 0)
    assert (again.status, again.rows_rejected) == ("ok", 0)
    assert wh.execute("SELECT count(*) FROM rejects").fetchone() == (len(BAD),)


def test_rest_source_rejects_bad_values_row_by_row(dsn, wh):
    with PostgrestStub(dsn, KEY) as stub:
        src = SupabaseRestSource(stub.url, KEY, sdk_mappings(list(GOOD)), overlap_s=0)
        first = run_source(wh, src)
        assert (first.status, first.error, first.rows_rejected) == ("partial", None, len(BAD))
        assert first.rows_inserted == GOOD_PER_TABLE * len(GOOD)
        assert_bad_rows_rejected_and_good_rows_kept(wh, path=4)
        second = run_source(wh, src)
    assert (second.status, second.rows_read, second.error) == ("ok", 0, None)
