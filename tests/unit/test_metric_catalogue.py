"""The metric catalogue: rollup and raw readings agree, an entry reaches every consumer, and a
user-defined metric is read from its SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from analysis import benchmarks as bm
from analysis.metrics import (
    BUILTIN,
    SURFACES,
    Facts,
    FromRollup,
    builtin_metrics,
    catalogue,
    metric_from_config,
    metric_registry,
    metric_series,
    metric_value,
    metrics_on,
)
from analysis.metrics import builtin as builtin_module
from analysis.metrics.definition import from_facts
from tests.demo_data import simulated_warehouse

ANCHOR = datetime(2025, 8, 20, 12, 0, tzinfo=UTC)
DAYS = 2
END = ANCHOR.replace(tzinfo=None)
START = END - timedelta(days=DAYS)


@pytest.fixture(scope="module")
def con():
    """Two days of the demo's traffic (every table) with the rollups the snapshot carries."""
    c, _ = simulated_warehouse(ANCHOR, timedelta(days=DAYS), history_days=DAYS)
    yield c
    c.close()


# One more metric, as a newcomer would add it: one entry, nothing else.
SHORT_CALLS = from_facts(
    "short_call_rate",
    Facts(
        "calls",
        "started_at",
        "CASE WHEN duration_s < 60 THEN 1.0 ELSE 0.0 END",
        "duration_s IS NOT NULL",
    ),
    "proportion",
    "call",
    lower_is_better=True,
    unit="%",
    label="Short calls",
    description="Share of calls shorter than a minute",
)


@pytest.fixture()
def with_short_calls(monkeypatch):
    monkeypatch.setattr(builtin_module, "BUILTIN", (*BUILTIN, SHORT_CALLS))


READINGS = [
    (m.name, bucket, by)
    for m in BUILTIN
    if m.rollup is not None
    for bucket in ("hour", "day", None)
    for by in (None, *(g for g in m.rollup.groups if m.facts and g in m.facts.groups))
]


@pytest.mark.parametrize("name,bucket,by", READINGS)
def test_a_rollup_reading_gives_what_the_facts_give(con, name, bucket, by):
    rolled = metric_series(con, name, START, END, bucket, by, source="rollup")
    raw = metric_series(con, name, START, END, bucket, by, source="raw")
    assert len(rolled) > 0, name
    keys = [k for k in (bucket, by) if k]
    assert rolled[keys].equals(raw[keys]), name
    assert rolled["n"].tolist() == raw["n"].tolist(), name
    if builtin_metrics()[name].type == "quantile":
        # the raw values bucketed by the same rule are the rollup's histogram: equal quantiles
        assert rolled["buckets"].map(list).tolist() == raw["buckets"].map(list).tolist()
        assert rolled["counts"].map(list).tolist() == raw["counts"].map(list).tolist()
        assert rolled["value"].tolist() == raw["value"].tolist(), name
    else:
        assert np.allclose(rolled["total"], raw["total"], rtol=1e-12), name
        assert np.allclose(rolled["value"], raw["value"], rtol=1e-12, equal_nan=True), name


def test_values_are_in_the_metrics_unit_and_match_raw_rows(con):
    requests = con.execute(
        "SELECT status_code FROM requests WHERE started_at >= ? AND started_at < ?", [START, END]
    ).df()
    rate = metric_value(con, "error_rate", START, END)
    assert rate.n == len(requests)
    assert rate.total == (requests["status_code"] >= 500).sum()
    assert rate.value == pytest.approx(100 * (requests["status_code"] >= 500).mean())
    mos = con.execute(
        "SELECT mos_reported FROM voice_quality WHERE measured_at >= ? AND measured_at < ? "
        "AND mos_reported IS NOT NULL",
        [START, END],
    ).df()["mos_reported"]
    from_facts = metric_value(con, "mos", START, END, source="raw")
    assert from_facts.value == pytest.approx(mos.mean())
    assert from_facts.squares == pytest.approx((mos**2).sum())
    assert metric_value(con, "mos", START, END).squares is None  # rollups keep no Σx²
    e2e = con.execute(
        "SELECT e2e_ms FROM voice_turns WHERE started_at >= ? AND started_at < ? "
        "AND e2e_ms IS NOT NULL",
        [START, END],
    ).df()["e2e_ms"]
    p95 = metric_value(con, "p95_e2e_latency", START, END)
    assert p95.n == len(e2e)
    assert p95.value == pytest.approx(np.quantile(e2e, 0.95), rel=0.02)  # DDSketch: 1 % + rank
    empty = metric_value(con, "error_rate", END, END + timedelta(days=1))
    assert empty.value is None and empty.n == 0 and empty.reason == "no data in this period"
    assert metric_value(con, "calls", END, END + timedelta(days=1)).value is None
    later = metric_series(con, "p95_e2e_latency", END, END + timedelta(days=1))
    assert later.empty and later["hour"].dtype.kind == "M"  # typed: callers merge on it


def test_a_series_splits_by_release_and_counts_per_day(con):
    daily = metric_series(con, "calls", START, END, bucket="day", by="release")
    calls = con.execute(
        "SELECT CAST(date_trunc('day', started_at) AS TIMESTAMP) AS day, release, count(*) AS n "
        "FROM calls WHERE started_at >= ? AND started_at < ? GROUP BY ALL ORDER BY ALL",
        [START, END],
    ).df()
    assert (
        daily[["day", "release", "n"]].astype({"n": "int64"}).equals(calls.astype({"n": "int64"}))
    )
    assert (daily["value"] == daily["n"]).all()


def test_a_user_metric_is_read_from_its_sql(con):
    config = {
        "name": "long_turns",
        "sql": "SELECT call_id, started_at AS ts, CASE WHEN e2e_ms > 1500 THEN 1 ELSE 0 END "
        "AS value FROM voice_turns WHERE e2e_ms IS NOT NULL",
        "type": "proportion",
        "level": "turn",
        "unit": "%",
    }
    metric = catalogue([config])["long_turns"]
    assert metric == metric_from_config(config) and metric.rollup is None
    assert "long_turns" in metric_registry([config]) and "long_turns" in metrics_on(
        "anomalies", [config]
    )
    share = con.execute(
        "SELECT avg(CASE WHEN e2e_ms > 1500 THEN 1.0 ELSE 0.0 END) FROM voice_turns "
        "WHERE started_at >= ? AND started_at < ? AND e2e_ms IS NOT NULL",
        [START, END],
    ).fetchone()[0]
    assert metric_value(con, metric, START, END).value == pytest.approx(100 * share)
    hourly = metric_series(con, metric, START, END)
    assert len(hourly) == 24 * DAYS and hourly["n"].sum() == metric_value(con, metric, START, END).n
    with pytest.raises(ValueError, match="cannot be split"):
        metric_series(con, metric, START, END, by="release")


def test_bad_arguments_are_refused(con):
    with pytest.raises(ValueError, match="unknown metric"):
        metric_value(con, "nope", START, END)
    with pytest.raises(ValueError, match="bucket"):
        metric_series(con, "calls", START, END, bucket="week")
    with pytest.raises(ValueError, match="no rollup"):
        metric_series(con, "handle_time", START, END, source="rollup")


def test_every_builtin_is_offered_only_where_it_can_be_computed():
    for metric in BUILTIN:
        for surface in metric.shown_on:
            assert surface in SURFACES and metric.on(surface), (metric.name, surface)
        assert metric.rollup is None or isinstance(metric.rollup, FromRollup)


def test_a_metric_added_as_one_entry_reaches_every_consumer(con, with_short_calls):
    assert "short_call_rate" in metrics_on("anomalies")  # the Anomalies page's picker
    assert "short_call_rate" in metric_registry()  # the Experiments page's registry
    series = metric_series(con, "short_call_rate", START, END)
    durations = con.execute(
        "SELECT duration_s FROM calls WHERE started_at >= ? AND started_at < ? "
        "AND duration_s IS NOT NULL",
        [START, END],
    ).df()["duration_s"]
    assert series["n"].sum() == len(durations)
    assert series["total"].sum() == (durations < 60).sum()
    day1 = bm.Slice("day 1", start=START, end=START + timedelta(days=1))
    day2 = bm.Slice("day 2", start=START + timedelta(days=1), end=END)
    for settings in (bm.BenchmarkSettings(), bm.BenchmarkSettings(adjust_for_load=False)):
        rows = {r.metric: r for r in bm.compare_periods(con, day1, day2, settings).rows}
        row = rows["short_call_rate"]
        assert row.statistic == "rate" and row.unit == "%" and row.lower_is_better
    plain = bm.compare_periods(con, day1, day2, bm.BenchmarkSettings(adjust_for_load=False))
    row = next(r for r in plain.rows if r.metric == "short_call_rate")
    first = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE duration_s < 60) FROM calls "
        "WHERE started_at >= ? AND started_at < ? AND duration_s IS NOT NULL",
        [day1.start, day1.end],
    ).fetchone()
    assert (row.baseline.n, row.baseline.sum) == first


def test_the_catalogue_keeps_todays_sets_per_surface():
    assert list(metrics_on("anomalies")) == [
        "p95_e2e_latency",
        "p95_llm_ttft",
        "error_rate",
        "calls",
        "mos",
        "p95_request_latency",
        "errors",
    ]
    assert set(bm._simple()) == {"error_rate", "mos", "csat", "resolved_rate"}
    assert list(metric_registry())[:3] == ["resolved_rate", "escalated_rate", "abandoned_rate"]
    assert len(metric_registry()) == 13
