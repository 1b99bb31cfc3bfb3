"""Configuration: one TOML file plus environment variables, validated at start.

Where values come from, highest first: environment variables (the spec's SUPABASE_URL,
LIVEKIT_URL, RAILWAY_PROJECT_ID, ...), then the TOML file (WORKBENCH_CONFIG, else workbench.toml
at the repo root). Secrets (keys, tokens, database URLs with passwords, webhook URLs) come only
from the environment or .streamlit/secrets.toml, never from the TOML file, and never appear in a
repr or a log line. Every problem found is one sentence naming the setting and where it came
from; `load_config` raises one ConfigError carrying all of them.

What is common lives here: finding and reading the file, the environment and the secrets,
`[[metrics]]`, `[alerts]` (parsed by collectors/alerts/settings.py), and the demo that runs
when nothing else is configured. Each kind of source parses its own sections and builds itself
(collectors/sources/registry.py); the file's layout is documented in docs/sources.md. The spec's own shapes are accepted too (spec_shapes.py).
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from collectors.alerts.settings import AlertSettings, parse_alerts
from collectors.config_secrets import REPO_ROOT, Secret, Secrets, read_secrets
from collectors.config_validator import SECRET_KEYS_IN_FILE, Validator
from collectors.schedules import Schedule, ScheduleDict
from collectors.sources.registry import Configured, SourceKind, source_kinds
from collectors.spec_shapes import in_our_shapes

if TYPE_CHECKING:
    from collectors.sources.railway import RailwaySettings
    from collectors.sources.supabase_project import SupabaseSettings

__all__ = [
    "ConfigError",
    "Schedule",
    "Secret",
    "WorkbenchConfig",
    "build_sources",
    "config_path",
    "load_config",
]

DEFAULT_FILE = "workbench.toml"
# Read with the sources' secrets though no source uses it: the alert webhook ([alerts]).
COMMON_SECRETS = ("ALERT_WEBHOOK_URL",)
DEMO_SCHEDULE: ScheduleDict = {"kind": "interval", "seconds": 60}

Settings = TypeVar("Settings")


class ConfigError(ValueError):
    """Every configuration problem found, each one sentence naming the setting to fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass
class WorkbenchConfig:
    path: Path | None = None
    configured: list[Configured[Any]] = field(default_factory=list)  # kinds and their settings
    metrics: list[dict[str, Any]] = field(default_factory=list)  # user metrics ([[metrics]])
    alerts: AlertSettings = field(default_factory=AlertSettings)  # [alerts]: rules, delivery
    demo: bool = True
    secrets: Secrets = field(default_factory=Secrets)
    origins: dict[str, str] = field(default_factory=dict)

    def secret(self, *names: str) -> str | None:
        return self.secrets.value(*names)

    def settings_of(self, kind: SourceKind[Settings]) -> Settings | None:
        """The settings the configuration gave `kind`, or None when it is not configured."""
        for c in self.configured:
            if c.kind.name == kind.name:
                settings: Settings = c.settings
                return settings
        return None

    @property
    def supabase(self) -> SupabaseSettings | None:
        """The Supabase project, which experiments are synced to as well (collectors/jobs.py)."""
        from collectors.sources.supabase_project import SUPABASE

        return self.settings_of(SUPABASE)

    @property
    def railway(self) -> RailwaySettings | None:
        from collectors.sources.railway import RAILWAY

        return self.settings_of(RAILWAY)

    def __repr__(self) -> str:
        kinds = [c.kind.name for c in self.configured]
        return (
            f"WorkbenchConfig(path={self.path}, demo={self.demo}, sources={kinds}, "
            f"secrets={sorted(self.secrets)} (values hidden))"
        )


# ---- loading ---------------------------------------------------------------------------------


def config_path(path: str | Path | None, env: Mapping[str, str]) -> tuple[Path | None, bool]:
    """(path, explicit): an explicit path must exist; the default may be absent."""
    if path is not None:
        return Path(path), True
    if env.get("WORKBENCH_CONFIG"):
        return Path(env["WORKBENCH_CONFIG"]), True
    default = REPO_ROOT / DEFAULT_FILE
    return (default if default.exists() else None), False


def load_config(
    path: str | Path | None = None, env: Mapping[str, str] = os.environ
) -> WorkbenchConfig:
    """Read, merge and validate the configuration; ConfigError lists every problem."""
    file_path, explicit = config_path(path, env)
    where = str(file_path) if file_path else DEFAULT_FILE
    named_by = "WORKBENCH_CONFIG" if path is None else "the command line"
    raw = file_data(file_path, explicit, named_by)
    origins = dict(key_origins(raw, "", where))
    data = in_our_shapes(raw)
    kinds = source_kinds()
    merge_environment(data, kinds, env, origins)
    secret_names = [*COMMON_SECRETS, *(name for kind in kinds for name in kind.secrets)]
    cfg = WorkbenchConfig(path=file_path, origins=origins)
    cfg.secrets = read_secrets(file_path, env, secret_names)
    v = Validator(origins, where)
    for problem in secrets_in_file(data, "", where):
        v.problem(problem)
    check_sections(data, kinds, v)
    for kind in kinds:
        settings = kind.parse(data, v, cfg.secrets)
        if settings is not None:
            cfg.configured.append(Configured(kind, settings))
    cfg.metrics = user_metrics(data, v)
    cfg.alerts = parse_alerts(data, v, _catalogue(cfg.metrics))
    # The demo runs when nothing else is configured, or beside real sources if asked.
    cfg.demo = v.boolean(data.get("demo", {}), "demo", "enabled", default=not cfg.configured)
    if v.problems:
        raise ConfigError(v.problems)
    return cfg


def file_data(file_path: Path | None, explicit: bool, named_by: str) -> dict[str, Any]:
    """The file's tables; none when there is no file and none was asked for."""
    if file_path is None:
        return {}
    if not file_path.is_file():
        if explicit:
            raise ConfigError([f"The config file {file_path} does not exist (from {named_by})."])
        return {}
    try:
        return tomllib.loads(file_path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{file_path} is not valid TOML: {exc}."]) from None


def key_origins(data: object, prefix: str, where: str) -> Iterator[tuple[str, str]]:
    """(dotted key, where it came from) for every key of the file."""
    if isinstance(data, dict):
        for k, value in data.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            yield key, where
            yield from key_origins(value, key, where)


def merge_environment(
    data: dict[str, Any],
    kinds: Sequence[SourceKind[Any]],
    env: Mapping[str, str],
    origins: dict[str, str],
) -> None:
    """Environment variables the kinds declare win over the file (and are named as the origin
    of what they set)."""
    for kind in kinds:
        for name, dotted in kind.env.items():
            if not env.get(name):
                continue
            *parents, key = dotted.split(".")
            table = data
            for part in parents:
                table = table.setdefault(part, {})
                if not isinstance(table, dict):
                    break  # the file's value is reported as "must be a table"
            else:
                table[key] = env[name]
                origins[dotted] = f"env {name}"


def secrets_in_file(data: object, prefix: str, where: str) -> Iterator[str]:
    """A sentence for each secret written in the file."""
    if isinstance(data, dict):
        for k, value in data.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if str(k).lower() in SECRET_KEYS_IN_FILE and isinstance(value, str):
                yield (
                    f"{key} in {where} is a secret: remove it from the file and set it as an "
                    "environment variable or in .streamlit/secrets.toml (see docs/sources.md)."
                )
            elif k != "headers":
                yield from secrets_in_file(value, key, where)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield from secrets_in_file(item, f"{prefix}[{i}]", where)


def check_sections(data: Mapping[str, Any], kinds: Sequence[SourceKind[Any]], v: Validator) -> None:
    """Tables that group kinds' sections ([probes]) hold only those; [sdk] is refused."""
    children: dict[str, set[str]] = {}
    for kind in kinds:
        for section in kind.sections:
            parent, _, child = section.rpartition(".")
            if parent:
                children.setdefault(parent, set()).add(child)
    for parent, known in children.items():
        table = data.get(parent)
        if table is None:
            continue
        if isinstance(table, dict):
            v.known(table, parent, known)
        else:
            v.fail(parent, "must be a table")
    if "sdk" in data:
        # It was parsed and never read: the SDK runs inside the agent and takes its settings
        # there, so a value here only looked as if it did something.
        v.problem(
            f"[sdk] in {v.origin('sdk')} is not read by the workbench: set the SDK's options "
            "where the agent calls configure_monitoring(app, config), or as its "
            "ERROR_SAMPLE_RATE and SLOW_REQUEST_THRESHOLD environment variables "
            "(docs/sdk.md), and remove the section."
        )


def user_metrics(data: Mapping[str, Any], v: Validator) -> list[dict[str, Any]]:
    """The [[metrics]] definitions, each checked on an empty snapshot locked down as the app's
    is (a problem names metrics[i])."""
    metrics = data.get("metrics") or []
    if not metrics:
        return []
    from analysis.metrics import MetricConfigError, check_metric_sql, metric_from_config

    out: list[dict[str, Any]] = []
    sandbox = None
    for i, metric in enumerate(metrics):
        try:
            sandbox = sandbox or _metric_sandbox()
            check_metric_sql(sandbox, metric_from_config(metric))
        except MetricConfigError as exc:
            v.problem(f"metrics[{i}] in {v.where}: {exc}.")
        else:
            out.append(dict(metric))
    return out


def _catalogue(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """The metric catalogue alert rules may name: the built-ins and the valid [[metrics]]."""
    from analysis.metrics import catalogue

    return catalogue(metrics)


def _metric_sandbox() -> Any:
    """An empty snapshot, locked down as the app's is, to try user metric SQL on."""
    from collectors.snapshot import open_snapshot

    with tempfile.TemporaryDirectory() as empty:
        return open_snapshot(empty).con


# ---- building sources ------------------------------------------------------------------------


def build_sources(
    config: WorkbenchConfig, data_dir: Path | None = None
) -> dict[str, tuple[Any, dict[str, Any]]]:
    """name -> (source, schedule) for everything configured; the demo (and the spool its live
    agents write to) when nothing is. `data_dir` holds the demo's spool and agent state
    (default: $WORKBENCH_DATA_DIR, else data)."""
    root = data_dir or Path(os.environ.get("WORKBENCH_DATA_DIR") or "data")
    out: dict[str, tuple[Any, dict[str, Any]]] = {}
    for configured in config.configured:
        out.update(configured.sources(config.secrets, root))
    if config.demo or not out:
        out.update(demo_sources(config, root, with_spool="spool" not in out))
    return out


def demo_sources(
    config: WorkbenchConfig, data_dir: Path, with_spool: bool
) -> dict[str, tuple[Any, dict[str, Any]]]:
    """The demo: history written directly; then live traffic from simulated agents through the
    SDK's spool sink, collected like a real agent's (into the configured spool if there is
    one, else <data_dir>/spool, collected by a spool job of its own)."""
    from collectors.sources.demo_live import LiveDemoSource
    from collectors.sources.spool import (
        DEFAULT_INTERVAL_S,
        SPOOL,
        SpoolSettings,
        spool_sources,
    )

    spool = config.settings_of(SPOOL) or SpoolSettings(
        data_dir / "spool", Schedule("interval", DEFAULT_INTERVAL_S)
    )
    demo = LiveDemoSource(spool.directory, data_dir / "demo-agents")
    out: dict[str, tuple[Any, dict[str, Any]]] = {demo.name: (demo, dict(DEMO_SCHEDULE))}
    if with_spool:
        out.update(spool_sources(spool, config.secrets, data_dir))
    return out
