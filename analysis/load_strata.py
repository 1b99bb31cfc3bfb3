"""Comparing two slices at equal traffic load.

Latency rises with load: a release that ran over a weekend looks faster than one that ran on
weekdays although the code did not change. So benchmarks compare slices as if they had served
the same mix of load. Each clock hour is put in one of `bins` load strata by its number of
calls (cut at quantiles of the hourly call counts over all history); every request, turn,
call, rating and quality sample inherits its hour's stratum. Both slices are then standardised
to the same stratum weights, the pooled share of observations in the strata both slices have
(Cochran 1977, Sampling Techniques, 5.3 "post-stratification"):
  * means and rates: Σ w_h·μ_h with variance Σ w_h²·Var(μ̂_h) (`PostStratified`);
  * percentiles: the quantile of the mixture F(x) = Σ w_h·F_h(x) of per-stratum histograms,
    with Woodruff's interval (Woodruff 1952, JASA 47:635): F⁻¹(ν ∓ z·se), where
    se² = Σ w_h²·F_h(Q̂)(1 − F_h(Q̂))/n_h. With one stratum this is the order-statistic
    interval at ranks n·ν ∓ z·sqrt(n·ν(1−ν)).
Hours with no calls at all join the lowest stratum (the cuts are taken over hours with calls).
Strata where either slice has fewer than `MIN_PER_STRATUM` observations are left out
(nothing, or too little, to compare them with); the comparison says how much of each slice it
kept. Percentiles are read from the sketches' buckets, whose outer edges make
their intervals about 2 % wider than exact order statistics: small shifts are missed, not
invented.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass

import duckdb
import numpy as np
from scipy.stats import norm

from analysis.sketch import ALPHA, bucket_edges, bucket_value
from analysis.stats import PostStratified, Proportion, Quantile, SampleMean

DEFAULT_BINS = 10
# Observations of each slice a stratum needs to be compared: fewer make its mean or rate too
# noisy for the test (simulated false-positive rates stay near 5 % from 10 on).
MIN_PER_STRATUM = 10

# A histogram: sorted bucket indices (analysis.sketch) and their counts.
Histogram = tuple[np.ndarray, np.ndarray]

# The hour -> stratum map as a CTE over two list parameters (no temporary tables).
STRATA_CTE = (
    "load_strata AS (SELECT unnest($strata_hours) AS strata_hour, unnest($strata_ids) AS stratum)"
)


@dataclass(frozen=True)
class LoadStrata:
    hours: tuple[dt.datetime, ...]
    strata: tuple[int, ...]
    thresholds: tuple[float, ...]  # calls per hour where strata 1, 2, ... begin

    @property
    def params(self) -> dict[str, list[dt.datetime] | list[int]]:
        return {"strata_hours": list(self.hours), "strata_ids": list(self.strata)}

    def describe(self) -> str:
        used = len(set(self.strata))
        if used < 2:
            return "one load stratum (every hour had about the same number of calls)"
        cuts = ", ".join(f"{t:g}" for t in self.thresholds[: used - 1])
        return f"{used} load strata (cut at {cuts} calls per hour)"


def load_strata(con: duckdb.DuckDBPyConnection, bins: int = DEFAULT_BINS) -> LoadStrata | None:
    """Each hour with calls and its load stratum, or None when there are no calls. Calls per
    hour are read from the calls_hourly rollup when the snapshot has it (a few rows an hour,
    however long the history), else counted from the calls."""
    has_rollup = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'calls_hourly'"
    ).fetchone()
    rows = con.execute(
        "SELECT hour, sum(n) FROM calls_hourly GROUP BY 1 HAVING sum(n) > 0 ORDER BY 1"
        if has_rollup and has_rollup[0]
        else "SELECT date_trunc('hour', started_at) AS hour, count(*) FROM calls "
        "WHERE started_at IS NOT NULL GROUP BY 1 ORDER BY 1"
    ).fetchall()
    if not rows:
        return None
    bins = max(int(bins), 1)
    counts = np.array([r[1] for r in rows], dtype=float)
    cuts = np.unique(np.quantile(counts, np.arange(1, bins) / bins)) if bins > 1 else np.array([])
    # Stratum k holds hours with cuts[k-1] < calls <= cuts[k]: equal counts share a stratum.
    strata = np.searchsorted(cuts, counts, side="left")
    return LoadStrata(
        tuple(r[0] for r in rows), tuple(int(s) for s in strata), tuple(float(c) for c in cuts)
    )


def common_weights(
    base: Mapping[int, float], cand: Mapping[int, float], min_n: int = MIN_PER_STRATUM
) -> dict[int, float]:
    """Stratum weights: the pooled share of observations over the strata where both slices
    have at least `min_n`; empty when they share none. (Merging thin strata into neighbours
    instead was tried and biased the comparison: neighbours differ in load, so the two slices'
    mixes inside a merged stratum differ again.)"""
    shared = [h for h in base if base[h] >= min_n and cand.get(h, 0) >= min_n]
    total = sum(base[h] + cand[h] for h in shared)
    return {h: (base[h] + cand[h]) / total for h in sorted(shared)} if total else {}


def standardised(
    by_stratum: Mapping[int, SampleMean | Proportion], weights: Mapping[int, float]
) -> PostStratified:
    return PostStratified(tuple(by_stratum[h] for h in weights), tuple(weights[h] for h in weights))


def woodruff_quantile(
    hists: Mapping[int, Histogram],
    weights: Mapping[int, float],
    nu: float,
    confidence: float = 0.95,
) -> Quantile:
    """The ν-quantile of the weighted mixture of the strata's histograms, with Woodruff's
    interval (see the module docstring). NaN bounds when the interval would leave the data,
    as for the unweighted order-statistic interval."""
    used = [h for h in weights if h in hists and hists[h][1].sum() > 0]
    if not used:
        return Quantile(0, nu, math.nan, math.nan, math.nan)
    grid = np.unique(np.concatenate([hists[h][0] for h in used]))
    cdfs, sizes = [], []
    for h in used:
        buckets, counts = hists[h]
        placed = np.zeros(len(grid))
        np.add.at(placed, np.searchsorted(grid, buckets), counts)
        cdfs.append(np.cumsum(placed) / placed.sum())
        sizes.append(placed.sum())
    w = np.array([weights[h] for h in used])
    w = w / w.sum()
    mixture = sum(wi * c for wi, c in zip(w, cdfs, strict=True))
    n = int(round(sum(sizes)))

    def first_at(level: float) -> int:
        # Tolerate rounding in the cumulative sums: F ≥ level − 1e-12.
        return min(int(np.searchsorted(mixture, level - 1e-12)), len(grid) - 1)

    at = first_at(nu)
    estimate = float(bucket_value(grid[at : at + 1], ALPHA)[0])
    sizes_arr = np.array(sizes)
    z = float(norm.ppf(0.5 + confidence / 2))
    # Kish's effective sample size of a weighted mixture, 1/Σ(w_h²/n_h): the interval is
    # given only where an unweighted sample of that size would have one (as for
    # `quantile_interval_supported`), so a p99 of a few dozen observations has none.
    n_eff = 1.0 / float(np.sum(w * w / sizes_arr))
    if not (n_eff > z * z * nu / (1 - nu) and n_eff > z * z * (1 - nu) / nu):
        return Quantile(n, nu, estimate, math.nan, math.nan, confidence)
    # F_h(Q̂) kept half an observation inside (0, 1): a small stratum lying wholly below
    # (or above) the estimate would otherwise claim zero variance (a continuity correction).
    p = np.clip(np.array([c[at] for c in cdfs]), 0.5 / sizes_arr, 1 - 0.5 / sizes_arr)
    se = math.sqrt(float(np.sum(w * w * p * (1 - p) / sizes_arr)))
    low_level, high_level = nu - z * se, nu + z * se
    if low_level <= 0 or high_level >= 1:
        # The interval would reach past the smallest or largest observation.
        return Quantile(n, nu, estimate, math.nan, math.nan, confidence)
    lower_edges, upper_edges = bucket_edges(grid, ALPHA)
    lower = float(lower_edges[first_at(low_level)])
    upper = float(upper_edges[first_at(high_level)])
    return Quantile(n, nu, estimate, lower, upper, confidence)
