"""Release benchmarks on synthetic data with a planted regression."""

import datetime as dt

import duckdb
import numpy as np
import pytest

from analysis.benchmarks import (
    BenchmarkSettings,
    Slice,
    compare_periods,
    release_benchmarks,
    releases,
)
from bench.bench_experiment import START, build_synthetic_warehouse, create_schema


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    create_schema(c)
    build_synthetic_warehouse(c, calls=30_000, days=20, pre_days=10)
    # v1.3 made the LLM 20 % slower; nothing else changed.
    c.execute("UPDATE voice_turns SET llm_ttft_ms = llm_ttft_ms * 1.2 WHERE release = 'v1.3'")
    return c


def test_releases_are_ordered_by_first_deployment(con):
    names = [r for r, _ in releases(con)]
    assert names[:3] == ["v1.0", "v1.1", "v1.2"]


def test_planted_regression_is_flagged_and_nothing_else(con):
    report = release_benchmarks(con, BenchmarkSettings(practical_threshold=0.05))
    flagged = {(c.candidate.label, r.name) for c in report.comparisons for r in c.regressions}
    assert ("v1.3", "p95 stage llm_ttft_ms") in flagged
    assert {label for label, _ in flagged} == {"v1.3"}
    assert all("llm_ttft_ms" in name for _, name in flagged)
    # v1.4 brings it back: an improvement against v1.3, not a regression.
    back = next(c for c in report.comparisons if c.candidate.label == "v1.4")
    row = next(r for r in back.rows if r.name == "p95 stage llm_ttft_ms")
    assert row.improvement and not row.regression


def test_threshold_keeps_small_significant_changes_unflagged(con):
    report = release_benchmarks(con, BenchmarkSettings(practical_threshold=0.5), only=["v1.3"])
    assert not any(c.regressions for c in report.comparisons)
    row = next(r for r in report.comparisons[0].rows if r.name == "p95 stage llm_ttft_ms")
    assert row.comparison.significant and "below the practical threshold" in row.verdict


def test_quantile_interval_matches_numpy_order_statistics(con):
    s = Slice("v1.2", release="v1.2")
    comp = compare_periods(con, s, s, BenchmarkSettings(adjust_for_load=False))
    row = next(r for r in comp.rows if r.name == "p95 stage e2e_ms")
    x = np.sort(
        con.execute("SELECT e2e_ms FROM voice_turns WHERE release = 'v1.2'").fetchnumpy()["e2e_ms"]
    )
    n = len(x)
    assert row.baseline.estimate == pytest.approx(np.quantile(x, 0.95, method="inverted_cdf"))
    half = 1.959964 * np.sqrt(n * 0.95 * 0.05)
    assert row.baseline.lower == x[int(np.ceil(n * 0.95 - half)) - 1]
    assert row.baseline.upper == x[int(np.ceil(n * 0.95 + half)) - 1]


def test_any_two_periods_with_rates_and_means(con):
    a = Slice("week 1", start=START, end=START + dt.timedelta(days=7))
    b = Slice("week 2", start=START + dt.timedelta(days=7), end=START + dt.timedelta(days=14))
    assert {r.name for r in compare_periods(con, a, b).rows} == {
        r.name for r in compare_periods(con, a, b, BenchmarkSettings(adjust_for_load=False)).rows
    }
    comp = compare_periods(con, a, b, BenchmarkSettings(adjust_for_load=False))
    names = {r.name for r in comp.rows}
    for expected in ("rate error rate", "mean mos", "rate csat", "rate resolved rate",
                     "p99 latency /v1/respond", "p50 stage eou_delay_ms"):  # fmt: skip
        assert expected in names
    resolved = next(r for r in comp.rows if r.name == "rate resolved rate")
    n = con.execute(
        "SELECT count(*) FROM calls WHERE started_at >= ? AND started_at < ?", [a.start, a.end]
    ).fetchone()[0]
    assert resolved.baseline.n == n
    csat = next(r for r in comp.rows if r.name == "rate csat")
    positive, rated = con.execute(
        "SELECT count(*) FILTER (WHERE rating >= 4), count(rating) FROM feedback "
        "WHERE submitted_at >= ? AND submitted_at < ?",
        [a.start, a.end],
    ).fetchall()[0]
    assert csat.baseline.mean == pytest.approx(positive / rated)  # share of 4-5 ratings


def test_empty_period_is_not_computable(con):
    empty = Slice("future", start=dt.datetime(2030, 1, 1), end=dt.datetime(2030, 2, 1))
    comp = compare_periods(con, Slice("v1.2", release="v1.2"), empty)
    assert comp.rows and all(not r.comparison.computable for r in comp.rows)
    assert not any(r.regression for r in comp.rows)


def test_rollup_percentiles_agree_with_raw_ones_and_flag_the_same(con):
    """Percentiles read from the hourly histogram rollups (1 % sketch accuracy) match the
    exact order statistics, so the fast path flags the same regression."""
    from bench.bench_experiment import build_rollups

    build_rollups(con)
    s = Slice("v1.2", release="v1.2")
    raw = compare_periods(con, s, s, BenchmarkSettings(quantile_source="raw"))
    fast = compare_periods(con, s, s, BenchmarkSettings(quantile_source="rollup"))
    raw_rows = {r.name: r for r in raw.rows}
    assert {r.name for r in fast.rows} == set(raw_rows)
    for row in fast.rows:
        if row.statistic.startswith("p"):
            exact, sketched = raw_rows[row.name].baseline, row.baseline
            assert sketched.n == exact.n
            assert sketched.estimate == pytest.approx(exact.estimate, rel=0.011), row.name
            # interval ends are outer bucket edges: never inside the exact one by more than 1 %
            assert exact.lower * 0.979 <= sketched.lower <= exact.lower * 1.011, row.name
            assert exact.upper * 0.989 <= sketched.upper <= exact.upper * 1.021, row.name
    report = release_benchmarks(con, BenchmarkSettings(quantile_source="rollup"), only=["v1.3"])
    flagged = {r.name for c in report.comparisons for r in c.regressions}
    assert "p95 stage llm_ttft_ms" in flagged
    # a period that does not start on a whole hour falls back to raw rows (exact)
    odd = Slice(
        "odd", start=START + dt.timedelta(days=1, minutes=30), end=START + dt.timedelta(days=3)
    )
    auto = compare_periods(con, odd, odd)
    exact = compare_periods(con, odd, odd, BenchmarkSettings(quantile_source="raw"))
    assert [r.baseline for r in auto.rows] == [r.baseline for r in exact.rows]


def test_a_rate_that_leaves_zero_is_flagged_as_a_regression():
    from analysis.benchmarks import compare_slices
    from analysis.stats import Proportion

    key = ("error_rate", "", "rate")
    base, cand = {key: Proportion(20_000, 0)}, {key: Proportion(20_000, 400)}
    comp = compare_slices(base, cand, Slice("v1"), Slice("v2"), BenchmarkSettings())
    (row,) = comp.rows
    assert row.regression
    assert "from zero" in row.verdict and "regression" in row.verdict


def test_traffic_mix_measures_how_differently_two_slices_fall_over_the_day():
    from analysis.benchmarks import traffic_mix

    con = duckdb.connect()
    create_schema(con)
    day = dt.datetime(2026, 2, 1)
    rows = [(f"a{i}", day + dt.timedelta(hours=i % 24), "v1") for i in range(240)]  # all hours
    rows += [(f"b{i}", day + dt.timedelta(days=1, hours=9 + i % 4), "v2") for i in range(100)]
    con.executemany("INSERT INTO calls (call_id, started_at, release) VALUES (?, ?, ?)", rows)
    mix = traffic_mix(con, Slice("v1", release="v1"), Slice("v2", release="v2"))
    # v2 ran only 09:00-12:59: its 4 hours hold all of its calls, v1's hold 4/24 of its.
    assert mix.distance == pytest.approx(1 - 4 / 24)
    assert mix.confounded
    same = traffic_mix(con, Slice("v1", release="v1"), Slice("v1", release="v1"))
    assert same.distance == 0 and not same.confounded
    empty = traffic_mix(con, Slice("v1", release="v1"), Slice("v9", release="v9"))
    assert empty.reason == "one of the slices has no calls" and not empty.confounded
