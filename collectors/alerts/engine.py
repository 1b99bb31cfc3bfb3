"""Evaluating the rules in the collectors service, after each publish, on the snapshot the
pages read.

Why the published snapshot and not the warehouse: an alert then says exactly what the page it
links to shows (the same data version), the evaluation runs in its own in-memory DuckDB over
immutable Parquet files and never waits for or holds up the writer, and `[[metrics]]` SQL runs
where it was checked, in the locked-down snapshot. The cost is one publish of delay, seconds.

On the first evaluation that finds data reaching the present (a backfill has finished), the
history is replayed (at most REPLAY_DAYS) as if the rules had run then, so the Alerts page shows past incidents. Replayed changes notify
nobody; alerts still firing at the end of the replay are notified like any new alert.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from analysis.alerts.anomaly import DETECTOR_STATES, DetectorStates
from analysis.alerts.evaluation import Outcome, evaluate, replay
from analysis.alerts.kinds import KINDS
from analysis.alerts.model import Context, Rule, WatchedExperiment, describe_duration, floor_minute
from analysis.alerts.states import Change, resolve_all
from analysis.experiments import experiment_definition
from analysis.metrics import Metric, catalogue
from collectors.alerts.reading import SnapshotReader
from collectors.alerts.settings import AlertSettings, rule_definition, rule_from_definition
from collectors.alerts.store import AlertStore, Timers, iso
from collectors.serving_format import Manifest, read_manifest

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
REPLAY_DAYS = 30
# The history is replayed once the data reaches this close to now (the backfill is done).
CAUGHT_UP = timedelta(hours=1)
# The recent reader holds a day more than the due rules' longest lookback (windows cross days).
RECENT_MARGIN = timedelta(days=1)
# A rule is due when its interval has passed, give or take this (evaluations are not exact).
DUE_SLACK_S = 2.0
# The warehouse's alerts table: (alert_id, rule, severity, fired_at, resolved_at, summary, labels)
Episode = tuple[str, str, str, datetime, datetime | None, str, str]


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def timers_of(settings: AlertSettings) -> Timers:
    return Timers(
        settings.group_by,
        settings.group_wait_s,
        settings.group_interval_s,
        settings.repeat_interval_s,
        settings.send_resolved,
    )


@dataclass(frozen=True)
class RulesInEffect:
    rules: tuple[Rule, ...]  # enabled or not, by name: the page's, else the file's, else default
    problems: dict[str, list[str]] = field(default_factory=dict)  # page rules that do not load

    @property
    def enabled(self) -> list[Rule]:
        return [r for r in self.rules if r.enabled]


def rules_in_effect(
    settings: AlertSettings,
    page_rules: Mapping[str, tuple[dict[str, Any], int]],
    metrics: Mapping[str, Metric],
) -> RulesInEffect:
    """The defaults and workbench.toml's rules, each replaced by the Alerts page's version of
    the same name; the page's own rules join them."""
    rules = {r.name: r for r in settings.rules}
    problems: dict[str, list[str]] = {}
    for name, (definition, _revision) in page_rules.items():
        rule, found = rule_from_definition(definition, metrics)
        if rule is None:
            problems[name] = found
        else:
            rules[name] = rule
    return RulesInEffect(tuple(rules.values()), problems)


def watched_experiments(store: AlertStore) -> list[WatchedExperiment]:
    return [
        WatchedExperiment(experiment_definition(e), e.name, tuple(e.guardrail_metrics))
        for e in store.experiments().values()
        if e.status == "running"
    ]


def context(store: AlertStore, con: Any, now: datetime, metrics: Mapping[str, Metric]) -> Context:
    """What the rules are checked against: the snapshot and what the control store says."""
    intervals = {
        job: float(s.every_seconds) if s.kind == "interval" and s.every_seconds else None
        for job, s in store.schedules().items()
        if s.enabled
    }
    return Context(
        con,
        now,
        metrics,
        store.service_info(),
        store.progress(),
        intervals,
        watched_experiments(store),
    )


class AlertEngine:
    def __init__(
        self,
        store: AlertStore,
        serving: Path,
        settings: AlertSettings,
        custom_metrics: Sequence[Mapping[str, Any]] = (),
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.serving = serving
        self.settings = settings
        self.metrics = catalogue(custom_metrics)
        self.clock = clock
        self.timers = timers_of(settings)
        self.recent = SnapshotReader(serving, None)
        self.full = SnapshotReader(serving)
        self._last_evaluated: dict[str, datetime] = {}
        self.descriptions: dict[str, str] = {}
        # The anomaly rules' detectors, carried between evaluations and saved when they move,
        # so an evaluation feeds only the hours completed since the last one, and a restart
        # picks up where the service stopped (no rescan, no second alert).
        self.detectors = DetectorStates()

    # ---- the snapshot ----------------------------------------------------------------------

    def _readers(self, manifest: Manifest, rules: Sequence[Rule], now: datetime) -> None:
        """Bring the readers to `manifest`: the recent one over the days the due rules with a
        lookback read, the full one only if a due rule reads the whole history."""
        spans = [KINDS[r.kind].lookback(r) for r in rules]
        recent = [s for s in spans if s is not None]
        since = (now - max(recent, default=timedelta(0)) - RECENT_MARGIN).date()
        self.recent.follow(since)
        self.recent.refresh(manifest)
        if any(s is None for s in spans):
            self.full.refresh(manifest)

    def close(self) -> None:
        self.recent.close()
        self.full.close()
        self.recent = SnapshotReader(self.serving, None)
        self.full = SnapshotReader(self.serving)

    # ---- evaluating ----------------------------------------------------------------------

    def rules(self) -> RulesInEffect:
        return rules_in_effect(self.settings, self.store.page_rules(), self.metrics)

    def _carried(self, rules: Sequence[Rule]) -> dict[Hashable, Any]:
        """The memo entry that carries the detectors, with the saved ones of rules not seen
        since the service started loaded from the control store."""
        names = [r.name for r in rules if r.kind == "anomaly" and not self.detectors.known(r.name)]
        saved = self.store.rule_states(names)
        for name in names:
            self.detectors.load(name, saved.get(name))
        return {DETECTOR_STATES: self.detectors}

    def _save_carried(self) -> None:
        # After the alerts' commit; either order is safe: a reading is a function of the
        # detector, which gives the same verdicts when hours are fed again after a crash.
        self.store.save_rule_states(self.detectors.changed())

    def evaluate(self, now: datetime | None = None) -> tuple[Outcome, list[Episode]]:
        """Replay the history if it was never replayed, then check every due rule now: the
        alerts' new states, their history and their notifications are committed together.
        Returns the outcome and the episodes that started or ended (for the warehouse)."""
        now = now or self.clock()
        in_effect = self.rules()
        self.descriptions = {r.name: r.description for r in in_effect.rules}
        episodes: list[Episode] = []
        manifest = read_manifest(self.serving)
        if manifest is None:
            return Outcome(), episodes
        if self.store.meta("replayed_until") is None and _has_data(manifest):
            self.full.refresh(manifest)
            if self._caught_up(now):  # not halfway through a backfill
                episodes += self.replay(in_effect.enabled, now)
        enabled = in_effect.enabled
        due = self._due(now)
        self._readers(manifest, [r for r in enabled if due(r)], now)
        base = context(self.store, self.recent.con, now, self.metrics)
        carried = self._carried(enabled)
        contexts = {
            "recent": dataclasses.replace(base, memo=dict(carried)),
            "full": dataclasses.replace(base, con=self.full.con, memo=dict(carried)),
        }

        def context_of(rule: Rule) -> Context:
            return contexts["recent" if KINDS[rule.kind].lookback(rule) is not None else "full"]

        alerts = self.store.load_alerts()
        outcome = evaluate(context_of, enabled, alerts, self.settings.inhibit, due)
        self._last_evaluated.update(outcome.evaluated)
        names = {r.name for r in enabled}
        gone, ended = resolve_all([a for a in alerts.values() if a.rule not in names], now)
        for alert in gone:
            outcome.alerts[alert.fingerprint] = alert
        outcome.changes.extend(ended)
        changed = [a for fp, a in outcome.alerts.items() if alerts.get(fp) != a]
        self.store.commit(changed, outcome.changes, now, self.timers)
        self._save_carried()
        for name, error in outcome.errors.items():
            log.warning("alert rule %s could not be evaluated: %s", name, error)
        self._announce(in_effect, outcome, now, int(manifest.get("version", 0)))
        return outcome, episodes + _episodes(outcome.changes)

    def _due(self, now: datetime) -> Callable[[Rule], bool]:
        def due(rule: Rule) -> bool:
            last = self._last_evaluated.get(rule.name)
            return last is None or (now - last).total_seconds() >= rule.every_s - DUE_SLACK_S

        return due

    def _caught_up(self, now: datetime) -> bool:
        """Whether the snapshot reaches the present: a backfill publishes its oldest days first,
        and a replay over half of them would find half the incidents, once and for all."""
        row = self.full.con.execute(
            "SELECT greatest((SELECT max(started_at) FROM requests), "
            "(SELECT max(checked_at) FROM probe_results))"
        ).fetchone()
        latest: datetime | None = row[0] if row else None
        return latest is not None and latest >= now - CAUGHT_UP

    def replay(self, rules: Sequence[Rule], now: datetime) -> list[Episode]:
        """The history as if the rules had run live; notifies only what still fires."""
        con = self.full.con
        row = con.execute(
            "SELECT least((SELECT min(started_at) FROM requests), "
            "(SELECT min(checked_at) FROM probe_results))"
        ).fetchone()
        first: datetime | None = row[0] if row else None
        end = floor_minute(now)
        start = max(first, end - timedelta(days=REPLAY_DAYS)) if first else end
        ctx = dataclasses.replace(
            context(self.store, con, end, self.metrics), memo=self._carried(rules)
        )
        outcome = replay(ctx, rules, start, end, self.settings.inhibit, self.store.load_alerts())
        changed = list(outcome.alerts.values())
        self.store.commit(
            changed, outcome.changes, now, self.timers, replayed=True, notify_firing=True
        )
        self.store.set_meta(replayed_until=iso(end), replayed_from=iso(start))
        self._save_carried()
        self._last_evaluated.update(outcome.evaluated)
        log.info(
            "replayed %s of history through %d alert rules: %d state changes, not notified",
            describe_duration((end - start).total_seconds()),
            len(rules),
            len(outcome.changes),
        )
        return _episodes(outcome.changes)

    def _announce(
        self, in_effect: RulesInEffect, outcome: Outcome, now: datetime, version: int
    ) -> None:
        """What the Alerts page shows about the service's rules: the ones in effect, errors."""
        self.store.set_meta(
            rules=[{**rule_definition(r), "origin": r.origin} for r in in_effect.rules],
            rule_problems=in_effect.problems,
            rule_errors=outcome.errors,
            evaluated_at=iso(now),
            snapshot_version=version,
            kinds=sorted(KINDS),
        )


def _has_data(manifest: Manifest) -> bool:
    return any(entry.get("days") for entry in manifest.get("tables", {}).values())


def _episodes(changes: Sequence[Change]) -> list[Episode]:
    """Episodes that fired or resolved, as the warehouse's alerts table keeps them (the latest
    change of each episode wins)."""
    out: dict[str, Episode] = {}
    for change in changes:
        a = change.instance
        if a.fired_at is None or a.state not in ("firing", "resolved"):
            continue
        key = f"{a.fingerprint}:{a.episode}"
        resolved = a.resolved_at if a.state == "resolved" else None
        severity = dict(a.labels).get("severity", "")
        out[key] = (
            key,
            a.rule,
            severity,
            a.fired_at,
            resolved,
            a.summary,
            json.dumps(dict(a.labels)),
        )
    return list(out.values())
