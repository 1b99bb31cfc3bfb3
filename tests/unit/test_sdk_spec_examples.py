"""Every example of the specification (monitoring-system-readme.md) runs unchanged, except for
the import path `src.monitoring.X` -> `collectors.instrumentation.X`, and does what it says."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from collectors.instrumentation import flush_monitoring, monitoring_stats, reset_monitoring
from collectors.instrumentation.sinks import MemorySink


@pytest.fixture(autouse=True)
def fresh_sdk(monkeypatch, tmp_path):
    for var in (
        "SUPABASE_URL",
        "SUPABASE_API_KEY",
        "LIVEKIT_URL",
        "RAILWAY_PROJECT_ID",
        "RAILWAY_API_KEY",
        "ALERT_WEBHOOK_URL",
        "ERROR_SAMPLE_RATE",
        "SLOW_REQUEST_THRESHOLD",
        "WORKBENCH_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # the default spool directory lands in a scratch folder
    reset_monitoring()
    yield
    reset_monitoring()


def test_configuration_example_adds_middleware_and_spools_by_default(tmp_path):
    from fastapi import FastAPI

    from collectors.instrumentation.integration import configure_monitoring

    app = FastAPI()

    # Configure monitoring
    configure_monitoring(app)

    @app.get("/hello")
    def hello():
        return {"ok": True}

    with TestClient(app) as client:
        assert client.get("/hello").status_code == 200
        assert client.get("/monitoring/health").status_code == 200
    flush_monitoring()
    assert monitoring_stats()["sink"] == "SpoolSink"
    assert list((tmp_path / "data" / "spool" / "requests").iterdir())


def test_custom_configuration_example_is_accepted_as_written():
    from collectors.instrumentation.health import health_monitor
    from collectors.instrumentation.integration import configure_monitoring
    from collectors.instrumentation.security import security_monitor

    app = FastAPI()
    config = {
        "health": {
            "endpoints": [
                {
                    "name": "api",
                    "url": "https://api.example.com/health",
                    "method": "GET",
                    "expected_status": 200,
                    "timeout": 5.0,
                    "check_interval": 60,
                }
            ],
            "thresholds": {"cpu_usage": 80, "memory_usage": 80, "disk_usage": 80},
        },
        "performance": {
            "slow_request_threshold": 1.0,
            "memory_warning_threshold": 80,
            "cpu_warning_threshold": 80,
        },
        "errors": {
            "error_sample_rate": 0.1,
            "ignored_errors": ["NotFoundError", "ValidationError"],
        },
        "security": {
            "max_failed_logins": 5,
            "failed_login_window": 300,
            "rate_limits": {"/api/auth/login": {"limit": 10, "window": 60}},
            "ip_blacklist": ["192.168.1.1"],
            "ip_whitelist": ["192.168.1.2"],
        },
        "infrastructure": {
            "dependencies": [
                {
                    "type": "http",
                    "name": "api",
                    "endpoint": "https://api.example.com/health",
                    "method": "GET",
                    "expected_status": 200,
                    "timeout": 5.0,
                    "check_interval": 60,
                }
            ]
        },
    }

    configure_monitoring(app, config, sink=MemorySink())
    assert security_monitor.rate_limits["/api/auth/login"] == (10, 60.0)
    assert "192.168.1.1" in security_monitor.blacklist
    names = {c["name"] for c in health_monitor.status()["checks"]}
    assert {"api", "host"} <= names


def test_alert_handler_example_receives_alerts():
    from collectors.instrumentation.health import health_monitor

    received = []

    def my_alert_handler(alert):
        # Handle the alert
        print(f"Alert: {alert}")
        received.append(alert)

    health_monitor.add_alert_handler(my_alert_handler)
    from collectors.instrumentation.integration import configure_monitoring

    configure_monitoring(None, {"errors": {"critical_errors": ["PaymentError"]}}, sink=MemorySink())
    from collectors.instrumentation.errors import error_monitor

    error_monitor.track_error(error_type="PaymentError", message="card declined")
    flush_monitoring()
    assert [a.title for a in received] == ["Critical error: PaymentError"]


def test_api_reference_examples_run_and_record_rows():
    from collectors.instrumentation.integration import configure_monitoring

    sink = MemorySink()
    configure_monitoring(None, sink=sink)

    def my_alert_handler(alert):
        pass

    # --- Health Monitoring
    from collectors.instrumentation.health import health_monitor

    # Add a health check endpoint
    health_monitor.add_health_check_endpoint(
        name="api",
        endpoint="https://api.example.com/health",
        method="GET",
        headers={},
        expected_status=200,
        timeout=5.0,
        check_interval=60,
    )

    # Set a threshold
    health_monitor.set_threshold("cpu_usage", 80)

    # Add an alert handler
    health_monitor.add_alert_handler(my_alert_handler)

    # --- Performance Monitoring
    from collectors.instrumentation.performance import performance_monitor

    # Set thresholds
    performance_monitor.set_slow_request_threshold(1.0)
    performance_monitor.set_memory_warning_threshold(80)
    performance_monitor.set_cpu_warning_threshold(80)

    # Track a request
    performance_monitor.track_request(
        endpoint="/api/users", method="GET", response_time=0.5, status_code=200
    )

    # --- Error Monitoring
    from collectors.instrumentation.errors import error_monitor

    # Configure error monitoring
    error_monitor.set_error_sample_rate(0.1)
    error_monitor.add_ignored_error("NotFoundError")

    # Track an error
    error_monitor.track_error(
        error_type="ValidationError",
        message="Invalid input",
        stack_trace="...",
        request_path="/api/users",
        request_method="POST",
    )

    # --- User Experience Monitoring
    from collectors.instrumentation.user_experience import user_experience_monitor

    # Track user session
    session = user_experience_monitor.start_session(session_id="session_123", user_id="user_123")

    # Record feedback
    user_experience_monitor.record_feedback(
        rating=5,
        category="voice_quality",
        comment="Great voice quality!",
        user_id="user_123",
        session_id="session_123",
    )

    # Record voice quality
    user_experience_monitor.record_voice_quality(
        conversation_id="conv_123",
        latency_ms=50,
        packet_loss=0.1,
        jitter_ms=5,
        audio_level=0.8,
        noise_level=0.1,
        mos_score=4.5,
    )

    # Track feature usage
    user_experience_monitor.track_feature_usage(
        feature_name="voice_command", user_id="user_123", session_id="session_123", duration=5.0
    )

    # --- Security Monitoring
    from collectors.instrumentation.security import security_monitor

    # Configure security monitoring
    security_monitor.max_failed_logins = 5
    security_monitor.failed_login_window = 300

    # Set rate limits
    security_monitor.set_rate_limit(path="/api/auth/login", limit=10, window=60)

    # Log security events
    security_monitor.log_security_event(
        event_type="login_attempt", severity="info", user_id="user_123", ip_address="192.168.1.1"
    )

    # Log authentication events
    security_monitor.log_auth_event(
        event_type="login", success=True, user_id="user_123", ip_address="192.168.1.1"
    )

    # Track API usage
    security_monitor.track_api_usage(
        endpoint="/api/users",
        method="GET",
        status_code=200,
        response_time=0.5,
        user_id="user_123",
        ip_address="192.168.1.1",
    )

    # --- Infrastructure Monitoring
    from collectors.instrumentation.infrastructure import infrastructure_monitor

    # Add HTTP dependency
    infrastructure_monitor.add_http_dependency(
        name="api",
        endpoint="https://api.example.com/health",
        method="GET",
        expected_status=200,
        timeout=5.0,
        check_interval=60,
    )

    # Add Supabase dependency
    infrastructure_monitor.add_supabase_dependency(
        name="supabase",
        endpoint="https://your-supabase-url.supabase.co",
        api_key="your-api-key",
        check_interval=60,
    )

    # Add LiveKit dependency
    infrastructure_monitor.add_livekit_dependency(
        name="livekit", endpoint="https://your-livekit-url.livekit.cloud", check_interval=60
    )

    # Add Railway dependency
    infrastructure_monitor.add_railway_dependency(
        name="railway-deployment",
        project_id="your-project-id",
        api_key="your-api-key",
        check_interval=300,
    )

    # Add custom dependency
    infrastructure_monitor.add_custom_dependency(
        name="database-connection-pool",
        check_func=lambda: {
            "status": "healthy",
            "details": {"active_connections": 0, "idle_connections": 0, "max_connections": 20},
        },
        check_interval=30,
    )

    flush_monitoring()
    assert session.session_id == "session_123"
    assert monitoring_stats()["invalid_calls"] == 0
    assert [r["route"] for r in sink.table("requests")] == ["/api/users", "/api/users"]
    assert sink.table("requests")[1]["ip"] == "192.168.1.1"
    assert sink.table("feedback")[0]["rating"] == 5
    vq = sink.table("voice_quality")[0]
    assert (vq["call_id"], vq["packet_loss_pct"], vq["mos_reported"]) == ("conv_123", 0.1, 4.5)
    assert sink.table("feature_usage")[0]["duration_s"] == 5.0
    assert sink.table("calls")[0]["call_id"] == "session_123"
    assert sink.table("auth_events")[0]["success"] is True
    assert sink.table("security_events")[0]["event_type"] == "login_attempt"
    # ValidationError with sample rate 0.1 is either kept (with its rate) or counted as sampled out
    errors = sink.table("errors")
    assert len(errors) + monitoring_stats()["errors_sampled_out"] == 1
    assert all(e["sample_rate"] == 0.1 for e in errors)
    from collectors.instrumentation.checks import check_runner

    custom = check_runner.checks["infrastructure:database-connection-pool"]
    assert check_runner.run_once(custom).status == "up"
    assert {c.kind for c in check_runner.checks.values()} >= {
        "http",
        "supabase",
        "livekit",
        "railway",
        "custom",
    }
