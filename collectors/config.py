"""Configuration: one TOML file plus environment variables, validated at start.

Where values come from, highest first: environment variables (the spec's SUPABASE_URL,
LIVEKIT_URL, RAILWAY_PROJECT_ID, ...), then the TOML file (WORKBENCH_CONFIG, else workbench.toml
at the repo root). Secrets (keys, tokens, database URLs with passwords, webhook URLs) come only
from the environment or .streamlit/secrets.toml, never from the TOML file, and never appear in a
repr or a log line. Every problem found is one sentence naming the setting and where it came
from; `load_config` raises one ConfigError carrying all of them.

The file's layout is documented in docs/sources.md. The spec's own shapes are accepted too:
`[health] endpoints = [...]`, `[[infrastructure.dependencies]]` and `check_interval`.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from collectors.schema import TABLES

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FILE = "workbench.toml"

SECRET_NAMES = (
    "SUPABASE_API_KEY",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_DB_URL",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "RAILWAY_API_KEY",
    "RAILWAY_PROJECT_TOKEN",
    "ALERT_WEBHOOK_URL",
)
# Plain settings an environment variable may set (and then wins over the file).
ENV_SETTINGS: dict[str, tuple[str, str]] = {
    "SUPABASE_URL": ("supabase", "url"),
    "LIVEKIT_URL": ("livekit", "url"),
    "RAILWAY_PROJECT_ID": ("railway", "project_id"),
    "RAILWAY_SERVICE_ID": ("railway", "service_id"),
    "RAILWAY_ENVIRONMENT_ID": ("railway", "environment_id"),
    "ERROR_SAMPLE_RATE": ("sdk", "error_sample_rate"),
    "SLOW_REQUEST_THRESHOLD": ("sdk", "slow_request_threshold_s"),
    "WORKBENCH_SPOOL_DIR": ("spool", "directory"),
}
SECRET_KEYS_IN_FILE = {"key", "api_key", "api_secret", "secret", "token", "password", "db_url",
                       "database_url", "service_role_key", "webhook_url"}  # fmt: skip
CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")


class ConfigError(ValueError):
    """Every configuration problem found, each one sentence naming the setting to fix."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class Secret:
    """A secret value that never prints itself."""

    __slots__ = ("_value", "origin")

    def __init__(self, value: str, origin: str):
        self._value = value
        self.origin = origin

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('***' from {self.origin})"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass
class Schedule:
    kind: str  # interval|cron
    seconds: float | None = None
    expr: str | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.kind == "cron":
            return {"kind": "cron", "expr": self.expr}
        return {"kind": "interval", "seconds": self.seconds}


@dataclass
class MappingConfig:
    source: str
    target: str
    columns: dict[str, str] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    cursor_column: str = "created_at"
    id_column: str = "id"
    schema: str = "public"


@dataclass
class SupabaseConfig:
    url: str | None
    mode: str = "rest"
    schedule: Schedule = field(default_factory=lambda: Schedule("interval", 60))
    page_size: int = 1000
    chunk_rows: int = 250_000
    overlap_s: float = 120.0  # late commits: see supabase_rest.DEFAULT_OVERLAP_S
    tables: list[str] | None = None
    mappings: list[MappingConfig] = field(default_factory=list)
    performance: bool = True
    performance_schedule: Schedule = field(default_factory=lambda: Schedule("interval", 300))


@dataclass
class ProbeConfig:
    name: str
    kind: str  # http|supabase|livekit|host|custom
    schedule: Schedule
    retries: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    maintenance: list[tuple[datetime, datetime]] = field(default_factory=list)


@dataclass
class RailwayConfig:
    project_id: str
    service_id: str | None = None
    environment_id: str | None = None
    token_kind: str = "account"
    endpoint: str | None = None
    schedule: Schedule = field(default_factory=lambda: Schedule("interval", 300))
    retries: int = 0


@dataclass
class WorkbenchConfig:
    path: Path | None = None
    supabase: SupabaseConfig | None = None
    railway: RailwayConfig | None = None
    probes: list[ProbeConfig] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)  # user metrics ([[metrics]])
    spool_dir: Path | None = None  # where the SDK's spool sink writes (collectors ingest it)
    spool_schedule: Schedule = field(default_factory=lambda: Schedule("interval", 10))
    demo: bool = True
    sdk: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Secret] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def secret(self, *names: str) -> str | None:
        for name in names:
            s = self.secrets.get(name)
            if s:
                return s.reveal()
        return None

    def __repr__(self) -> str:
        parts = [f"path={self.path}", f"demo={self.demo}"]
        if self.supabase:
            parts.append(f"supabase={self.supabase.url!r} ({self.supabase.mode})")
        if self.railway:
            parts.append(f"railway={self.railway.project_id!r}")
        parts.append(f"probes={[p.name for p in self.probes]}")
        parts.append(f"secrets={sorted(self.secrets)} (values hidden)")
        return f"WorkbenchConfig({', '.join(parts)})"


# ---- loading ---------------------------------------------------------------------------------


def config_path(path: str | Path | None, env: Mapping[str, str]) -> tuple[Path | None, bool]:
    """(path, explicit): an explicit path must exist; the default may be absent."""
    if path is not None:
        return Path(path), True
    if env.get("WORKBENCH_CONFIG"):
        return Path(env["WORKBENCH_CONFIG"]), True
    default = REPO_ROOT / DEFAULT_FILE
    return (default if default.exists() else None), False


def read_secrets(config_file: Path | None, env: Mapping[str, str]) -> dict[str, Secret]:
    found: dict[str, Secret] = {}
    candidates = []
    if config_file is not None:
        candidates.append(config_file.parent / ".streamlit" / "secrets.toml")
    candidates += [
        REPO_ROOT / ".streamlit" / "secrets.toml",
        Path.cwd() / ".streamlit" / "secrets.toml",
    ]
    for candidate in dict.fromkeys(candidates):
        if not candidate.is_file():
            continue
        try:
            data = tomllib.loads(candidate.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            continue  # Streamlit reports a broken secrets file itself
        flat = dict(data)
        nested = data.get("workbench")
        if isinstance(nested, dict):
            flat.update(nested)
        for name in SECRET_NAMES:
            if isinstance(flat.get(name), str) and name not in found:
                found[name] = Secret(flat[name], str(candidate))
    for name in SECRET_NAMES:
        if env.get(name):
            found[name] = Secret(env[name], f"env {name}")
    return found


def load_config(
    path: str | Path | None = None, env: Mapping[str, str] = os.environ
) -> WorkbenchConfig:
    """Read, merge and validate the configuration; ConfigError lists every problem."""
    problems: list[str] = []
    file_path, explicit = config_path(path, env)
    where = str(file_path) if file_path else DEFAULT_FILE
    data: dict[str, Any] = {}
    if file_path is not None:
        if not file_path.is_file():
            if explicit:
                raise ConfigError([f"The config file {file_path} does not exist (from "
                                   f"{'WORKBENCH_CONFIG' if path is None else 'the command line'})."])  # fmt: skip
        else:
            try:
                data = tomllib.loads(file_path.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError([f"{file_path} is not valid TOML: {exc}."]) from None
    origins: dict[str, str] = {}
    _record_origins(data, "", where, origins)
    data = _normalise_spec_shapes(data)
    for env_name, (section, key) in ENV_SETTINGS.items():
        if env.get(env_name):
            data.setdefault(section, {})[key] = env[env_name]
            origins[f"{section}.{key}"] = f"env {env_name}"
    _forbid_secrets_in_file(data, "", where, problems)
    cfg = WorkbenchConfig(path=file_path, origins=origins)
    cfg.secrets = read_secrets(file_path, env)
    v = _Validator(origins, where, problems)
    anything = _parse(cfg, data, v)
    demo = data.get("demo", {})
    cfg.demo = v.boolean(demo, "demo", "enabled", default=not anything)
    if problems:
        raise ConfigError(problems)
    return cfg


def _record_origins(data: Any, prefix: str, where: str, out: dict[str, str]) -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            key = f"{prefix}.{k}" if prefix else k
            out[key] = where
            _record_origins(v, key, where, out)


def _forbid_secrets_in_file(data: Any, prefix: str, where: str, problems: list[str]) -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if str(k).lower() in SECRET_KEYS_IN_FILE and isinstance(v, str):
                problems.append(
                    f"{key} in {where} is a secret: remove it from the file and set it as an "
                    "environment variable or in .streamlit/secrets.toml (see docs/sources.md)."
                )
            elif k != "headers":
                _forbid_secrets_in_file(v, key, where, problems)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            _forbid_secrets_in_file(item, f"{prefix}[{i}]", where, problems)


def _normalise_spec_shapes(data: dict[str, Any]) -> dict[str, Any]:
    """Accept the spec's configure_monitoring() dict shapes as well as ours."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    probes = data.setdefault("probes", {})
    if not isinstance(probes, dict):
        return data
    probes = data["probes"] = dict(probes)
    http = list(probes.get("http", []))
    custom = list(probes.get("custom", []))
    health = data.pop("health", None)
    if isinstance(health, dict):
        http += list(health.get("endpoints", []))
        thresholds = health.get("thresholds")
        if isinstance(thresholds, dict):
            host = dict(probes.get("host", {}))
            host.setdefault("thresholds", {
                {"cpu_usage": "cpu_pct", "memory_usage": "memory_pct", "disk_usage": "disk_pct"}.get(k, k): v
                for k, v in thresholds.items()
            })  # fmt: skip
            probes["host"] = host
    infra = data.pop("infrastructure", None)
    if isinstance(infra, dict):
        for dep in infra.get("dependencies", []):
            if not isinstance(dep, dict):
                continue
            kind = dep.get("type", "http")
            dep = {k: v for k, v in dep.items() if k != "type"}
            if kind == "http":
                http.append(dep)
            elif kind == "custom":
                custom.append(dep)
            elif kind in ("supabase", "livekit"):
                section = dict(probes.get(kind, {}))
                section.update({k: v for k, v in dep.items() if k not in ("endpoint", "api_key")})
                if dep.get("endpoint"):
                    data.setdefault(kind, {}).setdefault("url", dep["endpoint"])
                probes[kind] = section
            elif kind == "railway":
                rw = data.setdefault("railway", {})
                for k, v in dep.items():
                    if k not in ("api_key",):
                        rw.setdefault(k, v)
    if http:
        probes["http"] = http
    if custom:
        probes["custom"] = custom
    return data


class _Validator:
    def __init__(self, origins: dict[str, str], where: str, problems: list[str]):
        self.origins, self.where, self.problems = origins, where, problems

    def origin(self, key: str) -> str:
        return self.origins.get(key, self.where)

    def fail(self, key: str, text: str) -> None:
        self.problems.append(f"{key} in {self.origin(key)} {text}.")

    def known(self, table: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
        for k in table:
            if k not in allowed and k.lower() not in SECRET_KEYS_IN_FILE:
                self.fail(
                    f"{prefix}.{k}", f"is not a known setting (known: {', '.join(sorted(allowed))})"
                )

    def string(self, t: Mapping[str, Any], prefix: str, key: str, default: str | None = None, *, choices: tuple[str, ...] | None = None) -> str | None:  # fmt: skip
        value = t.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{prefix}.{key}", "must be a non-empty string")
            return default
        if choices and value not in choices:
            self.fail(f"{prefix}.{key}", f"must be one of {', '.join(choices)} (got {value!r})")
            return default
        return value.strip()

    def number(self, t: Mapping[str, Any], prefix: str, key: str, default: float | None, *, low: float | None = None, high: float | None = None, integer: bool = False) -> Any:  # fmt: skip
        value = t.get(key, default)
        if value is None:
            return None
        if isinstance(value, str):  # from an environment variable
            try:
                value = float(value)
            except ValueError:
                self.fail(f"{prefix}.{key}", f"must be a number (got {value!r})")
                return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"{prefix}.{key}", f"must be a number (got {value!r})")
            return default
        if (low is not None and value < low) or (high is not None and value > high):
            rng = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
            self.fail(f"{prefix}.{key}", f"must be {rng} (got {value:g})")
            return default
        return int(value) if integer else float(value)

    def boolean(self, t: Any, prefix: str, key: str, default: bool) -> bool:
        if not isinstance(t, Mapping):
            return default
        value = t.get(key, default)
        if not isinstance(value, bool):
            self.fail(f"{prefix}.{key}", "must be true or false")
            return default
        return value

    def url(self, t: Mapping[str, Any], prefix: str, key: str, schemes: tuple[str, ...] = ("http", "https")) -> str | None:  # fmt: skip
        value = self.string(t, prefix, key)
        if value is None:
            return None
        if not re.match(rf"^({'|'.join(schemes)})://[^\s/]+", value):
            self.fail(f"{prefix}.{key}", f"must be a URL starting with {' or '.join(s + '://' for s in schemes)} (got {value!r})")  # fmt: skip
            return None
        return value.rstrip("/")

    def schedule(self, t: Mapping[str, Any], prefix: str, default_s: float) -> Schedule:
        if "schedule" in t:
            expr = t["schedule"]
            if (
                not isinstance(expr, str)
                or len(expr.split()) != 5
                or not all(CRON_FIELD.match(f) for f in expr.split())
            ):
                self.fail(f"{prefix}.schedule", f"must be a 5-field cron expression like '*/5 * * * *' (got {expr!r})")  # fmt: skip
                return Schedule("interval", default_s)
            return Schedule("cron", expr=expr)
        key = "interval" if "interval" in t else "check_interval"
        seconds = self.number(t, prefix, key, default_s, low=1)
        return Schedule("interval", seconds)

    def windows(self, t: Mapping[str, Any], prefix: str) -> list[tuple[datetime, datetime]]:
        out = []
        for i, w in enumerate(t.get("maintenance", []) or []):
            key = f"{prefix}.maintenance[{i}]"
            try:
                start, end = (
                    datetime.fromisoformat(str(w["start"])),
                    datetime.fromisoformat(str(w["end"])),
                )
                if start.tzinfo is None or end.tzinfo is None or end <= start:
                    raise ValueError
                out.append((start, end))
            except (KeyError, TypeError, ValueError):
                self.fail(key, "must be {start = <ISO time with offset>, end = <later ISO time>}")
        return out


HTTP_KEYS = {"name", "url", "endpoint", "method", "headers", "expected_status", "timeout",
             "interval", "check_interval", "schedule", "retries", "keyword", "verify_tls",
             "maintenance"}  # fmt: skip
SUPABASE_KEYS = {"url", "mode", "interval", "schedule", "page_size", "chunk_rows", "overlap_s",
                 "tables", "mappings", "performance", "performance_interval"}  # fmt: skip
MAPPING_KEYS = {"source", "target", "columns", "scale", "cursor_column", "id_column", "schema"}


def _parse(cfg: WorkbenchConfig, data: dict[str, Any], v: _Validator) -> bool:
    """Fill cfg from data; True when any real source is configured."""
    anything = False
    sb = data.get("supabase") or {}
    db_url = cfg.secret("SUPABASE_DB_URL")
    if sb or db_url:
        v.known(sb, "supabase", SUPABASE_KEYS)
        url = v.url(sb, "supabase", "url")
        mode = v.string(sb, "supabase", "mode", "rest", choices=("rest", "postgres"))
        tables = sb.get("tables")
        if tables is not None and (
            not isinstance(tables, list) or any(t not in TABLES for t in tables)
        ):
            v.fail("supabase.tables", f"must list warehouse tables from: {', '.join(TABLES)}")
            tables = None
        s = SupabaseConfig(
            url=url,
            mode=mode or "rest",
            schedule=v.schedule(sb, "supabase", 60),
            page_size=v.number(
                sb, "supabase", "page_size", 1000, low=1, high=1_000_000, integer=True
            ),
            chunk_rows=v.number(sb, "supabase", "chunk_rows", 250_000, low=1, integer=True),
            overlap_s=v.number(sb, "supabase", "overlap_s", 120.0, low=0),
            tables=tables,
            performance=v.boolean(sb, "supabase", "performance", True),
            performance_schedule=Schedule(
                "interval", v.number(sb, "supabase", "performance_interval", 300, low=10)
            ),
        )
        for i, m in enumerate(sb.get("mappings", []) or []):
            parsed = _mapping(m, f"supabase.mappings[{i}]", v)
            if parsed:
                s.mappings.append(parsed)
        if s.mode == "rest":
            if not url:
                v.problems.append("supabase.url is not set: set SUPABASE_URL or [supabase] url in "
                                  f"{v.where}.")  # fmt: skip
            if not cfg.secret("SUPABASE_API_KEY", "SUPABASE_SERVICE_ROLE_KEY"):
                v.problems.append("SUPABASE_API_KEY is not set: put the project's service_role or "
                                  "secret key in the environment or .streamlit/secrets.toml.")  # fmt: skip
        elif not db_url:
            v.problems.append("supabase.mode is 'postgres' but SUPABASE_DB_URL is not set: put the "
                              "direct or session-pooler connection string in the environment or "
                              ".streamlit/secrets.toml.")  # fmt: skip
        if db_url and ":6543" in db_url:
            v.problems.append("SUPABASE_DB_URL points at the transaction pooler (port 6543): use the "
                              "direct connection or the session pooler (port 5432).")  # fmt: skip
        cfg.supabase = s
        anything = True
    anything |= _parse_probes(cfg, data, v)
    rw = data.get("railway") or {}
    if rw:
        v.known(rw, "railway", {"project_id", "service_id", "environment_id", "token_kind",
                                "endpoint", "interval", "check_interval", "schedule", "retries",
                                "name"})  # fmt: skip
        project = v.string(rw, "railway", "project_id")
        if not project:
            v.problems.append(f"railway.project_id is not set: set RAILWAY_PROJECT_ID or [railway] project_id in {v.where}.")  # fmt: skip
        if not cfg.secret("RAILWAY_API_KEY", "RAILWAY_PROJECT_TOKEN"):
            v.problems.append("RAILWAY_API_KEY is not set: put a Railway account or project token in "
                              "the environment or .streamlit/secrets.toml.")  # fmt: skip
        cfg.railway = RailwayConfig(
            project_id=project or "",
            service_id=v.string(rw, "railway", "service_id"),
            environment_id=v.string(rw, "railway", "environment_id"),
            token_kind=v.string(
                rw, "railway", "token_kind", "account", choices=("account", "workspace", "project")
            )
            or "account",  # fmt: skip
            endpoint=v.url(rw, "railway", "endpoint"),
            schedule=v.schedule(rw, "railway", 300),
            retries=v.number(rw, "railway", "retries", 0, low=0, integer=True),
        )
        if cfg.secrets.get("RAILWAY_PROJECT_TOKEN") and not cfg.secrets.get("RAILWAY_API_KEY"):
            cfg.railway.token_kind = "project"
        anything = True
    sandbox = None
    for i, metric in enumerate(data.get("metrics") or []):
        from analysis.metrics import MetricConfigError, check_metric_sql, metric_from_config

        try:
            sandbox = sandbox or _metric_sandbox()
            check_metric_sql(sandbox, metric_from_config(metric))
        except MetricConfigError as exc:
            v.problems.append(f"metrics[{i}] in {v.where}: {exc}.")
        else:
            cfg.metrics.append(dict(metric))
    spool = data.get("spool") or {}
    if spool:
        v.known(spool, "spool", {"directory", "interval", "schedule"})
        directory = v.string(spool, "spool", "directory")
        if directory:
            cfg.spool_dir = Path(directory).expanduser()
            cfg.spool_schedule = v.schedule(spool, "spool", 10)
            anything = True
        else:
            v.fail("spool.directory", "must name the folder the SDK's spool sink writes to")
    sdk = data.get("sdk") or {}
    cfg.sdk = {
        "error_sample_rate": v.number(sdk, "sdk", "error_sample_rate", None, low=0, high=1),
        "slow_request_threshold_s": v.number(sdk, "sdk", "slow_request_threshold_s", None, low=0),
    }
    return anything


def _metric_sandbox() -> Any:
    """An empty snapshot, locked down as the app's is, to try user metric SQL on."""
    from collectors.snapshot import open_snapshot

    with tempfile.TemporaryDirectory() as empty:
        return open_snapshot(empty).con


def _mapping(m: Any, prefix: str, v: _Validator) -> MappingConfig | None:
    if not isinstance(m, dict):
        v.fail(prefix, "must be a table with source and target")
        return None
    v.known(m, prefix, MAPPING_KEYS)
    source = v.string(m, prefix, "source")
    target = v.string(m, prefix, "target")
    if not source or not target:
        v.fail(prefix, "needs both source (the Supabase table) and target (a warehouse table)")
        return None
    if target not in TABLES:
        v.fail(
            f"{prefix}.target", f"must be a warehouse table ({', '.join(TABLES)}), not {target!r}"
        )
        return None
    names = set(TABLES[target].column_names)
    columns = m.get("columns", {}) or {}
    scale = m.get("scale", {}) or {}
    for label, table in (("columns", columns), ("scale", scale)):
        if not isinstance(table, dict):
            v.fail(f"{prefix}.{label}", "must be a table of warehouse column = value")
            return None
        for col in table:
            if col not in names:
                v.fail(f"{prefix}.{label}.{col}", f"is not a column of {target} (columns: {', '.join(sorted(names))})")  # fmt: skip
    ident = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
    for col, src in columns.items():
        if not isinstance(src, str) or not ident.match(src):
            v.fail(f"{prefix}.columns.{col}", f"must name a source column (got {src!r})")
    for col, factor in scale.items():
        if isinstance(factor, bool) or not isinstance(factor, int | float):
            v.fail(f"{prefix}.scale.{col}", f"must be a number (got {factor!r})")
    for name in (source, m.get("cursor_column", "created_at"), m.get("id_column", "id")):
        if not isinstance(name, str) or not ident.match(name):
            v.fail(prefix, f"has an invalid identifier {name!r}")
            return None
    return MappingConfig(
        source=source,
        target=target,
        columns={k: str(x) for k, x in columns.items()},
        scale={k: float(x) for k, x in scale.items() if isinstance(x, int | float)},
        cursor_column=m.get("cursor_column", "created_at"),
        id_column=m.get("id_column", "id"),
        schema=m.get("schema", "public"),
    )


def _parse_probes(cfg: WorkbenchConfig, data: dict[str, Any], v: _Validator) -> bool:
    probes = data.get("probes") or {}
    if not isinstance(probes, dict):
        v.fail("probes", "must be a table")
        return False
    v.known(probes, "probes", {"http", "supabase", "livekit", "host", "custom"})
    names: set[str] = set()
    for i, p in enumerate(probes.get("http", []) or []):
        prefix = f"probes.http[{i}]"
        if not isinstance(p, dict):
            v.fail(prefix, "must be a table")
            continue
        v.known(p, prefix, HTTP_KEYS)
        url = v.url(p, prefix, "url" if "url" in p else "endpoint")
        name = v.string(p, prefix, "name") or (url or f"http-{i}")
        if not url:
            if "url" not in p and "endpoint" not in p:
                v.fail(f"{prefix}.url", "is required")
            continue
        if name in names:
            v.fail(f"{prefix}.name", f"repeats the probe name {name!r}")
        names.add(name)
        expected = p.get("expected_status")
        if expected is not None and not isinstance(expected, int | str | list):
            v.fail(f"{prefix}.expected_status", "must be a status, a list of statuses or '2xx'")
        schedule = v.schedule(p, prefix, 60)
        timeout = v.number(p, prefix, "timeout", min(48.0, (schedule.seconds or 60) * 0.8), low=0.1)
        headers = p.get("headers", {}) or {}
        if not isinstance(headers, dict):
            v.fail(f"{prefix}.headers", "must be a table of header = value")
            headers = {}
        cfg.probes.append(ProbeConfig(
            name, "http", schedule,
            v.number(p, prefix, "retries", 0, low=0, integer=True),
            {"url": url, "method": v.string(p, prefix, "method", "GET", choices=("GET", "HEAD", "POST", "PUT", "OPTIONS")),
             "headers": {str(k): str(x) for k, x in headers.items()}, "expected_status": expected,
             "timeout_s": timeout, "keyword": p.get("keyword"), "verify": v.boolean(p, prefix, "verify_tls", True)},
            v.windows(p, prefix),
        ))  # fmt: skip
    sb = probes.get("supabase")
    sb_url = (data.get("supabase") or {}).get("url")
    if sb_url and v.boolean(sb or {}, "probes.supabase", "enabled", True):
        sb = sb or {}
        v.known(sb, "probes.supabase", {"enabled", "table", "interval", "check_interval", "schedule", "retries", "timeout", "name"})  # fmt: skip
        cfg.probes.append(ProbeConfig(
            sb.get("name", "supabase"), "supabase", v.schedule(sb, "probes.supabase", 60),
            v.number(sb, "probes.supabase", "retries", 0, low=0, integer=True),
            {"table": v.string(sb, "probes.supabase", "table", "requests"),
             "timeout_s": v.number(sb, "probes.supabase", "timeout", 5.0, low=0.1)},
        ))  # fmt: skip
    lk = dict(probes.get("livekit") or {})
    lk_url = (data.get("livekit") or {}).get("url") or lk.get("url")
    if lk_url or lk:
        v.known(lk, "probes.livekit", {"url", "interval", "check_interval", "schedule", "retries", "timeout", "name"})  # fmt: skip
        url = v.url({"url": lk_url}, "livekit", "url", ("http", "https", "ws", "wss"))
        if url:
            cfg.probes.append(ProbeConfig(
                lk.get("name", "livekit"), "livekit", v.schedule(lk, "probes.livekit", 60),
                v.number(lk, "probes.livekit", "retries", 0, low=0, integer=True),
                {"url": url, "timeout_s": v.number(lk, "probes.livekit", "timeout", 10.0, low=0.1)},
            ))  # fmt: skip
        elif lk_url is None:
            v.problems.append(
                f"livekit.url is not set: set LIVEKIT_URL or [livekit] url in {v.where}."
            )
    host = probes.get("host")
    if host is not None:
        host = host if isinstance(host, dict) else {}
        v.known(host, "probes.host", {"interval", "check_interval", "schedule", "retries", "thresholds", "disk_path", "name", "enabled"})  # fmt: skip
        if v.boolean(host, "probes.host", "enabled", True):
            thresholds = host.get("thresholds", {}) or {}
            for k in thresholds:
                if k not in ("cpu_pct", "memory_pct", "disk_pct"):
                    v.fail(
                        f"probes.host.thresholds.{k}", "is not one of cpu_pct, memory_pct, disk_pct"
                    )
            cfg.probes.append(ProbeConfig(
                host.get("name", "host"), "host", v.schedule(host, "probes.host", 60),
                v.number(host, "probes.host", "retries", 0, low=0, integer=True),
                {"thresholds": {k: float(x) for k, x in thresholds.items() if isinstance(x, int | float)},
                 "disk_path": host.get("disk_path", "/")},
            ))  # fmt: skip
    for i, c in enumerate(probes.get("custom", []) or []):
        prefix = f"probes.custom[{i}]"
        if not isinstance(c, dict):
            v.fail(prefix, "must be a table")
            continue
        v.known(c, prefix, {"name", "check", "check_func", "interval", "check_interval", "schedule", "retries", "maintenance"})  # fmt: skip
        check = v.string(c, prefix, "check" if "check" in c else "check_func")
        name = v.string(c, prefix, "name") or f"custom-{i}"
        if not check or not re.match(r"^[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?$", check):
            v.fail(
                f"{prefix}.check",
                "must be a dotted path to a callable, like 'mypkg.checks:db_pool'",
            )
            continue
        cfg.probes.append(ProbeConfig(name, "custom", v.schedule(c, prefix, 60),
                                      v.number(c, prefix, "retries", 0, low=0, integer=True),
                                      {"check": check}, v.windows(c, prefix)))  # fmt: skip
    return bool(cfg.probes)


# ---- building sources ------------------------------------------------------------------------


def build_sources(
    config: WorkbenchConfig, data_dir: Path | None = None
) -> dict[str, tuple[Any, dict[str, Any]]]:
    """name -> (source, schedule) for everything configured; the demo (and the spool its live
    agents write to) when nothing is. `data_dir` holds the demo's spool and agent state
    (default: $WORKBENCH_DATA_DIR, else data)."""
    from collectors.sources import probe_services, probes
    from collectors.sources.supabase_rest import TableMapping, sdk_mappings

    out: dict[str, tuple[Any, dict[str, Any]]] = {}
    sb = config.supabase
    db_url = config.secret("SUPABASE_DB_URL")
    if sb is not None:
        mappings = sdk_mappings(sb.tables) if sb.tables is not None else sdk_mappings()
        mappings += [
            TableMapping(
                m.source,
                m.target,
                m.columns,
                m.scale,
                m.cursor_column,
                m.id_column,
                m.schema,
                explicit=True,
            )  # fmt: skip
            for m in sb.mappings
        ]
        if sb.mode == "postgres" and db_url:
            from collectors.sources.supabase_pg import SupabasePgSource

            src: Any = SupabasePgSource(db_url, mappings, chunk_rows=sb.chunk_rows,
                                        overlap_s=sb.overlap_s)  # fmt: skip
        else:
            from collectors.sources.supabase_rest import SupabaseRestSource

            src = SupabaseRestSource(
                sb.url or "", config.secret("SUPABASE_API_KEY", "SUPABASE_SERVICE_ROLE_KEY") or "",
                mappings, page_size=sb.page_size, overlap_s=sb.overlap_s,
            )  # fmt: skip
        out[src.name] = (src, sb.schedule.as_dict())
        if sb.performance and db_url:
            from collectors.sources.pg_stats import PgStatsSource

            perf = PgStatsSource(db_url)
            out[perf.name] = (perf, sb.performance_schedule.as_dict())
    for p in config.probes:
        o = p.options
        windows = [probes.Window(a, b) for a, b in p.maintenance]
        if p.kind == "http":
            # HTTP probes that share a schedule run as one source: one run (and one warehouse
            # transaction) per interval for all of them instead of one per probe.
            schedule = p.schedule.as_dict()
            check = probes.http_check(
                p.name, o["url"], method=o["method"] or "GET", headers=o["headers"],
                expected_status=o["expected_status"], timeout_s=o["timeout_s"], retries=p.retries,
                keyword=o["keyword"], verify=o["verify"], maintenance=windows,
            )  # fmt: skip
            name = f"probes:http@{probes.schedule_label(schedule)}"
            if name in out:
                out[name][0].checks.append(check)
            else:
                out[name] = (probes.ProbeSource(name, [check]), schedule)
            continue
        if p.kind == "supabase":
            source = probe_services.supabase_probe(
                sb.url if sb and sb.url else "", config.secret("SUPABASE_API_KEY", "SUPABASE_SERVICE_ROLE_KEY"),
                name=p.name, table=o["table"], timeout_s=o["timeout_s"], retries=p.retries,
            )  # fmt: skip
        elif p.kind == "livekit":
            source = probe_services.livekit_probe(
                o["url"], api_key=config.secret("LIVEKIT_API_KEY"),
                api_secret=config.secret("LIVEKIT_API_SECRET"), name=p.name,
                timeout_s=o["timeout_s"], retries=p.retries,
            )  # fmt: skip
        elif p.kind == "host":
            from collectors.sources.probe_host import HostSource

            source = HostSource(name=f"probe:{p.name}", thresholds=o["thresholds"],
                                disk_path=o["disk_path"], retries=p.retries)  # fmt: skip
        else:
            source = probes.custom_probe(p.name, o["check"], retries=p.retries, maintenance=windows)
        out[source.name] = (source, p.schedule.as_dict())
    if config.railway is not None:
        from collectors.sources.railway import ENDPOINT, RailwaySource

        rw = config.railway
        source = RailwaySource(
            rw.project_id, config.secret("RAILWAY_API_KEY", "RAILWAY_PROJECT_TOKEN") or "",
            service_id=rw.service_id, environment_id=rw.environment_id,
            token_kind=rw.token_kind, endpoint=rw.endpoint or ENDPOINT, retries=rw.retries,
        )  # fmt: skip
        out[source.name] = (source, rw.schedule.as_dict())
    if config.spool_dir is not None:
        from collectors.sources.spool import SpoolSource

        spool = SpoolSource(config.spool_dir)
        out[spool.name] = (spool, config.spool_schedule.as_dict())
    if config.demo or not out:
        from collectors.sources.demo_live import LiveDemoSource
        from collectors.sources.spool import SpoolSource

        # History written directly; then live traffic from simulated agents through the SDK's
        # spool sink, collected like a real agent's (into the configured spool if there is one).
        root = data_dir or Path(os.environ.get("WORKBENCH_DATA_DIR") or "data")
        spool_dir = config.spool_dir or root / "spool"
        demo = LiveDemoSource(spool_dir, root / "demo-agents")
        out[demo.name] = (demo, {"kind": "interval", "seconds": 60})
        if "spool" not in out:
            spool = SpoolSource(spool_dir)
            out[spool.name] = (spool, config.spool_schedule.as_dict())
    return out
