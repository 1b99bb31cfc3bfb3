"""Events from a FastAPI app reach the warehouse through the spool and the SpoolSource, and a
crash at any batch boundary neither loses nor doubles them."""

from __future__ import annotations

import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from collectors.engine import run_source
from collectors.instrumentation import (
    configure_monitoring,
    error_monitor,
    reset_monitoring,
    shutdown_monitoring,
    user_experience_monitor,
)
from collectors.sources.spool import SpoolSource
from collectors.warehouse import open_warehouse


@pytest.fixture(autouse=True)
def fresh_sdk():
    reset_monitoring()
    yield
    reset_monitoring()


def agent_app() -> FastAPI:
    app = FastAPI()

    @app.get("/calls/{call_id}")
    def call(call_id: str):
        return {"call_id": call_id}

    @app.post("/calls/{call_id}/hangup")
    def hangup(call_id: str):
        raise RuntimeError(f"hangup failed for {call_id}")

    return app


def test_events_from_a_fastapi_app_arrive_in_the_warehouse(tmp_path):
    spool = tmp_path / "spool"
    app = agent_app()
    configure_monitoring(
        app, {"sink": {"type": "spool", "spool_dir": str(spool)}, "release": "v1.2.3"}
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        for i in range(20):
            assert client.get(f"/calls/c{i}").status_code == 200
        assert client.post("/calls/c1/hangup").status_code == 500
    s = user_experience_monitor.start_session("call-1", "caller-9")
    user_experience_monitor.record_feedback(rating=4, comment="ok", session_id="call-1")
    s.end("resolved")
    shutdown_monitoring()  # ships and seals the spool files
    time.sleep(1.1)  # the reader leaves files younger than a second to their writers

    con = open_warehouse(tmp_path / "wh.duckdb")
    summary = run_source(con, SpoolSource(spool))
    assert summary.status == "ok", summary.error
    assert summary.rows_rejected == 0
    routes = con.execute(
        "SELECT route, status_code, count(*) FROM requests GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert routes == [("/calls/{call_id}", 200, 20), ("/calls/{call_id}/hangup", 500, 1)]
    assert con.execute("SELECT DISTINCT release FROM requests").fetchall() == [("v1.2.3",)]
    err = con.execute("SELECT error_type, route, fingerprint IS NOT NULL FROM errors").fetchall()
    assert err == [("RuntimeError", "/calls/{call_id}/hangup", True)]
    call = con.execute("SELECT call_id, caller_id, outcome, duration_s >= 0 FROM calls").fetchall()
    assert call == [("call-1", "caller-9", "resolved", True)]
    assert con.execute("SELECT rating FROM feedback").fetchall() == [(4,)]
    # timestamps are naive UTC in the warehouse
    assert con.execute("SELECT typeof(started_at) FROM requests LIMIT 1").fetchone() == (
        "TIMESTAMP",
    )

    again = run_source(con, SpoolSource(spool))  # nothing new: nothing read, nothing doubled
    assert again.rows_read == 0
    assert con.execute("SELECT count(*) FROM requests").fetchone() == (21,)
    # consumed files are deleted on the next run
    assert not [p for p in (spool / "requests").iterdir() if p.suffix == ".jsonl"][1:]


class CrashAfter:
    """Wraps a source and dies after `n` batches, as a killed collector would."""

    def __init__(self, source, n):
        self.source, self.n, self.name = source, n, source.name

    def fetch(self, watermarks):
        for i, batch in enumerate(self.source.fetch(watermarks)):
            if i == self.n:
                raise KeyboardInterrupt("killed")
            yield batch


def test_a_crash_between_batches_neither_loses_nor_doubles(tmp_path):
    spool = tmp_path / "spool"
    configure_monitoring(
        None,
        {
            "sink": {
                "type": "spool",
                "spool_dir": str(spool),
                "spool_file_bytes": 2048,
                "batch_size": 50,
            }
        },
    )
    for i in range(300):
        error_monitor.track_error("E", f"error {i}", request_id=f"r{i}")
    shutdown_monitoring()
    time.sleep(1.1)
    assert len(list((spool / "errors").iterdir())) > 3  # rotated into several files

    con = open_warehouse(tmp_path / "wh.duckdb")
    src = SpoolSource(spool, batch_bytes=1500)
    with pytest.raises(KeyboardInterrupt):
        run_source(con, CrashAfter(src, 4))
    partial = con.execute("SELECT count(*) FROM errors").fetchone()[0]
    assert 0 < partial < 300
    run_source(con, src)
    assert con.execute("SELECT count(*), count(DISTINCT request_id) FROM errors").fetchone() == (
        300,
        300,
    )


def test_unreadable_spool_lines_land_in_rejects_with_a_reason(tmp_path):
    from collectors.engine import run_source
    from collectors.sources.spool import SpoolSource
    from collectors.warehouse import open_warehouse

    table_dir = tmp_path / "spool" / "requests"
    table_dir.mkdir(parents=True)
    good = (
        '{"request_id": "r1", "started_at": "2026-01-01T00:00:00+00:00", "route": "/x", '
        '"method": "GET", "status_code": 200, "duration_ms": 5.0}'
    )
    # A sealed spool file (its writer finished), named as the SDK names them.
    (table_dir / "20260101T000000000000-1-0.jsonl").write_text(good + "\n{not json\n[1, 2]\n")
    con = open_warehouse(tmp_path / "w.duckdb")
    summary = run_source(con, SpoolSource(tmp_path / "spool"))
    assert (summary.status, summary.rows_inserted, summary.rows_rejected) == ("partial", 1, 2)
    rejected = con.execute("SELECT reason, row_json FROM rejects ORDER BY reject_id").fetchall()
    assert [r[0] for r in rejected] == ["spool line is not a JSON object"] * 2
    assert "{not json" in rejected[0][1]
