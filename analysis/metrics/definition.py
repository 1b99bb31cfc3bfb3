"""What a metric is: its facts SQL, its kind, and, for built-ins, how to read it faster.

A metric's facts are a SQL query over the warehouse returning one row per fact, with
`call_id` (the call the fact belongs to; NULL when it belongs to none) and `ts` (its naive-UTC
time), plus
  `value`                      for proportion (0/1), mean, quantile and count metrics, or
  `numerator`, `denominator`   for ratio metrics.
The experiment engine joins facts to randomisation units and turns them into sufficient
statistics; a metric never knows about experiments. The SQL is configuration written by the
workbench's operators (like a GrowthBook metric definition), never text from callers.

Built-in metrics may also say how they read from the hourly rollups (`FromRollup`: rates from
counts, means from sums, quantiles from the latency histograms), so that pages and alert rules
never scan raw rows where a rollup serves, and which one table their facts are rows of
(`Facts`), so that release benchmarks can slice them by that table's release column.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

# Kinds a user may define (`type` in [[metrics]]); built-ins may also count events per period.
MetricType = Literal["proportion", "mean", "ratio", "quantile"]
Kind = Literal[MetricType, "count"]
METRIC_TYPES: tuple[MetricType, ...] = ("proportion", "mean", "ratio", "quantile")
KINDS: tuple[Kind, ...] = (*METRIC_TYPES, "count")
# What one fact row is. Experiments take the first four; the rest are built-ins' own.
Level = Literal["call", "turn", "feedback", "request"]
BuiltinLevel = Literal[Level, "sample", "error", "probe"]
LEVELS: tuple[Level, ...] = ("call", "turn", "feedback", "request")
BUILTIN_LEVELS: tuple[BuiltinLevel, ...] = (*LEVELS, "sample", "error", "probe")
# Where a metric is offered. Overview KPIs and alert rules name their metrics instead.
Surface = Literal["anomalies", "benchmarks", "experiments"]
SURFACES: tuple[Surface, ...] = ("anomalies", "benchmarks", "experiments")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class MetricConfigError(ValueError):
    """A metric definition the user must fix; the message names the bad key."""


@dataclass(frozen=True)
class Facts:
    """A metric's facts as rows of one table: `value` (and `denominator` for ratios) are SQL
    expressions over its columns. `sql` is the facts query; `table`, `ts` and `groups` let a
    release benchmark or a split by release filter the table itself."""

    table: str
    ts: str
    value: str
    where: str = "TRUE"
    denominator: str | None = None  # ratio metrics: value is the numerator
    call_id: str = "call_id"
    groups: tuple[str, ...] = ("release",)  # columns of `table` a series may be split by

    @property
    def sql(self) -> str:
        values = (
            f"{self.value} AS value"
            if self.denominator is None
            else f"{self.value} AS numerator, {self.denominator} AS denominator"
        )
        call_id = "call_id" if self.call_id == "call_id" else f"{self.call_id} AS call_id"
        # the built-in catalogue's own text, never input
        return f"SELECT {call_id}, {self.ts} AS ts, {values} FROM {self.table} WHERE {self.where}"  # noqa: S608

    def split_sql(self, by: str) -> str:
        """The facts with the table's column `by` (one of `groups`) as `grp`."""
        if by not in self.groups:
            raise ValueError(f"facts of {self.table} cannot be split by {by!r}")
        return self.sql.replace(f"{self.ts} AS ts,", f"{self.ts} AS ts, {by} AS grp,", 1)


@dataclass(frozen=True)
class FromRollup:
    """How a metric reads from one hourly rollup table (collectors/rollups.py), with the same
    result as its facts SQL: SQL aggregates over the table's rows for
      n       the facts counted (proportion, mean, count), and
      total   the sum of their values (successes, Σx, or the count's total),
    or, for quantile metrics, the table's `bucket`, `n` histogram (n and total unused).
    Rollups keep no sums of squares, so a mean read from them has no variance."""

    table: str
    n: str = "sum(n)"
    total: str = "sum(n)"
    where: str = "TRUE"  # its rows that hold the metric, e.g. one stage of turn_latency_hist
    groups: tuple[str, ...] = ("release",)  # columns of `table` a series may be split by


@dataclass(frozen=True)
class Metric:
    """One catalogue entry. `type` is the metric's kind: proportion | mean | ratio | quantile,
    or count (built-ins only: events per period, e.g. calls per hour)."""

    name: str
    sql: str
    type: Kind
    level: BuiltinLevel  # what one fact row is: call | turn | feedback | request (or more)
    lower_is_better: bool = False
    unit: str = ""  # "s", "ms", "%", "rating", ...
    label: str = ""
    description: str = ""
    quantile: float | None = None  # the level for quantile metrics, e.g. 0.95
    # Built-ins only, never configuration keys:
    rollup: FromRollup | None = None
    facts: Facts | None = None
    shown_on: frozenset[Surface] = frozenset(SURFACES)

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")

    @property
    def value_columns(self) -> tuple[str, ...]:
        return ("numerator", "denominator") if self.type == "ratio" else ("value",)

    @property
    def scale(self) -> float:
        """Values are shown in the metric's unit: a share in % is a proportion times 100."""
        return 100.0 if self.unit == "%" else 1.0

    def on(self, surface: Surface) -> bool:
        """Whether the metric is offered on `surface` and can be computed there: experiments
        need per-call facts of a user-definable kind, benchmarks a rate or mean whose facts are
        rows of one table with a release column."""
        if surface not in self.shown_on:
            return False
        if surface == "experiments":
            return self.type in METRIC_TYPES and self.level in LEVELS
        if surface == "benchmarks":
            return (
                self.type in ("proportion", "mean")
                and self.facts is not None
                and "release" in self.facts.groups
            )
        return True


def from_facts(
    name: str,
    facts: Facts,
    kind: Kind,
    level: BuiltinLevel,
    *,
    lower_is_better: bool,
    unit: str,
    label: str,
    description: str,
    quantile: float | None = None,
    rollup: FromRollup | None = None,
    shown_on: tuple[Surface, ...] = SURFACES,
) -> Metric:
    """A built-in entry: its facts SQL is written from `facts`, so the two never disagree."""
    return Metric(
        name,
        facts.sql,
        kind,
        level,
        lower_is_better,
        unit,
        label,
        description,
        quantile,
        rollup,
        facts,
        frozenset(shown_on),
    )


CONFIG_KEYS = (
    "name",
    "sql",
    "type",
    "level",
    "lower_is_better",
    "unit",
    "label",
    "description",
    "quantile",
)
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
        if key not in CONFIG_KEYS:
            raise MetricConfigError(
                f"{where}: unknown key {key!r}; allowed keys are {', '.join(sorted(CONFIG_KEYS))}"
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
