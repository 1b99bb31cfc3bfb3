"""Alert states over time: inactive -> pending -> firing -> resolved, as Prometheus evaluates
alerting rules (prometheus/prometheus `rules/alerting.go`, docs
configuration/alerting_rules.md), with Grafana's recovery threshold against flapping.

- A breach starts an alert: `pending` while it has held for less than the rule's `for`, then
  `firing` (at once when `for` is 0). A pending alert whose condition clears goes back to
  `inactive` without notifying anyone.
- A firing alert stays firing while its reading is a breach or a `hold` (its value has not
  crossed the recovery threshold, Grafana's hysteresis), and for `keep_firing_for` after the
  condition cleared; then it is `resolved`. A later breach starts a new episode.
- Identity is the full label set (Alertmanager's fingerprint): the same rule and labels are
  one alert, however many times the condition is found.
- After an evaluation gap longer than FOR_OUTAGE_TOLERANCE (the service was stopped), a
  pending alert restarts its `for` instead of firing on what nobody watched (Prometheus's
  --rules.alert.for-outage-tolerance, 1 h).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from analysis.alerts.model import Evidence, Labels, Reading, Rule, State, labels_of

FOR_OUTAGE_TOLERANCE = timedelta(hours=1)
ACTIVE: tuple[State, ...] = ("pending", "firing")


def fingerprint(labels: Labels) -> str:
    """A stable id for a label set (16 hex digits of SHA-1 over the sorted pairs)."""
    text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def alert_labels(rule: Rule, reading_labels: Labels) -> Labels:
    """A reading's labels with the rule's: alertname and severity always come from the rule."""
    merged = {**dict(rule.labels), **dict(reading_labels)}
    merged["alertname"] = rule.name
    merged["severity"] = rule.severity
    return labels_of(merged)


@dataclass(frozen=True)
class Instance:
    """One alert (a rule and a label set) and where it stands."""

    fingerprint: str
    rule: str
    labels: Labels
    state: State = "inactive"
    episode: int = 0  # 1, 2, ...: each breach after inactive or resolved starts a new one
    active_since: datetime | None = None  # the breach that started the episode
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    clear_since: datetime | None = None  # the condition cleared while firing (keep_firing_for)
    value: float | None = None
    summary: str = ""
    evidence: Evidence | None = None
    inhibited_by: str | None = None  # for this episode: the firing alert that inhibited it
    evaluated_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, "")


@dataclass(frozen=True)
class Change:
    """A state change, as the history keeps it."""

    at: datetime
    previous: State
    instance: Instance


def advance(
    alert: Instance,
    reading: Reading | None,
    now: datetime,
    for_s: float,
    keep_firing_for_s: float,
) -> Instance:
    """Where `alert` stands after an evaluation at `now` that found `reading` (None: clear)."""
    if reading is not None:  # the latest value, sentence and evidence
        alert = replace(
            alert, value=reading.value, summary=reading.summary, evidence=reading.evidence
        )
    gap = alert.evaluated_at is not None and now - alert.evaluated_at > FOR_OUTAGE_TOLERANCE
    level = reading.level if reading is not None else None
    if alert.state == "firing":
        if level is not None:  # a breach, or a value short of the recovery threshold
            return replace(alert, clear_since=None, evaluated_at=now)
        since = alert.clear_since or now
        if (now - since).total_seconds() >= keep_firing_for_s:
            return replace(
                alert, state="resolved", resolved_at=now, clear_since=since, evaluated_at=now
            )
        return replace(alert, clear_since=since, evaluated_at=now)
    if alert.state == "pending":
        if level != "breach":
            return replace(alert, state="inactive", evaluated_at=now)
        since = now if gap or alert.active_since is None else alert.active_since
        if (now - since).total_seconds() >= for_s:
            return replace(
                alert, state="firing", active_since=since, fired_at=now, evaluated_at=now
            )
        return replace(alert, active_since=since, evaluated_at=now)
    # inactive or resolved: only a breach starts an episode
    if level != "breach":
        return replace(alert, evaluated_at=now)
    started = replace(
        alert,
        episode=alert.episode + 1,
        active_since=now,
        fired_at=None,
        resolved_at=None,
        clear_since=None,
        inhibited_by=None,
        evaluated_at=now,
    )
    if for_s <= 0:
        return replace(started, state="firing", fired_at=now)
    return replace(started, state="pending")


def merged_readings(rule: Rule, readings: Iterable[Reading]) -> dict[Labels, Reading]:
    """Readings by full label set; of two with the same labels, a breach wins over a hold, then
    the larger value (one alert per rule and labels, however often the condition is found)."""
    out: dict[Labels, Reading] = {}
    for reading in readings:
        labels = alert_labels(rule, reading.labels)
        other = out.get(labels)
        if other is None or _stronger(reading, other):
            out[labels] = reading
    return out


def _stronger(a: Reading, b: Reading) -> bool:
    if a.level != b.level:
        return a.level == "breach"
    return (a.value or 0.0) > (b.value or 0.0)


def evaluate_rule(
    rule: Rule,
    alerts: Mapping[str, Instance],
    readings: Sequence[Reading],
    now: datetime,
) -> tuple[dict[str, Instance], list[Change]]:
    """One evaluation of `rule` at `now`: its alerts (by fingerprint) that were evaluated, with
    their new states, and the state changes. `alerts` holds the rule's known alerts."""
    found = merged_readings(rule, readings)
    by_labels = {a.labels: a for a in alerts.values()}
    evaluated: dict[str, Instance] = {}
    changes: list[Change] = []
    for labels in set(found) | {a.labels for a in alerts.values() if a.active}:
        before = by_labels.get(labels) or Instance(fingerprint(labels), rule.name, labels)
        after = advance(before, found.get(labels), now, rule.for_s, rule.keep_firing_for_s)
        evaluated[after.fingerprint] = after
        if after.state != before.state:
            changes.append(Change(now, before.state, after))
    return evaluated, changes


def resolve_all(alerts: Iterable[Instance], now: datetime) -> tuple[list[Instance], list[Change]]:
    """Alerts of a rule that was disabled or removed: firing ones resolve, pending ones end."""
    out, changes = [], []
    for alert in alerts:
        if not alert.active:
            continue
        state: State = "resolved" if alert.state == "firing" else "inactive"
        after = replace(alert, state=state, resolved_at=now if state == "resolved" else None)
        out.append(after)
        changes.append(Change(now, alert.state, after))
    return out, changes
