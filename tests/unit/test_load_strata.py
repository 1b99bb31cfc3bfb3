"""Benchmarks at equal traffic load: the post-stratified mean, Woodruff's interval for a
mixture quantile, the hour -> load-stratum map, and what a user sees: a release that only ran
at busy hours is not called a regression, and a real slowdown is measured at its true size."""

import datetime as dt
import math

import duckdb
import numpy as np
import pytest
from scipy import optimize, stats

from analysis import benchmarks as bm
from analysis import load_strata as ls
from analysis.sketch import ALPHA, bucket_index, bucket_value
from analysis.stats import PostStratified, Proportion, SampleMean
from analysis.stats.statistics import quantile_ranks
from bench.bench_experiment import create_schema
from tests.rollup_tables import build_rollups


def _histogram(values):
    buckets, counts = np.unique(bucket_index(values), return_counts=True)
    return buckets, counts.astype(float)


def test_post_stratified_mean_and_variance_match_the_textbook_formula():
    rng = np.random.default_rng(1)
    groups = [rng.normal(10, 2, 50), rng.normal(14, 5, 200), rng.normal(20, 1, 30)]
    weights = (0.5, 0.3, 0.2)
    stat = PostStratified(
        tuple(SampleMean(len(g), g.sum(), (g * g).sum()) for g in groups), weights
    )
    # Cochran (1977) 5.3: ȳ_st = Σ W_h ȳ_h, v(ȳ_st) = Σ W_h² s_h² / n_h.
    expected_mean = sum(w * g.mean() for w, g in zip(weights, groups, strict=True))
    expected_var = sum(w * w * g.var(ddof=1) / len(g) for w, g in zip(weights, groups, strict=True))
    assert stat.mean == pytest.approx(expected_mean, rel=1e-12)
    assert stat.variance_of_mean == pytest.approx(expected_var, rel=1e-12)


def test_one_stratum_gives_the_order_statistic_interval():
    values = np.random.default_rng(2).lognormal(6, 0.5, 5_000)
    q = ls.woodruff_quantile({0: _histogram(values)}, {0: 1.0}, 0.95)
    # Independent: sort the bucketed values, read ranks n·ν ∓ z·sqrt(n·ν(1−ν)).
    ordered = np.sort(bucket_value(bucket_index(values), ALPHA))
    lo, mid, hi = quantile_ranks(len(values), 0.95)
    assert q.estimate == pytest.approx(ordered[mid - 1], rel=1e-9)
    g = (1 + ALPHA) / (1 - ALPHA)  # interval ends are the buckets' outer edges
    assert ordered[lo - 1] / g * 0.99 <= q.lower <= ordered[lo - 1]
    assert ordered[hi - 1] <= q.upper <= ordered[hi - 1] * g * 1.01


def test_woodruff_interval_covers_the_true_mixture_quantile():
    # Two strata with different latency distributions, mixed 70/30: the true p95 of the
    # mixture comes from the distributions themselves; the interval should hold it ~95 %.
    a, b, weights, nu = (
        stats.lognorm(0.4, scale=300),
        stats.lognorm(0.6, scale=600),
        (0.7, 0.3),
        0.95,
    )
    true_q = optimize.brentq(lambda x: weights[0] * a.cdf(x) + weights[1] * b.cdf(x) - nu, 1, 1e5)
    rng = np.random.default_rng(3)
    hits, reps = 0, 400
    for _ in range(reps):
        hists = {
            0: _histogram(a.rvs(600, random_state=rng)),
            1: _histogram(b.rvs(250, random_state=rng)),
        }
        q = ls.woodruff_quantile(hists, {0: weights[0], 1: weights[1]}, nu)
        hits += q.lower <= true_q <= q.upper
    assert 0.92 <= hits / reps <= 0.995


def test_too_few_observations_for_a_p99_give_no_interval():
    small = {0: _histogram(np.arange(1, 21.0)), 1: _histogram(np.arange(5, 13.0))}
    q = ls.woodruff_quantile(small, {0: 0.5, 1: 0.5}, 0.99)
    assert math.isfinite(q.estimate) and math.isnan(q.lower) and math.isnan(q.upper)


def test_weights_pool_the_strata_both_slices_have_enough_of():
    weights = ls.common_weights({0: 10, 1: 30, 2: 50}, {1: 70, 2: 9, 3: 40}, min_n=10)
    assert weights == {1: 1.0}  # 0 and 3 only one slice has; 2 has 9 in the candidate
    weights = ls.common_weights({0: 10, 1: 30}, {0: 30, 1: 30}, min_n=10)
    assert weights == pytest.approx({0: 40 / 100, 1: 60 / 100})
    assert ls.common_weights({0: 5}, {0: 7}, min_n=10) == {}


def test_a_thin_rate_stratum_never_claims_zero_variance_and_the_dof_follows_the_strata():
    stat = PostStratified((Proportion(40, 0), Proportion(400, 100)), (0.5, 0.5))
    p0 = 0.5 / 41  # (x + ½)/(n + 1): a continuity correction for the empty stratum
    expected = 0.25 * p0 * (1 - p0) / 40 + 0.25 * (100.5 / 401) * (300.5 / 401) / 400
    assert stat.variance_of_mean == pytest.approx(expected)
    # Satterthwaite (Cochran 5A.6): (Σ a_h)² / Σ a_h²/(n_h − 1), a_h = w_h² Var(μ̂_h)
    a = [0.25 * p0 * (1 - p0) / 40, 0.25 * (100.5 / 401) * (300.5 / 401) / 400]
    assert stat.dof == pytest.approx(sum(a) ** 2 / (a[0] ** 2 / 39 + a[1] ** 2 / 399))
    assert stat.dof < stat.n - 1


def test_hours_are_cut_into_load_strata_by_their_calls():
    con = duckdb.connect()
    create_schema(con)
    assert ls.load_strata(con) is None  # no calls at all
    start = dt.datetime(2026, 3, 2)
    calls_per_hour = [1, 1, 2, 3, 5, 8, 13, 21, 34, 55]
    rows = [
        (f"c{h}-{i}", start + dt.timedelta(hours=h, minutes=i % 60))
        for h, n in enumerate(calls_per_hour)
        for i in range(n)
    ]
    con.executemany("INSERT INTO calls (call_id, started_at) VALUES (?, ?)", rows)
    strata = ls.load_strata(con, bins=5)
    by_hour = dict(zip(strata.hours, strata.strata, strict=True))
    assert len(strata.thresholds) == 4
    assert by_hour[start] == by_hour[start + dt.timedelta(hours=1)] == 0  # equal loads together
    assert by_hour[start + dt.timedelta(hours=9)] == 4
    assert list(strata.strata) == sorted(strata.strata)  # load only rises here, so do strata
    build_rollups(con, "calls")  # as in a snapshot: the same strata from the hourly rollup
    assert ls.load_strata(con, bins=5) == strata


# --------------------------------------------------------------- on a warehouse


def _warehouse(slowdown: float) -> duckdb.DuckDBPyConnection:
    """Ten days of calls following a daily load curve; latency rises with load (+60 % at
    twice the mean). Release v1 runs days 0–4 at normal traffic, v2 days 5–9 at 1.6× the
    traffic (a launch), with LLM time to first token multiplied by `slowdown`."""
    con = duckdb.connect()
    create_schema(con)
    con.execute(
        """
        CREATE TEMP TABLE hours AS
        SELECT h, TIMESTAMP '2026-03-02' + to_hours(h) AS hour,
               (CASE WHEN h >= 120 THEN 1.6 ELSE 1.0 END)
               * (0.3 + 1.4 * exp(-pow(((h % 24) - 14) / 4.0, 2))) AS load
        FROM range(240) t(h)
        """
    )
    con.execute(
        """
        INSERT INTO calls (call_id, caller_id, started_at, outcome, release)
        SELECT 'c' || h || '-' || i, 'u' || i, hour + to_seconds(i * 3),
               CASE WHEN hash(h, i) % 10 < 7 THEN 'resolved' ELSE 'escalated' END,
               CASE WHEN h >= 120 THEN 'v2' ELSE 'v1' END
        FROM hours, range(CAST(round(60 * load) AS BIGINT)) r(i)
        """
    )
    con.execute(
        """
        INSERT INTO voice_turns (turn_id, call_id, turn_index, started_at, llm_ttft_ms, release)
        SELECT c.call_id || '-' || k, c.call_id, k, c.started_at + to_seconds(k * 5),
               400 * (1 + 0.6 * (hr.load - 1))
                   * CASE WHEN c.release = 'v2' THEN $slowdown ELSE 1 END
                   * exp(0.35 * sqrt(-2 * ln((hash(c.call_id, k, 'a') % 1000000 + 0.5) / 1e6))
                         * cos(2 * pi() * (hash(c.call_id, k, 'b') % 1000000 + 0.5) / 1e6)),
               c.release
        FROM calls c JOIN hours hr ON hr.hour = date_trunc('hour', c.started_at), range(4) r(k)
        """,
        {"slowdown": slowdown},
    )
    return con


def _llm_p50(comparison):
    return next(r for r in comparison.rows if r.group == "llm_ttft_ms" and r.statistic == "p50")


def test_busier_hours_alone_are_not_a_regression_at_equal_load():
    con = _warehouse(slowdown=1.0)
    v1, v2 = bm.Slice("v1", release="v1"), bm.Slice("v2", release="v2")
    raw = bm.compare_periods(con, v1, v2, bm.BenchmarkSettings(adjust_for_load=False))
    assert _llm_p50(raw).regression  # the launch traffic alone looks like a slowdown
    adjusted = bm.compare_periods(con, v1, v2)
    row = _llm_p50(adjusted)
    assert not row.regression and abs(row.relative_change) < 0.05
    assert "equal traffic load" in adjusted.adjustment
    # The launch's busiest hours have no counterpart in v1: they are left out, and said so.
    kept_v1, kept_v2 = adjusted.kept
    assert kept_v1 > 0.5 and 0.2 < kept_v2 < 1.0
    assert f"{kept_v2:.0%} of v2's observations" in adjusted.adjustment


def test_a_real_slowdown_is_measured_at_its_size_at_equal_load():
    con = _warehouse(slowdown=1.3)
    v1, v2 = bm.Slice("v1", release="v1"), bm.Slice("v2", release="v2")
    raw = _llm_p50(bm.compare_periods(con, v1, v2, bm.BenchmarkSettings(adjust_for_load=False)))
    row = _llm_p50(bm.compare_periods(con, v1, v2))
    assert row.regression
    base = row.baseline.mean
    assert row.comparison.ci_low / base < 0.30 < row.comparison.ci_high / base
    assert abs(row.relative_change - 0.30) < abs(raw.relative_change - 0.30)
    # Rates are standardised too, and a load-free rate stays unchanged.
    rate = next(r for r in bm.compare_periods(con, v1, v2).rows if r.metric == "resolved_rate")
    assert isinstance(rate.baseline, PostStratified) and not rate.regression


def test_a_rate_at_zero_keeps_the_exact_test():
    con = _warehouse(slowdown=1.0)
    con.execute("UPDATE calls SET outcome = 'escalated' WHERE release = 'v1'")
    v1, v2 = bm.Slice("v1", release="v1"), bm.Slice("v2", release="v2")
    rate = next(r for r in bm.compare_periods(con, v1, v2).rows if r.metric == "resolved_rate")
    assert isinstance(rate.baseline, Proportion) and rate.baseline.sum == 0
    assert rate.comparison.computable


def test_a_rate_leaving_zero_in_the_shared_strata_is_still_flagged():
    # The baseline's only 5xx fell at a load the candidate never saw; where both ran, the
    # baseline had none and the candidate 5 %: the exact test on the shared strata flags it.
    base = {
        ("error_rate", ""): {0: Proportion(2000, 0), 1: Proportion(2000, 0), 9: Proportion(500, 3)}
    }
    cand = {("error_rate", ""): {0: Proportion(2000, 100), 1: Proportion(2000, 100)}}
    equal = bm.at_equal_load(base, cand)
    comp = bm.compare_slices(equal.baseline, equal.candidate, bm.Slice("v1"), bm.Slice("v2"),
                             bm.BenchmarkSettings(), equal.reasons, equal.notes)  # fmt: skip
    row = next(r for r in comp.rows if r.metric == "error_rate")
    assert row.baseline == Proportion(4000, 0) and row.regression
    assert "unweighted over the shared load strata" in row.verdict
