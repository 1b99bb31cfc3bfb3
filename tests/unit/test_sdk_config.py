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
        lambda: health_monitor.add_health_check_endpoint("api", "https://a.example", "FETCH"),
        lambda: health_monitor.add_health_check_endpoint("api", "https://a.example", headers="x"),
        lambda: health_monitor.add_health_check_endpoint("api", "http://exa mple/h"),
        lambda: infrastructure_monitor.add_http_dependency("api", "http://"),
        lambda: infrastructure_monitor.add_http_dependency("api", "https://a.example", "FETCH"),
        lambda: infrastructure_monitor.add_supabase_dependency("sb", "https://a.example", 42),
        lambda: infrastructure_monitor.add_railway_dependency("rw", "p", "k", token_type="team"),
        lambda: performance_monitor.set_slow_request_threshold(math.inf),
        lambda: security_monitor.add_to_blacklist(None),
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
        result = call()  # no exception escapes
        assert result is None or result.recorded is False  # start_session: a detached session
    performance_monitor.track_request("/ok", "GET", 0.1, 200)
    flush_monitoring()
    assert monitoring_stats()["invalid_calls"] == len(calls)
    assert [r["route"] for r in sink.table("requests")] == ["/ok"]
    assert sum(len(v) for v in sink.rows.values()) == 1


def dep(**kw):
    return {"infrastructure": {"dependencies": [{"type": "http", "name": "api", **kw}]}}


@pytest.mark.parametrize(
    "config, key",
    [
        (dep(endpoint="https://a.example/h", retries=3), "infrastructure.dependencies[0].retries"),
        (dep(endpoint="https://a.example/h", headers="x-token: 1"), "infrastructure.dependencies[0].headers"),
        (dep(endpoint="https://a.example/h", method="FETCH"), "infrastructure.dependencies[0].method"),
        (dep(endpoint="http://"), "infrastructure.dependencies[0].endpoint"),
        (dep(endpoint="http://exa mple/h"), "infrastructure.dependencies[0].endpoint"),
        (dep(endpoint="https://a.example:99999/h"), "infrastructure.dependencies[0].endpoint"),
        (
            {"infrastructure": {"dependencies": [{"type": "custom", "name": "c", "check_func": print, "timeout": 1}]}},
            "infrastructure.dependencies[0].timeout",
        ),
        (
            {"health": {"endpoints": [{"name": "a", "url": "https://a.example", "headers": {"x": 1}}]}},
            "health.endpoints[0].headers.x",
        ),
        ({"health": {"endpoints": [{"name": "a", "url": "https://a.example", "method": "FETCH"}]}}, "health.endpoints[0].method"),
        ({"health": {"thresholds": {"gpu_usage": 50}}}, "health.thresholds.gpu_usage"),
        ({"performance": {"slow_request_threshold": float("inf")}}, "performance.slow_request_threshold"),
        ({"performance": {"cpu_warning_threshold": float("nan")}}, "performance.cpu_warning_threshold"),
        ({"security": {"failed_login_window": float("inf")}}, "security.failed_login_window"),
        ({"security": {"login_paths": ["login"]}}, "security.login_paths"),
        ({"alerts": {"webhook_url": "http://"}}, "alerts.webhook_url"),
        ({"dashboard_url": "not a url"}, "dashboard_url"),
        ({"routes": {"token": "short"}}, "routes.token"),
        ({"routes": {"tokn": "x" * 20}}, "routes.tokn"),
        ({"sink": {"batch_size": 10**9}}, "sink.batch_size"),
        ({"sink": {"shutdown_timeout": 0}}, "sink.shutdown_timeout"),
        ({"experiments": {"definitions": {"x": {"variants": "ab"}}}}, "experiments.definitions.x.variants"),
        (
            {"experiments": {"definitions": {"x": {"weights": [float("nan"), 1.0]}}}},
            "experiments.definitions.x.weights",
        ),
        ({"experiments": {"definitions": {"x": {"hash_version": True}}}}, "experiments.definitions.x.hash_version"),
        ({"experiments": {"definitions": {"x": {"varients": ["a", "b"]}}}}, "experiments.definitions.x.varients"),
    ],
)  # fmt: skip
def test_every_key_is_validated_in_one_sentence_naming_it(config, key):
    with pytest.raises(MonitoringConfigError) as info:
        configure_monitoring(None, config, sink=MemorySink())
    message = str(info.value)
    assert f"'{key}'" in message, message
    assert message.count(". ") == 0 and message.endswith("."), message
    assert len(message) < 300, message


@pytest.mark.parametrize(
    "variable, value",
    [
        ("SUPABASE_URL", "abc.supabase.co"),
        ("SUPABASE_URL", "https://"),
        ("LIVEKIT_URL", "agent.livekit.cloud"),
        ("ALERT_WEBHOOK_URL", "http://exa mple/h"),
        ("WORKBENCH_URL", "workbench"),
        ("MONITORING_TOKEN", "short"),
        ("SLOW_REQUEST_THRESHOLD", "inf"),
        ("ERROR_SAMPLE_RATE", "nan"),
    ],
)
def test_a_bad_environment_variable_is_named_not_the_key_it_feeds(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(MonitoringConfigError) as info:
        load(None)
    message = str(info.value)
    assert message.startswith(f"Environment variable {variable} must be"), message
    assert "config key" not in message and message.count(". ") == 0


def test_an_environment_variable_the_config_overrides_is_not_used(monkeypatch):
    monkeypatch.setenv("WORKBENCH_URL", "not a url")
    cfg = load({"dashboard_url": "https://wb.example.com"})
    assert cfg["dashboard_url"] == "https://wb.example.com"


def test_error_messages_never_carry_a_huge_or_secret_value():
    with pytest.raises(MonitoringConfigError) as info:
        load({"alerts": {"webhook_url": "https://user:hunter2@hooks.example/" + "x" * 10_000_000}})
    assert len(str(info.value)) < 300 and "hunter2" not in str(info.value)
