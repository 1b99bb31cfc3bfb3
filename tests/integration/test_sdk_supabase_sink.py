"""The Supabase sink against a small PostgREST-like server on 127.0.0.1 (POST /rest/v1/<table>
with a JSON array body and a Prefer header), including 401, 413, 5xx, timeouts and an
unreachable server: rows are spooled and replayed, never lost, never doubled. Also the SQL
migration on a real PostgreSQL: service role only."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from collectors.instrumentation import (
    configure_monitoring,
    experiments,
    flush_monitoring,
    monitoring_stats,
    reset_monitoring,
    shutdown_monitoring,
)
from collectors.instrumentation.sinks import SupabaseSink
from collectors.schema import TABLES


class InsertStub:
    """Stores upserted rows per table by natural key; faults are injected per request."""

    def __init__(self, max_rows_per_request: int | None = None) -> None:
        self.rows: dict[str, dict[tuple, dict]] = {}
        self.requests: list[dict] = []
        self.bodies: list = []
        self.faults: deque[tuple[str, float]] = deque()
        self.max_rows = max_rows_per_request
        self.experiments: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body=b"", ctype="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if urlsplit(self.path).path == "/rest/v1/experiments":
                    if stub.faults:
                        kind, value = stub.faults.popleft()
                        return self._send(int(value), b'{"message":"down"}')
                    return self._send(200, json.dumps(stub.experiments).encode())
                self._send(404, b"{}")

            def do_POST(self):
                url = urlsplit(self.path)
                table = url.path.removeprefix("/rest/v1/")
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stub.requests.append(
                    {
                        "table": table,
                        "prefer": self.headers.get("Prefer"),
                        "apikey": self.headers.get("apikey"),
                        "params": dict(parse_qsl(url.query)),
                    }
                )
                if stub.faults:
                    kind, value = stub.faults.popleft()
                    if kind == "status":
                        code = int(value)
                        if code == 401:
                            return self._send(
                                401,
                                json.dumps(
                                    {
                                        "code": "PGRST301",
                                        "message": "JWT invalid",
                                        "details": None,
                                        "hint": None,
                                    }
                                ).encode(),
                            )
                        return self._send(code, b"<html>upstream error</html>", "text/html")
                    if kind == "delay":
                        time.sleep(value)
                rows = json.loads(body)
                stub.bodies.append(rows)
                if stub.max_rows is not None and len(rows) > stub.max_rows:
                    return self._send(
                        413, b"<html>413 Request Entity Too Large</html>", "text/html"
                    )
                if any(r.get("route") == "/poison" for r in rows if isinstance(r, dict)):
                    return self._send(
                        400,
                        json.dumps(
                            {
                                "code": "22P02",
                                "message": "invalid input syntax",
                                "details": None,
                                "hint": None,
                            }
                        ).encode(),
                    )
                key_cols = TABLES[table].key
                store = stub.rows.setdefault(table, {})
                for r in rows:
                    store.setdefault(tuple(r[k] for k in key_cols), r)  # ignore duplicates
                self._send(201)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, table: str) -> int:
        return len(self.rows.get(table, {}))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    s = InsertStub()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def fresh_sdk():
    reset_monitoring()
    yield
    reset_monitoring()


def rows(n: int, start: int = 0) -> list[dict]:
    return [
        {
            "request_id": f"r{i}",
            "started_at": "2026-01-01T00:00:00+00:00",
            "route": "/x",
            "method": "GET",
            "status_code": 200,
            "duration_ms": 1.0,
        }
        for i in range(start, n)
    ]


def sink_for(stub, tmp_path, **kw) -> SupabaseSink:
    return SupabaseSink(stub.url, "service-key", tmp_path / "outbox", **kw)


def delivered(sink: SupabaseSink, stub, table: str, n: int, timeout: float = 10) -> bool:
    """Wait until `n` rows of `table` reached the server (files on disk are replayed once
    they are a second old: the spool's guard against writers that stamped a name earlier)."""
    deadline = time.monotonic() + timeout
    while stub.count(table) < n and time.monotonic() < deadline:
        sink._down_until = 0  # as after the backoff
        sink.flush(timeout=1)
    return stub.count(table) == n


def test_rows_are_upserted_with_the_postgrest_insert_format(stub, tmp_path):
    sink = sink_for(stub, tmp_path)
    sink.write("requests", rows(3))
    sink.write("requests", rows(3))  # a replayed batch changes nothing
    sink.flush()
    assert stub.count("requests") == 3 and sink.rows_sent == 6 and sink.up
    req = stub.requests[0]
    assert req["apikey"] == "service-key"
    assert "resolution=ignore-duplicates" in req["prefer"] and "return=minimal" in req["prefer"]
    assert req["params"]["on_conflict"] == "request_id"
    sink.close()


def test_calls_merge_their_parts_and_send_one_row_per_call(stub, tmp_path):
    """A call's start and end in one batch: PostgreSQL refuses an upsert that touches one row
    twice, so the sink merges them; calls upsert with merge-duplicates."""
    sink = sink_for(stub, tmp_path)
    start = {"call_id": "c1", "started_at": "2026-01-01T00:00:00+00:00", "outcome": None}
    end = {**start, "ended_at": "2026-01-01T00:01:00+00:00", "outcome": "resolved"}
    sink.write("calls", [start, end, {**start, "call_id": "c2"}])
    sink.flush()
    req = next(r for r in stub.requests if r["table"] == "calls")
    assert "resolution=merge-duplicates" in req["prefer"]
    assert stub.bodies[-1] == [end, {**start, "call_id": "c2"}]
    sink.close()


@pytest.mark.parametrize(
    "fault", [("status", 503), ("status", 500), ("status", 401), ("status", 429), ("delay", 1.5)]
)
def test_failures_spool_the_rows_and_replay_them_later(stub, tmp_path, fault):
    sink = sink_for(stub, tmp_path, timeout=0.5)
    stub.faults.append(fault)
    sink.write("requests", rows(5))
    sink.flush()
    assert stub.count("requests") == 0 or fault[0] == "delay"  # a slow server may still commit
    assert sink.rows_spooled == 5 and sink.last_error and not sink.up
    sink.write("requests", rows(8, 5))  # while Supabase is failing, new rows go to disk too
    assert sink.rows_spooled == 8
    assert delivered(sink, stub, "requests", 8)
    assert sink.up
    assert not sink.pending_on_disk()
    assert not list((tmp_path / "outbox" / "requests").glob("*.jsonl"))  # the outbox is emptied
    sink.close()


def test_a_hanging_supabase_holds_only_the_sender_and_loses_nothing(stub, tmp_path):
    """Supabase accepts the connection and does not answer: writes return at once (the
    batches go to disk), and everything arrives once it answers again."""
    sink = sink_for(stub, tmp_path, timeout=2.0)
    stub.faults.append(("delay", 3.0))
    started = time.monotonic()
    for i in range(0, 2000, 100):
        sink.write("requests", rows(i + 100, i))
    assert time.monotonic() - started < 1.0  # never waited for the network
    assert delivered(sink, stub, "requests", 2000, timeout=20)
    assert sink.dropped == 0 and sink.rows_rejected == 0
    sink.close()


def test_413_splits_the_batch_until_it_fits(tmp_path):
    stub = InsertStub(max_rows_per_request=40)
    try:
        sink = sink_for(stub, tmp_path)
        sink.write("requests", rows(300))
        sink.flush()
        assert stub.count("requests") == 300
        assert sink.rows_spooled == 0 and sink.rows_rejected == 0
        sink.close()
    finally:
        stub.close()


def test_a_row_supabase_refuses_is_isolated_and_dropped_alone(stub, tmp_path):
    sink = sink_for(stub, tmp_path)
    batch = rows(10)
    batch[6]["route"] = "/poison"
    sink.write("requests", batch)
    sink.flush()
    assert stub.count("requests") == 9
    assert sink.rows_rejected == 1
    sink.close()


def test_unreachable_supabase_loses_nothing_up_to_the_spool_limit(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    sink = SupabaseSink(
        f"http://127.0.0.1:{port}", "k", tmp_path / "outbox", timeout=0.5, max_bytes=20_000
    )
    for i in range(0, 400, 50):
        sink.write("requests", rows(i + 50, i))
        sink.flush(timeout=1)
    assert sink.rows_spooled + sink.dropped == 400
    assert 0 < sink.rows_spooled < 400  # the 20 kB spool limit bounds the disk
    kept = sink.rows_spooled

    # Supabase comes back on that port: the spooled rows are replayed in order
    stub = InsertStub()
    stub.server.server_close()
    stub.server = ThreadingHTTPServer(("127.0.0.1", port), stub.server.RequestHandlerClass)
    threading.Thread(target=stub.server.serve_forever, daemon=True).start()
    try:
        assert delivered(sink, stub, "requests", kept)
        assert sorted(stub.rows["requests"])[0] == ("r0",)
    finally:
        sink.close()
        stub.close()


def test_rows_left_on_disk_by_a_stopped_agent_are_sent_by_the_next_one(stub, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    first = SupabaseSink(f"http://127.0.0.1:{port}", "k", tmp_path / "outbox", timeout=0.5)
    first.write("requests", rows(30))
    first.flush(timeout=1)
    first.close()
    assert first.rows_spooled == 30
    second = sink_for(stub, tmp_path)  # the restarted agent, same outbox folder
    assert delivered(second, stub, "requests", 30)
    second.close()


def test_a_fastapi_app_ships_to_supabase_through_configure_monitoring(stub, tmp_path, monkeypatch):
    monkeypatch.setenv("SUPABASE_URL", stub.url)
    monkeypatch.setenv("SUPABASE_API_KEY", "service-key")
    app = FastAPI()

    @app.get("/turns/{turn_id}")
    def turn(turn_id: int):
        return {}

    configure_monitoring(
        app,
        {
            "sink": {"spool_dir": str(tmp_path / "spool")},
            "infrastructure": {"dependencies": []},
            "experiments": {"source": "local"},
        },
    )
    assert monitoring_stats()["sink"] == "SupabaseSink"
    stub.faults.append(("status", 503))  # the first batch fails and is spooled
    with TestClient(app) as client:
        for i in range(10):
            client.get(f"/turns/{i}")
        flush_monitoring()
        for i in range(10, 15):
            client.get(f"/turns/{i}")
    shutdown_monitoring()
    sink = monitoring_stats()
    assert sink["sink"] == "SupabaseSink"
    from collectors.instrumentation.runtime import state

    assert delivered(state.pipeline.sink, stub, "requests", 15)
    assert {r["route"] for r in stub.rows["requests"].values()} == {"/turns/{turn_id}"}


def test_experiment_definitions_refresh_and_survive_an_outage(stub, tmp_path, monkeypatch):
    stub.experiments = [
        {
            "key": "greeting",
            "variants": ["control", "short"],
            "weights": [0.5, 0.5],
            "status": "running",
            "coverage": 1.0,
            "seed": None,
            "hash_version": 2,
            "unit_type": "call",
        }
    ]
    monkeypatch.setenv("SUPABASE_URL", stub.url)
    monkeypatch.setenv("SUPABASE_API_KEY", "service-key")
    configure_monitoring(
        None, {"sink": {"type": "memory"}, "experiments": {"refresh_interval": 3600}}
    )
    deadline = time.monotonic() + 5
    while experiments.remote_loaded_at is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "greeting" in experiments.definitions()
    stub.faults.append(("status", 503))
    assert experiments.refresh() is False
    assert experiments.definitions()["greeting"].variants == ("control", "short")


@pytest.mark.postgres
def test_migration_creates_the_tables_with_service_role_only():
    import psycopg  # the test extra installs it: a missing one fails, never skips

    from tests.integration.pgcluster import fresh_database

    dsn = fresh_database()
    with psycopg.connect(dsn, autocommit=True) as con:
        tables = {
            r[0]
            for r in con.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND rowsecurity"
            )
        }
        assert {
            "requests",
            "errors",
            "voice_turns",
            "calls",
            "voice_quality",
            "feedback",
            "feature_usage",
            "auth_events",
            "security_events",
            "resource_samples",
            "probe_results",
            "app_starts",
            "experiment_exposures",
            "experiments",
        } <= tables
        for name in ("requests", "voice_turns", "experiment_exposures"):
            cols = {
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                    [name],
                )
            }
            assert set(TABLES[name].column_names) | {"id", "created_at", "updated_at"} == cols
        con.execute("SET ROLE service_role")
        con.execute(
            "INSERT INTO requests (request_id, started_at, route, method, status_code, "
            "duration_ms) VALUES ('a', now(), '/x', 'GET', 200, 1)"
        )
        assert con.execute("SELECT count(*) FROM requests").fetchone() == (1,)
        for role in ("anon", "authenticated"):
            con.execute("RESET ROLE")
            con.execute(f"SET ROLE {role}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute("SELECT * FROM requests")


def test_stats_count_spooled_rows_apart_and_say_when_supabase_fails(stub, tmp_path):
    """Before: rows diverted to the outbox were counted as shipped, and nothing said whether
    Supabase was up."""
    from collectors.instrumentation import performance_monitor

    stub.faults.extend([("status", 503)] * 1000)
    sink = sink_for(stub, tmp_path, timeout=1.0)
    configure_monitoring(None, {"sink": {"batch_size": 100}}, sink=sink)
    for i in range(300):
        performance_monitor.track_request(f"/r/{i}", "GET", 0.01, 200)
    assert flush_monitoring()
    down = monitoring_stats()
    assert down["sink_up"] is False and down["sink_failing_since"].endswith("+00:00")
    assert "HTTP 503" in down["sink_last_error"]
    assert down["spooled"] == 300 and down["shipped"] == 0 and down["dropped_total"] == 0
    assert down["balanced"], down
    stub.faults.clear()
    assert delivered(sink, stub, "requests", 300)
    up = monitoring_stats()
    assert up["sink_up"] is True and up["sink_failing_since"] is None
    assert up["replayed"] >= 300 and up["balanced"], up


def test_a_hanging_supabase_costs_no_row_at_the_pipelines_bounds(stub, tmp_path):
    """Supabase holds every request past the sink's timeout while the agent records far more
    rows than the pipeline's outbox holds: the shipper keeps moving them to the disk outbox,
    so nothing is dropped, and it all arrives once Supabase answers."""
    from collectors.instrumentation import performance_monitor

    stub.faults.extend([("delay", 3.0)] * 6)
    sink = sink_for(stub, tmp_path, timeout=1.5)
    configure_monitoring(
        None,
        {"sink": {"max_outbox": 300, "max_queue": 2000, "batch_size": 100, "flush_interval": 0.05}},
        sink=sink,
    )
    sent = 0
    hanging_seen = False
    until = time.monotonic() + 3.0
    while time.monotonic() < until:
        for _ in range(100):
            performance_monitor.track_request(f"/r/{sent}", "GET", 0.01, 200)
            sent += 1
        hanging_seen = hanging_seen or not monitoring_stats()["sink_up"]
        time.sleep(0.01)
    assert hanging_seen  # stats said so while the first request hung
    assert flush_monitoring(timeout=20)
    assert monitoring_stats()["dropped_total"] == 0
    assert delivered(sink, stub, "requests", sent, timeout=30)
    stats = monitoring_stats()
    assert stats["dropped_total"] == 0 and stats["balanced"], stats
    assert sent > 3 * 300
