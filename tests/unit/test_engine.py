"""The run engine: idempotent upserts, watermarks, rejects, retries and run records."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from collectors.engine import recover_interrupted_runs, run_source, watermarks
from collectors.sources.base import Batch, SourceConfigError, TransientSourceError
from collectors.warehouse import open_warehouse

NOW = datetime.now(UTC).replace(microsecond=0)


def request(i: int, **overrides):
    row = {
        "request_id": f"r{i}",
        "started_at": (NOW - timedelta(minutes=i)).isoformat(),
        "route": "/v1/calls/{call_id}",
        "method": "GET",
        "status_code": 200,
        "duration_ms": 10.0 + i,
    }
    row.update(overrides)
    return row


class ListSource:
    """Yields fixed batches; the watermark is the index of the last batch committed."""

    name = "list"

    def __init__(self, batches):
        self.batches = batches

    def fetch(self, marks):
        start = int(marks.get("requests", "-1")) + 1
        for i in range(start, len(self.batches)):
            yield Batch("requests", self.batches[i], watermark=str(i))


@pytest.fixture
def con(tmp_path):
    con = open_warehouse(tmp_path / "w.duckdb")
    yield con
    con.close()


def count(con, table="requests"):
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_loading_the_same_rows_twice_changes_nothing(con):
    rows = [request(i) for i in range(50)]
    first = run_source(con, ListSource([rows]))
    con.execute("DELETE FROM watermarks")  # force a full re-read
    second = run_source(con, ListSource([rows]))
    assert (first.status, first.rows_inserted) == ("ok", 50)
    assert (second.status, second.rows_inserted, second.rows_updated) == ("ok", 0, 0)
    assert count(con) == 50


def test_a_changed_row_is_updated_in_place(con):
    run_source(con, ListSource([[request(1)]]))
    con.execute("DELETE FROM watermarks")
    summary = run_source(con, ListSource([[request(1, status_code=503)]]))
    assert summary.rows_updated == 1 and summary.rows_inserted == 0
    assert con.execute("SELECT status_code FROM requests").fetchall() == [(503,)]


def test_last_duplicate_within_a_batch_wins(con):
    run_source(con, ListSource([[request(1, status_code=200), request(1, status_code=500)]]))
    assert con.execute("SELECT status_code FROM requests").fetchall() == [(500,)]


@pytest.mark.parametrize(
    "bad, reason",
    [
        (request(9, status_code="200"), "status_code is a str, not an integer"),
        (request(9, request_id=None), "request_id is missing"),
        (
            request(9, started_at=(NOW - timedelta(hours=1)).replace(tzinfo=None).isoformat()),
            "started_at is a naive timestamp",
        ),
        (
            request(9, started_at=(NOW + timedelta(days=1)).isoformat()),
            "started_at is in the future",
        ),
        (request(9, route="/x" * 1000), "route is longer than 512 characters"),
        (request(9, duration_ms=float("inf")), "duration_ms is not a finite number"),
        (request(9, started_at="yesterday"), "started_at is not an ISO 8601 timestamp"),
    ],
)
def test_bad_rows_are_rejected_with_a_reason_and_the_rest_kept(con, bad, reason):
    summary = run_source(con, ListSource([[request(1), bad, request(2)]]))
    assert summary.status == "partial"
    assert (summary.rows_inserted, summary.rows_rejected) == (2, 1)
    rejects = con.execute("SELECT source, table_name, reason, row_json FROM rejects").fetchall()
    assert len(rejects) == 1
    assert rejects[0][0:2] == ("list", "requests")
    assert reason in rejects[0][2]
    assert '"request_id"' in rejects[0][3]


def arrow_requests(n: int, *, start: datetime = NOW, tz: str | None = "UTC") -> pa.Table:
    return pa.table(
        {
            "request_id": [f"a{i}" for i in range(n)],
            "started_at": pa.array(
                [(start - timedelta(seconds=i)).replace(tzinfo=None) for i in range(n)],
                pa.timestamp("us", tz=tz),
            ),
            "route": ["/healthz"] * n,
            "method": ["GET"] * n,
            "status_code": pa.array([200] * n, pa.int64()),
            "duration_ms": [1.0] * n,
        }
    )


def test_arrow_batches_are_validated_column_wise(con):
    good = arrow_requests(100)
    future = arrow_requests(3, start=NOW + timedelta(days=2)).set_column(
        0, "request_id", pa.array(["f0", "f1", "f2"])
    )
    summary = run_source(con, ListSource([pa.concat_tables([good, future])]))
    assert (summary.rows_inserted, summary.rows_rejected) == (100, 3)
    reasons = {r[0] for r in con.execute("SELECT reason FROM rejects").fetchall()}
    assert {r.partition(": ")[0] for r in reasons} == {"started_at is in the future"}  # + value
    stored = con.execute("SELECT max(started_at) FROM requests").fetchone()[0]
    assert stored == NOW.replace(tzinfo=None)  # stored as naive UTC


def test_arrow_batch_with_naive_timestamps_is_rejected_row_by_row(con):
    summary = run_source(con, ListSource([arrow_requests(5, tz=None)]))
    assert (summary.rows_inserted, summary.rows_rejected) == (0, 5)
    assert "naive timestamp" in con.execute("SELECT reason FROM rejects LIMIT 1").fetchone()[0]


class FailingAfter(ListSource):
    """Fails with `error` once, after yielding the first `ok` batches."""

    def __init__(self, batches, ok: int, error: Exception):
        super().__init__(batches)
        self.ok, self.error, self.calls = ok, error, 0

    def fetch(self, marks):
        self.calls += 1
        for batch in super().fetch(marks):
            if self.calls == 1 and int(batch.watermark) >= self.ok:
                raise self.error
            yield batch


def test_transient_errors_are_retried_from_the_last_committed_batch(con):
    batches = [[request(i)] for i in range(5)]
    waits = []
    source = FailingAfter(batches, ok=2, error=TransientSourceError("503 from source"))
    summary = run_source(con, source, sleep=waits.append, backoff_s=0.01)
    assert summary.status == "ok" and summary.attempts == 2
    assert summary.rows_inserted == 5 and count(con) == 5
    assert len(waits) == 1


def test_retry_after_is_honoured(con):
    waits = []
    source = FailingAfter(
        [[request(1)]], ok=0, error=TransientSourceError("429", retry_after_s=7.0)
    )
    run_source(con, source, sleep=waits.append)
    assert waits == [7.0]


def test_a_source_that_keeps_failing_ends_failed_and_keeps_committed_rows(con):
    class AlwaysDown(ListSource):
        def fetch(self, marks):
            yield from super().fetch(marks)
            raise TransientSourceError("connection refused by source")

    summary = run_source(
        con, AlwaysDown([[request(1)], [request(2)]]), sleep=lambda s: None, max_attempts=3
    )
    assert summary.status == "failed" and summary.attempts == 3
    assert summary.error == "connection refused by source"
    assert count(con) == 2
    assert watermarks(con, "list") == {"requests": "1"}
    run = con.execute("SELECT status, error, rows_inserted FROM collector_runs").fetchone()
    assert run == ("failed", "connection refused by source", 2)


def test_a_configuration_error_is_not_retried(con):
    source = FailingAfter(
        [[request(1)]], ok=0, error=SourceConfigError("SUPABASE_API_KEY was rejected (401).")
    )
    summary = run_source(con, source, sleep=lambda s: pytest.fail("no retry expected"))
    assert summary.status == "failed" and summary.attempts == 1
    assert summary.error == "SUPABASE_API_KEY was rejected (401)."


def test_watermark_moves_with_its_batch(con):
    source = ListSource([[request(i)] for i in range(3)])
    run_source(con, source)
    assert watermarks(con, "list") == {"requests": "2"}
    assert run_source(con, source).rows_read == 0  # nothing new


def test_runs_left_running_by_a_killed_process_are_closed(con):
    con.execute(
        "INSERT INTO collector_runs (run_id, source, started_at, status) "
        "VALUES (nextval('collector_run_ids'), 'x', now()::TIMESTAMP, 'running')"
    )
    assert recover_interrupted_runs(con) == 1
    status, error = con.execute("SELECT status, error FROM collector_runs").fetchone()
    assert status == "failed" and error.startswith("interrupted")


def test_changed_days_are_marked_for_publishing(con):
    run_source(con, ListSource([[request(1), request(60 * 24 * 3)]]))
    days = {r[0] for r in con.execute("SELECT day FROM dirty_partitions").fetchall()}
    assert days == {(NOW - timedelta(minutes=1)).date(), (NOW - timedelta(days=3)).date()}


@pytest.mark.parametrize(
    "bad, reason",
    [
        (request(9, duration_ms=10**400), "duration_ms is too large for a number column"),
        (request(9, status_code=2**40), "status_code is out of range for a 32-bit integer"),
    ],
)
def test_out_of_range_numbers_are_rejected_not_fatal(con, bad, reason):
    summary = run_source(con, ListSource([[request(1), bad]]))
    assert (summary.status, summary.rows_inserted, summary.rows_rejected) == ("partial", 1, 1)
    assert reason in con.execute("SELECT reason FROM rejects").fetchone()[0]


def test_a_bigint_beyond_64_bits_is_rejected(con):
    class Queries(ListSource):
        def fetch(self, marks):
            row = {
                "query_id": "q1",
                "observed_at": NOW.isoformat(),
                "statement": "select 1",
                "calls": 2**64,
            }
            yield Batch("db_queries", [row])

    summary = run_source(con, Queries([]))
    assert summary.rows_rejected == 1
    assert (
        "calls is out of range for a 64-bit integer"
        in con.execute("SELECT reason FROM rejects").fetchone()[0]
    )


def test_last_duplicate_wins_in_a_large_arrow_batch(con):
    n = 300_000  # large enough for DuckDB to scan in parallel
    table = arrow_requests(n)
    ids = pa.array([f"a{i % 1000}" for i in range(n)])  # each key repeated 300 times
    position = pa.array([float(i) for i in range(n)])  # (status codes stop at 599)
    table = table.set_column(0, "request_id", ids).set_column(5, "duration_ms", position)
    run_source(con, ListSource([table]))
    got = dict(con.execute("SELECT request_id, duration_ms FROM requests").fetchall())
    assert len(got) == 1000
    assert all(got[f"a{k}"] == n - 1000 + k for k in range(1000))


def test_an_update_that_moves_a_row_to_another_day_republishes_both_days(con):
    run_source(con, ListSource([[request(1)]]))
    con.execute("DELETE FROM dirty_partitions")
    con.execute("DELETE FROM watermarks")
    moved = request(1, started_at=(NOW - timedelta(days=3)).isoformat())
    assert run_source(con, ListSource([[moved]])).rows_updated == 1
    days = {r[0] for r in con.execute("SELECT day FROM dirty_partitions").fetchall()}
    assert days == {(NOW - timedelta(minutes=1)).date(), (NOW - timedelta(days=3)).date()}


def test_a_backfill_that_keeps_committing_between_faults_is_not_cut_short(con):
    class Flaky(ListSource):
        """Fails after every second batch it yields; each retry resumes further on."""

        def fetch(self, marks):
            for n, batch in enumerate(super().fetch(marks)):
                yield batch
                if n == 1:
                    raise TransientSourceError("connection reset")

    summary = run_source(
        con, Flaky([[request(i)] for i in range(12)]), sleep=lambda s: None, max_attempts=3
    )
    assert summary.status == "ok" and summary.rows_inserted == 12
    assert summary.attempts == 7  # six faults, each after two committed batches


class ReadAheadSource(ListSource):
    """A reading-only source: the engine may fetch its next batch while committing one.
    Records the order of fetches and commits it observes, and whether its fetch was closed."""

    read_ahead = True

    def __init__(self, batches, fail_at=None):
        super().__init__(batches)
        self.fail_at, self.closed = fail_at, 0

    def fetch(self, marks):
        try:
            for batch in super().fetch(marks):
                if self.fail_at is not None and batch.watermark == str(self.fail_at):
                    self.fail_at = None  # fails once, then the retry gets through
                    raise TransientSourceError("connection reset by source")
                yield batch
        finally:
            self.closed += 1


def test_read_ahead_commits_every_batch_in_order(con):
    source = ReadAheadSource([[request(i), request(i + 100)] for i in range(6)])
    summary = run_source(con, source)
    assert summary.status == "ok" and summary.rows_inserted == 12 and count(con) == 12
    assert watermarks(con, "list") == {"requests": "5"}
    assert source.closed == 1


def test_read_ahead_error_resumes_after_the_batches_before_it(con):
    source = ReadAheadSource([[request(i)] for i in range(6)], fail_at=3)
    summary = run_source(con, source, sleep=lambda s: None)
    # batches 0-2 were committed before the error surfaced; the retry resumed at 3
    assert summary.status == "ok" and summary.attempts == 2
    assert summary.rows_read == 6 and count(con) == 6
    assert source.closed == 2


def test_read_ahead_stops_fetching_when_a_commit_fails(con, monkeypatch):
    import collectors.engine as engine

    source = ReadAheadSource([[request(i)] for i in range(50)])
    real = engine.commit_batch
    calls = []

    def commit_then_crash(con, run_id, name, batch):
        calls.append(batch.watermark)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(con, run_id, name, batch)

    monkeypatch.setattr(engine, "commit_batch", commit_then_crash)
    summary = run_source(con, source)
    assert summary.status == "failed" and "disk full" in summary.error
    assert count(con) == 1  # only the batch committed before the failure
    deadline = time.monotonic() + 5
    while source.closed == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert source.closed == 1  # the fetching thread closed the source's generator
