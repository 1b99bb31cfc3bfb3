"""/monitoring/health and /monitoring/dashboard: safe by default. Anyone sees up or down and
nothing else; the detailed report and the dashboard need the token, and secrets never
appear in them; GET and HEAD only; the app's own route at the same path wins."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.testclient import TestClient

from collectors.instrumentation import (
    configure_monitoring,
    error_monitor,
    flush_monitoring,
    infrastructure_monitor,
    performance_monitor,
    reset_monitoring,
)
from collectors.instrumentation.checks import check_runner
from collectors.instrumentation.sinks import MemorySink

TOKEN = "s3cret-monitoring-token-0123"
SECRETS = ("hunter2", "tok-abc-123", "key-xyz-789", "pg-pass-456", "db.internal.example")


@pytest.fixture(autouse=True)
def fresh_sdk(monkeypatch):
    for var in ("WORKBENCH_URL", "MONITORING_TOKEN", "SUPABASE_URL", "LIVEKIT_URL"):
        monkeypatch.delenv(var, raising=False)
    reset_monitoring()
    yield
    reset_monitoring()


def leaky_config(**routes) -> dict:
    """Dependencies whose URLs carry credentials and query secrets, and a custom check that
    raises with a connection string in its message."""
    return {
        "routes": routes,
        "infrastructure": {
            "dependencies": [
                {
                    "type": "http",
                    "name": "billing",
                    "endpoint": "http://admin:hunter2@127.0.0.1:9/health?token=tok-abc-123",
                    "timeout": 0.2,
                },
                {
                    "type": "http",
                    "name": "search",
                    "endpoint": "http://127.0.0.1:9/h?api_key=key-xyz-789",
                    "timeout": 0.2,
                },
            ]
        },
    }


def app_with_checks(config: dict) -> tuple[FastAPI, TestClient]:
    app = FastAPI()

    @app.get("/calls/{call_id}")
    def call(call_id: str):
        return {}

    configure_monitoring(app, config, sink=MemorySink())

    def pool():
        raise ConnectionError(
            "could not connect to postgresql://app:pg-pass-456@db.internal.example:5432/app"
        )

    infrastructure_monitor.add_custom_dependency("pool", pool)
    check_runner.stop()
    for check in list(check_runner.checks.values()):
        check_runner.run_once(check)
    return app, TestClient(app)


def elements(page: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every element of an HTML page with its attributes, as a browser would parse them."""
    found = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Collect().feed(page)
    return found


def basic(token: str, user: str = "me") -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


def test_anyone_sees_up_or_down_and_nothing_else():
    _, client = app_with_checks(leaky_config(token=TOKEN))
    r = client.get("/monitoring/health")
    assert r.status_code == 200 and r.json() == {"status": "up"}
    assert r.headers["cache-control"] == "no-store"
    for secret in SECRETS:
        assert secret not in r.text
    wrong = client.get("/monitoring/health", headers={"authorization": "Bearer wrong-token-000"})
    assert wrong.json() == {"status": "up"}


def test_the_detailed_report_needs_the_token_and_shows_no_secret():
    _, client = app_with_checks(leaky_config(token=TOKEN))
    for headers in ({"authorization": f"Bearer {TOKEN}"}, basic(TOKEN)):
        r = client.get("/monitoring/health", headers=headers)
        assert r.status_code == 200
        report = r.json()
        by_name = {c["name"]: c for c in report["checks"]}
        assert {"billing", "search", "pool", "host"} <= set(by_name)
        assert by_name["pool"]["status"] == "down" and by_name["pool"]["error"] == "ConnectionError"
        assert by_name["billing"]["endpoint"] == "http://***@127.0.0.1:9/health?token=***"
        assert by_name["search"]["endpoint"] == "http://127.0.0.1:9/h?api_key=***"
        for secret in SECRETS:
            assert secret not in r.text, secret


def test_probe_rows_and_alerts_carry_no_secret():
    sink = MemorySink()
    alerts = []
    configure_monitoring(None, leaky_config(), sink=sink)
    infrastructure_monitor.add_alert_handler(alerts.append)
    infrastructure_monitor.add_custom_dependency(
        "pool", lambda: (_ for _ in ()).throw(ConnectionError("dsn postgresql://a:hunter2@h/db"))
    )
    check_runner.stop()
    for check in list(check_runner.checks.values()):
        check_runner.run_once(check)
    assert flush_monitoring()
    text = json.dumps(sink.table("probe_results")) + " ".join(str(a) for a in alerts)
    assert "pool" in text
    for secret in SECRETS:
        assert secret not in text, secret


def test_only_get_and_head():
    _, client = app_with_checks({"routes": {"token": TOKEN}})
    head = client.head("/monitoring/health")
    assert head.status_code == 200 and head.content == b""
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        r = client.request(method, "/monitoring/health")
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
        r = client.request(method, "/monitoring/dashboard")
        assert r.status_code == 405


def test_the_apps_own_route_at_the_same_path_wins_with_its_own_auth():
    app = FastAPI()

    def admin_only():
        raise HTTPException(401, "admins only")

    @app.get("/monitoring/health", dependencies=[Depends(admin_only)])
    def own_health():
        return {"mine": True}

    configure_monitoring(app, {"routes": {"token": TOKEN}}, sink=MemorySink())
    client = TestClient(app)
    r = client.get("/monitoring/health", headers={"authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 401 and r.json() == {"detail": "admins only"}
    assert client.get("/monitoring/dashboard").status_code == 401  # ours: the token's

    reset_monitoring()
    app = FastAPI()
    app.get("/monitoring/health")(lambda: {"mine": True})
    configure_monitoring(app, {"routes": {"override_app_routes": True}}, sink=MemorySink())
    assert TestClient(app).get("/monitoring/health").json() == {"status": "up"}


def test_the_routes_can_be_turned_off():
    app = FastAPI()
    configure_monitoring(app, {"routes": {"enabled": False}}, sink=MemorySink())
    client = TestClient(app)
    assert client.get("/monitoring/health").status_code == 404


def test_without_a_token_the_dashboard_says_how_to_turn_it_on():
    _, client = app_with_checks({})
    r = client.get("/monitoring/dashboard")
    assert r.status_code == 403 and "MONITORING_TOKEN" in r.text


def test_the_dashboard_asks_a_browser_for_the_token():
    _, client = app_with_checks({"routes": {"token": TOKEN}})
    r = client.get("/monitoring/dashboard")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic ")
    assert client.get("/monitoring/dashboard", headers=basic("not-the-token")).status_code == 401


HOSTILE = '/x/<script>alert(1)</script>/"onmouseover="x/\u202egnp.exe'


def test_the_dashboard_shows_live_health_rates_latencies_stages_and_errors_escaped(monkeypatch):
    monkeypatch.setenv("MONITORING_TOKEN", TOKEN)
    app = FastAPI()

    @app.get("/calls/{call_id}")
    def call(call_id: str):
        return {}

    @app.get(HOSTILE)
    def hostile():
        raise RuntimeError('<img src=x onerror="alert(2)"> failed')

    configure_monitoring(app, sink=MemorySink())
    client = TestClient(app, raise_server_exceptions=False)
    with client:
        for i in range(40):
            client.get(f"/calls/c{i}")
        client.get(HOSTILE.replace("\u202e", "%E2%80%AE"))
        performance_monitor.record_voice_turn("c1", e2e_ms=850.0, llm_ttft_ms=300.0)
        error_monitor.track_error("PaymentError", "card <b>declined</b>", severity="warning")
        assert flush_monitoring()
        r = client.get("/monitoring/dashboard", headers=basic(TOKEN))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script" not in csp
    page = r.text
    tags = elements(page)
    assert {t for t, _ in tags} <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "div", "span",
        "small", "table", "thead", "tbody", "tr", "th", "td", "code", "svg", "rect",
    }  # fmt: skip
    attributes = {a for _, attrs in tags for a, _ in attrs}
    assert not attributes & {"src", "href", "action", "style"} and not any(
        a.startswith("on") for a in attributes
    )  # no asset, no link, no handler
    assert 'http-equiv="refresh"' in page  # refreshes on its own
    assert "/calls/{call_id}" in page and "e2e_ms" in page and "llm_ttft_ms" in page
    assert "PaymentError" in page and "card &lt;b&gt;declined&lt;/b&gt;" in page
    assert "&lt;script&gt;" in page and "\u202e" not in page and "\\u202e" in page
    data = client.get("/monitoring/dashboard?format=json", headers=basic(TOKEN)).json()
    routes = {(r["method"], r["route"]): r for r in data["traffic"]["routes"]}
    calls = routes[("GET", "/calls/{call_id}")]
    assert calls["requests"] == 40 and calls["p50_ms"] > 0 and calls["p99_ms"] >= calls["p50_ms"]
    assert routes[("GET", HOSTILE)]["error_rate"] == 1.0
    assert {s["stage"] for s in data["traffic"]["stages"]} == {"e2e_ms", "llm_ttft_ms"}
    assert {g["error_type"] for g in data["traffic"]["error_groups"]} == {
        "RuntimeError",
        "PaymentError",
    }
    assert data["health"]["status"] in ("healthy", "degraded")


def test_with_workbench_url_the_dashboard_redirects_there(monkeypatch):
    monkeypatch.setenv("WORKBENCH_URL", "https://workbench.example.com")
    _, client = app_with_checks({})
    r = client.get("/monitoring/dashboard", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "https://workbench.example.com"
