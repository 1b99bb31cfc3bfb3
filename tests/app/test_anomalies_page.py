"""The Anomalies page on the 30-day demo: it opens on a metric and period that show the planted
outage, as an episode the online detector confirmed, with deploy markers and a chart titled in
words; a metric from the configuration can be picked and scanned."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from analysis.anomalies import anomaly_view
from analysis.metrics import builtin_metrics
from analysis.online_anomalies import OnlineConfig, scan_series
from collectors.demo_truth import demo_truth
from collectors.snapshot import open_snapshot
from tests.conftest import REPO
from tests.demo_data import build_demo_data

pytestmark = pytest.mark.slow
PAGE = REPO / "app" / "views" / "anomalies.py"


def naive(t: datetime) -> pd.Timestamp:
    return pd.Timestamp(t.astimezone(UTC).replace(tzinfo=None))


@pytest.fixture(scope="module")
def demo30(tmp_path_factory):
    root = build_demo_data(tmp_path_factory.mktemp("anomaly-demo"), history_days=30)
    con = open_snapshot(root / "serving").con
    mark = con.execute("SELECT value FROM watermarks WHERE stream = 'demo'").fetchone()[0]
    con.close()
    return root, demo_truth(7, datetime.fromisoformat(json.loads(mark)["anchor"]))


@pytest.fixture
def page(demo30, monkeypatch, tmp_path):
    root, truth = demo30
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(root))
    monkeypatch.setenv("WORKBENCH_CONFIG", str(tmp_path / "workbench.toml"))
    (tmp_path / "workbench.toml").write_text("")
    st.cache_data.clear()
    return truth, tmp_path / "workbench.toml"


def run() -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=90)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def figure(at: AppTest) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def test_the_default_view_shows_the_planted_outage_as_one_episode(page):
    truth, _ = page
    at = run()
    assert at.selectbox(key="metric").value == "error_rate"
    episodes = at.dataframe[0].value
    outage_hour = naive(truth.outage.start).floor("h")
    starts = list(pd.to_datetime(episodes["start"]))
    assert outage_hour in starts
    row = episodes[pd.to_datetime(episodes["start"]) == outage_hour].iloc[0]
    assert row["kind"] == "spike" and row["direction"] == "up"
    assert row["state"] == "recovered"
    # nothing else in the default window: the outage is the only incident planted there
    window_start = pd.to_datetime(figure(at)["data"][0]["x"][0])
    planted = [outage_hour]
    bad = naive(truth.bad_release.deployed_at).floor("h")
    if bad >= window_start:
        planted.append(bad)
    assert sorted(starts) == sorted(planted)


def test_the_chart_is_titled_in_words_and_marks_every_deployment(page):
    truth, _ = page
    at = run()
    spec = figure(at)
    title = spec["layout"]["title"]["text"]
    assert title == "5xx error rate by hour (percent)"
    assert "per hour" not in title.replace("by hour", "")
    assert spec["layout"]["yaxis"]["title"]["text"] == "percent"
    hours = pd.to_datetime(spec["data"][0]["x"])
    # a failed build never went live: it gets no marker
    shown = [
        d
        for d in truth.deployments
        if hours.min() <= naive(d.created_at) < hours.max() + timedelta(hours=1)
        and d.status != "FAILED"
    ]
    assert any(d.status == "FAILED" for d in truth.deployments)
    lines = [s for s in spec["layout"]["shapes"] if s.get("type") == "line"]
    assert len(shown) >= 1 and len(lines) == len(shown)


def test_a_configured_metric_is_offered_and_scanned(page):
    _, config = page
    config.write_text(
        "[[metrics]]\n"
        'name = "short_call_share"\n'
        'type = "proportion"\n'
        'level = "call"\n'
        'label = "Short calls"\n'
        'unit = "%"\n'
        'sql = "SELECT call_id, started_at AS ts, CASE WHEN duration_s < 60 THEN 1.0 ELSE 0.0 END AS value FROM calls"\n'
    )
    at = run()
    picker = at.selectbox(key="metric")
    assert "short_call_share" in picker.options or "Short calls" in picker.options
    picker.select("short_call_share").run()
    assert not at.exception
    assert figure(at)["layout"]["title"]["text"] == "Short calls by hour (percent)"
    assert at.caption


def test_sensitivity_high_finds_at_least_what_normal_finds(demo30):
    root, _ = demo30
    con = open_snapshot(root / "serving").con
    end = con.execute("SELECT max(started_at) FROM requests").fetchone()[0]
    start = end - timedelta(days=14)
    metric = builtin_metrics()["p95_request_latency"]
    normal = anomaly_view(con, metric, start, end)
    high = anomaly_view(con, metric, start, end, sensitivity="high")
    low = anomaly_view(con, metric, start, end, sensitivity="low")
    assert len(high.episodes) >= len(normal.episodes) >= len(low.episodes)
    # the view is the detector's own verdicts over the same hours
    from analysis.metrics import hourly_values

    series = hourly_values(con, metric, start - timedelta(days=28), end)
    by_hand = scan_series(series, OnlineConfig())
    assert [e.confirmed_at for e in normal.episodes] == [
        e.confirmed_at
        for e in by_hand.episodes
        if e.start < pd.Timestamp(end)
        and (e.end is None or e.end >= pd.Timestamp(start).floor("h"))
    ]
    con.close()


def test_an_alert_evidence_link_opens_its_metric_sensitivity_and_period(page):
    """An anomaly alert's evidence focuses the page's metric and sensitivity (as the Alerts
    page does, through the session) with its period in the link; the address then names all
    three, so the view can be shared."""
    at = AppTest.from_file(str(PAGE), default_timeout=90)
    at.session_state["metric"] = "p95_e2e_latency"
    at.session_state["sensitivity"] = "low"
    at.query_params["period"] = "Last 7 days"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.selectbox(key="metric").value == "p95_e2e_latency"
    assert at.select_slider(key="sensitivity").value == "low"
    spec = figure(at)
    assert spec["layout"]["title"]["text"].startswith("p95 end-to-end turn latency")
    hours = pd.to_datetime(spec["data"][0]["x"])
    assert timedelta(days=6) < hours.max() - hours.min() <= timedelta(days=7)
    assert at.query_params["metric"] == "p95 end-to-end turn latency"  # its label
    # the same view from a shared address alone
    shared = AppTest.from_file(str(PAGE), default_timeout=90)
    for key, value in at.query_params.items():
        shared.query_params[key] = value
    shared.run()
    assert shared.selectbox(key="metric").value == "p95_e2e_latency"
    assert shared.select_slider(key="sensitivity").value == "low"


def test_the_evidence_period_is_the_shortest_that_shows_the_episode():
    from app.widgets import period_covering

    now = datetime(2026, 12, 3, 9, 0)
    assert period_covering(now - timedelta(hours=5), now) == "Last 24 hours"
    assert period_covering(now - timedelta(days=3), now) == "Last 7 days"
    assert period_covering(now - timedelta(days=10), now) == "Last 14 days"
    assert period_covering(now - timedelta(days=40), now) == "Last 30 days"
    assert period_covering(None, now) == "Last 30 days"
