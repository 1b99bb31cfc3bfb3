"""Anomaly alert rules through the service's alert engine, on a published snapshot with a
planted episode: the alert fires when the detector confirms the episode and resolves when the
metric is back in its band; evaluating every few minutes, replaying the history at once, or
restarting the service half-way all give the same alert; a restarted service reads only the
hours it has not judged; bad parameters are refused in one sentence each."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis.alerts.anomaly as anomaly
from analysis.alerts.kinds import KINDS
from analysis.alerts.model import Context
from analysis.metrics import catalogue, hourly_values
from collectors.alerts.engine import AlertEngine
from collectors.alerts.settings import AlertSettings, rule_from_definition
from collectors.alerts.store import AlertStore
from collectors.publish import publish
from collectors.snapshot import open_snapshot
from collectors.warehouse import open_warehouse
from tests.alerting import Clock

START = datetime(2026, 3, 2)  # the first hour of data (a Monday)
DAYS = 12
# The planted episode: four hours in which 40 % of requests fail (about 5 % otherwise).
EPISODE = (START + timedelta(days=10, hours=9), START + timedelta(days=10, hours=13))
PER_HOUR = 60
STEP = timedelta(minutes=10)  # the rule's evaluation interval
RULE = {
    "name": "errors_anomalous",
    "kind": "anomaly",
    "metric": "error_rate",
    "lead_in": "14d",  # all of the data: a check from scratch sees what the carried one saw
    "every": "10m",
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A data folder whose snapshot holds DAYS of requests, one a minute, with the episode."""
    root = tmp_path_factory.mktemp("anomaly-alert")
    rng = np.random.default_rng(3)
    times = pd.date_range(START, periods=DAYS * 24 * PER_HOUR, freq="min")
    in_episode = (times >= EPISODE[0]) & (times < EPISODE[1])
    failed = rng.random(len(times)) < np.where(in_episode, 0.40, 0.05)
    frame = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(len(times))],
            "started_at": times,
            "route": "/v1/calls",
            "method": "POST",
            "status_code": np.where(failed, 503, 200),
            "duration_ms": 120.0,
            "release": "v1",
            "service": "agent",
        }
    )
    con = open_warehouse(root / "warehouse.duckdb")
    try:
        con.register("src", frame)
        con.execute("INSERT INTO requests BY NAME SELECT * FROM src")
        con.unregister("src")
        for day in sorted({t.date() for t in times}):
            con.execute("INSERT OR IGNORE INTO dirty_partitions VALUES ('requests', ?)", [day])
        publish(con, root / "serving")
    finally:
        con.close()
    return root


def settings(**changes: object) -> AlertSettings:
    rule, problems = rule_from_definition({**RULE, **changes}, catalogue())
    assert rule is not None, problems
    return AlertSettings(rules=(rule,))


def engine(root: Path, store: Path, clock: Clock) -> AlertEngine:
    return AlertEngine(AlertStore(store), root / "serving", settings(), clock=clock)


def run(alerts: AlertEngine, clock: Clock, until: datetime) -> None:
    while clock.now < until:
        clock.advance(seconds=STEP.total_seconds())
        alerts.evaluate()


def episodes(alerts: AlertEngine) -> list[tuple[int, datetime, datetime | None]]:
    """Each episode that fired: (number, fired at, resolved at)."""
    found = alerts.store.episodes(START, START + timedelta(days=DAYS))
    if found.empty:
        return []
    found = found[found["fired"].notna()]
    return sorted(
        (
            int(r.episode),
            datetime.fromisoformat(str(r.fired)),
            None if pd.isna(r.ended) else datetime.fromisoformat(str(r.ended)),
        )
        for r in found.itertuples()
    )


CONFIRMED = EPISODE[0] + timedelta(hours=1, minutes=10)  # its first hour is complete
RECOVERED = EPISODE[1] + timedelta(hours=1, minutes=10)  # its first normal hour is complete


def test_the_alert_fires_when_the_episode_is_confirmed_and_resolves_at_recovery(root, tmp_path):
    clock = Clock(EPISODE[0] - timedelta(hours=3))
    alerts = engine(root, tmp_path / "control.sqlite", clock)
    alerts.evaluate()  # the first start: replays the days before, where nothing happened
    assert episodes(alerts) == []
    run(alerts, clock, CONFIRMED - STEP)
    assert alerts.store.active_alerts().empty  # the first anomalous hour is not complete yet
    run(alerts, clock, CONFIRMED)
    (firing,) = alerts.store.active_alerts().itertuples()
    assert firing.state == "firing"
    assert "5xx error rate" in firing.summary and "expected" in firing.summary
    # the evidence opens the Anomalies page on the metric, from the episode's first hour
    evidence = firing.evidence if isinstance(firing.evidence, dict) else json.loads(firing.evidence)
    assert evidence["page"] == "anomalies"
    assert evidence["focus"] == {"metric": "error_rate", "sensitivity": "normal"}
    assert evidence["start"].startswith(EPISODE[0].isoformat())
    run(alerts, clock, RECOVERED + timedelta(hours=2))
    assert episodes(alerts) == [(1, CONFIRMED, RECOVERED)]
    assert alerts.store.active_alerts().empty


def test_small_steps_a_replay_at_once_and_a_restart_give_the_same_alert(
    root, tmp_path, monkeypatch
):
    end = RECOVERED + timedelta(hours=2)
    # one replay of the whole history on a first start at the end
    at_once = engine(root, tmp_path / "once.sqlite", Clock(end))
    at_once.evaluate()
    # evaluations every 10 minutes from before the episode, the service restarted mid-episode
    clock = Clock(EPISODE[0] - timedelta(hours=3))
    store = tmp_path / "steps.sqlite"
    first = engine(root, store, clock)
    first.evaluate()
    run(first, clock, CONFIRMED + timedelta(hours=1))
    saved = first.detectors.carried[RULE["name"]]
    read: list[tuple[datetime, datetime]] = []
    real = anomaly.complete_hours

    def spy(ctx, metric, start, stop):  # what the restarted service reads
        read.append((start, stop))
        return real(ctx, metric, start, stop)

    monkeypatch.setattr(anomaly, "complete_hours", spy)
    second = engine(root, store, clock)  # a restart: the detector comes from the store
    run(second, clock, end)
    assert read, "the restarted service judged the hours after the restart"
    assert read[0][0] == saved.through  # from where the stopped service was, not a rescan
    assert all(stop - start <= timedelta(hours=1) for start, stop in read)
    assert episodes(second) == episodes(at_once) == [(1, CONFIRMED, RECOVERED)]
    changes = second.store.history(second.store.episodes(START, end)["fingerprint"].iloc[0])
    assert list(changes["to_state"]).count("firing") == 1  # not alerted again after the restart


def test_a_check_from_scratch_finds_what_the_carried_detector_finds(root):
    """What the Alerts page's "test this rule" shows equals what the service concluded."""
    rule = settings().rules[0]
    con = open_snapshot(root / "serving").con
    carried = anomaly.DetectorStates()
    memo: dict = {anomaly.DETECTOR_STATES: carried}
    t = EPISODE[0] - timedelta(hours=2)
    while t < RECOVERED + timedelta(hours=1):
        live = KINDS["anomaly"].check(Context(con, t, catalogue(), memo=memo), rule)
        fresh = KINDS["anomaly"].check(Context(con, t, catalogue()), rule)
        assert [(r.labels, r.level, r.value) for r in live] == [
            (r.labels, r.level, r.value) for r in fresh
        ], t
        t += timedelta(minutes=25)
    con.close()


@pytest.mark.parametrize("name", ["error_rate", "p95_request_latency", "calls"])
def test_the_rule_judges_the_hourly_values_the_anomalies_page_shows(root, name):
    con = open_snapshot(root / "serving").con
    metric = catalogue()[name]
    start, end = START + timedelta(days=9, hours=5), START + timedelta(days=11)
    page = hourly_values(con, metric, start, end)
    rule = anomaly.complete_hours(Context(con, end, catalogue()), metric, start, end)
    con.close()
    pd.testing.assert_series_equal(rule, page, check_names=False)


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"metric": "p42_latency"}, "metric", "names no metric"),
        ({"metric": "csat"}, "metric", "no hourly series"),
        ({"direction": "sideways"}, "direction", "worse"),
        ({"sensitivity": "extreme"}, "sensitivity", "normal"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "IANA"),
        ({"lead_in": "1d"}, "lead_in", "at least"),
        ({"min_history": "20d"}, "min_history", "must not be longer than lead_in"),
        ({"min_history": "soon"}, "min_history", "duration"),
    ],
)
def test_a_bad_parameter_is_refused_in_one_sentence_naming_it(change, key, words):
    rule, problems = rule_from_definition({**RULE, **change}, catalogue())
    assert rule is None
    assert len(problems) == 1, problems
    (problem,) = problems
    assert key in problem and words in problem
    assert problem.endswith(".") and "\n" not in problem and problem.count(". ") == 0, problem


def test_a_good_rule_is_accepted_with_its_defaults():
    rule, problems = rule_from_definition(
        {"name": "slow_turns", "kind": "anomaly", "metric": "p95_e2e_latency"}, catalogue()
    )
    assert problems == [] and rule is not None
    assert rule.params["direction"] == "worse" and rule.params["sensitivity"] == "normal"
    assert rule.params["min_history"] == 7 * 86400 and rule.params["lead_in"] == 28 * 86400


def test_direction_picks_which_episodes_alert(root):
    """The planted episode is a rise of a metric where lower is better: `worse` and `up`
    alert on it, `down` does not."""
    con = open_snapshot(root / "serving").con
    at = CONFIRMED
    found = {}
    for direction in ("worse", "up", "down", "both"):
        rule = settings(direction=direction).rules[0]
        found[direction] = bool(KINDS["anomaly"].check(Context(con, at, catalogue()), rule))
    con.close()
    assert found == {"worse": True, "up": True, "down": False, "both": True}


def test_a_detector_saved_under_other_defaults_starts_again(monkeypatch):
    rule = settings().rules[0]
    key = anomaly.state_key(rule)
    assert anomaly.state_key(settings().rules[0]) == key  # same settings: the state is reused
    real = anomaly.detector_config

    def upgraded(timezone: str = "UTC", sensitivity: str = "normal"):
        from dataclasses import replace

        return replace(real(timezone, sensitivity), season_gain=0.5)

    monkeypatch.setattr(anomaly, "detector_config", upgraded)
    assert anomaly.state_key(rule) != key
