"""A catalogue metric over trailing windows ending at each evaluation step, from its per-minute
sufficient statistics (analysis.metrics.metric_series with bucket="minute").

One query per metric serves every rule on it, at one step (the service, now) or at every step
of a month (a history replay): the value over [t - window, t) is the difference of two
cumulative sums, as metric_value over that window computes it:
  proportion, mean   Σtotal / Σn (times 100 for a share in %)
  ratio              Σnumerator / Σdenominator
  count              Σtotal
  quantile           the q-quantile of the summed minute histograms, by analysis.sketch's rule
                     (the first bucket whose cumulative count exceeds q * (n - 1)).
Windows are whole minutes and steps whole minutes, so every window is a union of minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from analysis.alerts.model import Context
from analysis.metrics import Metric, metric_series
from analysis.sketch import bucket_value

MINUTE = timedelta(minutes=1)
# Read at least this much at once, so rules on one metric with different windows share a read.
MIN_READ = timedelta(hours=6)
# Quantile windows are summed this many steps at a time (a minutes x buckets matrix each).
QUANTILE_CHUNK = 1440
COLUMNS = ["end", "grp", "n", "value"]


def _minutes(
    ctx: Context, metric: Metric, by: str | None, start: datetime, end: datetime
) -> pd.DataFrame:
    """The metric per minute (and per `by`) over at least [start, end), shared by the rules of
    one evaluation through ctx.memo."""
    key = ("minutes", metric.name, metric.sql, by, end)
    cached = ctx.memo.get(key)
    if cached is not None and cached[0] <= start:
        frame: pd.DataFrame = cached[1]
        return frame
    first = min(start, end - MIN_READ)
    frame = metric_series(ctx.con, metric, first, end, bucket="minute", by=by, source="raw")
    ctx.memo[key] = (first, frame)
    return frame


def window_values(
    ctx: Context,
    metric: Metric,
    ends: Sequence[datetime],
    window: timedelta,
    by: str | None = None,
) -> pd.DataFrame:
    """Per step `end` (whole minutes, ascending) and group: the facts counted (n) and the
    metric's value over [end - window, end). Columns end, grp (None without `by`), n, value;
    windows without facts have no row."""
    if not ends:
        return pd.DataFrame(columns=COLUMNS)
    width = max(1, round(window / MINUTE))
    base = ends[0] - width * MINUTE
    frame = _minutes(ctx, metric, by, base, ends[-1])
    frame = frame[(frame["minute"] >= base) & (frame["minute"] < ends[-1])]
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    index = np.array([round((e - base) / MINUTE) for e in ends], dtype=np.int64)
    size = int(index[-1])
    parts = []
    groups = frame.groupby("grp", sort=True, dropna=False) if by else [(None, frame)]
    for grp, rows in groups:
        pos = ((rows["minute"] - base) / MINUTE).to_numpy().round().astype(np.int64)
        if metric.type == "quantile":
            n, value = _quantile_windows(rows, pos, index, width, metric.quantile or 0.5)
        else:
            n, value = _additive_windows(metric, rows, pos, size, index, width)
        part = pd.DataFrame({"end": list(ends), "grp": grp, "n": n, "value": value})
        parts.append(part[part["n"] > 0])
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    return out.reset_index(drop=True)


def _window_sums(values: np.ndarray, pos: np.ndarray, size: int, index: np.ndarray, width: int):
    per_minute = np.zeros(size, dtype=float)
    np.add.at(per_minute, pos, np.nan_to_num(values.astype(float)))
    cumulative = np.concatenate([[0.0], np.cumsum(per_minute)])
    return cumulative[index] - cumulative[index - width]


def _additive_windows(
    metric: Metric,
    rows: pd.DataFrame,
    pos: np.ndarray,
    size: int,
    index: np.ndarray,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    n = _window_sums(rows["n"].to_numpy(), pos, size, index, width)
    total = _window_sums(rows["total"].fillna(0).to_numpy(), pos, size, index, width)
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric.type == "count":
            value = total
        elif metric.type == "ratio":
            den = _window_sums(rows["denominator"].fillna(0).to_numpy(), pos, size, index, width)
            value = np.where(den != 0, total / den, np.nan)
        else:  # proportion, mean
            value = np.where(n > 0, total / n * metric.scale, np.nan)
    return np.round(n).astype(np.int64), value


def _quantile_windows(
    rows: pd.DataFrame,
    pos: np.ndarray,
    index: np.ndarray,
    width: int,
    q: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Sum the minute histograms over each window and read the quantile, a chunk of steps at a
    time so that the minutes x buckets matrix stays small."""
    lengths = rows["buckets"].map(len).to_numpy()
    minute = np.repeat(pos, lengths)
    buckets = np.concatenate(rows["buckets"].to_list()).astype(np.int64)
    counts = np.concatenate(rows["counts"].to_list()).astype(float)
    columns, bucket_of = np.unique(buckets, return_inverse=True)
    n_out = np.zeros(len(index), dtype=np.int64)
    value_out = np.full(len(index), np.nan)
    for first in range(0, len(index), QUANTILE_CHUNK):
        chunk = index[first : first + QUANTILE_CHUNK]
        lo, hi = int(chunk[0]) - width, int(chunk[-1])
        keep = (minute >= lo) & (minute < hi)
        matrix = np.zeros((hi - lo, len(columns)), dtype=float)
        np.add.at(matrix, (minute[keep] - lo, bucket_of[keep]), counts[keep])
        cumulative = np.vstack([np.zeros(len(columns)), np.cumsum(matrix, axis=0)])
        hist = cumulative[chunk - lo] - cumulative[chunk - lo - width]
        ranked = np.cumsum(hist, axis=1)
        n = ranked[:, -1]
        k = np.argmax(ranked > (q * (n - 1))[:, None], axis=1)
        n_out[first : first + len(chunk)] = np.round(n).astype(np.int64)
        value_out[first : first + len(chunk)] = np.where(n > 0, bucket_value(columns[k]), np.nan)
    return n_out, value_out
