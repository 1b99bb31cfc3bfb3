"""The `[alerts]` section of workbench.toml: rules, notification timers, receivers, inhibition
and maintenance windows, validated at start with one sentence per problem (the config's
Validator). Rules written on the Alerts page go through `rule_from_definition`, the same check.

    [alerts]
    group_by = ["alertname"]        group_wait = "30s"   group_interval = "5m"
    repeat_interval = "4h"          send_resolved = true  evaluation_interval = "1m"
    webhook_format = "auto"         # auto | alertmanager | slack (the URL: ALERT_WEBHOOK_URL)
    handler = "mypackage.alerts:handle"   # a custom handler, called with each alert
    external_url = "http://localhost:8501"

    [[alerts.rules]]                # a default of the same name is replaced
    name = "checkout_slow"  kind = "threshold"  metric = "p95_e2e_latency"  threshold = 2500

    [[alerts.inhibit]]              source = ['alertname="dependency_down"']  target = [...]
    [[alerts.maintenance]]          name = "db upgrade"  start = "...+00:00"  end = "..."
                                    (or weekdays = ["sat"], from = "02:00", to = "04:00", UTC)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any, Literal, cast

from analysis.alerts.defaults import DEFAULT_INHIBIT, DEFAULT_RULES
from analysis.alerts.kinds import KINDS
from analysis.alerts.matchers import InhibitRule, Matcher, MatcherError, matches_all, parse_matcher
from analysis.alerts.model import (
    SEVERITIES,
    Labels,
    Origin,
    Param,
    Rule,
    Severity,
    labels_of,
    parse_duration,
)
from collectors.config_validator import Validator

WebhookFormat = Literal["auto", "alertmanager", "slack"]
WEBHOOK_FORMATS: tuple[WebhookFormat, ...] = ("auto", "alertmanager", "slack")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RULE_KEYS = (
    "name",
    "kind",
    "severity",
    "for",
    "keep_firing_for",
    "every",
    "labels",
    "description",
    "enabled",
)
SECTION_KEYS = (
    "enabled",
    "defaults",
    "group_by",
    "group_wait",
    "group_interval",
    "repeat_interval",
    "send_resolved",
    "evaluation_interval",
    "webhook_format",
    "handler",
    "external_url",
    "rules",
    "inhibit",
    "maintenance",
)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HANDLER = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Maintenance:
    """A window when matching alerts are muted: one-off [start, end), or weekly (UTC)."""

    name: str
    matchers: tuple[Matcher, ...] = ()
    start: datetime | None = None  # naive UTC
    end: datetime | None = None
    weekdays: tuple[int, ...] = ()  # 0 = Monday
    from_time: time | None = None
    to_time: time | None = None

    def covers(self, labels: Labels, now: datetime) -> bool:
        if not matches_all(self.matchers, labels):
            return False
        if self.start is not None and self.end is not None:
            return self.start <= now < self.end
        if self.weekdays and now.weekday() not in self.weekdays:
            return False
        if self.from_time is None or self.to_time is None:
            return bool(self.weekdays)
        t = now.time()
        if self.from_time <= self.to_time:
            return self.from_time <= t < self.to_time
        return t >= self.from_time or t < self.to_time  # across midnight


@dataclass(frozen=True)
class AlertSettings:
    enabled: bool = True
    rules: tuple[Rule, ...] = ()  # the defaults, replaced or joined by the file's
    group_by: tuple[str, ...] = ("alertname",)
    group_wait_s: float = 30.0  # Alertmanager's defaults (dispatch/route.go DefaultRouteOpts)
    group_interval_s: float = 300.0
    repeat_interval_s: float = 4 * 3600.0
    send_resolved: bool = True
    evaluation_interval_s: float = 60.0  # Prometheus's default evaluation_interval
    webhook_format: WebhookFormat = "auto"
    handler: str | None = None  # "module:function"
    external_url: str = "http://localhost:8501"
    inhibit: tuple[InhibitRule, ...] = ()
    maintenance: tuple[Maintenance, ...] = field(default_factory=tuple)


def default_settings(metrics: Mapping[str, Any] | None = None) -> AlertSettings:
    """The settings with no [alerts] section: the default rules and inhibitions."""
    v = Validator({}, "the built-in defaults")
    return parse_alerts({}, v, metrics)


def parse_alerts(
    data: Mapping[str, Any], v: Validator, metrics: Mapping[str, Any] | None = None
) -> AlertSettings:
    """[alerts] of the (merged) configuration; each problem goes to `v`. `metrics` is the
    catalogue rules may name (built-ins and [[metrics]]); None: the built-ins."""
    if metrics is None:
        from analysis.metrics import catalogue

        metrics = catalogue()
    section = v.table(data, "alerts") or {}
    v.known(section, "alerts", SECTION_KEYS)
    p = "alerts"
    rules: dict[str, Rule] = {}
    if v.boolean(section, p, "defaults", True):
        for i, definition in enumerate(DEFAULT_RULES):
            rule = parse_rule(definition, f"default rule {i}", v, metrics, "default")
            if rule is not None:
                rules[rule.name] = rule
    for prefix, table in v.tables(data, "alerts.rules"):
        rule = parse_rule(table, prefix, v, metrics, "file")
        if rule is not None:
            rules[rule.name] = rule
    inhibit = [_inhibit(t, f"default inhibit {i}", v) for i, t in enumerate(DEFAULT_INHIBIT)]
    inhibit += [_inhibit(t, prefix, v) for prefix, t in v.tables(data, "alerts.inhibit")]
    windows = [_maintenance(t, prefix, v) for prefix, t in v.tables(data, "alerts.maintenance")]
    group_by = section.get("group_by", ["alertname"])
    if not isinstance(group_by, list) or not all(
        isinstance(g, str) and (g == "..." or _LABEL.match(g)) for g in group_by
    ):
        v.fail(f"{p}.group_by", 'must be a list of label names, or ["..."] for all labels')
        group_by = ["alertname"]
    handler = v.string(section, p, "handler")
    if handler is not None and not _HANDLER.match(handler):
        v.fail(f"{p}.handler", "must be a Python function as 'package.module:function'")
        handler = None
    fmt = v.string(section, p, "webhook_format", "auto", choices=WEBHOOK_FORMATS)
    return AlertSettings(
        enabled=v.boolean(section, p, "enabled", True),
        rules=tuple(rules.values()),
        group_by=tuple(group_by),
        group_wait_s=_duration(section, p, "group_wait", 30, v, low=0),
        group_interval_s=_duration(section, p, "group_interval", 300, v, low=1),
        repeat_interval_s=_duration(section, p, "repeat_interval", 14400, v, low=60),
        send_resolved=v.boolean(section, p, "send_resolved", True),
        evaluation_interval_s=_duration(section, p, "evaluation_interval", 60, v, low=5),
        webhook_format=fmt if fmt in WEBHOOK_FORMATS else "auto",
        handler=handler,
        external_url=v.url(section, p, "external_url") or "http://localhost:8501",
        inhibit=tuple(r for r in inhibit if r is not None),
        maintenance=tuple(w for w in windows if w is not None),
    )


def _duration(
    t: Mapping[str, Any], prefix: str, key: str, default: float, v: Validator, low: float = 0
) -> float:
    value = t.get(key)
    if value is None:
        return float(default)
    seconds = parse_duration(value)
    if seconds is None:
        v.fail(f"{prefix}.{key}", f"must be a duration like '30s', '5m' or '4h' (got {value!r})")
        return float(default)
    if seconds < low:
        v.fail(f"{prefix}.{key}", f"must be at least {low:g} s (got {value!r})")
        return float(default)
    return seconds


def _param(
    t: Mapping[str, Any], prefix: str, param: Param, v: Validator, metrics: Mapping[str, Any]
) -> Any:
    key = f"{prefix}.{param.name}"
    value = t.get(param.name)
    if value is None:
        if param.required:
            v.fail(key, "is required")
        default = param.default
        if param.type == "duration" and default is not None:
            return parse_duration(default)
        return default
    if param.type == "duration":
        return _duration(
            t, prefix, param.name, parse_duration(param.default) or 0, v, param.low or 0
        )
    if param.type == "number":
        low, high = param.low, param.high
        return v.number(t, prefix, param.name, param.default, low=low, high=high)
    if param.type == "integer":
        if isinstance(value, float) and not value.is_integer():
            v.fail(key, f"must be a whole number (got {value!r})")
            return param.default
        return v.integer(t, prefix, param.name, param.default, low=param.low, high=param.high)
    if param.type == "bool":
        return v.boolean(t, prefix, param.name, bool(param.default))
    if param.type == "texts":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
            v.fail(key, "must be a list of names")
            return param.default
        bad = [x for x in value if param.choices and x not in param.choices]
        if bad:
            v.fail(key, f"may only hold {', '.join(param.choices)} (got {', '.join(bad)})")
            return param.default
        return list(value)
    if param.type == "metric":
        name = v.string(t, prefix, param.name)
        if name is not None and name not in metrics:
            v.fail(key, f"names no metric of the catalogue (known: {', '.join(sorted(metrics))})")
            return None
        return name
    if param.type == "choice":
        return v.string(t, prefix, param.name, param.default, choices=param.choices)
    return v.string(t, prefix, param.name, param.default)


def parse_rule(
    t: Mapping[str, Any],
    prefix: str,
    v: Validator,
    metrics: Mapping[str, Any],
    origin: Origin,
) -> Rule | None:
    """One rule, or None when it has a problem (each one reported to `v`)."""
    before = len(v.problems)
    name = v.string(t, prefix, "name")
    if name is None:
        v.fail(f"{prefix}.name", "is required")
    elif not _NAME.match(name):
        v.fail(f"{prefix}.name", "must be lower_snake_case letters, digits and _ (at most 63)")
    kind_name = v.string(t, prefix, "kind", choices=tuple(KINDS))
    if kind_name is None:
        if "kind" not in t:
            v.fail(f"{prefix}.kind", f"is required (one of {', '.join(KINDS)})")
        return None
    kind = KINDS[kind_name]
    v.known(t, prefix, (*RULE_KEYS, *(p.name for p in kind.params)))
    params = {p.name: _param(t, prefix, p, v, metrics) for p in kind.params}
    if len(v.problems) == before and kind.problems is not None:
        for problem in kind.problems(params, metrics):
            v.problem(f"{prefix} ({name}) in {v.where}: {problem}.")
    severity = v.string(t, prefix, "severity", "warning", choices=SEVERITIES)
    labels = t.get("labels", {})
    if not isinstance(labels, dict) or not all(
        isinstance(k, str)
        and _LABEL.match(k)
        and k not in ("alertname", "severity")
        and isinstance(x, str)
        for k, x in labels.items()
    ):
        v.fail(f"{prefix}.labels", "must be a table of text labels (not alertname or severity)")
        labels = {}
    rule = Rule(
        name=name or "",
        kind=kind_name,
        params=params,
        severity=cast(Severity, severity),  # one of SEVERITIES, or the default
        for_s=_duration(t, prefix, "for", 0, v),
        keep_firing_for_s=_duration(t, prefix, "keep_firing_for", 0, v),
        every_s=_duration(t, prefix, "every", kind.every_s, v, low=5),
        labels=labels_of(labels),
        description=(v.string(t, prefix, "description") or "") if "description" in t else "",
        enabled=v.boolean(t, prefix, "enabled", True),
        origin=origin,
    )
    return rule if len(v.problems) == before else None


def rule_from_definition(
    definition: Mapping[str, Any], metrics: Mapping[str, Any], where: str = "the Alerts page"
) -> tuple[Rule | None, list[str]]:
    """A rule written on the Alerts page (or stored by it): the rule, or the problems."""
    v = Validator({}, where)
    rule = parse_rule(definition, f"rule {definition.get('name', '?')}", v, metrics, "app")
    return rule, v.problems


def rule_definition(rule: Rule) -> dict[str, Any]:
    """A rule as a [[alerts.rules]] entry (durations in seconds), for the page's editor."""
    out: dict[str, Any] = {"name": rule.name, "kind": rule.kind, "severity": rule.severity}
    for key, seconds in (("for", rule.for_s), ("keep_firing_for", rule.keep_firing_for_s)):
        if seconds:
            out[key] = seconds
    out["every"] = rule.every_s
    if rule.labels:
        out["labels"] = dict(rule.labels)
    if rule.description:
        out["description"] = rule.description
    out["enabled"] = rule.enabled
    out.update({k: value for k, value in rule.params.items() if value is not None})
    return out


def _matchers(values: object, key: str, v: Validator) -> tuple[Matcher, ...] | None:
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list):
        v.fail(key, "must be a list of matchers like 'alertname=\"dependency_down\"'")
        return None
    out = []
    for text in values:
        try:
            out.append(parse_matcher(str(text)))
        except MatcherError as exc:
            v.fail(key, f"holds a bad matcher: {exc}")
            return None
    return tuple(out)


def _inhibit(t: Mapping[str, Any], prefix: str, v: Validator) -> InhibitRule | None:
    v.known(t, prefix, ("source", "target", "equal"))
    source = _matchers(t.get("source"), f"{prefix}.source", v)
    target = _matchers(t.get("target"), f"{prefix}.target", v)
    equal = t.get("equal", [])
    if not isinstance(equal, list) or not all(isinstance(e, str) for e in equal):
        v.fail(f"{prefix}.equal", "must be a list of label names")
        return None
    if source is None or target is None:
        return None
    if not source or not target:
        v.fail(prefix, "needs both source and target matchers")
        return None
    return InhibitRule(source, target, tuple(equal))


def _naive_utc(value: object) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return None if t.tzinfo is None else t.astimezone(UTC).replace(tzinfo=None)


def _maintenance(t: Mapping[str, Any], prefix: str, v: Validator) -> Maintenance | None:
    v.known(t, prefix, ("name", "matchers", "start", "end", "weekdays", "from", "to"))
    name = v.string(t, prefix, "name", prefix) or prefix
    matchers = _matchers(t.get("matchers"), f"{prefix}.matchers", v)
    if matchers is None:
        return None
    if "start" in t or "end" in t:
        start, end = _naive_utc(t.get("start")), _naive_utc(t.get("end"))
        if start is None or end is None or end <= start:
            v.fail(prefix, "needs start and end as ISO times with an offset, end after start")
            return None
        return Maintenance(name, matchers, start, end)
    days = t.get("weekdays", [])
    if not isinstance(days, list) or not all(str(d).lower()[:3] in WEEKDAYS for d in days):
        v.fail(f"{prefix}.weekdays", f"must be a list of {', '.join(WEEKDAYS)}")
        return None
    times = []
    for key in ("from", "to"):
        text = t.get(key)
        found = _HHMM.match(str(text)) if text is not None else None
        if text is not None and found is None:
            v.fail(f"{prefix}.{key}", "must be a UTC time like '02:00'")
            return None
        times.append(time(int(found.group(1)), int(found.group(2))) if found else None)
    if not days and None in times:
        v.fail(prefix, "needs start and end, or weekdays and/or from and to")
        return None
    weekdays = tuple(WEEKDAYS.index(str(d).lower()[:3]) for d in days)
    return Maintenance(name, matchers, weekdays=weekdays, from_time=times[0], to_time=times[1])


def in_maintenance(windows: Iterable[Maintenance], labels: Labels, now: datetime) -> str | None:
    """The name of a window that mutes an alert with `labels` at `now`, or None."""
    for window in windows:
        if window.covers(labels, now):
            return window.name
    return None
