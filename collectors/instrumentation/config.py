"""The configuration dictionary of configure_monitoring: defaults, environment, validation.

The keys of the specification (health, performance, errors, security, infrastructure) keep
their names and meanings; the SDK adds `sink`, `alerts`, `experiments` and a few top-level
keys. Precedence: an explicit key in the dictionary wins over an environment variable, which
wins over the default. Any invalid value fails with one sentence naming the key.
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from typing import Any, Literal, overload
from urllib.parse import urlsplit


class MonitoringConfigError(ValueError):
    """The configuration has a wrong key or value; the message names the key to fix."""


_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]*@")


def short(value: Any, limit: int = 60) -> str:
    """A bounded description of any value for a message: the repr of a short string, number
    or flag, else the type name (a huge or hostile object is never rendered, and URL
    credentials are masked)."""
    if isinstance(value, str):
        text = _CREDENTIALS.sub("***@", repr(value[:limit]))
        return text if len(value) <= limit else f"{text[:-1]}...' ({len(value)} characters)"
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        v = int.__int__(value)
        return repr(v) if abs(v) < 10**18 else "a very large integer"
    if isinstance(value, float):
        return float.__repr__(value)
    if isinstance(value, list | tuple | dict | set | frozenset):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "service": None,  # defaults to RAILWAY_SERVICE_NAME
    "release": None,  # defaults to RAILWAY_GIT_COMMIT_SHA / RAILWAY_DEPLOYMENT_ID
    "dashboard_url": None,  # defaults to WORKBENCH_URL
    "routes": {
        "enabled": True,  # answer GET/HEAD /monitoring/health and /monitoring/dashboard
        "token": None,  # defaults to MONITORING_TOKEN: the detailed report and the dashboard
        "override_app_routes": False,  # True: answer even where the app has its own route
    },
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
        "shutdown_timeout": 5.0,  # seconds the app's shutdown may spend shipping what is queued
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
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_THRESHOLDS = ("cpu_usage", "memory_usage", "disk_usage")
_COMMON_DEPENDENCY_KEYS = ("type", "name", "check_interval", "critical")
# The keyword arguments of each add_*_dependency method.
DEPENDENCY_KEYS: dict[str, tuple[str, ...]] = {
    "http": ("endpoint", "method", "expected_status", "timeout", "headers"),
    "supabase": ("endpoint", "api_key", "timeout"),
    "livekit": ("endpoint", "timeout"),
    "railway": ("project_id", "api_key", "endpoint", "token_type", "timeout"),
    "custom": ("check_func",),
}
_ENDPOINT_KEYS = (
    "name",
    "url",
    "method",
    "headers",
    "expected_status",
    "timeout",
    "check_interval",
    "critical",
)
MIN_TOKEN_CHARS = 16
_LABEL = re.compile(r"[^\W_]([\w-]*[^\W_])?|[\w]+")  # a host name label (underscores allowed)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _fail(key: str, expected: str, value: Any) -> MonitoringConfigError:
    return MonitoringConfigError(
        f"Monitoring config key '{key}' must be {expected}, got {short(value)}."
    )


def number(
    key: str, value: Any, lo: float | None = None, hi: float | None = None, positive: bool = False
) -> float:
    """`value` as a finite float within bounds, or MonitoringConfigError naming `key`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(key, "a number", value)
    try:
        v = float(value)
    except OverflowError:
        raise _fail(key, "a finite number", value) from None
    if not math.isfinite(v):
        raise _fail(key, "a finite number", value)
    if positive and v <= 0:
        raise _fail(key, "a number greater than 0", value)
    if lo is not None and v < lo or hi is not None and v > hi:
        raise _fail(key, f"between {lo:g} and {hi:g}", value)
    return v


def integer(key: str, value: Any, lo: int = 0, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise _fail(key, f"an integer >= {lo}", value)
    if hi is not None and value > hi:
        raise _fail(key, f"an integer from {lo} to {hi}", value)
    return int(value)


@overload
def text(key: str, value: Any, allow_none: Literal[False] = False, max_len: int = 512) -> str: ...
@overload
def text(key: str, value: Any, allow_none: bool, max_len: int = 512) -> str | None: ...
def text(key: str, value: Any, allow_none: bool = False, max_len: int = 512) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(key, "a non-empty string", value)
    if len(value) > max_len:
        raise _fail(key, f"at most {max_len} characters", value)
    return value[:]


def url_problem(value: str, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
    """Why `value` is not a usable URL with one of `schemes` and a host name, or None."""
    wanted = " or ".join(f"{s}://" for s in schemes)
    expected = f"an {wanted} URL with a host name"
    if len(value) > 2048 or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        return expected + " (no spaces or control characters)"
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return expected
    if parts.scheme.lower() not in schemes or not host:
        return expected
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(0 < len(x) <= 63 and _LABEL.fullmatch(x) for x in labels):
        return expected
    return None


@overload
def url(
    key: str,
    value: Any,
    allow_none: Literal[False] = False,
    schemes: tuple[str, ...] = ("http", "https"),
) -> str: ...
@overload
def url(
    key: str, value: Any, allow_none: bool, schemes: tuple[str, ...] = ("http", "https")
) -> str | None: ...
def url(
    key: str,
    value: Any,
    allow_none: bool = False,
    schemes: tuple[str, ...] = ("http", "https"),
) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise _fail(key, "a URL", value)
    problem = url_problem(value, schemes)
    if problem:
        raise _fail(key, problem, value)
    return value[:]


def flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(key, "true or false", value)
    return bool(value)


def string_list(key: str, value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str) and v and len(v) <= 512 for v in value
    ):
        raise _fail(key, "a list of non-empty strings", value)
    return [v[:] for v in value]


def method(key: str, value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in _METHODS:
        raise _fail(key, "one of " + ", ".join(_METHODS), value)
    return value.upper()


def headers(key: str, value: Any) -> dict[str, str]:
    """HTTP headers: a dictionary of header name -> value, both strings, no line breaks."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(key, "a dictionary of header name -> value", value)
    for name, v in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise _fail(key, "keyed by HTTP header names", name)
        if not isinstance(v, str) or "\r" in v or "\n" in v or "\0" in v:
            raise _fail(f"{key}.{name}", "a string without line breaks", v)
    return {k[:]: v[:] for k, v in value.items()}


def token(key: str, value: Any) -> str | None:
    """The monitoring routes' token: None, or a secret of at least MIN_TOKEN_CHARS."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) < MIN_TOKEN_CHARS or len(value) > 512:
        raise MonitoringConfigError(
            f"Monitoring config key '{key}' must be a secret of {MIN_TOKEN_CHARS} to 512 "
            f"characters, got {'a string' if isinstance(value, str) else short(value)} of "
            f"{len(value) if isinstance(value, str) else 0} characters."
        )
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise MonitoringConfigError(
            f"Monitoring config key '{key}' must not contain spaces or control characters."
        )
    return value[:]


def _check_keys(key: str, given: Any, allowed: Mapping[str, Any] | tuple[str, ...]) -> None:
    if not isinstance(given, Mapping):
        raise _fail(key or "config", "a dictionary", given)
    for k in given:
        if k not in allowed:
            near = difflib.get_close_matches(str(k)[:100], list(allowed), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            name = f"{key}.{short(k)}" if key else short(k)
            if isinstance(k, str) and len(k) <= 100:
                name = f"{key}.{k}" if key else k
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
            out[k] = copy.deepcopy(v) if not callable(v) else v
    return out


def _given(config: Mapping[str, Any], *path: str) -> bool:
    """Whether the user's config sets this key (an explicit key wins over the environment)."""
    node: Any = config
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


class _Env:
    """Reads the environment variables the SDK knows; an invalid value fails with one
    sentence naming the variable (never the config key it feeds)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def get(self, name: str) -> str | None:
        raw = self.env.get(name)
        return raw if raw else None

    def url(self, name: str, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
        raw = self.get(name)
        if raw is None:
            return None
        problem = url_problem(raw, schemes)
        if problem:
            raise MonitoringConfigError(
                f"Environment variable {name} must be {problem}, got {short(raw)}."
            )
        return raw

    def number(self, name: str, lo: float | None, hi: float | None) -> float | None:
        raw = self.get(name)
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        bad = not math.isfinite(value) or (
            value < lo or value > hi if lo is not None and hi is not None else value <= 0
        )
        if bad:
            expected = f"a number from {lo:g} to {hi:g}" if lo is not None else "a number above 0"
            raise MonitoringConfigError(
                f"Environment variable {name} must be {expected}, got {short(raw)}."
            )
        return value

    def token(self, name: str) -> str | None:
        raw = self.get(name)
        if raw is None:
            return None
        try:
            return token(name, raw)
        except MonitoringConfigError:
            raise MonitoringConfigError(
                f"Environment variable {name} must be a secret of {MIN_TOKEN_CHARS} to 512 "
                "characters without spaces."
            ) from None


def _env_overrides(env: _Env, config: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults taken from the environment variables (unless the config sets the key)."""
    out: dict[str, Any] = {}

    def use(path: tuple[str, ...], value: Any) -> None:
        if value is None or _given(config, *path):
            return
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value

    if not _given(config, "errors", "error_sample_rate"):
        use(("errors", "error_sample_rate"), env.number("ERROR_SAMPLE_RATE", 0.0, 1.0))
    if not _given(config, "performance", "slow_request_threshold"):
        use(
            ("performance", "slow_request_threshold"),
            env.number("SLOW_REQUEST_THRESHOLD", None, None),
        )
    if not _given(config, "alerts", "webhook_url"):
        use(("alerts", "webhook_url"), env.url("ALERT_WEBHOOK_URL"))
    if not _given(config, "dashboard_url"):
        use(("dashboard_url",), env.url("WORKBENCH_URL"))
    if not _given(config, "routes", "token"):
        use(("routes", "token"), env.token("MONITORING_TOKEN"))
    release = env.get("RAILWAY_GIT_COMMIT_SHA") or env.get("RAILWAY_DEPLOYMENT_ID")
    use(("release",), release[:40] if release else None)
    service = env.get("RAILWAY_SERVICE_NAME")
    use(("service",), service[:512] if service else None)
    return out


def _env_dependencies(env: _Env, declared: list[Any]) -> list[dict[str, Any]]:
    """Dependencies implied by SUPABASE_URL, LIVEKIT_URL and RAILWAY_PROJECT_ID."""
    types = {d.get("type") for d in declared if isinstance(d, Mapping)}
    deps: list[dict[str, Any]] = []
    supabase_url = env.url("SUPABASE_URL")
    if supabase_url and "supabase" not in types:
        deps.append(
            {
                "type": "supabase",
                "name": "supabase",
                "endpoint": supabase_url,
                "api_key": env.get("SUPABASE_API_KEY"),
            }
        )
    livekit_url = env.url("LIVEKIT_URL", ("http", "https", "ws", "wss"))
    if livekit_url and "livekit" not in types:
        deps.append({"type": "livekit", "name": "livekit", "endpoint": livekit_url})
    project, key = env.get("RAILWAY_PROJECT_ID"), env.get("RAILWAY_API_KEY")
    if project and key and "railway" not in types:
        deps.append(
            {
                "type": "railway",
                "name": "railway-deployment",
                "project_id": project,
                "api_key": key,
                "check_interval": 300,
            }
        )
    return deps


def _validate_endpoint(key: str, ep: Any) -> dict[str, Any]:
    _check_keys(key, ep, _ENDPOINT_KEYS)
    return {
        "name": text(f"{key}.name", ep.get("name")),
        "endpoint": url(f"{key}.url", ep.get("url")),
        "method": method(f"{key}.method", ep.get("method", "GET")),
        "headers": headers(f"{key}.headers", ep.get("headers")),
        "expected_status": integer(
            f"{key}.expected_status", ep.get("expected_status", 200), 100, 599
        ),
        "timeout": number(f"{key}.timeout", ep.get("timeout", 5.0), positive=True),
        "check_interval": number(
            f"{key}.check_interval", ep.get("check_interval", 60), positive=True
        ),
        "critical": flag(f"{key}.critical", ep.get("critical", True)),
    }


def _validate_dependency(key: str, dep: Any) -> dict[str, Any]:
    if not isinstance(dep, Mapping):
        raise _fail(key, "a dictionary", dep)
    kind = dep.get("type")
    if kind not in DEPENDENCY_KEYS:
        raise _fail(f"{key}.type", "one of " + ", ".join(DEPENDENCY_KEYS), kind)
    _check_keys(key, dep, _COMMON_DEPENDENCY_KEYS + DEPENDENCY_KEYS[kind])
    out = dict(dep)
    out["name"] = text(f"{key}.name", dep.get("name"))
    out["check_interval"] = number(
        f"{key}.check_interval", dep.get("check_interval", 60), positive=True
    )
    if "critical" in dep:
        flag(f"{key}.critical", dep["critical"])
    if "timeout" in dep:
        out["timeout"] = number(f"{key}.timeout", dep["timeout"], positive=True)
    if kind == "livekit":
        url(f"{key}.endpoint", dep.get("endpoint"), schemes=("http", "https", "ws", "wss"))
    elif kind in ("http", "supabase") or "endpoint" in dep:
        url(f"{key}.endpoint", dep.get("endpoint"))
    if kind == "http":
        out["method"] = method(f"{key}.method", dep.get("method", "GET"))
        out["headers"] = headers(f"{key}.headers", dep.get("headers"))
        out["expected_status"] = integer(
            f"{key}.expected_status", dep.get("expected_status", 200), 100, 599
        )
    if kind == "supabase":
        text(f"{key}.api_key", dep.get("api_key"), allow_none=True, max_len=4096)
    if kind == "railway":
        text(f"{key}.project_id", dep.get("project_id"))
        text(f"{key}.api_key", dep.get("api_key"), max_len=4096)
        if dep.get("token_type", "account") not in ("account", "project"):
            raise _fail(f"{key}.token_type", "'account' or 'project'", dep.get("token_type"))
    if kind == "custom" and not callable(dep.get("check_func")):
        raise _fail(f"{key}.check_func", "a callable", dep.get("check_func"))
    return out


def validate(cfg: dict[str, Any]) -> dict[str, Any]:
    """Check every value of a merged configuration; returns it normalised."""
    flag("enabled", cfg["enabled"])
    text("service", cfg["service"], allow_none=True)
    text("release", cfg["release"], allow_none=True)
    url("dashboard_url", cfg["dashboard_url"], allow_none=True)

    r = cfg["routes"]
    flag("routes.enabled", r["enabled"])
    r["token"] = token("routes.token", r["token"])
    flag("routes.override_app_routes", r["override_app_routes"])

    h = cfg["health"]
    if not isinstance(h["endpoints"], list):
        raise _fail("health.endpoints", "a list", h["endpoints"])
    h["endpoints"] = [
        _validate_endpoint(f"health.endpoints[{i}]", ep) for i, ep in enumerate(h["endpoints"])
    ]
    _check_keys("health.thresholds", h["thresholds"], _THRESHOLDS)
    for name, v in h["thresholds"].items():
        number(f"health.thresholds.{name}", v, 0, 100)
    number("health.resource_interval", h["resource_interval"], positive=True)
    text("health.disk_path", h["disk_path"], max_len=4096)

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
        if not isinstance(path, str) or not path.startswith("/") or len(path) > 512:
            raise _fail("security.rate_limits", "keyed by paths starting with '/'", path)
        key = f"security.rate_limits.{path}"
        _check_keys(key, rl, ("limit", "window"))
        integer(f"{key}.limit", rl.get("limit"), 1)
        number(f"{key}.window", rl.get("window"), positive=True)
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
    for path in string_list("security.login_paths", s["login_paths"]):
        if not path.startswith("/"):
            raise _fail("security.login_paths", "a list of paths starting with '/'", path)

    deps = cfg["infrastructure"]["dependencies"]
    if not isinstance(deps, list):
        raise _fail("infrastructure.dependencies", "a list", deps)
    cfg["infrastructure"]["dependencies"] = [
        _validate_dependency(f"infrastructure.dependencies[{i}]", d) for i, d in enumerate(deps)
    ]

    k = cfg["sink"]
    if k["type"] not in _SINK_TYPES:
        raise _fail("sink.type", "one of " + ", ".join(_SINK_TYPES), k["type"])
    text("sink.spool_dir", k["spool_dir"], max_len=4096)
    integer("sink.spool_max_bytes", k["spool_max_bytes"], 1)
    integer("sink.spool_file_bytes", k["spool_file_bytes"], 1)
    integer("sink.batch_size", k["batch_size"], 1, 10_000)
    integer("sink.max_queue", k["max_queue"], 1, 10_000_000)
    integer("sink.max_outbox", k["max_outbox"], 1, 10_000_000)
    for name in ("spool_rotate_seconds", "flush_interval", "supabase_timeout", "shutdown_timeout"):
        number(f"sink.{name}", k[name], positive=True)

    a = cfg["alerts"]
    url("alerts.webhook_url", a["webhook_url"], allow_none=True)
    number("alerts.webhook_timeout", a["webhook_timeout"], positive=True)
    integer("alerts.webhook_retries", a["webhook_retries"], 0, 100)
    number("alerts.cooldown", a["cooldown"], 0)

    x = cfg["experiments"]
    if not isinstance(x["definitions"], Mapping):
        raise _fail(
            "experiments.definitions", "a dictionary of key -> definition", x["definitions"]
        )
    for name in x["definitions"]:
        if not isinstance(name, str) or not name or len(name) > 512:
            raise _fail("experiments.definitions", "keyed by experiment keys", name)
    number("experiments.refresh_interval", x["refresh_interval"], positive=True)
    if x["source"] not in ("auto", "supabase", "local"):
        raise _fail("experiments.source", "one of auto, supabase, local", x["source"])
    return cfg


def load(config: Mapping[str, Any] | None, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The effective configuration: defaults < environment < `config`; validated."""
    if config is not None and not isinstance(config, Mapping):
        raise MonitoringConfigError(
            f"The monitoring config must be a dictionary, got {type(config).__name__}."
        )
    config = config or {}
    environment = _Env(os.environ if env is None else env)
    merged = _merge(DEFAULTS, _env_overrides(environment, config))
    merged = _merge(merged, config)
    deps = merged["infrastructure"]["dependencies"]
    if isinstance(deps, list):
        merged["infrastructure"]["dependencies"] = deps + _env_dependencies(environment, deps)
    merged["supabase"] = {
        "url": environment.url("SUPABASE_URL"),
        "api_key": environment.get("SUPABASE_API_KEY"),
    }
    return validate(merged)
