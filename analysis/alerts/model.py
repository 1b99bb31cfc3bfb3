"""What an alert rule is and what evaluating one yields: the vocabulary every rule kind, the
state machine, the service and the Alerts page share.

A rule of some kind (`RuleKind`) is checked against the published snapshot at a moment and
yields `Reading`s: one per label set (a target, an account, an error group...) whose condition
holds there, `breach` when it holds, `hold` when a firing alert should stay firing (between its
recovery threshold and its threshold). No reading for a label set means its condition is clear.
The state machine (analysis.alerts.states) turns readings over time into alerts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import duckdb

    from analysis.experiments import ExperimentDefinition
    from analysis.metrics import Metric

Severity = Literal["info", "warning", "error", "critical"]
# The SDK's severities (collectors/instrumentation/alerts.py), so a custom handler sees the same.
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error", "critical")
State = Literal["inactive", "pending", "firing", "resolved"]
STATES: tuple[State, ...] = ("inactive", "pending", "firing", "resolved")
Level = Literal["breach", "hold"]
Origin = Literal["default", "file", "app"]
# Pages an alert's evidence opens (app/views/<page>.py).
Page = Literal[
    "overview",
    "health",
    "performance",
    "errors",
    "voice_quality",
    "security",
    "experiments",
    "benchmarks",
    "collector_status",
    "anomalies",
]
ParamType = Literal["duration", "number", "integer", "text", "texts", "choice", "metric", "bool"]

Labels = tuple[tuple[str, str], ...]


def labels_of(mapping: Mapping[str, object]) -> Labels:
    """A label set in its one canonical form: sorted (name, text value) pairs."""
    return tuple(sorted((str(k), str(v)) for k, v in mapping.items()))


@dataclass(frozen=True)
class Evidence:
    """Where a person sees why the alert fired: a page of the workbench, what to look at there,
    the window it was found in, and values for that page's widgets (by key) that focus it."""

    page: Page
    text: str
    start: datetime | None = None
    end: datetime | None = None
    focus: Labels = ()


@dataclass(frozen=True)
class Reading:
    labels: Labels  # the kind's labels (the rule adds alertname, severity and its own)
    level: Level
    value: float | None
    summary: str  # one sentence; may quote untrusted text (an error message, a target name)
    evidence: Evidence


@dataclass(frozen=True)
class Rule:
    """A rule in effect: its kind's parameters validated (collectors/alerts/settings.py)."""

    name: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    severity: Severity = "warning"
    for_s: float = 0.0  # how long the condition must hold before the alert fires
    keep_firing_for_s: float = 0.0  # how long a firing alert outlives its condition
    every_s: float = 60.0  # evaluated at most this often
    labels: Labels = ()  # added to every alert of the rule
    description: str = ""
    enabled: bool = True
    origin: Origin = "default"

    def param(self, name: str, default: Any = None) -> Any:
        value = self.params.get(name)
        return default if value is None else value


@dataclass(frozen=True)
class Param:
    """One parameter of a kind, as the configuration and the rule editor offer it."""

    name: str
    type: ParamType
    help: str
    default: Any = None  # None: optional (the kind says what its absence means)
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    required: bool = False


@dataclass(frozen=True)
class WatchedExperiment:
    """An experiment the service is told is running (the control store's saved definitions)."""

    definition: ExperimentDefinition
    name: str
    guardrails: tuple[str, ...]


@dataclass
class Context:
    """What a rule is checked against: a snapshot connection at a moment, the metric catalogue
    (with the user's metrics), and what the control store says about the workbench itself."""

    con: duckdb.DuckDBPyConnection
    now: datetime  # naive UTC
    metrics: Mapping[str, Metric]
    service: Mapping[str, Any] = field(default_factory=dict)  # control store service info
    progress: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # per source
    intervals: Mapping[str, float | None] = field(default_factory=dict)  # source schedules
    experiments: Sequence[WatchedExperiment] = ()
    # Results shared by the rules of one evaluation (many rules read one metric's minutes).
    memo: dict[Hashable, Any] = field(default_factory=dict)

    def at(self, now: datetime) -> Context:
        """The same context at another moment (history replays check at each step)."""
        return Context(
            self.con,
            now,
            self.metrics,
            self.service,
            self.progress,
            self.intervals,
            self.experiments,
            self.memo,
        )


@dataclass(frozen=True)
class Timeline:
    """A rule over a past span: its readings at each evaluation step that had any."""

    step: timedelta
    readings: Mapping[datetime, Sequence[Reading]]


Check = Callable[[Context, Rule], list[Reading]]
History = Callable[[Context, Rule, datetime, datetime], Timeline]
# How far back a rule's check reads from its moment; None: it may read the whole history.
Lookback = Callable[[Rule], timedelta | None]
# What is inconsistent between a rule's parameters, given the metric catalogue: each problem is
# "<param> <text>", which the configuration turns into one sentence naming the rule.
Problems = Callable[[Mapping[str, Any], Mapping[str, "Metric"]], list[str]]


@dataclass(frozen=True)
class RuleKind:
    """A kind of rule: its parameters, how to check it now, and how to replay it over the past
    (None: the kind describes the workbench itself and has no past to replay)."""

    name: str
    title: str
    description: str
    params: tuple[Param, ...]
    check: Check
    history: History | None = None
    problems: Problems | None = None
    every_s: float = 60.0  # its rules' default evaluation interval
    lookback: Lookback = lambda rule: None  # the evaluator reads only that far back


# ---- durations ----------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: object) -> float | None:
    """Seconds in a Prometheus-style duration ("30s", "5m", "4h", "7d"; a bare number is
    seconds), or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) and value >= 0 else None
    if not isinstance(value, str):
        return None
    match = _DURATION.match(value)
    if match is None:
        return None
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def describe_duration(seconds: float) -> str:
    """The shortest exact way to write `seconds` ("90s", "5m", "4h", "1d"), or "0s"."""
    if seconds <= 0:
        return "0s"
    for unit in ("w", "d", "h", "m", "s"):
        count = seconds / _UNIT_S[unit]
        if count >= 1 and abs(count - round(count)) < 1e-9:
            return f"{round(count)}{unit}"
    return f"{seconds:g}s"


def floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def steps(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """Evaluation moments in [start, end): whole multiples of `step` since the Unix epoch, so a
    replay and the live service evaluate at the same moments."""
    epoch = datetime(1970, 1, 1)
    n = math.ceil((start - epoch) / step)
    out = []
    t = epoch + n * step
    while t < end:
        out.append(t)
        t += step
    return out
