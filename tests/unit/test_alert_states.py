"""How an alert moves between inactive, pending, firing and resolved, as a person watching it
would see: `for` holds it pending, a recovery threshold and keep_firing_for stop flapping, the
same rule and labels are one alert, and inhibition explains symptoms by their cause."""

from __future__ import annotations

from datetime import datetime, timedelta

from analysis.alerts.evaluation import apply_inhibition
from analysis.alerts.matchers import InhibitRule, parse_matcher
from analysis.alerts.model import Evidence, Reading, Rule, labels_of
from analysis.alerts.states import Instance, evaluate_rule

T0 = datetime(2026, 1, 5, 9, 0)
EVIDENCE = Evidence("overview", "")


def reading(level: str = "breach", value: float = 1.0, **labels: str) -> Reading:
    return Reading(labels_of(labels), level, value, "", EVIDENCE)  # type: ignore[arg-type]


def run(rule: Rule, script: list[list[Reading]]) -> list[tuple[int, str]]:
    """Evaluate once a minute; the state after each evaluation of the rule's one alert."""
    alerts: dict[str, Instance] = {}
    states = []
    for minute, readings in enumerate(script):
        evaluated, _ = evaluate_rule(rule, alerts, readings, T0 + timedelta(minutes=minute))
        alerts.update(evaluated)
        (alert,) = alerts.values() if alerts else (None,)
        states.append((alert.episode if alert else 0, alert.state if alert else "inactive"))
    return states


def test_for_keeps_an_alert_pending_until_the_condition_has_held_that_long():
    rule = Rule("r", "threshold", for_s=180)
    states = run(rule, [[reading()]] * 5)
    assert [s for _, s in states] == ["pending", "pending", "pending", "firing", "firing"]


def test_a_pending_alert_whose_condition_clears_goes_back_to_inactive_without_firing():
    rule = Rule("r", "threshold", for_s=180)
    states = run(rule, [[reading()], [reading()], [], [reading()]])
    assert states == [(1, "pending"), (1, "pending"), (1, "inactive"), (2, "pending")]


def test_a_value_short_of_the_recovery_threshold_keeps_a_firing_alert_firing():
    rule = Rule("r", "threshold")
    hold = reading("hold")
    states = run(rule, [[reading()], [hold], [hold], [reading()], []])
    assert [s for _, s in states] == ["firing"] * 4 + ["resolved"]
    assert {e for e, _ in states} == {1}  # one episode
    # but a hold never starts an alert
    assert run(rule, [[hold], [hold]]) == [(0, "inactive"), (0, "inactive")]


def test_keep_firing_for_makes_a_flapping_condition_one_episode():
    rule = Rule("r", "probe_down", keep_firing_for_s=180)
    flapping = [[reading()], [], [reading()], [], [], [reading()]] + [[]] * 4
    states = run(rule, flapping)
    assert {e for e, _ in states} == {1}
    assert [s for _, s in states][-2:] == ["firing", "resolved"]  # 3 minutes after the last


def test_the_same_rule_and_labels_are_one_alert_however_often_found():
    rule = Rule("r", "security")
    readings = [reading(ip="1.2.3.4", value=v) for v in (3, 9, 5)] + [reading(ip="5.6.7.8")]
    evaluated, changes = evaluate_rule(rule, {}, readings, T0)
    assert len(evaluated) == 2 and len(changes) == 2
    strongest = next(a for a in evaluated.values() if a.label("ip") == "1.2.3.4")
    assert strongest.value == 9
    assert strongest.label("alertname") == "r" and strongest.label("severity") == "warning"


def test_a_resolved_alert_that_breaches_again_is_a_new_episode():
    rule = Rule("r", "threshold")
    states = run(rule, [[reading()], [], [reading()]])
    assert states == [(1, "firing"), (1, "resolved"), (2, "firing")]


def test_pending_restarts_after_the_service_was_stopped_for_hours():
    rule = Rule("r", "threshold", for_s=600)
    alerts: dict[str, Instance] = {}
    evaluated, _ = evaluate_rule(rule, alerts, [reading()], T0)
    alerts.update(evaluated)
    later = T0 + timedelta(hours=3)  # nobody watched in between
    evaluated, _ = evaluate_rule(rule, alerts, [reading()], later)
    (alert,) = evaluated.values()
    assert alert.state == "pending" and alert.active_since == later


def test_a_firing_cause_inhibits_its_symptoms_for_the_rest_of_their_episode():
    cause_rule, symptom_rule = Rule("dependency_down", "probe_down"), Rule("errors", "error_group")
    inhibit = [
        InhibitRule(
            (parse_matcher('alertname="dependency_down"'),), (parse_matcher("alertname=errors"),)
        )
    ]
    cause, _ = evaluate_rule(cause_rule, {}, [reading(target="db")], T0)
    symptom, changes = evaluate_rule(symptom_rule, {}, [reading(group="g")], T0)
    alerts = {**cause, **symptom}
    apply_inhibition(alerts, inhibit, changes)
    (fp,) = symptom
    assert alerts[fp].inhibited_by == next(iter(cause))
    assert changes[0].instance.inhibited_by == alerts[fp].inhibited_by
    # the cause resolves; the symptom stays explained by it (it would page otherwise)
    later = T0 + timedelta(minutes=5)
    ended, _ = evaluate_rule(cause_rule, cause, [], later)
    alerts.update(ended)
    still, _ = evaluate_rule(symptom_rule, {fp: alerts[fp]}, [reading(group="g")], later)
    alerts.update(still)
    apply_inhibition(alerts, inhibit, [])
    assert alerts[fp].state == "firing" and alerts[fp].inhibited_by is not None
