"""Scoring alarms against labelled anomaly windows, after the Numenta Anomaly Benchmark (NAB).

Two measures:

- A simple count: a window is found when an alarm falls inside it; an alarm outside every window
  is a false positive.
- NAB's standard score (Lavin & Ahmad 2015, "Evaluating Real-time Anomaly Detection
  Algorithms", and numenta/NAB nab/sweeper.py, re-implemented here): each window earns the
  scaled sigmoid of its earliest alarm's position, 2 / (1 + exp(5 * y)) - 1, where
  y = -(right - i + 1) / width is -1 at the window's left edge and 0 past its right edge,
  divided by its value at y = -1 and weighted A_TP; a window with no alarm costs A_FN; an alarm
  outside every window costs A_FP times the same sigmoid of its distance past the previous
  window's right edge (in window widths; -1 before any window). The normalised score is
  100 * (S - S_null) / (S_perfect - S_null) with S_null = -A_FN per window (no alarms) and
  S_perfect = A_TP per window.

Both skip NAB's probationary period: the first 15 % of each file, at most 750 rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from numpy.typing import NDArray

# A time: anything pd.Timestamp reads (a Timestamp, datetime, datetime64 or ISO string).
TimeLike = pd.Timestamp | datetime | np.datetime64 | str
Stamps = Sequence[TimeLike] | pd.DatetimeIndex | pd.Series


@dataclass(frozen=True)
class CostProfile:
    """NAB's application profile weights (config/profiles.json)."""

    tp: float = 1.0
    fp: float = 0.11
    fn: float = 1.0


STANDARD_PROFILE = CostProfile()


@dataclass(frozen=True)
class WindowCount:
    """Simple count for one file (or a sum over files)."""

    windows: int
    found: int
    alarms: int
    true_alarms: int

    @property
    def false_alarms(self) -> int:
        return self.alarms - self.true_alarms

    @property
    def recall(self) -> float:
        return self.found / self.windows if self.windows else float("nan")

    @property
    def precision(self) -> float:
        return self.true_alarms / self.alarms if self.alarms else float("nan")

    def __add__(self, other: WindowCount) -> WindowCount:
        return WindowCount(
            self.windows + other.windows,
            self.found + other.found,
            self.alarms + other.alarms,
            self.true_alarms + other.true_alarms,
        )


def probation_rows(n_rows: int, fraction: float = 0.15) -> int:
    """NAB's probationary length: min(floor(fraction * n), fraction * 5000) rows."""
    return int(min(math.floor(fraction * n_rows), fraction * 5000))


def scaled_sigmoid(position: float) -> float:
    """NAB's scaled sigmoid: 2 * sigmoid(-5 * y) - 1, and -1 from y >= 3 on."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def _window_rows(
    stamps: NDArray[np.datetime64], windows: Sequence[tuple[TimeLike, TimeLike]]
) -> list[tuple[int, int]]:
    """Row index of each window's first and last timestamp (rows sorted by time)."""
    rows = []
    for start, end in windows:
        left = int(np.searchsorted(stamps, [pd.Timestamp(start).to_datetime64()], side="left")[0])
        right = (
            int(np.searchsorted(stamps, [pd.Timestamp(end).to_datetime64()], side="right")[0]) - 1
        )
        if right >= left:
            rows.append((left, right))
    return rows


def _alarm_rows(stamps: NDArray[np.datetime64], alarms: Sequence[TimeLike]) -> np.ndarray:
    """Row of each alarm: the first row at or after its time, kept if inside the file."""
    times = np.array([pd.Timestamp(a).to_datetime64() for a in alarms], dtype="datetime64[ns]")
    rows = np.searchsorted(stamps, times, side="left")
    return np.unique(rows[rows < len(stamps)])


def _sorted_stamps(timestamps: Stamps) -> NDArray[np.datetime64]:
    if isinstance(timestamps, pd.Series | pd.DatetimeIndex):
        index = pd.DatetimeIndex(timestamps)
    else:
        index = pd.DatetimeIndex(list(timestamps))
    return np.sort(index.to_numpy(dtype="datetime64[ns]"))


def count_windows(
    timestamps: Stamps,
    alarms: Sequence[TimeLike],
    windows: Sequence[tuple[TimeLike, TimeLike]],
    probation_fraction: float = 0.15,
) -> WindowCount:
    """Windows found and alarms inside/outside windows, alarms in the probation ignored."""
    stamps = _sorted_stamps(timestamps)
    probation = probation_rows(len(stamps), probation_fraction)
    spans = [(lo, hi) for lo, hi in _window_rows(stamps, windows) if hi >= probation]
    rows = _alarm_rows(stamps, alarms)
    rows = rows[rows >= probation]
    found = sum(1 for lo, hi in spans if np.any((rows >= lo) & (rows <= hi)))
    inside = sum(1 for r in rows.tolist() if any(lo <= r <= hi for lo, hi in spans))
    return WindowCount(windows=len(spans), found=found, alarms=len(rows), true_alarms=inside)


def nab_raw_score(
    timestamps: Stamps,
    alarms: Sequence[TimeLike],
    windows: Sequence[tuple[TimeLike, TimeLike]],
    profile: CostProfile = STANDARD_PROFILE,
    probation_fraction: float = 0.15,
) -> tuple[float, int]:
    """(NAB raw score, number of scored windows) for one file's binary alarms."""
    stamps = _sorted_stamps(timestamps)
    probation = probation_rows(len(stamps), probation_fraction)
    spans = [(lo, hi) for lo, hi in _window_rows(stamps, windows) if hi >= probation]
    max_tp = scaled_sigmoid(-1.0)
    best = [-profile.fn] * len(spans)
    fp_total = 0.0
    for r in _alarm_rows(stamps, alarms).tolist():
        if r < probation:
            continue
        hit = next((k for k, (lo, hi) in enumerate(spans) if lo <= r <= hi), None)
        if hit is not None:
            lo, hi = spans[hit]
            width = hi - lo + 1
            score = scaled_sigmoid(-(hi - r + 1) / width) * profile.tp / max_tp
            best[hit] = max(best[hit], score)
            continue
        previous = [(lo, hi) for lo, hi in spans if hi < r]
        if not previous:
            position = 3.0
        else:
            lo, hi = previous[-1]
            position = abs(hi - r) / max(1, hi - lo)  # NAB: / (width - 1)
        fp_total += scaled_sigmoid(position) * profile.fp
    return sum(best) + fp_total, len(spans)


def nab_normalised_score(
    raw_total: float, n_windows: int, profile: CostProfile = STANDARD_PROFILE
) -> float:
    """100 * (S - S_null) / (S_perfect - S_null), NAB's normalisation (nab/runner.py)."""
    null = -profile.fn * n_windows
    perfect = profile.tp * n_windows
    if perfect == null:
        return float("nan")
    return 100.0 * (raw_total - null) / (perfect - null)


def rolling_mad_alarms(
    series: pd.Series, window: int = 288, threshold: float = 3.5
) -> list[pd.Timestamp]:
    """Reference baseline: trailing rolling median/MAD modified z-score, one alarm per run.

    Modified z = 0.6745 * (x - median) / MAD (Iglewicz & Hoaglin 1993) over the previous
    `window` points; |z| > threshold flags a point, and each run of consecutive flags is one
    alarm at its first point. Deliberately naive (no season, no MAD floor): a zero MAD makes
    every change infinite, which is what the workbench's detector must beat.
    """
    s = series.sort_index().astype(float)
    x = s.to_numpy()
    z = np.zeros(len(x))
    if len(x) > window:
        views = np.lib.stride_tricks.sliding_window_view(x[:-1], window)  # row k: x[k : k + w]
        for lo in range(0, len(views), 4096):  # chunks bound the memory of the medians
            block = views[lo : lo + 4096]
            median = np.median(block, axis=1)
            mad = np.median(np.abs(block - median[:, None]), axis=1)
            dev = x[lo + window : lo + window + len(block)] - median
            with np.errstate(divide="ignore", invalid="ignore"):
                zb = np.where(mad == 0, np.where(dev == 0, 0.0, np.inf), 0.6745 * dev / mad)
            z[lo + window : lo + window + len(block)] = zb
    flags = np.abs(np.nan_to_num(z, nan=0.0)) > threshold
    starts = flags & ~np.concatenate(([False], flags[:-1]))
    return list(s.index[starts])
