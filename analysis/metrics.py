"""The metric registry: what can be measured in an experiment or a release benchmark.

A metric is a SQL query over the warehouse returning one row per fact, always with
`call_id` (the call the fact belongs to) and `ts` (its naive-UTC time), plus
  `value`                      for proportion (0/1), mean and quantile metrics, or
  `numerator`, `denominator`   for ratio metrics.
The experiment engine joins facts to randomisation units and turns them into sufficient
statistics; a metric never knows about experiments. The SQL is configuration written by the
workbench's operators (like a GrowthBook metric definition), never text from callers.

It runs read-only over the published snapshot and nothing else. The snapshot's DuckDB is locked
down (`lock_down`: no file, network or extension access beyond reading the snapshot's own
folder, configuration locked), and a definition is checked when the configuration is loaded
(`check_metric_sql`): it may read only the snapshot's tables, through no table function.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import duckdb

METRIC_TYPES = ("proportion", "mean", "ratio", "quantile")
LEVELS = ("call", "turn", "feedback", "request")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class MetricConfigError(ValueError):
    """A metric definition the user must fix; the message names the bad key."""


@dataclass(frozen=True)
class Metric:
    name: str
    sql: str
    type: str  # proportion | mean | ratio | quantile
    level: str  # call | turn | feedback | request: what one fact row is
    lower_is_better: bool = False
    unit: str = ""  # "s", "ms", "%", "rating", ...
    label: str = ""
    description: str = ""
    quantile: float | None = None  # the level for quantile metrics, e.g. 0.95

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")

    @property
    def value_columns(self) -> tuple[str, ...]:
        return ("numerator", "denominator") if self.type == "ratio" else ("value",)


_OUTCOME_SQL = {  # one fixed query per outcome, never composed from input
    "resolved": "SELECT call_id, started_at AS ts, CASE WHEN outcome = 'resolved' "
    "THEN 1.0 ELSE 0.0 END AS value FROM calls WHERE outcome IS NOT NULL",
    "escalated": "SELECT call_id, started_at AS ts, CASE WHEN outcome = 'escalated' "
    "THEN 1.0 ELSE 0.0 END AS value FROM calls WHERE outcome IS NOT NULL",
    "abandoned": "SELECT call_id, started_at AS ts, CASE WHEN outcome = 'abandoned' "
    "THEN 1.0 ELSE 0.0 END AS value FROM calls WHERE outcome IS NOT NULL",
}


def _rate(name: str, label: str, outcome: str, lower_is_better: bool, description: str) -> Metric:
    return Metric(
        name,
        _OUTCOME_SQL[outcome],
        "proportion",
        "call",
        lower_is_better,
        "%",
        label,
        description,
    )


_E2E = "SELECT call_id, started_at AS ts, e2e_ms AS value FROM voice_turns WHERE e2e_ms IS NOT NULL"


def builtin_metrics() -> dict[str, Metric]:
    """The voice-agent metrics every workbench has."""
    metrics = [
        _rate("resolved_rate", "Resolved rate", "resolved", False, "Share of calls resolved"),
        _rate("escalated_rate", "Escalated rate", "escalated", True, "Share handed to a human"),
        _rate("abandoned_rate", "Abandoned rate", "abandoned", True, "Share the caller left"),
        Metric(
            "thumbs_down_rate",
            "SELECT call_id, submitted_at AS ts, CASE WHEN rating <= 2 THEN 1.0 ELSE 0.0 END "
            "AS value FROM feedback WHERE rating IS NOT NULL AND call_id IS NOT NULL",
            "proportion",
            "feedback",
            True,
            "%",
            "Thumbs-down rate",
            "Share of ratings that are 1 or 2 out of 5",
        ),
        Metric(
            "handle_time",
            "SELECT call_id, started_at AS ts, duration_s AS value FROM calls "
            "WHERE duration_s IS NOT NULL",
            "mean",
            "call",
            True,
            "s",
            "Handle time",
            "Mean call duration",
        ),
        Metric(
            "turns_per_call",
            "SELECT call_id, started_at AS ts, CAST(turns AS DOUBLE) AS value FROM calls "
            "WHERE turns IS NOT NULL",
            "mean",
            "call",
            True,
            "turns",
            "Turns per call",
            "Mean turns per call (fewer means the caller got there faster)",
        ),
        Metric(
            "csat",
            "SELECT call_id, submitted_at AS ts, CAST(rating AS DOUBLE) AS value FROM feedback "
            "WHERE rating IS NOT NULL AND call_id IS NOT NULL",
            "mean",
            "feedback",
            False,
            "rating",
            "CSAT",
            "Mean rating, 1 to 5",
        ),
        Metric(
            "interruptions_per_turn",
            "SELECT call_id, started_at AS ts, CAST(interruptions AS DOUBLE) AS numerator, "
            "CAST(turns AS DOUBLE) AS denominator FROM calls "
            "WHERE turns > 0 AND interruptions IS NOT NULL",
            "ratio",
            "call",
            True,
            "per turn",
            "Interruptions per turn",
            "Caller barge-ins per agent turn",
        ),
        Metric(
            "errors_per_request",
            "SELECT call_id, occurred_at AS ts, 1.0 AS numerator, 0.0 AS denominator "
            "FROM errors WHERE call_id IS NOT NULL "
            "UNION ALL SELECT call_id, started_at AS ts, 0.0, 1.0 "
            "FROM requests WHERE call_id IS NOT NULL",
            "ratio",
            "request",
            True,
            "per request",
            "Errors per request",
            "Captured errors per HTTP request made during the call",
        ),
        Metric(
            "llm_ttft",
            "SELECT call_id, started_at AS ts, llm_ttft_ms AS value FROM voice_turns "
            "WHERE llm_ttft_ms IS NOT NULL",
            "mean",
            "turn",
            True,
            "ms",
            "LLM time to first token",
            "Mean LLM time to first token per turn",
        ),
    ]
    for q in (50, 95, 99):
        metrics.append(
            Metric(
                f"p{q}_e2e_latency",
                _E2E,
                "quantile",
                "turn",
                True,
                "ms",
                f"p{q} end-to-end turn latency",
                f"{q}th percentile of end of user speech to first agent audio",
                q / 100,
            )
        )
    return {m.name: m for m in metrics}


_KEYS = {f.name for f in fields(Metric)}
_REQUIRED = ("name", "sql", "type", "level")


def metric_from_config(config: Mapping[str, Any]) -> Metric:
    """Validate one user-defined metric (e.g. from TOML/YAML) and build it.

    Raises MetricConfigError with one sentence naming the key to fix.
    """
    if not isinstance(config, Mapping):
        raise MetricConfigError("a metric definition must be a table of keys and values")
    name = config.get("name", "?")
    where = f"metric {name!r}"
    for key in config:
        if key not in _KEYS:
            raise MetricConfigError(
                f"{where}: unknown key {key!r}; allowed keys are {', '.join(sorted(_KEYS))}"
            )
    for key in _REQUIRED:
        if config.get(key) in (None, ""):
            raise MetricConfigError(f"{where}: key {key!r} is required")
    if not isinstance(name, str) or not _NAME.match(name):
        raise MetricConfigError(
            f"{where}: key 'name' must be lower_snake_case letters, digits and underscores"
        )
    for key in ("sql", "unit", "label", "description"):
        if key in config and not isinstance(config[key], str):
            raise MetricConfigError(f"{where}: key {key!r} must be text")
    if config["type"] not in METRIC_TYPES:
        raise MetricConfigError(f"{where}: key 'type' must be one of {', '.join(METRIC_TYPES)}")
    if config["level"] not in LEVELS:
        raise MetricConfigError(f"{where}: key 'level' must be one of {', '.join(LEVELS)}")
    if not isinstance(config.get("lower_is_better", False), bool):
        raise MetricConfigError(f"{where}: key 'lower_is_better' must be true or false")
    sql = config["sql"].strip()
    if not re.match(r"(?is)^(select|with)\b", sql) or ";" in sql:
        raise MetricConfigError(
            f"{where}: key 'sql' must be a single SELECT (or WITH ... SELECT) without ';'"
        )
    q = config.get("quantile")
    if config["type"] == "quantile":
        if not isinstance(q, int | float) or isinstance(q, bool) or not 0 < q < 1:
            raise MetricConfigError(
                f"{where}: key 'quantile' must be a number between 0 and 1, e.g. 0.95"
            )
    elif q is not None:
        raise MetricConfigError(f"{where}: key 'quantile' only applies to type 'quantile'")
    values = {k: config[k] for k in config}
    values["sql"] = sql
    return Metric(**values)


def metric_registry(custom: Iterable[Mapping[str, Any]] = ()) -> dict[str, Metric]:
    """Built-in metrics plus the user's; a user metric may replace a built-in of that name."""
    registry = builtin_metrics()
    for config in custom:
        metric = metric_from_config(config)
        registry[metric.name] = metric
    return registry


# DuckDB 2.0's settings for running untrusted SQL ("Securing DuckDB"): extensions are neither
# installed nor loaded on demand (a query naming httpfs or spatial functions would fetch them),
# no file system or network access except reading `allowed_directories`, and the configuration
# locked so that SQL cannot set any of it back.
_LOCKED = (
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET allow_community_extensions = false",
    "SET enable_external_access = false",
    "SET lock_configuration = true",
)


def lock_down(con: duckdb.DuckDBPyConnection, readable: Iterable[str | Path] = ()) -> None:
    """Let `con` (and its cursors) read files only under the `readable` folders, and nothing
    else outside itself, for good. Views created before keep reading their files there."""
    folders = ", ".join("'" + str(f).rstrip("/").replace("'", "''") + "/'" for f in readable)
    con.execute(f"SET allowed_directories = [{folders}]")
    for statement in _LOCKED:
        con.execute(statement)


def _read_by(node: Any, found: dict[str, set[str]]) -> None:
    """The tables, table functions and CTE names of a json_serialize_sql tree."""
    if isinstance(node, dict):
        if node.get("type") == "TABLE_FUNCTION":
            found["functions"].add(node["function"]["function_name"])
        elif node.get("type") == "BASE_TABLE":  # a snapshot table is main.<name> of memory
            path = [node.get("catalog_name"), node.get("schema_name"), node["table_name"]]
            if path[0] in ("", "memory") and path[1] in ("", "main"):
                path = path[2:]
            found["tables"].add(".".join(p for p in path if p))
        for entry in (node.get("cte_map") or {}).get("map", []):
            found["ctes"].add(entry["key"])
        for value in node.values():
            _read_by(value, found)
    elif isinstance(node, list):
        for value in node:
            _read_by(value, found)


def check_metric_sql(con: duckdb.DuckDBPyConnection, metric: Metric) -> None:
    """Refuse SQL that reads anything but the snapshot's tables, or does not return the metric's
    columns. `con` is a locked-down snapshot (collectors.snapshot.open_snapshot); an empty one
    is enough. Raises MetricConfigError with one sentence."""
    where = f"metric {metric.name!r}: key 'sql'"
    only = "metric SQL may read only the snapshot's tables, such as calls, voice_turns and feedback"
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [metric.sql]).fetchone()[0])
    if tree.get("error"):
        raise MetricConfigError(f"{where} is not valid SQL: {tree.get('error_message', '')}")
    found: dict[str, set[str]] = {"functions": set(), "tables": set(), "ctes": set()}
    _read_by(tree, found)
    if found["functions"]:
        raise MetricConfigError(f"{where} calls {', '.join(sorted(found['functions']))}; {only}")
    snapshot = {
        name
        for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()
    }
    outside = sorted(found["tables"] - snapshot - found["ctes"])
    if outside:
        raise MetricConfigError(f"{where} reads {', '.join(outside)}; {only}")
    try:
        columns = {row[0] for row in con.execute(f"DESCRIBE {metric.sql}").fetchall()}
    except duckdb.Error as exc:
        reason = str(exc).splitlines()[0].rstrip(".!")
        raise MetricConfigError(f"{where} does not run on the snapshot ({reason})") from None
    needed = ("call_id", "ts", *metric.value_columns)
    if not set(needed) <= columns:
        raise MetricConfigError(
            f"{where} must return columns {', '.join(needed[:-1])} and {needed[-1]}"
        )
