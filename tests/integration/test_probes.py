"""Probes against real HTTP servers on 127.0.0.1 that misbehave, and Railway/LiveKit stand-ins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from collectors.engine import run_source
from collectors.sources.base import SourceConfigError, TransientSourceError
from collectors.sources.probe_host import HostSource
from collectors.sources.probe_services import livekit_probe, supabase_probe
from collectors.sources.probes import Window, custom_probe, http_probe
from collectors.sources.railway import RailwaySource
from collectors.warehouse import open_warehouse
from tests.integration.http_misbehaving import LiveKitStandIn, Misbehaving, RailwayStandIn


@pytest.fixture
def wh(tmp_path):
    con = open_warehouse(tmp_path / "w.duckdb")
    yield con
    con.close()


@pytest.fixture(scope="module")
def server():
    with Misbehaving() as s:
        yield s


def results(con, target: str) -> list[tuple]:
    return con.execute(
        "SELECT status, status_code, error FROM probe_results WHERE target = ? ORDER BY checked_at",
        [target],
    ).fetchall()


def one(source) -> dict:
    [batch] = list(source.fetch({}))
    return batch.rows[0]


def test_healthy_endpoint_is_up_with_latency(server):
    row = one(http_probe("api", server.url + "/ok", expected_status=200))
    assert row["status"] == "up" and row["status_code"] == 200 and row["latency_ms"] > 0


@pytest.mark.parametrize(
    ("path", "options", "words"),
    [
        ("/slow?s=2", {"timeout_s": 0.3}, "no answer within 0.3 s"),
        ("/500", {}, "HTTP 500"),
        ("/close", {}, "closed the connection"),
        ("/redirect-loop", {}, "redirect"),
        ("/status?code=204", {"expected_status": 200}, "expected 200"),
    ],
)
def test_misbehaving_endpoints_are_down_with_a_reason(server, path, options, words):
    row = one(http_probe("api", server.url + path, **options))
    assert row["status"] == "down" and words in row["error"]


def test_self_signed_certificate_is_down_unless_verification_is_off():
    with Misbehaving(tls=True) as s:
        row = one(http_probe("tls", s.url + "/ok"))
        assert row["status"] == "down" and "certificate" in row["error"].lower()
        assert one(http_probe("tls", s.url + "/ok", verify=False))["status"] == "up"


def test_refused_connection_is_down(server):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    row = one(http_probe("gone", f"http://127.0.0.1:{port}/"))
    assert row["status"] == "down" and "connection failed" in row["error"]


def test_pending_before_down_holds_across_scheduled_runs(wh, server):
    probe = http_probe("flaky", server.url + "/500", retries=2)
    for _ in range(4):
        run_source(wh, probe)
    assert [r[0] for r in results(wh, "flaky")] == ["pending", "pending", "down", "down"]
    ok = http_probe("flaky", server.url + "/ok", retries=2)
    run_source(wh, ok)
    run_source(wh, probe)  # one failure after a success is pending again
    assert [r[0] for r in results(wh, "flaky")][-2:] == ["up", "pending"]


def test_flapping_endpoint_never_goes_down_with_one_retry(wh, server):
    server.flap = 0
    probe = http_probe("flap", server.url + "/flap", retries=1)
    for _ in range(6):
        run_source(wh, probe)
    assert [r[0] for r in results(wh, "flap")] == ["up", "pending"] * 3


def test_maintenance_window_suppresses_down(server):
    now = datetime.now(UTC)
    probe = http_probe("maint", server.url + "/500",
                       maintenance=[Window(now - timedelta(hours=1), now + timedelta(hours=1))])  # fmt: skip
    assert one(probe)["status"] == "maintenance"


def healthy_pool():
    return {"status": "healthy", "details": {"active_connections": 0}}


def sick_pool():
    return {"status": "unhealthy", "details": {"active_connections": 20, "max_connections": 20}}


def test_custom_checks_by_dotted_path():
    mod = __name__
    assert one(custom_probe("pool", f"{mod}:healthy_pool"))["status"] == "up"
    row = one(custom_probe("pool", f"{mod}.sick_pool"))
    assert row["status"] == "down" and "max_connections" in row["error"]
    boom = one(custom_probe("boom", lambda: 1 / 0))
    assert boom["status"] == "down" and "ZeroDivisionError" in boom["error"]
    with pytest.raises(SourceConfigError, match="cannot be imported"):
        custom_probe("nope", "no_such_module_xyz:check")


def test_livekit_health_and_authenticated_list_rooms(wh):
    with LiveKitStandIn() as lk:
        good = livekit_probe(lk.ws_url, api_key=lk.api_key, api_secret=lk.api_secret)
        run_source(wh, good)
        assert results(wh, "livekit:http")[-1][0] == "up"
        assert results(wh, "livekit:api")[-1][:2] == ("up", 200)
        bad = livekit_probe(lk.ws_url, api_key=lk.api_key, api_secret="x" * 32)
        rows = {r["target"]: r for r in list(bad.fetch({}))[0].rows}
        assert rows["livekit:api"]["status"] == "down"
        assert "LIVEKIT_API_SECRET" in rows["livekit:api"]["error"]
        lk.ready = False
        assert rows_of(livekit_probe(lk.ws_url))["livekit:http"]["status_code"] == 406
        assert "livekit:api" not in rows_of(livekit_probe(lk.ws_url))  # no key: health only


def rows_of(source) -> dict:
    return {r["target"]: r for r in list(source.fetch({}))[0].rows}


@pytest.mark.postgres
def test_supabase_auth_health_and_timed_rest_read():
    from tests.integration.pgcluster import fresh_database
    from tests.integration.postgrest_stub import PostgrestStub

    dsn = fresh_database()
    with PostgrestStub(dsn, "a.b.c") as stub:
        rows = rows_of(supabase_probe(stub.url, "a.b.c"))
        assert rows["supabase:auth"]["status"] == "up" and rows["supabase:rest"]["status"] == "up"
        bad = rows_of(supabase_probe(stub.url, "wrong"))
        assert bad["supabase:rest"]["status"] == "down"
        assert "SUPABASE_API_KEY" in bad["supabase:rest"]["error"]


def test_railway_deployments_statuses_and_health(wh):
    with RailwayStandIn() as rw:
        rw.add("d1", "SUCCESS", "2026-01-01T10:00:00.000Z", commitHash="abcdef123456",
               commitMessage="fix: faster tts", reason="deploy")  # fmt: skip
        rw.add("d2", "HIBERNATING_NEW", "2026-01-02T10:00:00.000Z", commitHash="0123456789ab")
        src = RailwaySource("proj-1", rw.token, endpoint=rw.endpoint)
        assert run_source(wh, src).status == "ok"
        statuses = dict(wh.execute("SELECT deployment_id, status FROM deployments").fetchall())
        assert statuses == {"d1": "SUCCESS", "d2": "HIBERNATING_NEW"}  # unknown status kept
        assert results(wh, "railway:proj-1")[-1][0] == "pending"
        rw.add("d3", "CRASHED", "2026-01-03T10:00:00.000Z", reason="rollback")
        run_source(wh, src)
        assert results(wh, "railway:proj-1")[-1][0] == "down"
        row = wh.execute(
            "SELECT release, commit_sha, message, is_rollback FROM deployments WHERE deployment_id = 'd1'"
        ).fetchone()
        assert row == ("abcdef1", "abcdef123456", "fix: faster tts", False)
        assert wh.execute(
            "SELECT is_rollback FROM deployments WHERE deployment_id = 'd3'"
        ).fetchone()[0]
        assert rw.requests[-1]["headers"]["Authorization"] == f"Bearer {rw.token}"


def test_railway_rate_limit_and_bad_token(wh):
    with RailwayStandIn() as rw:
        rw.add("d1", "SUCCESS", "2026-01-01T10:00:00.000Z")
        rw.rate_limited, rw.retry_after = 1, 42
        src = RailwaySource("proj-1", rw.token, endpoint=rw.endpoint)
        with pytest.raises(TransientSourceError) as info:
            list(src.fetch({}))
        assert info.value.retry_after_s == 42
        rw.rate_limited, rw.retry_after = 1, 2
        waits: list[float] = []
        assert run_source(wh, src, sleep=waits.append).status == "ok" and waits == [2.0]
        bad = run_source(wh, RailwaySource("proj-1", "nope", endpoint=rw.endpoint))
        assert bad.status == "failed" and "RAILWAY_API_KEY" in bad.error
        project = RailwaySource("proj-1", rw.token, endpoint=rw.endpoint, token_kind="project")
        assert run_source(wh, project).status == "ok"
        assert rw.requests[-1]["headers"]["Project-Access-Token"] == rw.token


def test_host_samples_rates_across_runs(wh):
    host = HostSource(host="collector-1", thresholds={"memory_pct": 0.0001})
    run_source(wh, host)
    run_source(wh, host)
    rows = wh.execute(
        "SELECT cpu_pct, memory_pct, disk_pct, net_in_bytes FROM resource_samples "
        "WHERE host = 'collector-1' ORDER BY sampled_at"
    ).fetchall()
    assert len(rows) == 2 and rows[0][3] is None and rows[1][3] is not None
    assert all(0 <= r[0] <= 100 and 0 < r[1] <= 100 and 0 < r[2] <= 100 for r in rows)
    status = results(wh, "host:collector-1")
    assert [s[0] for s in status] == ["down", "down"] and "memory_pct" in status[0][2]
