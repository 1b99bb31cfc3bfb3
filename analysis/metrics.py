"""The metric registry: what can be measured in an experiment or a release benchmark.

A metric is a SQL query over the warehouse returning one row per fact, always with
`call_id` (the call the fact belongs to) and `ts` (its naive-UTC time), plus
  `value`                      for proportion (0/1), mean and quantile metrics, or
  `numerator`, `denominator`   for ratio metrics.
The experiment engine joins facts to randomisation units and turns them into sufficient
statistics; a metric never knows about experiments. The SQL is configuration written by the
workbench's operators (like a GrowthBook metric definition), never text from callers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

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
