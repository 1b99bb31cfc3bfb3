"""The improvement backlog and the "what changed" timeline find what the demo simulator planted
(collectors/demo_truth.py), with numbers checked against independent computations on the raw
rows (pandas, numpy), and rank by the stated impact."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analysis import backlog as bl
from analysis import changes
from analysis.benchmarks import BenchmarkSettings, release_benchmarks
from analysis.overview import headline
from tests.demo_data import simulated_warehouse

ANCHOR = datetime(2025, 8, 20, 12, 0, tzinfo=UTC)
DAYS = 21  # every planted episode sits in the last 21 days (the failed build: 19 days back)


def naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


@pytest.fixture(scope="module")
def world():
    start = ANCHOR - timedelta(days=DAYS)
    con, truth = simulated_warehouse(ANCHOR, timedelta(days=DAYS))
    yield con, truth, naive(start), naive(ANCHOR)
    con.close()


def test_the_llm_stage_is_the_slowest_and_its_share_over_budget_matches_raw_turns(world):
    con, _, start, end = world
    items = bl.stage_items(con, start, end, compared=False)
    assert items[0].title.startswith("LLM time to first token")  # slowed by the bad release
    turns = con.execute("SELECT * FROM voice_turns").df()
    calls = con.execute("SELECT count(*) FROM calls").fetchone()[0]
    for item in items:
        stage = next(
            s for s, t in bl.STAGE_TITLES.items() if item.title.lower().startswith(t.lower())
        )
        values = turns[stage].dropna().to_numpy()
        share = float(np.mean(values > bl.STAGE_BUDGET_MS[stage]))
        assert item.now == pytest.approx(share, abs=0.01)  # DDSketch buckets: 1 % in value
        per_call = len(turns) / calls
        expected = (values > bl.STAGE_BUDGET_MS[stage]).sum() / per_call
        assert item.affected_calls == pytest.approx(expected, rel=0.05)
        assert item.impact == pytest.approx(item.affected_calls * 0.25)


def test_repeat_callers_are_the_ones_pandas_finds_in_calls(world):
    con, _, start, end = world
    calls = con.execute("SELECT caller_id, started_at FROM calls").df()
    calls = calls.sort_values(["caller_id", "started_at"])
    gap = calls.groupby("caller_id")["started_at"].diff()
    calls["repeat"] = gap <= pd.Timedelta(hours=24)
    truth = calls.groupby("caller_id")["repeat"].sum().sort_values(ascending=False)
    items = bl.repeat_items(con, start, end, compared=False)
    assert len(items) == bl.TOP
    got = {i.title.split()[1]: i.affected_calls for i in items}
    top = truth.head(bl.TOP)
    assert got == {caller: float(n) for caller, n in top.items()}
    assert all("within 24 h" in i.title for i in items)


def test_worst_voice_quality_segments_are_the_3g_ones_with_their_raw_mos(world):
    con, _, start, end = world
    items = bl.quality_items(con, start, end, compared=False)
    assert items, "the demo's 3G callers have poor voice quality"
    q = con.execute("SELECT network, region, codec, mos_reported FROM voice_quality").df()
    means = q.groupby(["network", "region", "codec"])["mos_reported"].agg(["mean", "size"])
    for item in items:
        network, region, codec = item.title.removeprefix("Voice quality on ").split(" / ")
        mean, size = means.loc[(network, region, codec)]
        assert mean < bl.POOR_MOS
        assert item.affected_calls == size
        assert item.severity == pytest.approx((4.0 - mean) / 3.0)
    assert {i.title.split(" on ")[1].split(" / ")[0] for i in items} <= {"3g", "pstn"}


def test_the_bad_release_error_is_listed_as_confined_to_that_release(world):
    con, truth, start, end = world
    items = bl.error_items(con, start, end, compared=False)
    bad = [i for i in items if i.title.startswith(truth.bad_release.error_type)]
    assert len(bad) == 1
    assert f"only in {truth.bad_release.release}" in bad[0].evidence
    raw = con.execute(
        "SELECT count(*) FROM errors WHERE error_type = ?", [truth.bad_release.error_type]
    ).fetchone()[0]
    assert bad[0].affected_calls == pytest.approx(raw)
    assert bad[0].severity == bl.ERROR_SEVERITY["error"]


def test_the_backlog_ranks_by_impact_and_the_experiment_is_ready(world):
    con, truth, start, end = world
    metrics = {
        m.name: m for m in __import__("analysis.metrics", fromlist=["x"]).builtin_metrics().values()
    }
    plans = changes.experiment_plans(
        [], {}, {}, {}, {},
        changes.ex.discovered_experiments(con),
        metrics,
    )  # fmt: skip
    decisions = changes.experiment_decisions(con, plans)
    assert [d.key for d in decisions] == [truth.experiment.key]
    result = bl.backlog(con, start, end, None, decisions)
    impacts = [i.impact for i in result.items]
    assert impacts == sorted(impacts, reverse=True)
    kinds = {i.kind for i in result.items}
    assert {"error", "stage", "quality", "repeat"} <= kinds
    # The demo's treatment raises P(resolved) by 3 points; once decided, the item says so.
    ready = [i for i in result.items if i.kind == "experiment"]
    if decisions[0].decision == "ship":
        assert ready and "treatment" in ready[0].title
        # calls in the period: the window's rows include calls begun just before it
        calls = con.execute(
            "SELECT count(*) FROM calls WHERE started_at >= ? AND started_at < ?", [start, end]
        ).fetchone()[0]
        assert ready[0].affected_calls == pytest.approx(calls * abs(decisions[0].effect))
    assert not result.compared  # 21 days of history: the 21 days before have none
    assert all(i.trend.startswith("n/a") or i.trend in ("ready now",) for i in result.items)


def test_trends_compare_with_a_previous_period_that_has_data(world):
    con, _, start, end = world
    mid = end - timedelta(days=7)
    result = bl.backlog(con, mid, end)
    assert result.compared
    errors = [i for i in result.items if i.kind == "error"]
    for item in errors:
        fp = item.evidence.rsplit("group ", 1)[1].rstrip(".")
        before = con.execute(
            "SELECT count(*) FROM errors WHERE fingerprint = ? AND occurred_at >= ? "
            "AND occurred_at < ?",
            [fp, mid - timedelta(days=7), mid],
        ).fetchone()[0]
        assert item.before == pytest.approx(before)
        assert item.trend == bl.trend_text(item.now, item.before, True)


def test_trend_words():
    assert bl.trend_text(1, 1, False).startswith("n/a")
    assert bl.trend_text(5, 0, True) == "new"
    assert bl.trend_text(100, 104, True) == "steady"
    assert bl.trend_text(150, 100, True) == "worse (+50%)"
    assert bl.trend_text(50, 100, True) == "better (-50%)"


def test_last_release_regressions_become_items_with_their_calls(world):
    con, truth, start, end = world
    bad = truth.bad_release
    report = release_benchmarks(con, BenchmarkSettings(), only=[bad.release])
    comparison = report.comparisons[0]
    items = bl.regression_items(con, start, end, comparison)
    assert items and all(i.kind == "regression" for i in items)
    calls = con.execute("SELECT count(*) FROM calls WHERE release = ?", [bad.release]).fetchone()
    assert items[0].affected_calls == calls[0]
    assert dict(items[0].params) == {
        "bench_baseline": comparison.baseline.label,
        "bench_candidate": bad.release,
    }


def test_the_csv_states_the_formula_and_neutralises_text():
    item = bl.BacklogItem("error", '=HYPERLINK("x") (error)', 10, 0.5, "+1 events", "errors")
    text = bl.backlog_csv([item], ["errors?period=Last+30+days"])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][3].startswith("impact")
    assert rows[1][2].startswith("'=") and rows[1][7].startswith("'+")
    assert rows[1][3] == "5.0" and rows[1][9] == bl.FORMULAS["error"]


def test_what_changed_finds_the_planted_incidents(world):
    con, truth, start, end = world
    timeline = changes.timeline(
        {
            "outages": lambda: changes.outage_changes(con, start, end),
            "anomalies": lambda: changes.anomaly_changes(con, start, end),
            "releases": lambda: changes.release_changes(con, start, end),
            "security": lambda: changes.security_changes(con, start, end),
        }
    )
    assert not timeline.notes
    found = timeline.changes
    outage = [c for c in found if c.kind == "outage"]
    assert [c.title for c in outage] == [f"Outage: {truth.outage.target}"]
    assert abs(outage[0].at - naive(truth.outage.start)) < timedelta(minutes=1)
    bad = [
        c
        for c in found
        if c.kind == "release" and c.title.startswith(f"Release {truth.bad_release.release}:")
    ]
    assert len(bad) == 1 and bad[0].tone == "bad" and "regression" in bad[0].title
    assert dict(bad[0].params)["bench_candidate"] == truth.bad_release.release
    assert any(c.title == f"Rolled back to {truth.bad_release.previous_release}" for c in found)
    failed = [c for c in found if c.title.endswith("failed")]
    assert failed, "the demo's failed build is a change"
    security = " ".join(c.title for c in found if c.kind == "security")
    assert truth.brute_force.ip in security and truth.credential_stuffing.ip in security
    anomalies = [c for c in found if c.kind == "anomaly"]
    assert any(truth.bad_release.release in c.title for c in anomalies)
    assert [c.at for c in found] == sorted((c.at for c in found), reverse=True)


def test_headline_compares_with_the_release_before_when_the_previous_period_is_empty(world):
    con, _, start, end = world
    head = headline(con, start, end)
    assert head.basis == "release"
    # a few calls begun just before the window: less than 1 % of its hours, said so
    assert "the previous period has data for less than 1% of its hours" in head.explanation
    head = headline(con, end - timedelta(days=3), end)
    assert head.basis == "previous period" and head.previous_coverage >= 0.9
    for k in head.kpis:
        assert k.delta == k.kpi.change


def test_alerts_from_the_store_are_placed_in_naive_utc_and_outside_ones_left_out():
    episodes = pd.DataFrame(
        {
            "rule": ["HighErrorRate", "Old"],
            "labels": [{"severity": "critical", "route": "/calls"}, {}],
            "fired": ["2025-08-10T14:00:00.000000+02:00", "2025-07-01T00:00:00+00:00"],
            "ended": ["2025-08-10T12:30:00.000000+00:00", None],
            "summary": ["5xx at 12 %", None],
        }
    )
    found = changes.alert_changes(episodes, datetime(2025, 8, 6), datetime(2025, 8, 20))
    assert [c.at for c in found] == [datetime(2025, 8, 10, 12, 0)]
    assert found[0].title == "Alert HighErrorRate fired (route=/calls)"
    assert found[0].detail == "critical, resolved after 30 min. 5xx at 12 %"
