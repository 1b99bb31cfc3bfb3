"""The configuration dictionary of configure_monitoring: defaults, environment, validation.

The keys of the specification (health, performance, errors, security, infrastructure) keep
their names and meanings; the SDK adds `sink`, `alerts`, `experiments` and a few top-level
keys. Precedence: an explicit key in the dictionary wins over an environment variable, which
wins over the default. Any invalid value fails with one sentence naming the key.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Mapping
from typing import Any


class MonitoringConfigError(ValueError):
    """The configuration has a wrong key or value; the message names the key to fix."""


DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "service": None,  # defaults to RAILWAY_SERVICE_NAME
    "release": None,  # defaults to RAILWAY_GIT_COMMIT_SHA / RAILWAY_DEPLOYMENT_ID
    "dashboard_url": None,  # defaults to WORKBENCH_URL
    "health": {
        "endpoints": [],
        "thresholds": {"cpu_usage": 80.0, "memory_usage": 80.0, "disk_usage": 80.0},
        "resource_interval": 60.0,  # seconds between psutil samples
        "disk_path": "/",
    },
    "performance": {
        "slow_request_threshold": 1.0,  # seconds
        "memory_warning_threshold": 80.0,  # percent
        "cpu_warning_threshold": 80.0,  # percent
    },
    "errors": {
        "error_sample_rate": 1.0,
        "ignored_errors": [],
        "critical_errors": [],
    },
    "security": {
        "max_failed_logins": 5,
        "failed_login_window": 300,
        "rate_limits": {},
        "ip_blacklist": [],
        "ip_whitelist": [],
        "enforce": False,  # True: answer 403 to blacklisted IPs and 429 over a rate limit
        "trust_forwarded_for": False,  # True behind Railway's proxy: client IP from X-Forwarded-For
        "login_paths": ["/login", "/api/login", "/auth/login", "/api/auth/login"],
    },
    "infrastructure": {"dependencies": []},
    "sink": {
        "type": "auto",  # auto|supabase|spool|memory|none
        "spool_dir": "data/spool",
        "spool_max_bytes": 512 * 1024 * 1024,
        "spool_file_bytes": 8 * 1024 * 1024,
        "spool_rotate_seconds": 60.0,
        "batch_size": 500,
        "flush_interval": 1.0,
        "max_queue": 10_000,
        "max_outbox": 20_000,
        "supabase_timeout": 10.0,
    },
    "alerts": {
        "webhook_url": None,
        "webhook_timeout": 5.0,
        "webhook_retries": 3,
        "cooldown": 300.0,  # seconds between repeated alerts with the same key
    },
    "experiments": {"definitions": {}, "refresh_interval": 60.0, "source": "auto"},
}

_SINK_TYPES = ("auto", "supabase", "spool", "memory", "none")
_DEPENDENCY_TYPES = ("http", "supabase", "livekit", "railway", "custom")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _fail(key: str, expected: str, value: Any) -> MonitoringConfigError:
    return MonitoringConfigError(
        f"Monitoring config key '{key}' must be {expected}, got {value!r}."
    )


def number(
    key: str, value: Any, lo: float | None = None, hi: float | None = None, positive: bool = False
) -> float:
    """`value` as a float within bounds, or MonitoringConfigError naming `key`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(key, "a number", value)
    v = float(value)
    if v != v:  # NaN
        raise _fail(key, "a number", value)
    if positive and v <= 0:
        raise _fail(key, "greater than 0", value)
    if lo is not None and v < lo or hi is not None and v > hi:
        raise _fail(key, f"between {lo:g} and {hi:g}", value)
    return v


def integer(key: str, value: Any, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise _fail(key, f"an integer >= {lo}", value)
    return value


def text(key: str, value: Any, allow_none: bool = False) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(key, "a non-empty string", value)
    return value


def url(key: str, value: Any, allow_none: bool = False) -> str | None:
    v = text(key, value, allow_none)
    if v is not None and not (v.startswith("http://") or v.startswith("https://")):
        raise _fail(key, "an http:// or https:// URL", value)
    return v


def flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(key, "true or false", value)
    return value


def string_list(key: str, value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise _fail(key, "a list of strings", value)
    return list(value)


def _check_keys(key: str, given: Mapping[str, Any], allowed: Mapping[str, Any]) -> None:
    if not isinstance(given, Mapping):
        raise _fail(key or "config", "a dictionary", given)
    for k in given:
        if k not in allowed:
            near = difflib.get_close_matches(str(k), list(allowed), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            name = f"{key}.{k}" if key else str(k)
            raise MonitoringConfigError(f"Unknown monitoring config key '{name}'{hint}.")


def _merge(base: dict[str, Any], over: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    _check_keys(prefix, over, base)
    out = copy.deepcopy(base)
    for k, v in over.items():
        path = f"{prefix}.{k}" if prefix else k
        # Free-form mappings (rate limits, experiment definitions) are replaced, not merged.
        if isinstance(base.get(k), dict) and base[k] and k not in ("rate_limits", "definitions"):
            out[k] = _merge(base[k], v, path)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """Defaults taken from the environment variables the specification names."""
    out: dict[str, Any] = {}

    def env_number(name: str, key: str, lo: float | None, hi: float | None) -> float | None:
        raw = env.get(name)
        if raw is None or raw == "":
            return None
        try:
            value = float(raw)
        except ValueError:
            raise MonitoringConfigError(
                f"Environment variable {name} must be a number, got {raw!r}."
            ) from None
        try:
            return number(key, value, lo, hi, positive=lo is None)
        except MonitoringConfigError:
            raise MonitoringConfigError(
                f"Environment variable {name} must be "
                + (f"between {lo:g} and {hi:g}" if lo is not None else "greater than 0")
                + f", got {raw!r}."
            ) from None

    rate = env_number("ERROR_SAMPLE_RATE", "errors.error_sample_rate", 0.0, 1.0)
    if rate is not None:
        out.setdefault("errors", {})["error_sample_rate"] = rate
    slow = env_number("SLOW_REQUEST_THRESHOLD", "performance.slow_request_threshold", None, None)
    if slow is not None:
        out.setdefault("performance", {})["slow_request_threshold"] = slow
    if env.get("ALERT_WEBHOOK_URL"):
        out.setdefault("alerts", {})["webhook_url"] = env["ALERT_WEBHOOK_URL"]
    if env.get("WORKBENCH_URL"):
        out["dashboard_url"] = env["WORKBENCH_URL"]
    release = env.get("RAILWAY_GIT_COMMIT_SHA") or env.get("RAILWAY_DEPLOYMENT_ID")
    if release:
        out["release"] = release[:40]
    if env.get("RAILWAY_SERVICE_NAME"):
        out["service"] = env["RAILWAY_SERVICE_NAME"]
    return out


def _env_dependencies(env: Mapping[str, str], declared: list[dict[str, Any]]) -> list[dict]:
    """Dependencies implied by SUPABASE_URL, LIVEKIT_URL and RAILWAY_PROJECT_ID."""
    types = {d.get("type") for d in declared}
    deps: list[dict[str, Any]] = []
    if env.get("SUPABASE_URL") and "supabase" not in types:
        deps.append(
            {
                "type": "supabase",
                "name": "supabase",
                "endpoint": env["SUPABASE_URL"],
                "api_key": env.get("SUPABASE_API_KEY"),
            }
        )
    if env.get("LIVEKIT_URL") and "livekit" not in types:
        deps.append({"type": "livekit", "name": "livekit", "endpoint": env["LIVEKIT_URL"]})
    if env.get("RAILWAY_PROJECT_ID") and env.get("RAILWAY_API_KEY") and "railway" not in types:
        deps.append(
            {
                "type": "railway",
                "name": "railway-deployment",
                "project_id": env["RAILWAY_PROJECT_ID"],
                "api_key": env["RAILWAY_API_KEY"],
                "check_interval": 300,
            }
        )
    return deps


def _validate_endpoint(key: str, ep: Any) -> dict[str, Any]:
    allowed = {
        "name": None,
        "url": None,
        "method": None,
        "headers": None,
        "expected_status": None,
        "timeout": None,
        "check_interval": None,
        "critical": None,
    }
    _check_keys(key, ep, allowed)
    text(f"{key}.name", ep.get("name"))
    url(f"{key}.url", ep.get("url"))
    out = {
        "name": ep["name"],
        "endpoint": ep["url"],
        "method": str(ep.get("method", "GET")).upper(),
        "headers": ep.get("headers") or {},
        "expected_status": integer(f"{key}.expected_status", ep.get("expected_status", 200), 100),
        "timeout": number(f"{key}.timeout", ep.get("timeout", 5.0), positive=True),
        "check_interval": number(
            f"{key}.check_interval", ep.get("check_interval", 60), positive=True
        ),
        "critical": flag(f"{key}.critical", ep.get("critical", True)),
    }
    if out["method"] not in _METHODS:
        raise _fail(f"{key}.method", "an HTTP method", ep.get("method"))
    if not isinstance(out["headers"], Mapping):
        raise _fail(f"{key}.headers", "a dictionary", ep.get("headers"))
    return out


def _validate_dependency(key: str, dep: Any) -> dict[str, Any]:
    if not isinstance(dep, Mapping):
        raise _fail(key, "a dictionary", dep)
    kind = dep.get("type")
    if kind not in _DEPENDENCY_TYPES:
        raise _fail(f"{key}.type", "one of " + ", ".join(_DEPENDENCY_TYPES), kind)
    text(f"{key}.name", dep.get("name"))
    out = dict(dep)
    out["check_interval"] = number(
        f"{key}.check_interval", dep.get("check_interval", 60), positive=True
    )
    if "timeout" in dep:
        out["timeout"] = number(f"{key}.timeout", dep["timeout"], positive=True)
    if kind in ("http", "supabase"):
        url(f"{key}.endpoint", dep.get("endpoint"))
    if kind == "livekit":
        ep = text(f"{key}.endpoint", dep.get("endpoint"))
        if not ep.startswith(("http://", "https://", "ws://", "wss://")):
            raise _fail(f"{key}.endpoint", "an http(s):// or ws(s):// URL", ep)
    if kind == "http":
        out["expected_status"] = integer(
            f"{key}.expected_status", dep.get("expected_status", 200), 100
        )
    if kind == "railway":
        text(f"{key}.project_id", dep.get("project_id"))
        text(f"{key}.api_key", dep.get("api_key"))
    if kind == "custom" and not callable(dep.get("check_func")):
        raise _fail(f"{key}.check_func", "a callable", dep.get("check_func"))
    return out


def validate(cfg: dict[str, Any]) -> dict[str, Any]:
    """Check every value of a merged configuration; returns it normalised."""
    flag("enabled", cfg["enabled"])
    text("service", cfg["service"], allow_none=True)
    text("release", cfg["release"], allow_none=True)
    url("dashboard_url", cfg["dashboard_url"], allow_none=True)

    h = cfg["health"]
    if not isinstance(h["endpoints"], list):
        raise _fail("health.endpoints", "a list", h["endpoints"])
    h["endpoints"] = [
        _validate_endpoint(f"health.endpoints[{i}]", ep) for i, ep in enumerate(h["endpoints"])
    ]
    if not isinstance(h["thresholds"], Mapping):
        raise _fail("health.thresholds", "a dictionary", h["thresholds"])
    for name, v in h["thresholds"].items():
        number(f"health.thresholds.{name}", v, 0, 100)
    number("health.resource_interval", h["resource_interval"], positive=True)
    text("health.disk_path", h["disk_path"])

    p = cfg["performance"]
    number("performance.slow_request_threshold", p["slow_request_threshold"], positive=True)
    number("performance.memory_warning_threshold", p["memory_warning_threshold"], 0, 100)
    number("performance.cpu_warning_threshold", p["cpu_warning_threshold"], 0, 100)

    e = cfg["errors"]
    number("errors.error_sample_rate", e["error_sample_rate"], 0, 1)
    string_list("errors.ignored_errors", e["ignored_errors"])
    string_list("errors.critical_errors", e["critical_errors"])

    s = cfg["security"]
    integer("security.max_failed_logins", s["max_failed_logins"], 1)
    number("security.failed_login_window", s["failed_login_window"], positive=True)
    if not isinstance(s["rate_limits"], Mapping):
        raise _fail(
            "security.rate_limits", "a dictionary of path -> {limit, window}", s["rate_limits"]
        )
    for path, rl in s["rate_limits"].items():
        key = f"security.rate_limits.{path}"
        if not isinstance(path, str) or not path.startswith("/"):
            raise _fail("security.rate_limits", "keyed by paths starting with '/'", path)
        _check_keys(key, rl, {"limit": None, "window": None})
        integer(f"{key}.limit", rl.get("limit"), 1)
        number(f"{key}.window", rl.get("window"), positive=True)
    import ipaddress

    for lk in ("ip_blacklist", "ip_whitelist"):
        for ip in string_list(f"security.{lk}", s[lk]):
            try:
                ipaddress.ip_network(ip, strict=False)
            except ValueError:
                raise _fail(
                    f"security.{lk}", "a list of IP addresses or CIDR networks", ip
                ) from None
    flag("security.enforce", s["enforce"])
    flag("security.trust_forwarded_for", s["trust_forwarded_for"])
    string_list("security.login_paths", s["login_paths"])

    deps = cfg["infrastructure"]["dependencies"]
    if not isinstance(deps, list):
        raise _fail("infrastructure.dependencies", "a list", deps)
    cfg["infrastructure"]["dependencies"] = [
        _validate_dependency(f"infrastructure.dependencies[{i}]", d) for i, d in enumerate(deps)
    ]

    k = cfg["sink"]
    if k["type"] not in _SINK_TYPES:
        raise _fail("sink.type", "one of " + ", ".join(_SINK_TYPES), k["type"])
    text("sink.spool_dir", k["spool_dir"])
    for name in ("spool_max_bytes", "spool_file_bytes", "batch_size", "max_queue", "max_outbox"):
        integer(f"sink.{name}", k[name], 1)
    for name in ("spool_rotate_seconds", "flush_interval", "supabase_timeout"):
        number(f"sink.{name}", k[name], positive=True)

    a = cfg["alerts"]
    url("alerts.webhook_url", a["webhook_url"], allow_none=True)
    number("alerts.webhook_timeout", a["webhook_timeout"], positive=True)
    integer("alerts.webhook_retries", a["webhook_retries"], 0)
    number("alerts.cooldown", a["cooldown"], 0)

    x = cfg["experiments"]
    if not isinstance(x["definitions"], Mapping):
        raise _fail(
            "experiments.definitions", "a dictionary of key -> definition", x["definitions"]
        )
    number("experiments.refresh_interval", x["refresh_interval"], positive=True)
    if x["source"] not in ("auto", "supabase", "local"):
        raise _fail("experiments.source", "one of auto, supabase, local", x["source"])
    return cfg


def load(config: Mapping[str, Any] | None, env: Mapping[str, str] | None = None) -> dict:
    """The effective configuration: defaults < environment < `config`; validated."""
    env = os.environ if env is None else env
    if config is not None and not isinstance(config, Mapping):
        raise MonitoringConfigError(
            f"The monitoring config must be a dictionary, got {type(config).__name__}."
        )
    merged = _merge(DEFAULTS, _env_overrides(env))
    merged = _merge(merged, config or {})
    deps = merged["infrastructure"]["dependencies"]
    if isinstance(deps, list):
        merged["infrastructure"]["dependencies"] = deps + _env_dependencies(env, deps)
    merged["supabase"] = {
        "url": env.get("SUPABASE_URL") or None,
        "api_key": env.get("SUPABASE_API_KEY") or None,
    }
    validated = validate(merged)
    return validated
