"""Evaluating rules: once at a moment (the service, after each publish) or over a past span as
if the service had run then (a replay of the history on first start).

Both run each rule's readings through the same state machine (analysis.alerts.states) and the
same inhibition: an alert that starts firing while an alert matching an inhibit rule's source
fires is inhibited for the rest of its episode. (Alertmanager re-checks inhibition at every
notification, so a symptom that outlives its cause pages once the cause resolves; an episode
keeps the cause it was first explained by.)
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from analysis.alerts.kinds import KINDS
from analysis.alerts.matchers import InhibitRule, inhibitor
from analysis.alerts.model import Context, Reading, Rule, Timeline
from analysis.alerts.states import Change, Instance, evaluate_rule

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    alerts: dict[str, Instance] = field(default_factory=dict)  # every alert, after
    changes: list[Change] = field(default_factory=list)
    evaluated: dict[str, datetime] = field(default_factory=dict)  # rule -> when
    errors: dict[str, str] = field(default_factory=dict)  # rule -> why its check failed


def check_rule(ctx: Context, rule: Rule) -> list[Reading]:
    """The rule's readings now (what "test this rule" on the Alerts page shows)."""
    return KINDS[rule.kind].check(ctx, rule)


def _failure(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def apply_inhibition(
    alerts: dict[str, Instance], rules: Sequence[InhibitRule], changes: list[Change]
) -> None:
    """Mark firing alerts that an inhibit rule's firing source explains (sticky per episode);
    the changes that made them fire carry the mark too."""
    if not rules:
        return
    firing = {fp: a.labels for fp, a in alerts.items() if a.state == "firing"}
    marked: dict[str, str] = {}
    for fp, alert in alerts.items():
        if alert.state != "firing" or alert.inhibited_by is not None:
            continue
        source = inhibitor(alert.labels, firing, rules)
        if source is not None:
            marked[fp] = source
    for fp, source in marked.items():
        alerts[fp] = replace(alerts[fp], inhibited_by=source)
    for i, change in enumerate(changes):
        fp = change.instance.fingerprint
        if fp in marked and change.instance.state == "firing":
            changes[i] = replace(change, instance=alerts[fp])


def evaluate(
    ctx: Context | Callable[[Rule], Context],
    rules: Sequence[Rule],
    alerts: Mapping[str, Instance],
    inhibit: Sequence[InhibitRule] = (),
    due: Callable[[Rule], bool] | None = None,
) -> Outcome:
    """Check every due rule at the context's moment and move its alerts on (`ctx` may depend
    on the rule: the service reads recent days for most kinds, the whole history for some). A
    rule whose check fails keeps its alerts as they were, and the failure is reported."""
    context_of = ctx if callable(ctx) else (lambda rule: ctx)
    out = Outcome(dict(alerts))
    by_rule: dict[str, dict[str, Instance]] = {}
    for fp, alert in alerts.items():
        by_rule.setdefault(alert.rule, {})[fp] = alert
    for rule in rules:
        if due is not None and not due(rule):
            continue
        try:
            rule_ctx = context_of(rule)
            readings = check_rule(rule_ctx, rule)
        except Exception as exc:  # noqa: BLE001 - one rule's failure is reported, never fatal
            out.errors[rule.name] = _failure(exc)
            continue
        now = rule_ctx.now
        evaluated, changes = evaluate_rule(rule, by_rule.get(rule.name, {}), readings, now)
        out.alerts.update(evaluated)
        out.changes.extend(changes)
        out.evaluated[rule.name] = now
    apply_inhibition(out.alerts, inhibit, out.changes)
    return out


def replay(
    ctx: Context,
    rules: Sequence[Rule],
    start: datetime,
    end: datetime,
    inhibit: Sequence[InhibitRule] = (),
    alerts: Mapping[str, Instance] | None = None,
) -> Outcome:
    """The rules over [start, end) as the service would have evaluated them: each rule's
    history (its readings at each step of its interval), then the state machine at every step
    where a rule has readings or active alerts, in time order across rules."""
    out = Outcome(dict(alerts or {}))
    timelines: dict[str, Timeline] = {}
    for rule in rules:
        history = KINDS[rule.kind].history
        if history is None:
            continue
        try:
            timelines[rule.name] = history(ctx, rule, start, end)
        except Exception as exc:  # noqa: BLE001 - the other rules still replay
            log.warning("replaying rule %s failed: %s", rule.name, _failure(exc))
            out.errors[rule.name] = _failure(exc)
    by_name = {rule.name: rule for rule in rules if rule.name in timelines}
    moments = {name: sorted(t.readings) for name, t in timelines.items()}
    cursor = dict.fromkeys(moments, 0)
    queue: list[tuple[datetime, str]] = [(m[0], name) for name, m in moments.items() if m]
    heapq.heapify(queue)
    scheduled = set(queue)
    by_rule: dict[str, dict[str, Instance]] = {}
    for fp, alert in out.alerts.items():
        by_rule.setdefault(alert.rule, {})[fp] = alert
    while queue:
        now = queue[0][0]
        due: list[str] = []
        while queue and queue[0][0] == now:
            due.append(heapq.heappop(queue)[1])
        changes: list[Change] = []
        for name in sorted(due):
            scheduled.discard((now, name))
            rule, timeline = by_name[name], timelines[name]
            readings = timeline.readings.get(now, ())
            evaluated, found = evaluate_rule(rule, by_rule.get(name, {}), readings, now)
            by_rule.setdefault(name, {}).update(evaluated)
            out.alerts.update(evaluated)
            changes.extend(found)
            out.evaluated[name] = now
            _schedule_next(
                queue,
                scheduled,
                name,
                now,
                timeline.step,
                moments[name],
                cursor,
                by_rule[name],
                end,
            )
        apply_inhibition(out.alerts, inhibit, changes)
        for change in changes:  # keep the per-rule view in step with the inhibition marks
            by_rule[change.instance.rule][change.instance.fingerprint] = out.alerts[
                change.instance.fingerprint
            ]
        out.changes.extend(changes)
    return out


def _schedule_next(
    queue: list[tuple[datetime, str]],
    scheduled: set[tuple[datetime, str]],
    name: str,
    now: datetime,
    step: timedelta,
    moments: list[datetime],
    cursor: dict[str, int],
    alerts: Mapping[str, Instance],
    end: datetime,
) -> None:
    """The rule's next evaluation: its next step while it has active alerts (so they can
    resolve or fire), else its next moment with readings."""
    i = cursor[name]
    while i < len(moments) and moments[i] <= now:
        i += 1
    cursor[name] = i
    candidates = []
    if any(a.active for a in alerts.values()) and now + step < end:
        candidates.append(now + step)
    if i < len(moments):
        candidates.append(moments[i])
    if candidates:
        item = (min(candidates), name)
        if item not in scheduled:
            scheduled.add(item)
            heapq.heappush(queue, item)
