"""Alert notifications as a person receives them: grouped, paced, muted by silences, delivered
to a real webhook on 127.0.0.1 exactly once and in order through an outage, and never lost by
a crash. Time is the test's clock; nothing sleeps for minutes."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from analysis.alerts import kinds
from analysis.alerts.defaults import DEFAULT_RULES
from collectors.alerts.delivery import (
    ALERTMANAGER_ZERO_TIME,
    HandlerReceiver,
    LogReceiver,
    WebhookReceiver,
)
from collectors.alerts.runner import Alerting
from collectors.alerts.settings import AlertSettings, default_settings
from collectors.alerts.store import parse_time
from tests.alerting import T0, Clock, Script, Webhook, data_dir, scripted_rule
from tests.conftest import REPO


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Script:
    script = Script()
    monkeypatch.setitem(kinds.KINDS, "scripted", script.kind())
    return script


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def alerting(root: Path, clock: Clock, receivers, **settings) -> Alerting:
    rules = settings.pop("rules", (scripted_rule(),))
    return Alerting(root, AlertSettings(rules=tuple(rules), **settings), receivers, clock=clock)


def notifications(a: Alerting) -> list[dict]:
    rows = a.store.notifications(10_000)
    ready = rows[rows["status"] == "ready"].drop_duplicates("id").sort_values("id")
    return ready.to_dict("records")


def test_an_alert_storm_gives_one_notification_per_group_per_interval(tmp_path, script):
    clock = Clock()
    a = alerting(data_dir(tmp_path), clock, [LogReceiver()])
    # 10,000 breaches of one rule within a minute: 100 evaluations 0.6 s apart, each finding
    # 100 label sets, half of them flapping in and out
    for i in range(100):
        script.breaching = [{"ip": f"10.0.{i % 2}.{j}"} for j in range(100)]
        a.evaluate_once()
        a.sender.run_once()
        clock.advance(seconds=0.6)
    assert len(notifications(a)) == 1  # group_wait collected the whole storm
    # the storm goes on, flapping, for 20 minutes: one notification per group_interval at most
    for i in range(400):
        script.breaching = [{"ip": f"10.0.{i % 3}.{j}"} for j in range(10)] if i % 2 else []
        a.evaluate_once()
        a.sender.run_once()
        clock.advance(seconds=3)
    sent = notifications(a)
    elapsed = clock.now - T0
    assert 1 < len(sent) <= 1 + elapsed // timedelta(minutes=5)
    times = sorted(parse_time(r["frozen_at"]) for r in sent)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= timedelta(minutes=5)


def test_a_flapping_probe_is_one_incident_not_fifty(tmp_path):
    clock = Clock()
    rows = []
    for minute in range(100):  # pending, down, up, pending, down, up, ...
        status = ("pending", "down", "up")[minute % 3]
        rows.append(
            {"target": "supabase", "checked_at": T0 + timedelta(minutes=minute, seconds=7),
             "status": status, "error": None if status == "up" else "connection refused"}
        )  # fmt: skip
    rows += [
        {"target": "supabase", "checked_at": T0 + timedelta(minutes=m, seconds=7), "status": "up"}
        for m in range(100, 110)
    ]
    rule = next(r for r in default_settings().rules if r.name == "dependency_down")
    a = alerting(data_dir(tmp_path, {"probe_results": rows}), clock, [LogReceiver()], rules=[rule])
    for _ in range(110):
        clock.advance(minutes=1)
        a.evaluate_once()
        a.sender.run_once()
    episodes = a.store.episodes(T0, clock.now)
    fired = episodes[episodes["fired"].notna()]
    assert len(fired) == 1, fired[["started", "fired", "ended"]]
    assert fired.iloc[0]["labels"]["target"] == "supabase"
    sent = notifications(a)
    assert [n["reason"] for n in sent] == [
        "dependency_down started firing",
        "dependency_down resolved",
    ]


def test_a_webhook_down_for_ten_minutes_gets_every_notification_once_in_order(
    tmp_path, script, webhook
):
    clock = Clock()
    receiver = WebhookReceiver(webhook.url)
    a = alerting(data_dir(tmp_path), clock, [receiver], group_by=("alertname", "key"))
    webhook.down = True
    for minute in range(10):  # a new alert every minute, each its own group
        script.breaching = [{"key": str(k)} for k in range(minute + 1)]
        for _ in range(12):
            a.evaluate_once()
            a.sender.run_once()
            clock.advance(seconds=5)
    assert webhook.received == [] and webhook.attempts >= 5  # retried, with backoff
    webhook.down = False
    for _ in range(120):  # the next retries come within the backoff cap (5 minutes)
        a.sender.run_once()
        clock.advance(seconds=5)
    ids = [body["groupKey"] for body in webhook.received]
    assert len(ids) == 10 and len(set(ids)) == 10, ids
    frozen = [n["group_key"] for n in sorted(notifications(a), key=lambda n: n["id"])]
    assert ids == frozen  # in the order they were written
    keys = [h["Idempotency-Key"] for h in webhook.headers]
    assert keys == sorted(set(keys), key=keys.index)


def test_a_silence_mutes_and_then_expires(tmp_path, script):
    clock = Clock()
    a = alerting(data_dir(tmp_path), clock, [LogReceiver()])
    a.store.add_silence(
        [("alertname", "=", "storm"), ("ip", "=~", "10\\..*")],
        "ana",
        "known load test",
        clock.now,
        clock.now + timedelta(hours=1),
        clock.now,
    )
    script.breaching = [{"ip": "10.1.1.1"}]
    for _ in range(30):  # half an hour of firing, silenced
        a.evaluate_once()
        a.sender.run_once()
        clock.advance(minutes=1)
    assert notifications(a) == []
    assert a.store.active_alerts()["state"].tolist() == ["firing"]
    clock.advance(minutes=31)  # the silence has ended
    for _ in range(3):
        a.evaluate_once()
        a.sender.run_once()
        clock.advance(minutes=1)
    sent = notifications(a)
    assert len(sent) == 1 and sent[0]["reason"] == "no longer muted"


def test_the_alertmanager_v4_body_field_by_field(tmp_path, script, webhook):
    clock = Clock()
    receiver = WebhookReceiver(webhook.url, "alertmanager", "http://wb.example:8501")
    rule = scripted_rule(description="Scripted for the test.", severity="critical")
    a = alerting(
        data_dir(tmp_path), clock, [receiver], rules=[rule], external_url="http://wb.example:8501"
    )
    script.breaching = [{"target": "supabase"}, {"target": "livekit"}]
    a.evaluate_once()
    clock.advance(seconds=31)
    a.sender.run_once()
    script.breaching = []
    clock.advance(minutes=6)
    a.evaluate_once()
    a.sender.run_once()
    firing, resolved = webhook.received
    # https://prometheus.io/docs/alerting/latest/configuration/#webhook_config
    assert set(firing) == {
        "version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
        "commonLabels", "commonAnnotations", "externalURL", "alerts",
    }  # fmt: skip
    assert firing["version"] == "4"
    assert firing["groupKey"] == '{}:{alertname="storm"}'
    assert firing["truncatedAlerts"] == 0
    assert firing["status"] == "firing"
    assert isinstance(firing["receiver"], str) and firing["receiver"]
    assert firing["groupLabels"] == {"alertname": "storm"}
    assert firing["commonLabels"] == {"alertname": "storm", "severity": "critical"}
    assert firing["commonAnnotations"] == {
        "description": "Scripted for the test.",
        "evidence": "scripted",
        "value": "1",
    }
    assert firing["externalURL"] == "http://wb.example:8501"
    assert len(firing["alerts"]) == 2
    for alert in firing["alerts"]:
        assert set(alert) == {
            "status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint",
        }  # fmt: skip
        assert alert["status"] == "firing"
        assert alert["labels"]["alertname"] == "storm" and alert["labels"]["target"] in (
            "supabase",
            "livekit",
        )
        assert alert["annotations"]["summary"].startswith("scripted breach")
        assert alert["startsAt"] == "2026-03-02T12:00:00.000Z"  # RFC 3339
        assert alert["endsAt"] == ALERTMANAGER_ZERO_TIME
        assert (
            alert["generatorURL"] == f"http://wb.example:8501/alerts?alert={alert['fingerprint']}"
        )
        assert len(alert["fingerprint"]) == 16
    assert resolved["status"] == "resolved"
    assert {x["status"] for x in resolved["alerts"]} == {"resolved"}
    assert all(x["endsAt"] == "2026-03-02T12:06:31.000Z" for x in resolved["alerts"])


def test_slack_format_escapes_what_alert_text_could_turn_into_mentions_or_links(
    tmp_path, script, webhook
):
    clock = Clock()
    receiver = WebhookReceiver(webhook.url, "slack")
    a = alerting(data_dir(tmp_path), clock, [receiver], group_wait_s=0)
    script.breaching = [{"who": "<!channel> <http://evil.example|click>"}]
    a.evaluate_once()
    a.sender.run_once()
    (body,) = webhook.received
    assert body["text"].startswith("[FIRING] storm")
    text = " ".join(b["text"]["text"] for b in body["blocks"] if b["type"] == "section")
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<http://evil" not in text


def test_the_webhook_url_never_reaches_the_log_or_the_store(tmp_path, script, caplog):
    clock = Clock()
    receiver = WebhookReceiver("http://127.0.0.1:9/hooks?token=s3cr3t-t0ken")  # nothing listens
    a = alerting(data_dir(tmp_path), clock, [receiver], group_wait_s=0)
    script.breaching = [{"k": "v"}]
    with caplog.at_level(logging.DEBUG):
        a.evaluate_once()
        a.sender.run_once()
    rows = a.store.notifications()
    assert rows["last_error"].iloc[0] == "the webhook could not be reached (ConnectError)"
    assert "s3cr3t" not in caplog.text and "s3cr3t" not in repr(receiver)
    assert "s3cr3t" not in str(a.store.meta("receivers"))
    raw = (tmp_path / "control.sqlite").read_bytes()
    assert b"s3cr3t" not in raw


def test_a_custom_handler_gets_alerts_shaped_like_the_sdks(tmp_path, script):
    clock = Clock()
    got = []
    a = alerting(data_dir(tmp_path), clock, [HandlerReceiver("x:y", got.append)], group_wait_s=0)
    script.breaching = [{"k": "v"}]
    a.evaluate_once()
    a.sender.run_once()
    (alert,) = got
    assert str(alert).startswith("[WARNING] workbench: storm - scripted breach")
    assert alert.to_dict()["details"]["status"] == "firing"
    assert {"title", "message", "severity", "source", "key", "details", "timestamp"} <= set(
        alert.to_dict()
    )


KILL_SCRIPT = REPO / "tests" / "integration" / "alerts_kill_helper.py"


@pytest.mark.parametrize("stage", ["written", "frozen"])
def test_a_notification_survives_sigkill_before_it_is_sent(tmp_path, webhook, stage):
    data_dir(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.run(
        [sys.executable, str(KILL_SCRIPT), str(tmp_path), webhook.url, stage],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert first.returncode == -signal.SIGKILL, first.stderr
    assert webhook.received == []
    second = subprocess.run(
        [sys.executable, str(KILL_SCRIPT), str(tmp_path), webhook.url, "restart"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert len(webhook.received) == 1
    assert webhook.received[0]["alerts"][0]["labels"]["alertname"] == "storm"


def test_the_defaults_are_a_valid_rule_set():
    settings = default_settings()
    assert [r.name for r in settings.rules] == [r["name"] for r in DEFAULT_RULES]
    # all on, but the anomaly example (docs/alerts.md: it would page incidents twice)
    assert [r.name for r in settings.rules if not r.enabled] == ["turn_latency_anomaly"]
