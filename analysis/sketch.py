"""Mergeable log-spaced latency histograms in the manner of DDSketch.

Formula (Masson, Rim & Lee, "DDSketch: a fast and fully-mergeable quantile sketch with
relative-error guarantees", VLDB 2019, section 2): with relative accuracy alpha,
gamma = (1 + alpha) / (1 - alpha); a positive value x goes to bucket i = ceil(log_gamma(x)),
which holds (gamma^(i-1), gamma^i]; the bucket is represented by 2 * gamma^i / (gamma + 1),
within alpha of every value in it. The q-quantile is the value of the bucket holding the item
of rank q * (n - 1) (0-based), as the paper's Algorithm 2 does.

Buckets are plain integers, so rollups are ordinary GROUP BY (hour, route, bucket) counts and
merging is adding counts of equal buckets. Values <= 0 (zero latencies from streaming STT, for
instance) go to ZERO_BUCKET, whose value is 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

from analysis.vocabulary import STAGES

ALPHA = 0.01
# Same conventions as collectors/rollups.py, so its published histograms read back here:
# values <= 0 (a 0 ms stage) land in ZERO_BUCKET and read back as 0.
MIN_VALUE = 0.0
ZERO_BUCKET = -(2**31)

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")

# Latency columns that may be sketched, per table, and the dimensions they may be grouped by.
# Identifiers only ever come from here (HELPERS.md: identifiers from fixed whitelists).
SKETCHABLE: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    # table: (time column, value columns, group columns)
    "requests": ("started_at", ("duration_ms",), ("route", "method", "release", "service")),
    "voice_turns": (
        "started_at",
        STAGES,
        ("release", "variant"),
    ),
    "probe_results": ("checked_at", ("latency_ms",), ("target", "kind")),
    "voice_quality": ("measured_at", ("latency_ms", "jitter_ms"), ("release", "region", "network")),
}
GRAINS = {"minute": "minute", "hour": "hour", "day": "day"}


def gamma(alpha: float = ALPHA) -> float:
    return (1 + alpha) / (1 - alpha)


def bucket_index(values: Iterable[float] | np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """ceil(log_gamma(x)) per value; ZERO_BUCKET for x <= MIN_VALUE; NaN values are dropped."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    out = np.full(x.shape, ZERO_BUCKET, dtype=np.int64)
    pos = x > MIN_VALUE
    out[pos] = np.ceil(np.log(x[pos]) / math.log(gamma(alpha))).astype(np.int64)
    return out


def bucket_value(index: int | np.integer | np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """The representative value 2 * gamma^i / (gamma + 1) of each bucket (0 for ZERO_BUCKET)."""
    i = np.asarray(index, dtype=np.int64)
    g = gamma(alpha)
    val = 2.0 * np.power(g, i.astype(float)) / (g + 1.0)
    return np.where(i == ZERO_BUCKET, 0.0, val)


def bucket_edges(
    index: int | np.integer | np.ndarray, alpha: float = ALPHA
) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) edge of each bucket: bucket i holds (γ^(i−1), γ^i]; both 0 for
    ZERO_BUCKET. Intervals read from buckets use the outer edges, so they carry the sketch's
    resolution and never collapse to zero width inside one bucket."""
    i = np.asarray(index, dtype=np.int64)
    g = gamma(alpha)
    upper = np.where(i == ZERO_BUCKET, 0.0, np.power(g, i.astype(float)))
    return np.where(i == ZERO_BUCKET, 0.0, upper / g), upper


def bucket_sql(column: str, alpha: float = ALPHA) -> str:
    """A DuckDB expression mapping `column` to its bucket index (NULL stays NULL).

    `column` must be a plain identifier; it is checked, never quoted through.
    """
    if not _IDENT.match(column):
        raise ValueError(f"not a plain column name: {column!r}")
    inv_ln_gamma = repr(1.0 / math.log(gamma(alpha)))
    return (
        f"CASE WHEN {column} IS NULL OR isnan({column}) THEN NULL "
        f"WHEN {column} <= {MIN_VALUE!r} THEN {ZERO_BUCKET} "
        f"ELSE CAST(ceil(ln({column}) * {inv_ln_gamma}) AS INTEGER) END"
    )


@dataclass(frozen=True)
class Quantiles:
    values: dict[float, float]  # q -> estimate
    count: int
    reason: str | None = None


def quantiles_from_buckets(
    buckets: Iterable[int], counts: Iterable[float], qs: Sequence[float], alpha: float = ALPHA
) -> Quantiles:
    """Quantile estimates from (possibly merged, unsorted, repeated) bucket counts."""
    b = np.asarray(list(buckets), dtype=np.int64)
    c = np.asarray(list(counts), dtype=float)
    if b.size == 0 or c.sum() <= 0:
        return Quantiles({}, 0, "no values")
    uniq, inv = np.unique(b, return_inverse=True)
    merged = np.bincount(inv, weights=c)
    cum = np.cumsum(merged)
    n = cum[-1]
    out = {}
    for q in qs:
        if not 0 <= q <= 1:
            continue
        rank = q * (n - 1)
        k = int(np.searchsorted(cum, rank, side="right"))
        k = min(k, len(uniq) - 1)
        out[float(q)] = float(bucket_value(uniq[k], alpha))
    return Quantiles(out, int(round(n)))


def sketch_values(
    values: Iterable[float] | np.ndarray, qs: Sequence[float], alpha: float = ALPHA
) -> Quantiles:
    """Convenience: quantile estimates straight from raw values (for tests and small sets)."""
    idx = bucket_index(values, alpha)
    return quantiles_from_buckets(idx, np.ones(idx.size), qs, alpha)


@dataclass(frozen=True)
class Rollup:
    frame: pd.DataFrame  # period, group columns..., bucket, n
    reason: str | None = None


def histogram_rollup(
    con: duckdb.DuckDBPyConnection,
    table: str,
    value_column: str,
    start: datetime,
    end: datetime,
    group_by: Sequence[str] = (),
    grain: str = "hour",
    alpha: float = ALPHA,
) -> Rollup:
    """Counts per (period, groups..., bucket) for a whitelisted latency column.

    This is the rollup the snapshot keeps: merge any range of periods by summing counts.
    """
    if table not in SKETCHABLE:
        return Rollup(pd.DataFrame(), f"table {table!r} has no sketchable latency column")
    time_col, values, groups = SKETCHABLE[table]
    if value_column not in values:
        return Rollup(pd.DataFrame(), f"{table}.{value_column} is not a sketchable column")
    bad = [g for g in group_by if g not in groups]
    if bad or grain not in GRAINS:
        return Rollup(pd.DataFrame(), f"cannot group {table} by {bad or grain}")
    dims = "".join(f", {g}" for g in group_by)
    # identifiers above come from SKETCHABLE/GRAINS only; values are bound with `?`
    sql = (
        f"SELECT date_trunc('{GRAINS[grain]}', {time_col}) AS period{dims}, "  # noqa: S608
        f"{bucket_sql(value_column, alpha)} AS bucket, count(*) AS n "
        f"FROM {table} WHERE {time_col} >= ? AND {time_col} < ? "
        f"AND {value_column} IS NOT NULL AND NOT isnan({value_column}) "
        f"GROUP BY ALL ORDER BY period"
    )
    df = con.execute(sql, [start, end]).df()
    if df.empty:
        return Rollup(df, "no values in this window")
    return Rollup(df)


def quantiles_from_rollup(
    rollup: pd.DataFrame, qs: Sequence[float], by: Sequence[str] = (), alpha: float = ALPHA
) -> pd.DataFrame:
    """Merge a rollup's buckets over everything not in `by` and read quantiles per group."""
    cols = [*by, "n", *[f"p{round(q * 100, 3):g}" for q in qs]]
    if rollup is None or rollup.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    groups = rollup.groupby(list(by), sort=True, dropna=False) if by else [((), rollup)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        est = quantiles_from_buckets(g["bucket"], g["n"], qs, alpha)
        rows.append([*key, est.count, *[est.values.get(float(q), np.nan) for q in qs]])
    return pd.DataFrame(rows, columns=cols)


def merged_quantiles(
    con: duckdb.DuckDBPyConnection,
    hist_sql: str,
    params: Sequence[object],
    keys: Sequence[str],
    qs: Sequence[float],
    columns: Sequence[str],
) -> pd.DataFrame:
    """Per group of `keys` (one row when there are none): the count and the quantiles `qs`
    (in `columns`) of the merged bucket counts that `hist_sql` returns as keys..., bucket, n.

    The pages' one percentile path, for hourly rollups and for raw rows bucketed with
    `bucket_sql` alike. The merge and the rank search run in DuckDB (a month of histograms is
    ~10^5 rows) by `quantiles_from_buckets`' rule (DDSketch, Algorithm 2): the q-quantile is
    the value of the first bucket, in bucket order, whose cumulative count exceeds the 0-based
    rank q * (n - 1). `hist_sql` and `keys` are the caller's fixed text, never input.
    """
    out_columns = [*keys, "n", *columns]
    group = ", ".join(keys)
    lead = f"{group}, " if keys else ""
    partition = f"PARTITION BY {group}" if keys else ""
    picks = ", ".join(
        f"min(bucket) FILTER (WHERE cum > ? * (total - 1)) AS b{i}" for i in range(len(qs))
    )
    grouped = f"GROUP BY ALL ORDER BY {group}" if keys else ""
    sql = f"""
        WITH h AS (SELECT {lead}bucket, sum(n) AS n FROM ({hist_sql})
                   WHERE bucket IS NOT NULL AND n > 0 GROUP BY ALL),
        c AS (SELECT *, sum(n) OVER ({partition} ORDER BY bucket) AS cum,
                     sum(n) OVER ({partition}) AS total FROM h)
        SELECT {lead}CAST(any_value(total) AS BIGINT) AS n, {picks} FROM c {grouped}
    """  # noqa: S608 - the callers' fixed SQL and identifiers; values are bound
    df = con.execute(sql, [*params, *qs]).df()
    df = df[df["n"].notna()]  # no keys and no buckets: the one aggregate row is empty
    if df.empty:
        return pd.DataFrame(columns=out_columns)
    for i, column in enumerate(columns):
        df[column] = bucket_value(df.pop(f"b{i}").to_numpy())
    return df[out_columns].reset_index(drop=True)
