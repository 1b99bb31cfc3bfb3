"""The default rules on the 30-day demo: on first start the history is replayed as if the
rules had run live; each planted incident (collectors/demo_truth.py) fires the alert a person
expects, at about the time it began, and resolves when it ends; nothing else pages; and none of
it is notified, since it is history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from collectors.alerts.delivery import LogReceiver
from collectors.alerts.runner import Alerting
from collectors.alerts.settings import default_settings
from collectors.demo_truth import demo_truth
from collectors.service import CollectorService, DataPaths
from collectors.snapshot import open_snapshot
from tests.alerting import Clock
from tests.demo_data import build_demo_data

pytestmark = pytest.mark.slow


def naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = build_demo_data(tmp_path_factory.mktemp("alert-demo"), history_days=30)
    con = open_snapshot(root / "serving").con
    mark = con.execute("SELECT value FROM watermarks WHERE stream = 'demo'").fetchone()[0]
    con.close()
    anchor = datetime.fromisoformat(json.loads(mark)["anchor"])
    clock = Clock(naive(anchor) + timedelta(minutes=1))
    service = CollectorService(DataPaths(root), {})
    try:
        alerting = Alerting(root, default_settings(), [LogReceiver()], clock=clock)
        service.use_alerting(alerting)
        alerting.evaluate_once()  # finds data never replayed: replays 30 days, then checks now
        service.publish(force=True)  # the episodes join the warehouse and the snapshot
    finally:
        service.con.close()
    episodes = alerting.store.episodes(naive(anchor) - timedelta(days=31), clock.now)
    return root, alerting, demo_truth(7, anchor), episodes


def fired(episodes: pd.DataFrame) -> pd.DataFrame:
    out = episodes[episodes["fired"].notna()].copy()
    for column in ("started", "fired", "ended"):
        out[column] = pd.to_datetime(out[column])
    out["key"] = out["labels"].map(
        lambda labels: {k: v for k, v in labels.items() if k not in ("alertname", "severity")}
    )
    return out


def one(found: pd.DataFrame, rule: str, **labels: str) -> pd.Series:
    match = found[
        (found["rule"] == rule)
        & found["key"].map(lambda k: all(k.get(n) == v for n, v in labels.items()))
    ]
    assert len(match) == 1, (rule, labels, match[["rule", "key", "fired", "ended"]])
    return match.iloc[0]


def near(value: pd.Timestamp, planted: datetime, before: float = 0, after: float = 0) -> bool:
    """`value` within [planted - before, planted + after] minutes."""
    t = naive(planted)
    return t - timedelta(minutes=before) <= value.to_pydatetime() <= t + timedelta(minutes=after)


def test_each_planted_incident_fires_the_expected_alert_and_nothing_else_pages(demo):
    _, _, truth, episodes = demo
    found = fired(episodes)
    paging = found[found["inhibited_by"].isna()]

    outage = truth.outage
    down = one(paging, "dependency_down", target="supabase")
    assert near(down["fired"], outage.down_from, before=0, after=2)  # after the probe's retries
    assert near(down["ended"], outage.end, before=0, after=5)
    # what the outage causes is shown, explained by it, and never notified
    caused = found[found["inhibited_by"] == down["fingerprint"]]
    assert set(caused["rule"]) == {"availability_burn", "new_error_group"}
    assert all(near(t, outage.start, before=0, after=15) for t in caused["fired"])

    bad = truth.bad_release
    new_error = one(paging, "new_error_group", error_type=bad.error_type)
    assert near(new_error["fired"], bad.deployed_at, before=0, after=20)
    assert near(new_error["ended"], bad.rolled_back_at, before=0, after=30)
    latency = one(paging, "turn_latency_high")
    assert near(latency["fired"], bad.deployed_at, before=0, after=45)
    assert near(latency["ended"], bad.rolled_back_at, before=0, after=30)
    # the burn rate confirms over an hour's window: it fires during the release, later
    burn = one(paging, "availability_burn")
    assert naive(bad.deployed_at) < burn["fired"].to_pydatetime() < naive(bad.rolled_back_at)
    assert near(burn["ended"], bad.rolled_back_at, before=0, after=75)

    brute = truth.brute_force
    attack = one(paging, "brute_force", account=brute.user_id)
    assert near(attack["fired"], brute.start, before=0, after=3)
    assert near(attack["ended"], brute.end, before=0, after=10)
    stuffing = truth.credential_stuffing
    attack = one(paging, "credential_stuffing", ip=stuffing.ip)
    assert near(attack["fired"], stuffing.start, before=0, after=5)
    assert near(attack["ended"], stuffing.end, before=0, after=10)
    spike = truth.api_spike
    abuse = one(paging, "api_abuse", user=spike.user_id)
    assert near(abuse["fired"], spike.start, before=0, after=15)
    assert near(abuse["ended"], spike.end, before=0, after=20)

    # the quiet days: every alert that would have paged is one of the above
    assert len(paging) == 7, paging[["rule", "key", "fired", "ended"]]
    assert episodes["ended"].notna().all()  # and nothing fires at the end of the history


def test_the_replayed_history_notified_nobody(demo):
    _, alerting, _, episodes = demo
    assert episodes["replayed"].all()
    alerting.sender.run_once()
    assert alerting.store.notifications().empty


def test_the_alert_history_is_in_the_published_snapshot(demo):
    root, _, truth, _ = demo
    con = open_snapshot(root / "serving").con
    rows = con.execute(
        "SELECT rule, severity, fired_at, resolved_at, labels FROM alerts ORDER BY fired_at"
    ).df()
    con.close()
    assert len(rows) == 10  # the seven above and the three the outage explained
    outage = rows[rows["rule"] == "dependency_down"].iloc[0]
    assert outage["severity"] == "critical" and json.loads(outage["labels"])["target"] == "supabase"
    assert rows["resolved_at"].notna().all()
