"""The ASGI middleware through FastAPI's test client: route templates, statuses, errors,
slow requests, security detection and enforcement, and the /monitoring routes."""

from __future__ import annotations

import time

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from collectors.instrumentation import (
    configure_monitoring,
    flush_monitoring,
    health_monitor,
    infrastructure_monitor,
    monitoring_stats,
    reset_monitoring,
)
from collectors.instrumentation.checks import check_runner
from collectors.instrumentation.sinks import MemorySink


class NotFoundError(Exception):
    pass


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/users/{user_id}")
    def user(user_id: int):
        return {"user_id": user_id}

    @app.get("/calls/{call_id}/fail")
    def fail(call_id: str):
        raise ValueError(f"call {call_id} failed for 10.1.2.3 after 12 ms")

    @app.get("/missing")
    def missing():
        raise NotFoundError("nothing here")

    @app.get("/slow")
    def slow():
        time.sleep(0.06)
        return {}

    @app.post("/api/auth/login")
    def login(password: str = ""):
        if password != "right":
            raise HTTPException(401, "bad credentials")
        return {"token": "t"}

    return app


@pytest.fixture(autouse=True)
def fresh_sdk(monkeypatch):
    monkeypatch.delenv("WORKBENCH_URL", raising=False)
    reset_monitoring()
    yield
    reset_monitoring()


def setup(config=None):
    sink = MemorySink()
    alerts = []
    app = make_app()
    configure_monitoring(app, config or {}, sink=sink)
    health_monitor.add_alert_handler(alerts.append)
    client = TestClient(app, raise_server_exceptions=False)
    return app, client, sink, alerts


def test_requests_are_recorded_by_route_template_never_the_raw_url():
    _, client, sink, _ = setup()
    with client:
        for uid in (1, 2, 3):
            assert client.get(f"/users/{uid}").status_code == 200
        assert client.get("/no/such/path/42").status_code == 404
        assert client.get("/users/abc").status_code == 422
    flush_monitoring()
    rows = sink.table("requests")
    assert [(r["route"], r["status_code"]) for r in rows] == [("/users/{user_id}", 200)] * 3 + [
        ("<unmatched>", 404),
        ("/users/{user_id}", 422),
    ]
    assert all(r["started_at"].endswith("+00:00") and r["duration_ms"] > 0 for r in rows)
    assert len({r["request_id"] for r in rows}) == 5


def test_exceptions_become_errors_with_a_stable_fingerprint_linked_to_the_request():
    _, client, sink, _ = setup()
    with client:
        assert client.get("/calls/abc-1/fail").status_code == 500
        assert client.get("/calls/9f8e7d6c5b4a/fail").status_code == 500
    flush_monitoring()
    errors = sink.table("errors")
    requests = {r["request_id"]: r for r in sink.table("requests")}
    assert len(errors) == 2
    assert errors[0]["fingerprint"] == errors[1]["fingerprint"]
    e = errors[0]
    assert (e["error_type"], e["route"], e["method"], e["severity"]) == (
        "ValueError",
        "/calls/{call_id}/fail",
        "GET",
        "error",
    )
    assert "in fail" in e["stack_trace"] and e["message"].startswith("call abc-1 failed")
    assert requests[e["request_id"]]["status_code"] == 500


def test_ignored_errors_and_sampling_as_configured():
    _, client, sink, _ = setup(
        {"errors": {"ignored_errors": ["NotFoundError"], "error_sample_rate": 0.0}}
    )
    with client:
        client.get("/missing")
        client.get("/calls/1/fail")
    flush_monitoring()
    assert sink.table("errors") == []
    stats = monitoring_stats()
    assert (stats["errors_ignored"], stats["errors_sampled_out"]) == (1, 1)


def test_critical_error_type_raises_an_alert_and_is_always_kept():
    _, client, sink, alerts = setup(
        {"errors": {"critical_errors": ["ValueError"], "error_sample_rate": 0.0}}
    )
    with client:
        client.get("/calls/1/fail")
    flush_monitoring()
    assert sink.table("errors")[0]["severity"] == "critical"
    assert sink.table("errors")[0]["sample_rate"] == 1.0
    assert [a.severity for a in alerts] == ["critical"]


def test_slow_requests_over_the_threshold_alert_once_per_cooldown():
    _, client, _, alerts = setup({"performance": {"slow_request_threshold": 0.05}})
    with client:
        client.get("/slow")
        client.get("/slow")
        client.get("/users/1")
    flush_monitoring()
    slow = [a for a in alerts if a.source == "performance"]
    assert len(slow) == 1 and slow[0].details["route"] == "/slow"
    assert slow[0].details["duration_ms"] >= 50


def test_failed_logins_and_rate_limits_are_detected_but_not_enforced_by_default():
    _, client, sink, alerts = setup(
        {
            "security": {
                "max_failed_logins": 3,
                "rate_limits": {"/api/auth/login": {"limit": 4, "window": 60}},
            }
        }
    )
    with client:
        codes = [client.post("/api/auth/login").status_code for _ in range(6)]
        codes.append(client.post("/api/auth/login?password=right").status_code)
    flush_monitoring()
    assert codes == [401] * 6 + [200]  # detection only: nothing blocked
    auth = sink.table("auth_events")
    assert [a["success"] for a in auth] == [False] * 6 + [True]
    kinds = [e["event_type"] for e in sink.table("security_events")]
    assert kinds == ["brute_force_suspected", "rate_limit_exceeded"]
    assert {a.title for a in alerts} == {
        "Security: brute_force_suspected",
        "Security: rate_limit_exceeded",
    }


def test_enforce_answers_429_over_the_limit_and_403_to_blacklisted_ips():
    _, client, sink, _ = setup(
        {
            "security": {
                "enforce": True,
                "trust_forwarded_for": True,
                "rate_limits": {"/api/auth/login": {"limit": 2, "window": 60}},
                "ip_blacklist": ["203.0.113.0/24"],
                "ip_whitelist": ["198.51.100.7"],
            }
        }
    )
    with client:
        codes = [
            client.post("/api/auth/login", headers={"x-forwarded-for": "192.0.2.1"}).status_code
            for _ in range(3)
        ]
        white = [
            client.post("/api/auth/login", headers={"x-forwarded-for": "198.51.100.7"}).status_code
            for _ in range(3)
        ]
        black = client.get("/users/1", headers={"x-forwarded-for": "10.0.0.1, 203.0.113.9"})
    flush_monitoring()
    assert codes == [401, 401, 429]
    assert white == [401, 401, 401]
    assert black.status_code == 403
    events = {e["event_type"] for e in sink.table("security_events")}
    assert {"rate_limit_exceeded", "blacklisted_ip_blocked"} <= events
    assert monitoring_stats()["requests_blocked"] == 2


TOKEN = "t0ken-for-the-monitoring-routes"


def test_health_route_reports_checks_with_200_or_503():
    _, client, _, alerts = setup({"routes": {"token": TOKEN}})
    client.headers["authorization"] = f"Bearer {TOKEN}"  # the detailed report
    infrastructure_monitor.add_custom_dependency("pool", lambda: {"status": "unhealthy"})
    health_monitor.add_health_check_endpoint("self", "http://127.0.0.1:9/health", timeout=0.2)
    check_runner.stop()  # run the checks here rather than on the background thread
    for check in list(check_runner.checks.values()):
        check_runner.run_once(check)
    with client:
        report = client.get("/monitoring/health")
    assert report.status_code == 503
    body = report.json()
    assert body["status"] == "down"
    by_name = {c["name"]: c for c in body["checks"]}
    assert by_name["pool"]["status"] == "down" and by_name["pool"]["critical"] is False
    assert by_name["self"]["status"] == "down" and by_name["self"]["critical"] is True

    check_runner.reset()
    infrastructure_monitor.add_custom_dependency("pool", lambda: {"status": "unhealthy"})
    check_runner.run_once(check_runner.checks["infrastructure:pool"])
    with client:
        report = client.get("/monitoring/health")
    assert report.status_code == 200 and report.json()["status"] == "degraded"


def test_dashboard_redirects_to_the_workbench(monkeypatch):
    monkeypatch.setenv("WORKBENCH_URL", "https://workbench.example.com")
    _, client, _, _ = setup()
    with client:
        r = client.get("/monitoring/dashboard", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "https://workbench.example.com"


def test_startup_time_is_recorded_once():
    _, client, sink, _ = setup()
    with client:
        client.get("/users/1")
        client.get("/users/2")
    flush_monitoring()
    starts = sink.table("app_starts")
    assert len(starts) == 1 and starts[0]["startup_ms"] > 0 and starts[0]["init_ms"] >= 0


def test_plain_asgi_apps_are_wrapped():
    async def plain(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sink = MemorySink()
    wrapped = configure_monitoring(plain, sink=sink)
    client = TestClient(wrapped)  # no lifespan: this app does not speak it
    assert client.get("/anything").status_code == 204
    flush_monitoring()
    assert sink.table("requests")[0]["route"] == "<unmatched>"
