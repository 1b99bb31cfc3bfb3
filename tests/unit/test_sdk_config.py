"""Configuration: defaults, environment variables, one-sentence errors naming the key, and
recording calls that never raise into the host."""

from __future__ import annotations

import math

import pytest

from collectors.instrumentation import (
    MonitoringConfigError,
    configure_monitoring,
    error_monitor,
    flush_monitoring,
    health_monitor,
    infrastructure_monitor,
    monitoring_stats,
    performance_monitor,
    reset_monitoring,
    security_monitor,
    user_experience_monitor,
)
from collectors.instrumentation.config import load
from collectors.instrumentation.sinks import MemorySink


@pytest.fixture(autouse=True)
def fresh_sdk():
    reset_monitoring()
    yield
    reset_monitoring()


def test_environment_variables_set_the_defaults():
    env = {
        "SUPABASE_URL": "https://abc.supabase.co",
        "SUPABASE_API_KEY": "service-key",
        "LIVEKIT_URL": "wss://agent.livekit.cloud",
        "RAILWAY_PROJECT_ID": "p1",
        "RAILWAY_API_KEY": "rk",
        "ERROR_SAMPLE_RATE": "0.25",
        "SLOW_REQUEST_THRESHOLD": "2.5",
        "ALERT_WEBHOOK_URL": "https://hooks.example/x",
    }
    cfg = load(None, env)
    assert cfg["errors"]["error_sample_rate"] == 0.25
    assert cfg["performance"]["slow_request_threshold"] == 2.5
    assert cfg["alerts"]["webhook_url"] == "https://hooks.example/x"
    assert cfg["supabase"] == {"url": "https://abc.supabase.co", "api_key": "service-key"}
    kinds = {d["type"]: d for d in cfg["infrastructure"]["dependencies"]}
    assert kinds["livekit"]["endpoint"] == "wss://agent.livekit.cloud"
    assert kinds["railway"]["project_id"] == "p1"
    assert kinds["supabase"]["api_key"] == "service-key"


def test_explicit_config_wins_over_environment():
    cfg = load({"errors": {"error_sample_rate": 0.5}}, {"ERROR_SAMPLE_RATE": "0.25"})
    assert cfg["errors"]["error_sample_rate"] == 0.5


@pytest.mark.parametrize(
    "config, key",
    [
        ({"errors": {"error_sample_rate": 1.5}}, "errors.error_sample_rate"),
        ({"errors": {"error_sample_rate": "all"}}, "errors.error_sample_rate"),
        ({"performance": {"slow_request_threshold": 0}}, "performance.slow_request_threshold"),
        ({"helth": {}}, "helth"),
        ({"health": {"thresholds": {"cpu_usage": 180}}}, "health.thresholds.cpu_usage"),
        ({"health": {"endpoints": [{"name": "api", "url": "ftp://x"}]}}, "health.endpoints[0].url"),
        (
            {"security": {"rate_limits": {"/login": {"limit": 0, "window": 60}}}},
            "security.rate_limits./login.limit",
        ),
        ({"security": {"ip_blacklist": ["not-an-ip"]}}, "security.ip_blacklist"),
        ({"security": {"max_failed_logins": True}}, "security.max_failed_logins"),
        (
            {"infrastructure": {"dependencies": [{"type": "redis", "name": "r"}]}},
            "infrastructure.dependencies[0].type",
        ),
        ({"sink": {"type": "kafka"}}, "sink.type"),
        (
            {"experiments": {"definitions": {"x": {"weights": [0.7, 0.7]}}}},
            "experiments.definitions.x.weights",
        ),
    ],
)
def test_invalid_config_fails_with_one_sentence_naming_the_key(config, key):
    with pytest.raises(MonitoringConfigError) as info:
        configure_monitoring(None, config, sink=MemorySink())
    message = str(info.value)
    assert f"'{key}'" in message
    assert message.count(". ") == 0 and message.endswith(".")


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(MonitoringConfigError, match="did you mean 'health'"):
        configure_monitoring(None, {"helth": {}}, sink=MemorySink())


def test_bad_environment_variable_is_named(monkeypatch):
    monkeypatch.setenv("ERROR_SAMPLE_RATE", "lots")
    with pytest.raises(MonitoringConfigError, match="ERROR_SAMPLE_RATE"):
        configure_monitoring(None, sink=MemorySink())


@pytest.mark.parametrize(
    "call",
    [
        lambda: error_monitor.set_error_sample_rate(2),
        lambda: performance_monitor.set_slow_request_threshold(-1),
        lambda: performance_monitor.set_cpu_warning_threshold(101),
        lambda: health_monitor.set_threshold("gpu_usage", 50),
        lambda: health_monitor.add_health_check_endpoint("api", "not a url"),
        lambda: setattr(security_monitor, "max_failed_logins", 0),
        lambda: setattr(security_monitor, "failed_login_window", "5m"),
        lambda: security_monitor.set_rate_limit("login", 10, 60),
        lambda: infrastructure_monitor.add_custom_dependency("x", check_func=42),
        lambda: infrastructure_monitor.add_livekit_dependency("lk", endpoint="livekit.local"),
        lambda: health_monitor.add_alert_handler("not callable"),
    ],
)
def test_setters_validate_when_set(call):
    with pytest.raises(MonitoringConfigError):
        call()


def test_bad_recording_calls_are_dropped_and_counted_never_raised():
    sink = MemorySink()
    configure_monitoring(None, sink=sink)
    calls = [
        lambda: performance_monitor.track_request(
            endpoint=None, method="GET", response_time=0.1, status_code=200
        ),
        lambda: performance_monitor.track_request("/x", "GET", "fast", 200),
        lambda: performance_monitor.track_request("/x", "GET", 0.1, 999),
        lambda: error_monitor.track_error(error_type=42, message="x"),
        lambda: error_monitor.track_error("E", "x", severity="apocalyptic"),
        lambda: user_experience_monitor.record_feedback(rating=11),
        lambda: user_experience_monitor.record_feedback(rating="5"),
        lambda: user_experience_monitor.record_voice_quality("c", mos_score=7),
        lambda: user_experience_monitor.record_voice_quality("c", latency_ms=math.nan),
        lambda: user_experience_monitor.track_feature_usage(feature_name=""),
        lambda: user_experience_monitor.start_session(session_id=None),
        lambda: security_monitor.log_auth_event("login", success="yes"),
        lambda: security_monitor.log_security_event("x", severity="meh"),
        lambda: security_monitor.track_api_usage("/x", "GET", 200, response_time=-1),
    ]
    for call in calls:
        assert call() is None  # no exception escapes
    performance_monitor.track_request("/ok", "GET", 0.1, 200)
    flush_monitoring()
    assert monitoring_stats()["invalid_calls"] == len(calls)
    assert [r["route"] for r in sink.table("requests")] == ["/ok"]
    assert sum(len(v) for v in sink.rows.values()) == 1
