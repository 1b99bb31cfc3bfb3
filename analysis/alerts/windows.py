"""A catalogue metric over trailing windows ending at each evaluation step, from its per-minute
sufficient statistics (analysis.metrics.metric_minutes, the rows metric_series sums).

One query per metric serves every rule on it, at one step (the service, now) or at every step
of a month (a history replay): the value over [t - window, t) is the difference of two
cumulative sums, as metric_value over that window computes it:
  proportion, mean   Σtotal / Σn (times 100 for a share in %)
  ratio              Σnumerator / Σdenominator
  count              Σtotal
  quantile           the q-quantile of the summed minute histograms, by analysis.sketch's rule
                     (the first bucket whose cumulative count exceeds q * (n - 1)).
Windows are whole minutes and steps whole minutes, so every window is a union of minutes. The
minutes are kept as numpy arrays per group: the service evaluates dozens of rules a minute,
and the arithmetic of one window is microseconds once the minutes are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import numpy as np

from analysis.alerts.model import Context
from analysis.metrics import Metric, metric_minutes
from analysis.sketch import bucket_value

MINUTE = timedelta(minutes=1)
EPOCH = datetime(1970, 1, 1)
# Read at least this much at once, so rules on one metric with different windows share a read.
MIN_READ = timedelta(hours=6)
# Quantile windows are summed this many steps at a time (a minutes x buckets matrix each).
QUANTILE_CHUNK = 1440


class WindowValue(NamedTuple):
    end: datetime
    grp: object  # the `by` column's value; None without `by`
    n: int
    value: float


@dataclass(frozen=True)
class _Minutes:
    """One group's minutes: minute index (minutes since the epoch), and per minute n, total and
    denominator (rates, means, ratios, counts) or bucket and n rows (quantiles)."""

    minute: np.ndarray
    n: np.ndarray
    total: np.ndarray
    denominator: np.ndarray
    bucket: np.ndarray


def minute_index(t: datetime) -> int:
    return round((t - EPOCH) / MINUTE)


def _read(
    ctx: Context, metric: Metric, by: str | None, start: datetime, end: datetime
) -> dict[object, _Minutes]:
    rows = metric_minutes(ctx.con, metric, start, end, by)
    out: dict[object, _Minutes] = {}
    if len(rows["n"]) == 0:
        return out
    minutes = (
        (rows["minute"].astype("datetime64[ns]") - np.datetime64(EPOCH, "ns"))
        // np.timedelta64(1, "m")
    ).astype(np.int64)
    keys = (
        np.asarray(rows["grp"], dtype=object) if by else np.full(len(minutes), None, dtype=object)
    )
    quantile = metric.type == "quantile"
    empty = np.zeros(0)

    def column(name: str) -> np.ndarray:
        values = rows.get(name)
        if values is None:
            return empty
        return np.nan_to_num(np.ma.filled(np.ma.asarray(values, dtype=float), np.nan))

    n = column("n")
    total, denominator = (empty, empty) if quantile else (column("total"), column("denominator"))
    bucket = np.asarray(rows["bucket"], dtype=np.int64) if quantile else np.zeros(0, np.int64)
    for key in dict.fromkeys(keys.tolist()):
        mask = keys == key
        out[key] = _Minutes(
            minutes[mask],
            n[mask],
            total[mask] if not quantile else empty,
            denominator[mask] if not quantile else empty,
            bucket[mask] if quantile else bucket,
        )
    return out


def _minutes(
    ctx: Context, metric: Metric, by: str | None, start: datetime, end: datetime
) -> dict[object, _Minutes]:
    """The metric per minute (and per `by`) over at least [start, end), shared by the rules of
    one evaluation through ctx.memo."""
    key = ("minutes", metric.name, metric.sql, by, end)
    cached = ctx.memo.get(key)
    if cached is not None and cached[0] <= start:
        found: dict[object, _Minutes] = cached[1]
        return found
    first = min(start, end - MIN_READ)
    groups = _read(ctx, metric, by, first, end)
    ctx.memo[key] = (first, groups)
    return groups


def first_minute(
    ctx: Context, metric: Metric, by: str | None, start: datetime, end: datetime
) -> datetime | None:
    """The first minute with facts of the metric read for [start, end) (at least MIN_READ
    back): windows that begin before it are not covered by data (a fresh install, or the first
    hours of a replayed history)."""
    groups = _minutes(ctx, metric, by, start, end)
    firsts = [int(g.minute.min()) for g in groups.values() if len(g.minute)]
    return EPOCH + min(firsts) * MINUTE if firsts else None


def window_values(
    ctx: Context,
    metric: Metric,
    ends: Sequence[datetime],
    window: timedelta,
    by: str | None = None,
) -> list[WindowValue]:
    """Per step `end` (whole minutes, ascending) and group: the facts counted (n) and the
    metric's value over [end - window, end). Windows without facts are left out."""
    if not ends:
        return []
    width = max(1, round(window / MINUTE))
    base = minute_index(ends[0]) - width  # the first minute any window holds
    index = np.array([minute_index(e) for e in ends], dtype=np.int64) - base
    size = int(index[-1])
    out: list[WindowValue] = []
    for grp, rows in _minutes(ctx, metric, by, ends[0] - width * MINUTE, ends[-1]).items():
        keep = (rows.minute >= base) & (rows.minute < base + size)
        if not keep.any():
            continue
        pos = rows.minute[keep] - base
        if metric.type == "quantile":
            n, value = _quantile_windows(rows, keep, pos, index, width, metric.quantile or 0.5)
        else:
            n, value = _additive_windows(metric, rows, keep, pos, size, index, width)
        for i in np.flatnonzero(n > 0):
            out.append(WindowValue(ends[int(i)], grp, int(n[i]), float(value[i])))
    out.sort(key=lambda w: w.end)
    return out


def _window_sums(
    values: np.ndarray, pos: np.ndarray, size: int, index: np.ndarray, width: int
) -> np.ndarray:
    per_minute = np.zeros(size, dtype=float)
    np.add.at(per_minute, pos, values)
    cumulative = np.concatenate([[0.0], np.cumsum(per_minute)])
    result: np.ndarray = cumulative[index] - cumulative[index - width]
    return result


def _additive_windows(
    metric: Metric,
    rows: _Minutes,
    keep: np.ndarray,
    pos: np.ndarray,
    size: int,
    index: np.ndarray,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    n = _window_sums(rows.n[keep], pos, size, index, width)
    total = _window_sums(rows.total[keep], pos, size, index, width)
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric.type == "count":
            value = total
        elif metric.type == "ratio":
            den = _window_sums(rows.denominator[keep], pos, size, index, width)
            value = np.where(den != 0, total / den, np.nan)
        else:  # proportion, mean
            value = np.where(n > 0, total / n * metric.scale, np.nan)
    return np.round(n).astype(np.int64), value


def _quantile_windows(
    rows: _Minutes,
    keep: np.ndarray,
    pos: np.ndarray,
    index: np.ndarray,
    width: int,
    q: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Sum the minute histograms over each window and read the quantile, a chunk of steps at a
    time so that the minutes x buckets matrix stays small."""
    counts = rows.n[keep]
    columns, bucket_of = np.unique(rows.bucket[keep], return_inverse=True)
    n_out = np.zeros(len(index), dtype=np.int64)
    value_out = np.full(len(index), np.nan)
    for first in range(0, len(index), QUANTILE_CHUNK):
        chunk = index[first : first + QUANTILE_CHUNK]
        lo, hi = int(chunk[0]) - width, int(chunk[-1])
        inside = (pos >= lo) & (pos < hi)
        matrix = np.zeros((hi - lo, len(columns)), dtype=float)
        np.add.at(matrix, (pos[inside] - lo, bucket_of[inside]), counts[inside])
        cumulative = np.vstack([np.zeros(len(columns)), np.cumsum(matrix, axis=0)])
        hist = cumulative[chunk - lo] - cumulative[chunk - lo - width]
        ranked = np.cumsum(hist, axis=1)
        n = ranked[:, -1]
        k = np.argmax(ranked > (q * (n - 1))[:, None], axis=1)
        n_out[first : first + len(chunk)] = np.round(n).astype(np.int64)
        value_out[first : first + len(chunk)] = np.where(n > 0, bucket_value(columns[k]), np.nan)
    return n_out, value_out
