"""Release benchmarks: did this release make the agent faster or slower, better or worse?

Each release is compared with the previous one (and, optionally, with a chosen baseline
period); any two periods can be compared too. Per slice we measure:
  * p50/p95/p99 of requests.duration_ms per endpoint (route) and of each voice stage
    (voice_turns eou_delay_ms, stt_ms, llm_ttft_ms, tts_ttfb_ms, e2e_ms), each with the
    order-statistic interval of `analysis.stats.Quantile` (Woodruff's at equal load; either
    way observations are treated as independent;
    requests and turns within one call are mildly correlated, so intervals are a bit narrow);
  * the metric catalogue's rates and means offered on benchmarks (analysis.metrics): error
    rate (share of requests with status ≥ 500), MOS (voice_quality.mos_reported), CSAT
    (feedback.rating) and resolved rate (calls.outcome), with their normal intervals.
By default both slices are compared at equal traffic load (`analysis.load_strata`): latency
rises with load, so a release that ran at quiet hours must not look faster for that alone.
The change is tested with the Welch/z test of `analysis.stats`. A regression is flagged only
when the change is significant at α, in the worse direction, AND larger (relative) than the
user's practical threshold: small but real changes are reported, not alarmed on.
Release slices are computed in one grouped query per table; the SQL is parameterised and
every identifier comes from the whitelists below or the built-in metric catalogue.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from analysis import load_strata as ls
from analysis.first_seen import release_first_seen
from analysis.metrics import Facts, Metric, metrics_on
from analysis.sketch import ALPHA, bucket_edges, bucket_sql, bucket_value
from analysis.stats import (
    Comparison,
    Proportion,
    Quantile,
    SampleMean,
    Statistic,
    adjust_comparisons,
    welch_test,
)
from analysis.stats.frequentist import exact_two_proportions
from analysis.stats.results import not_computable
from analysis.stats.statistics import (
    add_statistics,
    quantile_interval_supported,
    quantile_ranks,
)
from analysis.uptime import incidents
from analysis.vocabulary import STAGES

QUANTILES = (0.5, 0.95, 0.99)
# At equal load, a comparison that kept less of either slice than this deserves a warning.
LOW_COVERAGE = 0.8
_TIME_COLUMN = {
    "requests": "started_at",
    "voice_turns": "started_at",
    "calls": "started_at",
    "voice_quality": "measured_at",
    "feedback": "submitted_at",
}
# Rates and means come from the metric catalogue: its proportion and mean metrics offered on
# benchmarks, each read from the one table its facts are rows of. A row is named by its metric,
# except CSAT's: the benchmark has always called the share of 4-5 ratings "csat" (the
# catalogue's "csat" is the experiments' mean rating).
_ROW_NAMES = {"csat_share": "csat"}


def _simple() -> dict[str, Metric]:
    """Row name -> catalogue metric, for every rate and mean a benchmark compares."""
    return {_ROW_NAMES.get(name, name): m for name, m in metrics_on("benchmarks").items()}


def _facts(metric: Metric) -> Facts:
    assert metric.facts is not None  # Metric.on("benchmarks") requires them
    return metric.facts


def _aggregates(facts: Facts) -> str:
    """n, Σx and Σx² of the facts' value over the rows of their table."""
    v = facts.value
    return f"count({v}), sum({v}), sum(({v}) * ({v}))"


@dataclass(frozen=True)
class Slice:
    """A release (rows whose release column matches) or a period [start, end) of naive UTC,
    without the whole hours of `exclude` (windows [start, end), e.g. outages)."""

    label: str
    release: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    exclude: tuple[tuple[dt.datetime, dt.datetime], ...] = ()


@dataclass(frozen=True)
class BenchmarkSettings:
    practical_threshold: float = 0.05  # relative change below which nothing is flagged
    alpha: float = 0.05
    baseline: Slice | None = None  # every release is also compared with this, when given
    quantiles: tuple[float, ...] = QUANTILES
    correction: str = "holm"  # across the rows of one comparison: none | holm | bh
    # Percentiles from the hourly histogram rollups (requests_latency_hist, turn_latency_hist)
    # when the snapshot has them: "auto" | "rollup" | "raw".
    quantile_source: str = "auto"
    # Compare both slices at the same mix of traffic load (analysis.load_strata).
    adjust_for_load: bool = True
    load_bins: int = ls.DEFAULT_BINS
    # Leave the hours of dependency outages out of both slices, so that an outage ending is
    # not credited to the release that happened to follow it (analysis.uptime.incidents).
    exclude_outages: bool = True


@dataclass(frozen=True)
class BenchmarkRow:
    metric: str  # "latency" | "stage" | a catalogue metric ("error_rate", "mos", "csat", ...)
    group: str  # route or stage, "" for call-level metrics
    statistic: str  # "p50", "p95", "p99", "rate", "mean"
    unit: str
    lower_is_better: bool
    baseline: Statistic
    candidate: Statistic
    comparison: Comparison  # candidate − baseline
    relative_change: float
    regression: bool
    improvement: bool
    verdict: str

    @property
    def name(self) -> str:
        metric = self.metric.replace("_", " ")
        return " ".join(p for p in (self.statistic, metric, self.group) if p)

    @property
    def title(self) -> str:
        """The row in a product owner's words ('LLM time to first token, 95th percentile')."""
        return measure_title(self.metric, self.group, self.statistic)


STAGE_TITLES = {
    "eou_delay_ms": "End-of-utterance wait",
    "stt_ms": "Transcription time",
    "llm_ttft_ms": "LLM time to first token",
    "tts_ttfb_ms": "Time to first audio (TTS)",
    "e2e_ms": "Turn latency (end to end)",
}
STATISTIC_TITLES = {"p50": "median", "p95": "95th percentile", "p99": "99th percentile"}


def measure_title(metric: str, group: str, statistic: str) -> str:
    """A benchmark measure in plain words: its metric's title from the catalogue, a voice
    stage's name, or an endpoint's response time, with the percentile spelled out."""
    simple = _simple()
    if metric in simple:
        return simple[metric].title
    what = (
        STAGE_TITLES.get(group, group)
        if metric == "stage"
        else f"Response time of {group}"
        if group
        else "Response time"
    )
    return f"{what}, {STATISTIC_TITLES.get(statistic, statistic)}"


@dataclass(frozen=True)
class BenchmarkComparison:
    baseline: Slice
    candidate: Slice
    rows: tuple[BenchmarkRow, ...]
    adjustment: str = ""  # how the slices were made comparable; "" when compared as they are
    # At equal load: the share of each slice's observations in the strata compared.
    kept: tuple[float, float] = (math.nan, math.nan)

    @property
    def regressions(self) -> tuple[BenchmarkRow, ...]:
        return tuple(r for r in self.rows if r.regression)


@dataclass(frozen=True)
class ReleaseReport:
    releases: tuple[str, ...]
    comparisons: tuple[BenchmarkComparison, ...]
    computable: bool = True
    reason: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def rows(self) -> tuple[BenchmarkRow, ...]:
        return tuple(r for c in self.comparisons for r in c.rows)


# ----------------------------------------------------------------- SQL per slice

SliceStats = dict[tuple[str, str, str], Statistic]  # (metric or stage, group, stat) -> stat


def _hours(window: tuple[dt.datetime, dt.datetime]) -> tuple[dt.datetime, dt.datetime]:
    """The whole hours a window touches (rollups are hourly: raw rows are cut the same way)."""
    start, end = window
    first = start.replace(minute=0, second=0, microsecond=0)
    last = end.replace(minute=0, second=0, microsecond=0)
    return first, last if last == end else last + dt.timedelta(hours=1)


def _exclusions(s: Slice, col: str) -> tuple[list[str], dict[str, Any]]:
    clauses, params = [], {}
    for i, window in enumerate(s.exclude):
        params[f"x{i}_start"], params[f"x{i}_end"] = _hours(window)
        clauses.append(f"NOT ({col} >= $x{i}_start AND {col} < $x{i}_end)")
    return clauses, params


def _filter(table: str, s: Slice, time_column: str | None = None) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if s.release is not None:
        clauses.append("release = $release")
        params["release"] = s.release
    col = time_column or _TIME_COLUMN[table]
    if s.start is not None:
        clauses.append(f"{col} >= $start")
        params["start"] = s.start
    if s.end is not None:
        clauses.append(f"{col} < $end")
        params["end"] = s.end
    excluded, more = _exclusions(s, col)
    return (" AND ".join(clauses + excluded) or "TRUE"), {**params, **more}


def _quantile_series(
    con: duckdb.DuckDBPyConnection,
    table: str,
    column: str,
    group: str | None,
    where: str,
    params: Mapping[str, Any],
    quantiles: Sequence[float],
) -> dict[tuple[str, float], Quantile]:
    """Quantiles of `column` per `group` value ('' when ungrouped), with their intervals."""
    group_expr = group or "''"
    base = f"FROM {table} WHERE {where} AND {column} IS NOT NULL"  # whitelisted identifiers
    first = con.execute(
        f"SELECT {group_expr} AS g, count(*), quantile_disc({column}, $levels) "  # noqa: S608
        f"{base} GROUP BY g",
        {**params, "levels": list(quantiles)},
    ).fetchall()
    exprs, wanted, qparams = [], [], dict(params)
    for i, (g, n, ests) in enumerate(first):
        levels = []
        for nu in quantiles:
            lo, _, hi = quantile_ranks(n, nu)
            levels += [(lo - 0.5) / n, (hi - 0.5) / n]
        qparams[f"g{i}"], qparams[f"l{i}"] = g, levels
        exprs.append(f"quantile_disc({column}, $l{i}) FILTER (WHERE {group_expr} = $g{i})")
        wanted.append((g, n, ests))
    bounds = con.execute(f"SELECT {', '.join(exprs)} {base}", qparams).fetchone() if exprs else ()  # noqa: S608
    out = {}
    for (g, n, ests), b in zip(wanted, bounds or (), strict=True):
        for j, nu in enumerate(quantiles):
            ok = quantile_interval_supported(n, nu)
            low, high = (b[2 * j], b[2 * j + 1]) if ok else (math.nan, math.nan)
            out[(g, nu)] = Quantile(n, nu, float(ests[j]), float(low), float(high))
    return out


# Histogram rollups (collectors/rollups.py): table -> (group column, hour column)
_HISTOGRAMS = {
    "requests": ("requests_latency_hist", "route"),
    "voice_turns": ("turn_latency_hist", "stage"),
}


def _has_histograms(con: duckdb.DuckDBPyConnection) -> bool:
    names = {h for h, _ in _HISTOGRAMS.values()}
    row = con.execute(
        "SELECT count(DISTINCT table_name) FROM information_schema.tables "
        "WHERE list_contains($names, table_name)",
        {"names": sorted(names)},
    ).fetchone()
    return row is not None and row[0] == len(names)


def _on_hours(s: Slice) -> bool:
    """Rollups are hourly: a period slice must start and end on whole hours to use them."""
    return all(
        t is None or (t.minute, t.second, t.microsecond) == (0, 0, 0) for t in (s.start, s.end)
    )


def _hist_filter(s: Slice) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if s.release is not None:
        clauses.append("release = $release")
        params["release"] = s.release
    if s.start is not None:
        clauses.append("hour >= $start")
        params["start"] = s.start
    if s.end is not None:
        clauses.append("hour < $end")
        params["end"] = s.end
    excluded, more = _exclusions(s, "hour")
    return (" AND ".join(clauses + excluded) or "TRUE"), {**params, **more}


def _quantiles_from_histograms(
    con: duckdb.DuckDBPyConnection, table: str, s: Slice, quantiles: Sequence[float]
) -> dict[tuple[str, float], Quantile]:
    """Percentiles and their order-statistic intervals from merged DDSketch-style buckets:
    the r-th smallest value is read as the value of the bucket holding rank r (within the
    sketch's 1 % relative accuracy), at the same ranks `quantile_ranks` gives for raw data;
    the interval's ends are the outer edges of their buckets (about 2 % wider at most).
    One grouped query per table; its size depends on hours × groups × buckets, not on rows."""
    hist, group = _HISTOGRAMS[table]
    where, params = _hist_filter(s)
    rows = con.execute(
        f"SELECT {group} AS g, bucket, sum(n) AS n FROM {hist} "  # noqa: S608 - whitelisted
        f"WHERE {where} AND bucket IS NOT NULL GROUP BY ALL ORDER BY g, bucket",
        params,
    ).fetchnumpy()
    out: dict[tuple[str, float], Quantile] = {}
    groups = rows["g"]
    if len(groups) == 0:
        return out
    groups = np.asarray(groups, dtype=object)
    buckets = np.asarray(rows["bucket"], dtype=np.int64)
    counts = np.asarray(rows["n"], dtype=np.float64)
    edges = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1], True])
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        cum = np.cumsum(counts[a:b])
        n = int(round(cum[-1]))
        b_ = buckets[a:b]
        values = bucket_value(b_, ALPHA)
        lower_edge, upper_edge = bucket_edges(b_, ALPHA)  # interval ends: outer edges

        def nth(rank: int, cum: np.ndarray = cum, v: np.ndarray = values) -> float:
            return float(v[min(int(np.searchsorted(cum, rank - 0.5)), len(v) - 1)])

        for nu in quantiles:
            lo, mid, hi = quantile_ranks(n, nu)
            ok = quantile_interval_supported(n, nu)
            bounds = (nth(lo, v=lower_edge), nth(hi, v=upper_edge)) if ok else (math.nan, math.nan)
            out[(str(groups[a]), nu)] = Quantile(n, nu, nth(mid), *bounds)
    return out


def slice_statistics(
    con: duckdb.DuckDBPyConnection,
    s: Slice,
    quantiles: Sequence[float] = QUANTILES,
    quantile_source: str = "auto",
) -> SliceStats:
    """Every benchmark statistic of one slice."""
    out: SliceStats = {}
    use_hist = quantile_source == "rollup" or (
        quantile_source == "auto" and _on_hours(s) and _has_histograms(con)
    )
    if use_hist:
        for (route, nu), q in _quantiles_from_histograms(con, "requests", s, quantiles).items():
            out[("latency", route, f"p{nu * 100:g}")] = q
        stages = _quantiles_from_histograms(con, "voice_turns", s, quantiles)
        for (stage, nu), q in stages.items():
            if stage in STAGES:
                out[("stage", stage, f"p{nu * 100:g}")] = q
    else:
        where, params = _filter("requests", s)
        for (route, nu), q in _quantile_series(
            con, "requests", "duration_ms", "route", where, params, quantiles
        ).items():
            out[("latency", route, f"p{nu * 100:g}")] = q
        where, params = _filter("voice_turns", s)
        for stage in STAGES:
            for (_, nu), q in _quantile_series(
                con, "voice_turns", stage, None, where, params, quantiles
            ).items():
                out[("stage", stage, f"p{nu * 100:g}")] = q
    for name, metric in _simple().items():
        facts = _facts(metric)
        where, params = _filter(facts.table, s, facts.ts)
        row = con.execute(
            f"SELECT {_aggregates(facts)} FROM {facts.table} "  # noqa: S608 - catalogue SQL
            f"WHERE ({facts.where}) AND {where}",
            params,
        ).fetchone()
        assert row is not None  # an aggregate without GROUP BY returns its one row
        n, total, squares = int(row[0] or 0), float(row[1] or 0), float(row[2] or 0)
        kind = metric.type
        stat = Proportion(n, total) if kind == "proportion" else SampleMean(n, total, squares)
        out[(name, "", "rate" if kind == "proportion" else "mean")] = stat
    return out


# ----------------------------------------------------- per load stratum (equal-load)

# (metric, group) -> {stratum: Proportion | SampleMean} for rates and means, or
# {stratum: Histogram} for latency distributions (one histogram serves every percentile).
LoadSlice = dict[tuple[str, str], dict[int, Any]]


def _histograms_by_stratum(
    rows: Mapping[str, np.ndarray | pd.Categorical],
    metric: str,
    out: LoadSlice,
    only: str | None = None,
) -> None:
    groups = np.asarray(rows["g"], dtype=object)
    strata = np.asarray(rows["st"], dtype=np.int64)
    buckets = np.asarray(rows["bucket"], dtype=np.int64)
    counts = np.asarray(rows["n"], dtype=np.float64)
    if len(groups) == 0:
        return
    # Rows arrive ordered by (g, st, bucket): split where either key changes.
    cut = np.flatnonzero(
        np.r_[True, (groups[1:] != groups[:-1]) | (strata[1:] != strata[:-1]), True]
    )
    for a, b in zip(cut[:-1], cut[1:], strict=True):
        group = only if only is not None else str(groups[a])
        out.setdefault((metric, group), {})[int(strata[a])] = (buckets[a:b], counts[a:b])


def slice_by_load(
    con: duckdb.DuckDBPyConnection,
    s: Slice,
    strata: ls.LoadStrata,
    quantile_source: str = "auto",
) -> LoadSlice:
    """Every benchmark measure of one slice, split by load stratum. Percentiles are read from
    histograms (the hourly rollups, or raw rows bucketed the same way) so strata can be mixed
    with any weights; they carry the sketches' 1 % relative accuracy."""
    out: LoadSlice = {}
    params = strata.params
    join = "LEFT JOIN load_strata l ON l.strata_hour = date_trunc('hour', t.{col})"
    use_hist = quantile_source == "rollup" or (
        quantile_source == "auto" and _on_hours(s) and _has_histograms(con)
    )
    for table, measure in (("requests", "latency"), ("voice_turns", "stage")):
        if use_hist:
            hist, hist_group = _HISTOGRAMS[table]
            where, fp = _hist_filter(s)
            rows = con.execute(
                f"WITH {ls.STRATA_CTE} "  # noqa: S608 - whitelisted identifiers
                f"SELECT {hist_group} AS g, coalesce(l.stratum, 0) AS st, bucket, sum(n) AS n "
                f"FROM {hist} t LEFT JOIN load_strata l ON l.strata_hour = t.hour "
                f"WHERE {where} AND bucket IS NOT NULL GROUP BY ALL ORDER BY g, st, bucket",
                {**params, **fp},
            ).fetchnumpy()
            part: LoadSlice = {}
            _histograms_by_stratum(rows, measure, part)
            out.update({k: v for k, v in part.items() if measure == "latency" or k[1] in STAGES})
            continue
        where, fp = _filter(table, s)
        columns: list[tuple[str, str | None]] = (
            [("duration_ms", "route")] if table == "requests" else [(c, None) for c in STAGES]
        )
        for column, group in columns:
            rows = con.execute(
                f"WITH {ls.STRATA_CTE} "  # noqa: S608 - whitelisted identifiers
                f"SELECT {group or repr(column)} AS g, coalesce(l.stratum, 0) AS st, "
                f"{bucket_sql(column)} AS bucket, count(*) AS n FROM {table} t "
                f"{join.format(col=_TIME_COLUMN[table])} "
                f"WHERE {where} AND {column} IS NOT NULL GROUP BY ALL ORDER BY g, st, bucket",
                {**params, **fp},
            ).fetchnumpy()
            _histograms_by_stratum(rows, measure, out, only=None if group else column)
    for name, metric in _simple().items():
        facts, kind = _facts(metric), metric.type
        where, fp = _filter(facts.table, s, facts.ts)
        sums = con.execute(
            f"WITH {ls.STRATA_CTE} "  # noqa: S608 - whitelisted identifiers and catalogue SQL
            f"SELECT coalesce(l.stratum, 0) AS st, {_aggregates(facts)} FROM {facts.table} t "
            f"{join.format(col=facts.ts)} WHERE ({facts.where}) AND {where} GROUP BY st",
            {**params, **fp},
        ).fetchall()
        by_stratum: dict[int, Any] = {}
        for st, n, total, squares in sums:
            n, total, squares = int(n or 0), float(total or 0), float(squares or 0)
            if n:
                by_stratum[int(st)] = (
                    Proportion(n, total) if kind == "proportion" else SampleMean(n, total, squares)
                )
        if by_stratum:
            out[(name, "")] = by_stratum
    return out


def _size(part: Any) -> float:
    return float(part[1].sum()) if isinstance(part, tuple) else float(part.n)


@dataclass(frozen=True)
class EqualLoad:
    """Both slices standardised to the same load-stratum weights, per measure."""

    baseline: SliceStats
    candidate: SliceStats
    reasons: dict[tuple[str, str, str], str]  # measures that could not be compared, and why
    notes: dict[tuple[str, str, str], str]  # measures compared another way, and how
    kept: tuple[float, float]  # share of each slice's observations in the compared strata


def at_equal_load(
    baseline: LoadSlice, candidate: LoadSlice, quantiles: Sequence[float] = QUANTILES
) -> EqualLoad:
    """Per measure: the strata where both slices have enough observations, weighted by their
    pooled share, and each slice standardised to those weights. `kept` is for the measure with
    the most observations (the note the page shows).
    A rate at 0 % or 100 % over the compared strata is compared unweighted over them:
    weighting cannot give it a variance, and the exact test that handles it needs counts."""
    out = EqualLoad({}, {}, {}, {}, (math.nan, math.nan))
    kept, largest = out.kept, -1.0
    simple = _simple()
    keys = (set(baseline) & set(candidate)) | {(name, "") for name in simple}
    for key in sorted(keys):
        b, c = baseline.get(key, {}), candidate.get(key, {})
        metric, group = key
        names = (
            [("rate" if simple[metric].type == "proportion" else "mean")]
            if metric in simple
            else [f"p{nu * 100:g}" for nu in quantiles]
        )
        if not b or not c:  # a measure with no data in one slice: the test says "no data"
            for name in names:
                out.baseline[(metric, group, name)] = _total_of(metric, name, b)
                out.candidate[(metric, group, name)] = _total_of(metric, name, c)
            continue
        sizes_b = {h: _size(v) for h, v in b.items()}
        sizes_c = {h: _size(v) for h, v in c.items()}
        weights = ls.common_weights(sizes_b, sizes_c)
        if not weights:
            for name in names:
                k = (metric, group, name)
                out.baseline[k], out.candidate[k] = _empty(metric, name), _empty(metric, name)
                out.reasons[k] = "the two never ran at the same traffic load"
            continue
        total = sum(sizes_b.values()) + sum(sizes_c.values())
        if total > largest:
            largest = total
            kept = (
                sum(sizes_b[h] for h in weights) / sum(sizes_b.values()),
                sum(sizes_c[h] for h in weights) / sum(sizes_c.values()),
            )
        if metric in simple:
            k = (metric, group, names[0])
            shared_b = _total_of(metric, names[0], {h: b[h] for h in weights})
            shared_c = _total_of(metric, names[0], {h: c[h] for h in weights})
            if (
                isinstance(shared_b, Proportion)
                and isinstance(shared_c, Proportion)
                and any(x.sum in (0, x.n) for x in (shared_b, shared_c))
            ):
                out.baseline[k], out.candidate[k] = shared_b, shared_c
                out.notes[k] = "unweighted over the shared load strata (a rate at 0 % or 100 %)"
            else:
                out.baseline[k] = ls.standardised(b, weights)
                out.candidate[k] = ls.standardised(c, weights)
            continue
        for nu, name in zip(quantiles, names, strict=True):
            out.baseline[(metric, group, name)] = ls.woodruff_quantile(b, weights, nu)
            out.candidate[(metric, group, name)] = ls.woodruff_quantile(c, weights, nu)
    return dataclasses.replace(out, kept=kept)


def _empty(metric: str, statistic: str) -> Statistic:
    if metric not in _simple():
        return Quantile(0, float(statistic[1:]) / 100, math.nan, math.nan, math.nan)
    return Proportion(0, 0) if statistic == "rate" else SampleMean(0, 0.0, 0.0)


def _total_of(metric: str, statistic: str, by_stratum: Mapping[int, Any]) -> Statistic:
    """The strata added up (a rate or mean as they ran); empty when there are none."""
    if metric not in _simple() or not by_stratum:
        return _empty(metric, statistic)
    parts: list[Statistic] = list(by_stratum.values())
    total = parts[0]
    for part in parts[1:]:
        total = add_statistics(total, part)
    return total


# ----------------------------------------------------------------- comparisons


def _direction(metric: str) -> tuple[bool, str]:
    simple = _simple()
    if metric in simple:
        return simple[metric].lower_is_better, simple[metric].unit
    return True, "ms"


def _row(
    key: tuple[str, str, str],
    base: Statistic,
    cand: Statistic,
    c: Comparison,
    settings: BenchmarkSettings,
    note: str = "",
) -> BenchmarkRow:
    metric, group, statistic = key
    lower, unit = _direction(metric)
    mu = base.mean
    if c.computable and mu and mu > 0:
        rel = (cand.mean - mu) / mu
    elif c.computable and mu == 0 and cand.mean > 0:
        rel = math.inf  # from none at all: larger than any practical threshold
    else:
        rel = math.nan
    worse = c.computable and c.significant and ((c.effect > 0) == lower)
    better = c.computable and c.significant and not worse
    big = not math.isnan(rel) and abs(rel) > settings.practical_threshold
    change = f"{rel * 100:+,.1f} %" if math.isfinite(rel) else "from zero"
    regression, improvement = worse and big, better and big
    name = measure_title(metric, group, statistic)
    if not c.computable:
        verdict = f"{name}: not compared ({c.reason})."
    elif regression:
        verdict = f"{name}: regression, {change} (significant, above the threshold)."
    elif improvement:
        verdict = f"{name}: improved, {change}."
    elif worse or better:
        verdict = f"{name}: {change}, significant but below the practical threshold."
    else:
        verdict = f"{name}: no significant change ({change})."
    if note:
        verdict = f"{verdict[:-1]} ({note})."
    return BenchmarkRow(
        metric, group, statistic, unit, lower, base, cand, c, rel, regression, improvement, verdict
    )


def _test(base: Statistic, cand: Statistic, alpha: float) -> Comparison:
    """Welch's t; for a rate at 0 % or 100 % in either slice (no 5xx before, say), Fisher's
    exact test with Newcombe's interval, so a rate leaving zero can still be flagged."""
    if isinstance(base, Proportion) and isinstance(cand, Proportion):
        if any(s.n >= 2 and s.sum in (0, s.n) for s in (base, cand)):
            return exact_two_proportions(base, cand, alpha)
    return welch_test(base, cand, alpha=alpha)


def compare_slices(
    baseline: SliceStats,
    candidate: SliceStats,
    baseline_slice: Slice,
    candidate_slice: Slice,
    settings: BenchmarkSettings,
    reasons: Mapping[tuple[str, str, str], str] | None = None,
    notes: Mapping[tuple[str, str, str], str] | None = None,
) -> BenchmarkComparison:
    """Every measure both slices have, tested; `reasons` names measures that cannot be, and
    `notes` how a measure was compared when not as the rest were."""
    keys = sorted(set(baseline) & set(candidate))
    reasons, notes = reasons or {}, notes or {}
    tests = [
        not_computable(reasons[k], "fixed", False, settings.alpha)
        if k in reasons
        else _test(baseline[k], candidate[k], settings.alpha)
        for k in keys
    ]
    # Dozens of rows per comparison: correct for multiplicity so noise is not called a regression.
    tests = adjust_comparisons(tests, settings.correction)
    rows = tuple(
        _row(k, baseline[k], candidate[k], c, settings, notes.get(k, ""))
        for k, c in zip(keys, tests, strict=True)
    )
    return BenchmarkComparison(baseline_slice, candidate_slice, rows)


def compare_periods(
    con: duckdb.DuckDBPyConnection,
    baseline: Slice,
    candidate: Slice,
    settings: BenchmarkSettings | None = None,
) -> BenchmarkComparison:
    """Benchmark any two slices (periods or releases)."""
    settings = settings or BenchmarkSettings()
    return _Benchmarker(con, settings).compare(baseline, candidate)


class _Benchmarker:
    """Slice statistics computed once per slice, compared as they are or at equal load."""

    def __init__(self, con: duckdb.DuckDBPyConnection, settings: BenchmarkSettings) -> None:
        self.con, self.settings = con, settings
        self.strata = ls.load_strata(con, settings.load_bins) if settings.adjust_for_load else None
        self.outages = outage_windows(con) if settings.exclude_outages else ()
        self._plain: dict[Slice, SliceStats] = {}
        self._by_load: dict[Slice, LoadSlice] = {}

    def compare(self, baseline: Slice, candidate: Slice) -> BenchmarkComparison:
        if self.outages:
            baseline = dataclasses.replace(baseline, exclude=baseline.exclude + self.outages)
            candidate = dataclasses.replace(candidate, exclude=candidate.exclude + self.outages)
        comparison = self._compare(baseline, candidate)
        if not self.outages:
            return comparison
        note = outage_note(self.outages)
        joined = f"{comparison.adjustment} {note}" if comparison.adjustment else note
        return dataclasses.replace(comparison, adjustment=joined)

    def _compare(self, baseline: Slice, candidate: Slice) -> BenchmarkComparison:
        settings = self.settings
        if self.strata is None:
            return compare_slices(
                self.plain(baseline), self.plain(candidate), baseline, candidate, settings
            )
        equal = at_equal_load(self.by_load(baseline), self.by_load(candidate), settings.quantiles)
        comparison = compare_slices(
            equal.baseline, equal.candidate, baseline, candidate, settings,
            equal.reasons, equal.notes,
        )  # fmt: skip
        kept_b, kept_c = equal.kept
        note = f"Compared at equal traffic load: {self.strata.describe()}, "
        if math.isnan(kept_b) and not equal.reasons:
            note += "but there is no data to compare."
        elif math.isnan(kept_b):
            note += (
                "but the two never ran at the same load, so they cannot be compared that "
                "way; untick the option to compare them as they ran."
            )
        else:
            note += (
                "each weighted to their pooled mix; the loads both ran at cover "
                f"{kept_b:.0%} of {baseline.label}'s and {kept_c:.0%} of "
                f"{candidate.label}'s observations."
            )
        return dataclasses.replace(comparison, adjustment=note, kept=equal.kept)

    def plain(self, s: Slice) -> SliceStats:
        if s not in self._plain:
            q, src = self.settings.quantiles, self.settings.quantile_source
            self._plain[s] = slice_statistics(self.con, s, q, src)
        return self._plain[s]

    def by_load(self, s: Slice) -> LoadSlice:
        if s not in self._by_load:
            assert self.strata is not None
            src = self.settings.quantile_source
            self._by_load[s] = slice_by_load(self.con, s, self.strata, src)
        return self._by_load[s]


def outage_windows(
    con: duckdb.DuckDBPyConnection,
) -> tuple[tuple[dt.datetime, dt.datetime], ...]:
    """[start, end) of every dependency outage the probes recorded (an ongoing one ends at the
    last check); empty when there are no probe results."""
    try:
        row = con.execute(
            "SELECT min(checked_at) FILTER (WHERE lower(status) IN ('down', 'pending')), "
            "max(checked_at) FILTER (WHERE lower(status) IN ('down', 'pending')), "
            "max(checked_at) FROM probe_results"
        ).fetchone()
    except duckdb.Error:
        return ()
    if not row or row[0] is None:
        return ()
    # Only the span around failed checks is read (the whole history takes ~1 s at 30 days);
    # a day after the last failure is ample for the check that ends the outage.
    first, last = row[0], min(row[1] + dt.timedelta(days=1), row[2] + dt.timedelta(seconds=1))
    found = incidents(con, first, last).incidents
    return tuple((i.start, i.end or last) for i in found)


def outage_note(windows: Sequence[tuple[dt.datetime, dt.datetime]]) -> str:
    """How outages were left out, in a sentence for the report."""
    shown = "; ".join(f"{a:%d %b %H:%M} to {b:%d %b %H:%M} UTC" for a, b in windows[:4])
    more = f" and {len(windows) - 4} more" if len(windows) > 4 else ""
    return (
        f"The hours of dependency outages ({shown}{more}) are left out of both, so a release "
        "is neither blamed for an outage nor credited with its end."
    )


def releases(con: duckdb.DuckDBPyConnection) -> list[tuple[str, dt.datetime]]:
    """Releases in order of first appearance (deployment, call or request). A deploy that
    failed or crashed never served traffic: it is not a release to compare (its traffic, if
    any, still counts). Calls and requests are read through their release-span rollups
    (analysis.first_seen), so the list costs the same however long the history."""
    first: dict[str, dt.datetime] = dict(
        con.execute(
            "SELECT release, min(created_at) FROM deployments WHERE release IS NOT NULL "
            "AND created_at IS NOT NULL "
            "AND upper(coalesce(status, '')) NOT IN ('FAILED', 'CRASHED') GROUP BY release"
        ).fetchall()
    )
    for release, t in release_first_seen(con, ("calls", "requests")).items():
        first[release] = min(t, first.get(release, t))
    return sorted(first.items(), key=lambda item: (item[1], item[0]))


def release_benchmarks(
    con: duckdb.DuckDBPyConnection,
    settings: BenchmarkSettings | None = None,
    only: Sequence[str] | None = None,
) -> ReleaseReport:
    """Each release vs the previous one, and vs `settings.baseline` when set."""
    settings = settings or BenchmarkSettings()
    try:
        ordered = [r for r, _ in releases(con)]
    except duckdb.Error as exc:
        return ReleaseReport((), (), False, f"could not read releases: {exc}")
    if len(ordered) < 2 and settings.baseline is None:
        return ReleaseReport(tuple(ordered), (), False, "fewer than two releases to compare")
    targets = [r for r in ordered if only is None or r in only]
    bench = _Benchmarker(con, settings)
    comparisons = []
    for release in targets:
        cand = Slice(release, release=release)
        i = ordered.index(release)
        if i > 0:
            prev = Slice(ordered[i - 1], release=ordered[i - 1])
            comparisons.append(bench.compare(prev, cand))
        if settings.baseline is not None:
            comparisons.append(bench.compare(settings.baseline, cand))
    return ReleaseReport(tuple(ordered), tuple(comparisons))


@dataclass(frozen=True)
class TrafficMix:
    """How differently two slices' calls fall over the hours of the day.

    `distance` is the total variation distance between the two hour-of-day distributions
    (half the sum of absolute differences of shares; 0 = identical mix, 1 = disjoint hours).
    Latency rises with load, so slices that ran at different hours differ in latency even when
    the code did not change; above `WARN_AT` the page says so beside any latency flag.
    """

    distance: float
    baseline_calls: int
    candidate_calls: int
    reason: str | None = None

    WARN_AT = 0.15

    @property
    def confounded(self) -> bool:
        return self.reason is None and self.distance > self.WARN_AT


def traffic_mix(con: duckdb.DuckDBPyConnection, baseline: Slice, candidate: Slice) -> TrafficMix:
    """Hour-of-day mix of the two slices' calls (see TrafficMix)."""
    shares = []
    for s in (baseline, candidate):
        where, params = _filter("calls", s)
        rows = con.execute(
            f"SELECT hour(started_at) AS h, count(*) FROM calls WHERE {where} GROUP BY h",  # noqa: S608 - whitelisted
            params,
        ).fetchall()
        shares.append(dict(rows))
    n_base, n_cand = (sum(s.values()) for s in shares)
    if not n_base or not n_cand:
        return TrafficMix(math.nan, n_base, n_cand, "one of the slices has no calls")
    distance = 0.5 * sum(
        abs(shares[0].get(h, 0) / n_base - shares[1].get(h, 0) / n_cand) for h in range(24)
    )
    return TrafficMix(distance, n_base, n_cand)
