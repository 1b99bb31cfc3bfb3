"""Hourly rollups published beside the raw rows, so pages read percentiles and rates from a few
thousand rollup rows instead of millions of raw ones.

Latency histograms use analysis.sketch's log-spaced buckets (DDSketch, 1 % relative accuracy):
buckets from any hours and routes merge by adding counts, and analysis.sketch turns the merged
counts into quantiles.

Each rollup is computed from one source table for one UTC day, so the publisher rewrites exactly
the days that changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.sketch import bucket_sql
from analysis.vocabulary import PIPELINE_STAGES, STAGES
from analysis.voice_quality import CODECS, POOR_MOS, PROFILE_KEYS, idd_sql, mos_sql, r_sql


@dataclass(frozen=True)
class Rollup:
    name: str
    source: str  # warehouse table it is computed from
    select: str  # SQL over `src` (the source table restricted to one day)


HOUR = "CAST(date_trunc('hour', {t}) AS TIMESTAMP) AS hour"


def _nan0(column: str) -> str:
    return f"CASE WHEN {column} IS NULL OR isnan({column}) THEN 0 ELSE {column} END"


def _finite_sum(column: str) -> str:
    """Sum and count of a column's values that are neither NULL nor NaN (as pandas' mean)."""
    keep = f"FILTER (WHERE NOT isnan({column}))"
    return f"sum({column}) {keep} AS sum_{column}, count({column}) {keep} AS n_{column}"


# Per hour and segment (release, network, region, codec): the voice quality page's inputs.
# Samples with a latency only, as analysis.voice_quality.quality_samples reads them. R, MOS and
# poor samples are summed under every codec profile, so the reader picks each codec's profile
# with any default for unknown codecs (a missing codec is ''). A call counts once, at its first sample of the UTC day
# (a call that crosses midnight counts on both days), so call counts add up over hours.
_QUALITY_SEGMENTS = (
    "WITH s AS (SELECT "
    f"{HOUR.format(t='measured_at')}, coalesce(release, '(unknown)') AS release, "
    "coalesce(network, '(unknown)') AS network, coalesce(region, '(unknown)') AS region, "
    "coalesce(codec, '') AS codec, call_id, measured_at, sample_id, "
    "latency_ms, jitter_ms, packet_loss_pct, mos_reported, "
    f"latency_ms + 2 * {_nan0('jitter_ms')} AS ta, "
    f"least(greatest({_nan0('packet_loss_pct')}, 0), 100) AS ppl "
    "FROM src WHERE latency_ms IS NOT NULL AND NOT isnan(latency_ms)), "
    # each call's first sample of the day (a grouped arg_min: cheaper than a window's sort)
    "f AS (SELECT first.hour, first.release, first.network, first.region, first.codec, "
    "count(*) AS n_calls FROM (SELECT arg_min({'hour': hour, 'release': release, "
    "'network': network, 'region': region, 'codec': codec}, (measured_at, sample_id)) AS first "
    "FROM s WHERE call_id IS NOT NULL GROUP BY call_id, CAST(measured_at AS DATE)) GROUP BY ALL), "
    f"d AS (SELECT *, {idd_sql('ta')} AS idd FROM s), "
    "r AS (SELECT *, "
    + ", ".join(f"{r_sql('idd', 'ppl', CODECS[p])} AS r_{k}" for p, k in PROFILE_KEYS.items())
    + " FROM d), m AS (SELECT *, "
    + ", ".join(f"{mos_sql(f'r_{k}')} AS mos_{k}" for k in PROFILE_KEYS.values())
    + " FROM r), a AS (SELECT hour, release, network, region, codec, count(*) AS n, "
    "sum(latency_ms) AS sum_latency_ms, "
    + ", ".join(_finite_sum(c) for c in ("jitter_ms", "packet_loss_pct", "mos_reported"))
    + ", "
    + ", ".join(
        f"sum(r_{k}) AS sum_r_{k}, sum(mos_{k}) AS sum_mos_{k}, "
        f"count(*) FILTER (WHERE mos_{k} < {POOR_MOS!r}) AS n_poor_{k}"
        for k in PROFILE_KEYS.values()
    )
    + " FROM m GROUP BY hour, release, network, region, codec) "
    "SELECT a.*, coalesce(f.n_calls, 0) AS n_calls "
    "FROM a LEFT JOIN f USING (hour, release, network, region, codec)"
)


def _finite(column: str) -> str:
    return f"({column} IS NOT NULL AND NOT isnan({column}))"


def _first_max(names: list[str]) -> str:
    """The index of the largest of the columns `names`, the first one on ties (numpy's argmax):
    each branch is reached only when no earlier column is the largest."""
    whens = [
        f"WHEN {' AND '.join(f'{a} >= {b}' for b in names[i + 1 :])} THEN {i}"
        for i, a in enumerate(names[:-1])
    ]
    return f"CASE {' '.join(whens)} ELSE {len(names) - 1} END"


# Per hour and release: what makes slow voice turns slow (analysis.performance's
# slow_turn_attribution). Turns with an end-to-end latency are compared with their UTC day's
# references: slow = e2e above the day's e2e p90; a stage is "over" above the day's p90 of that
# stage, and "dominant" in a turn when its ratio to the day's median of that stage is the
# largest. Counts per hour add up over any window.
_ATTRIBUTION = (
    "WITH t AS (SELECT "
    f"{HOUR.format(t='started_at')}, CAST(started_at AS DATE) AS day, release, e2e_ms, "
    + ", ".join(PIPELINE_STAGES)
    + f" FROM src WHERE {_finite('e2e_ms')}), "
    "ref AS (SELECT day, quantile_cont(e2e_ms, 0.9) AS threshold_ms, "
    # both levels in one call, NaN left out as pandas' nanpercentile does (NULL is ignored)
    + ", ".join(
        f"quantile_cont(CASE WHEN NOT isnan({s}) THEN {s} END, [0.5, 0.9]) AS q_{s}"
        for s in PIPELINE_STAGES
    )
    + " FROM t GROUP BY day), "
    "f AS (SELECT hour, release, threshold_ms, e2e_ms > threshold_ms AS slow, "
    + ", ".join(
        f"coalesce({_finite(s)} AND {s} > q_{s}[2], false) AS over_{s}, "
        f"CASE WHEN {_finite(s)} AND q_{s}[1] > 0 THEN {s} / q_{s}[1] "
        f"ELSE '-inf'::DOUBLE END AS ratio_{s}"
        for s in PIPELINE_STAGES
    )
    + " FROM t JOIN ref USING (day)), "
    "g AS (SELECT hour, release, threshold_ms, slow, "
    + ", ".join(f"over_{s}" for s in PIPELINE_STAGES)
    + f", {_first_max([f'ratio_{s}' for s in PIPELINE_STAGES])} AS dominant FROM f) "
    # Counted per combination of flags first (at most 2 x 16 x 4 an hour and release), then
    # summed: about twice as fast as one pass of filtered counts over every turn (measured).
    ", k AS (SELECT hour, release, slow, "
    + ", ".join(f"over_{s}" for s in PIPELINE_STAGES)
    + ", dominant, count(*) AS c, sum(threshold_ms) AS th FROM g GROUP BY ALL) "
    "SELECT hour, release, CAST(sum(c) AS BIGINT) AS n, "
    "CAST(coalesce(sum(c) FILTER (WHERE slow), 0) AS BIGINT) AS n_slow, "
    "sum(th) AS sum_threshold_ms, "
    + ", ".join(
        f"CAST(coalesce(sum(c) FILTER (WHERE over_{s}), 0) AS BIGINT) AS n_over_{s}, "
        f"CAST(coalesce(sum(c) FILTER (WHERE slow AND over_{s}), 0) AS BIGINT) "
        f"AS n_slow_over_{s}, "
        f"CAST(coalesce(sum(c) FILTER (WHERE slow AND dominant = {i}), 0) AS BIGINT) "
        f"AS n_slow_dominant_{s}"
        for i, s in enumerate(PIPELINE_STAGES)
    )
    + " FROM k GROUP BY hour, release"
)


ROLLUPS: tuple[Rollup, ...] = (
    Rollup(
        "requests_hourly",
        "requests",
        f"SELECT {HOUR.format(t='started_at')}, route, method, release, count(*) AS n, "
        "count(*) FILTER (WHERE status_code >= 500) AS n_5xx, "
        "count(*) FILTER (WHERE status_code BETWEEN 400 AND 499) AS n_4xx, "
        "sum(duration_ms) AS sum_ms FROM src GROUP BY ALL",
    ),
    Rollup(
        "requests_latency_hist",
        "requests",
        f"SELECT {HOUR.format(t='started_at')}, route, method, release, "
        f"{bucket_sql('duration_ms')} AS bucket, count(*) AS n FROM src "
        "WHERE duration_ms IS NOT NULL GROUP BY ALL",
    ),
    Rollup(
        "turns_hourly",
        "voice_turns",
        f"SELECT {HOUR.format(t='started_at')}, release, variant, count(*) AS n, "
        "count(*) FILTER (WHERE interrupted) AS n_interrupted, "
        + ", ".join(f"sum({s}) AS sum_{s}, count({s}) AS n_{s}" for s in STAGES)
        + " FROM src GROUP BY ALL",
    ),
    Rollup(
        "turn_latency_hist",
        "voice_turns",
        f"SELECT {HOUR.format(t='started_at')}, release, stage, "
        f"{bucket_sql('value')} AS bucket, count(*) AS n FROM "
        f"(UNPIVOT (SELECT started_at, release, {', '.join(STAGES)} FROM src) "
        f"ON {', '.join(STAGES)} INTO NAME stage VALUE value) GROUP BY ALL",
    ),
    Rollup("turn_attribution_hourly", "voice_turns", _ATTRIBUTION),
    Rollup(
        "calls_hourly",
        "calls",
        f"SELECT {HOUR.format(t='started_at')}, release, experiment_key, variant, outcome, "
        "count(*) AS n, sum(duration_s) AS sum_duration_s, sum(turns) AS sum_turns, "
        "sum(interruptions) AS sum_interruptions FROM src GROUP BY ALL",
    ),
    Rollup(
        "quality_hourly",
        "voice_quality",
        f"SELECT {HOUR.format(t='measured_at')}, release, network, region, codec, count(*) AS n, "
        "sum(mos_reported) AS sum_mos, count(mos_reported) AS n_mos, "
        "sum(latency_ms) AS sum_latency_ms, sum(jitter_ms) AS sum_jitter_ms, "
        "sum(packet_loss_pct) AS sum_packet_loss_pct FROM src GROUP BY ALL",
    ),
    Rollup("quality_segments_hourly", "voice_quality", _QUALITY_SEGMENTS),
    Rollup(
        "feedback_hourly",
        "feedback",
        f"SELECT {HOUR.format(t='submitted_at')}, release, category, count(rating) AS n, "
        "count(*) FILTER (WHERE rating >= 4) AS n_positive, "
        "count(*) FILTER (WHERE rating <= 2) AS n_negative, sum(rating) AS sum_rating "
        "FROM src GROUP BY ALL",
    ),
    Rollup(
        "errors_hourly",
        "errors",
        f"SELECT {HOUR.format(t='occurred_at')}, fingerprint, error_type, severity, release, "
        "count(*) AS n, sum(1.0 / coalesce(nullif(sample_rate, 0), 1.0)) AS n_estimated "
        "FROM src GROUP BY ALL",
    ),
    Rollup(
        "probes_hourly",
        "probe_results",
        f"SELECT {HOUR.format(t='checked_at')}, target, kind, count(*) AS n, "
        # Uptime Kuma counts a pending check against uptime and leaves maintenance out.
        "count(*) FILTER (WHERE status = 'up') AS n_up, "
        "count(*) FILTER (WHERE status = 'pending') AS n_pending, "
        "count(*) FILTER (WHERE status = 'down') AS n_down, "
        "count(*) FILTER (WHERE status = 'maintenance') AS n_maintenance, "
        "sum(latency_ms) AS sum_latency_ms FROM src GROUP BY ALL",
    ),
)


def _release_span(table: str, t: str) -> Rollup:
    """Per hour and release: the first and last time of `table`'s rows (exact), so the first
    sighting of a release and the newest row are read without scanning the history."""
    return Rollup(
        f"{table}_release_span",
        table,
        f"SELECT {HOUR.format(t=t)}, release, min({t}) AS first_at, max({t}) AS last_at, "
        "count(*) AS n FROM src GROUP BY ALL",
    )


ROLLUPS += (
    _release_span("requests", "started_at"),
    _release_span("calls", "started_at"),
    _release_span("errors", "occurred_at"),
)


def rollups_for(table_name: str) -> list[Rollup]:
    return [r for r in ROLLUPS if r.source == table_name]
