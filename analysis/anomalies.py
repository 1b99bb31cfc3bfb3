"""Anomaly detection for metric time series (latency percentiles, error rate, call volume, MOS...).

The detector is a batch scan over a whole series, in four steps:

1. Regularise: sort, merge duplicated timestamps (mean), infer the sampling interval (median of
   the positive gaps), place points on that grid; gaps stay NaN and are never scored.
2. Robust seasonal baseline: trend = centred rolling median over one season (a running median
   keeps steps sharp, Tukey 1977), then a seasonal profile = median of (x - trend) per slot
   (time of day, or day of week and time of day), as in robust STL's per-subseries smoothing
   (Cleveland et al. 1990) reduced to a median. The season (none, daily, weekly) is the one that
   shrinks the robust scale of the residual most.
3. Spikes and dips: robust z = residual / scale, where the scale is the largest of the local
   1.4826 * MAD (Iglewicz & Hoaglin 1993) over one season, the sigma implied by the 99.5th
   percentile of |residual| (so routine bursts are not news), and a floor (2 % of the
   q05..q95 range) so a zero MAD on quantised or stepped series never divides by zero.
4. Level shifts: robust two-window test, difference of the medians of the w points before and
   after each time, divided by its standard error 1.2533 * scale * sqrt(2 / w) (asymptotic
   variance of a sample median, pi/2 * sigma^2 / w), or by the robust spread of that
   difference over the series when it is larger (wandering, autocorrelated series); the
   strongest maxima above the threshold are change points, each then placed exactly by the
   split minimising the L1 cost of the two levels.

Flagged points closer than a cool-down are merged into one episode, so one episode gives one
alarm. Pure functions, numpy/pandas/scipy only, no global state.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import ndtri

Kind = Literal["spike", "dip", "level_shift"]
Direction = Literal["up", "down"]

# 1.4826 = 1 / Phi^-1(3/4): makes the MAD a consistent estimator of sigma for normal data.
MAD_TO_SIGMA = 1.4826
# sqrt(pi / 2): standard error of a sample median relative to sigma / sqrt(n) (normal data).
MEDIAN_SE_FACTOR = 1.2533


@dataclass(frozen=True)
class Anomaly:
    """One anomalous episode. `value` is the observed value at `peak`, `expected` the baseline."""

    start: pd.Timestamp
    end: pd.Timestamp
    peak: pd.Timestamp
    value: float
    expected: float
    score: float
    kind: Kind
    direction: Direction
    deployed_at: pd.Timestamp | None = None
    release: str | None = None
    deployment_id: str | None = None


@dataclass(frozen=True)
class DetectorConfig:
    """Detector parameters; the defaults are the ones evaluated on NAB (same for every series)."""

    z_threshold: float = 4.5
    shift_threshold: float = 8.0
    # A level shift must also be large in units of the residual scale, not only significant.
    min_shift_sigmas: float = 3.0
    # Floor on the scale, as a fraction of the series' robust range (q95 - q05) ...
    scale_floor_range_frac: float = 0.02
    # ... and of its typical magnitude (median |x|), so a constant series never divides by zero.
    scale_floor_level_frac: float = 0.001
    # Fraction of the tail scale of the two-window difference used as its standard error.
    shift_tail_factor: float = 0.0
    # Quantile of |residual| whose implied sigma is a lower bound on the scale (0 disables).
    tail_quantile: float = 0.995
    # Minimum relative drop of the residual scale for a season to be used.
    min_season_gain: float = 0.1
    # Span of each window of the level-shift test (clamped to [6, 120] points).
    shift_window: timedelta = timedelta(hours=2)
    # Flagged points closer than this are one episode (one alarm).
    cooldown: timedelta = timedelta(hours=2)
    # Seasons of data needed to scan at all, and to fit a seasonal profile.
    min_cycles: int = 2
    season_min_cycles: int = 3


@dataclass(frozen=True)
class AnomalyScan:
    """Result of a scan: anomalies, or none and a reason saying why the series was not scanned."""

    anomalies: list[Anomaly] = field(default_factory=list)
    reason: str | None = None
    interval: pd.Timedelta | None = None
    season: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Grid:
    start: pd.Timestamp
    interval: pd.Timedelta
    values: np.ndarray  # float, NaN where no observation
    notes: tuple[str, ...]


def _to_series(
    data: pd.Series | Sequence | np.ndarray, values: Sequence | np.ndarray | None
) -> pd.Series | str:
    """A float Series indexed by naive timestamps, or a reason string."""
    try:
        if values is None:
            if not isinstance(data, pd.Series):
                return (
                    "not computable: pass a pandas Series indexed by time, or timestamps and values"
                )
            series = data
            index = pd.DatetimeIndex(pd.to_datetime(series.index))
            vals = pd.to_numeric(pd.Series(series.to_numpy()), errors="coerce").to_numpy(float)
        else:
            index = pd.DatetimeIndex(pd.to_datetime(np.asarray(data)))
            vals = pd.to_numeric(pd.Series(np.asarray(values)), errors="coerce").to_numpy(float)
    except (TypeError, ValueError) as exc:
        return f"not computable: timestamps or values could not be read ({exc})"
    if len(index) != len(vals):
        return f"not computable: {len(index)} timestamps but {len(vals)} values"
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    index = index.as_unit("ns")  # pandas 3 may parse to seconds or microseconds
    return pd.Series(vals, index=index)


def _regular_grid(series: pd.Series) -> _Grid | str:
    """Sorted, de-duplicated values on the inferred sampling grid, or a reason string."""
    notes: list[str] = []
    finite = series[np.isfinite(series.to_numpy()) & series.index.notna()]
    if len(finite) < len(series):
        notes.append(f"ignored {len(series) - len(finite)} missing or non-finite values")
    if len(finite) == 0:
        return "not enough data: the series is empty (no finite values)"
    if len(finite) == 1:
        return "not enough data: one point; at least two seasons of points are needed"
    finite = finite.sort_index()
    if finite.index.has_duplicates:
        n_dup = int(finite.index.duplicated().sum())
        notes.append(f"averaged {n_dup} duplicated timestamps")
        finite = finite.groupby(level=0).mean()
    if len(finite) < 2:
        return "not enough data: all points share one timestamp"
    stamps = finite.index.asi8  # nanoseconds
    gaps = np.diff(stamps)
    interval_ns = int(np.median(gaps))
    if interval_ns <= 0:
        return "not computable: no positive interval between timestamps"
    slots = np.rint((stamps - stamps[0]) / interval_ns).astype(np.int64)
    n = int(slots[-1]) + 1
    if n > 50 * len(finite):
        return (
            f"not enough data: timestamps are too irregular or gappy "
            f"({len(finite)} points over {n} expected)"
        )
    sums = np.bincount(slots, weights=finite.to_numpy(), minlength=n)
    counts = np.bincount(slots, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    coverage = float((counts > 0).mean())
    if coverage < 0.5:
        return (
            f"not enough data: only {coverage:.0%} of the expected points are present "
            f"(irregular timestamps or long gaps)"
        )
    if coverage < 1.0:
        notes.append(f"{n - int((counts > 0).sum())} gaps in the sampling grid left unscored")
    if int((counts > 1).sum()):
        notes.append(
            f"{int((counts > 1).sum())} grid slots held several irregular points (averaged)"
        )
    return _Grid(
        start=finite.index[0],
        interval=pd.Timedelta(interval_ns, unit="ns"),
        values=values,
        notes=tuple(notes),
    )


def _points(span: timedelta | pd.Timedelta, interval: pd.Timedelta) -> float:
    return pd.Timedelta(span) / interval


def _season_periods(interval: pd.Timedelta) -> list[tuple[str, int]]:
    """Candidate seasons (name, period in points) that the sampling interval divides evenly."""
    out = []
    for name, span in (("daily", pd.Timedelta(days=1)), ("weekly", pd.Timedelta(days=7))):
        period = _points(span, interval)
        if period >= 4 and abs(period - round(period)) < 1e-9:
            out.append((name, int(round(period))))
    return out


def _block_medians(values: np.ndarray, block: int) -> np.ndarray:
    """Median of each run of `block` consecutive points (the last run may be shorter)."""
    m = -(-len(values) // block)
    padded = np.full(m * block, np.nan)
    padded[: len(values)] = values
    table = padded.reshape(m, block)
    if not np.isnan(table).any():
        return np.median(table, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks (gaps) stay NaN
        return np.nanmedian(table, axis=1)


def _rolling_median(values: np.ndarray, window: int, full: bool = False) -> np.ndarray:
    """Centred running median; `full` leaves NaN where the window is truncated (series edges).

    Long windows run on medians of blocks of window/32 points (a remedian, Rousseeuw & Bassett
    1990): close to the exact running median, steps stay sharp to one block, and the cost
    drops by the block size (a scan of 43,200 points would otherwise spend most of its time
    here).
    """
    if window >= 96:
        # The block must divide the window: a median over anything but whole seasons is biased
        # by the season (a sine's median over 1.03 periods is off by about 0.1 amplitude).
        block = max(b for b in range(1, window // 32 + 1) if window % b == 0)
        if block > 1:
            coarse = _block_medians(values, block)
            k = window // block
            min_periods = k if full else max(1, k // 4)
            smooth = pd.Series(coarse).rolling(k, center=True, min_periods=min_periods).median()
            return np.repeat(smooth.to_numpy(), block)[: len(values)]
    window = max(3, window | 1)  # odd, so the window is centred on its point
    min_periods = window if full else max(1, window // 4)
    return (
        pd.Series(values).rolling(window, center=True, min_periods=min_periods).median().to_numpy()
    )


def _seasonal_profile(detrended: np.ndarray, period: int) -> np.ndarray:
    """Median of detrended values per slot of the season, tiled to the series' length."""
    n = len(detrended)
    cycles = -(-n // period)
    padded = np.full(cycles * period, np.nan)
    padded[:n] = detrended
    table = padded.reshape(cycles, period)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slots get 0 below
        profile = np.nanmedian(table, axis=0)
    profile = np.where(np.isfinite(profile), profile, 0.0)
    profile = profile - np.median(profile)
    return np.tile(profile, cycles)[:n]


def _seasonal_fit(x: np.ndarray, period: int) -> tuple[np.ndarray, float]:
    """(seasonal component, robust scale of the remainder) for one season, in two passes as in
    STL's inner loop (Cleveland et al. 1990): a trend from full windows only (a truncated
    window at the edges is biased by the season), a profile, then a trend on the
    deseasonalised series (unbiased at the edges) and the final profile."""
    first_trend = _rolling_median(x, period, full=True)
    seasonal = _seasonal_profile(x - first_trend, period)
    trend = _rolling_median(x - seasonal, period)
    seasonal = _seasonal_profile(x - trend, period)
    return seasonal, _robust_scale(x - trend - seasonal)


def _robust_scale(residual: np.ndarray) -> float:
    finite = residual[np.isfinite(residual)]
    if len(finite) == 0:
        return 0.0
    return float(MAD_TO_SIGMA * np.median(np.abs(finite - np.median(finite))))


def _tail_scale(residual: np.ndarray, quantile: float) -> float:
    """Sigma implied by a high quantile of |residual|: q / Phi^-1((1 + quantile) / 2).

    Equals sigma for normal noise; grows for bursty, heavy-tailed series whose bursts are
    routine, so that only bursts well beyond the usual ones are flagged.
    """
    finite = np.abs(residual[np.isfinite(residual)])
    if len(finite) == 0:
        return 0.0
    return float(np.quantile(finite, quantile) / ndtri((1.0 + quantile) / 2.0))


def _point_scale(
    residual: np.ndarray, window: int, floor: float, config: DetectorConfig
) -> np.ndarray:
    """Per-point scale: the larger of the local MAD (centred window), the tail scale, the floor."""
    local = MAD_TO_SIGMA * _rolling_median(np.abs(residual), window)
    tail = _tail_scale(residual, config.tail_quantile) if config.tail_quantile else 0.0
    out = np.fmax(local, max(tail, floor))
    return np.where(np.isfinite(out), out, max(tail, floor))


def _scale_floor(values: np.ndarray, config: DetectorConfig) -> float:
    finite = values[np.isfinite(values)]
    q05, q95 = np.quantile(finite, [0.05, 0.95])
    spread = float(q95 - q05)
    if spread == 0.0:
        # Mostly constant (e.g. zeros with bursts): use the spread of the non-typical values.
        spread = float(np.max(finite) - np.min(finite)) * 0.1
    level = float(np.median(np.abs(finite)))
    floor = max(config.scale_floor_range_frac * spread, config.scale_floor_level_frac * level)
    return floor if floor > 0 else 1e-12


def _episodes(flags: np.ndarray, merge_gap: int) -> list[tuple[int, int]]:
    """(first, last) index of runs of flagged points, runs closer than merge_gap merged."""
    idx = np.flatnonzero(flags)
    if len(idx) == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > merge_gap)
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    ends = np.concatenate((idx[breaks], [idx[-1]]))
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


@dataclass(frozen=True)
class _ShiftTest:
    """Two-window medians at block resolution: `before[j]` is the median of the `window` points
    before block j's first point, `after[j]` of the `window` points from it on."""

    block: int
    before: np.ndarray
    after: np.ndarray


def _two_window_test(deseasonalised: np.ndarray, window: int) -> _ShiftTest:
    block = max(1, window // 8)
    k = max(2, window // block)
    coarse = pd.Series(_block_medians(deseasonalised, block))
    min_periods = max(2, (2 * k) // 3)
    before = coarse.rolling(k, min_periods=min_periods).median().shift(1).to_numpy()
    after = coarse[::-1].rolling(k, min_periods=min_periods).median()[::-1].to_numpy()
    return _ShiftTest(block, before, after)


def _level_shift_points(
    test: _ShiftTest, window: int, scale: float, config: DetectorConfig
) -> list[tuple[int, float, float, float]]:
    """(index, statistic, level before, level after) of change points, strongest first."""
    diff = test.after - test.before
    # Standard error of the difference: the iid value, or the observed spread of the difference
    # itself when the series wanders (autocorrelated noise makes windowed medians vary more).
    se = max(MEDIAN_SE_FACTOR * scale * np.sqrt(2.0 / window), _robust_scale(diff))
    if config.tail_quantile and config.shift_tail_factor:
        se = max(se, _tail_scale(diff, config.tail_quantile) * config.shift_tail_factor)
    stat = np.abs(diff) / se
    stat[~np.isfinite(stat)] = 0.0
    ok = (stat > config.shift_threshold) & (np.abs(diff) > config.min_shift_sigmas * scale)
    points: list[tuple[int, float, float, float]] = []
    candidates = np.flatnonzero(ok)
    if len(candidates) == 0:
        return points
    # Greedy: take the strongest candidate, blank out +- window around it, repeat.
    order = candidates[np.argsort(-stat[candidates], kind="stable")]
    taken = np.zeros(len(stat), dtype=bool)
    reach = max(1, window // test.block)
    for j in order.tolist():
        if taken[j]:
            continue
        taken[max(0, j - reach) : j + reach + 1] = True
        points.append((j * test.block, float(stat[j]), float(test.before[j]), float(test.after[j])))
    return points


def _shift_end(
    test: _ShiftTest, i: int, window: int, level_before: float, level_after: float, n: int
) -> int:
    """Last index of a shifted episode: where the trailing median, once past the transition,
    comes back nearer the old level than the new one (or the end of the series)."""
    mid = (level_before + level_after) / 2
    first = -(-(i + 2 * window) // test.block)
    trailing = test.before[first:]
    back = np.flatnonzero((trailing < mid) if level_after > level_before else (trailing > mid))
    if len(back) == 0:
        return n - 1
    return int(np.clip((first + int(back[0])) * test.block - window // 2, i, n - 1))


def _refined_change_point(
    x: np.ndarray, i: int, window: int, level_before: float, level_after: float
) -> int:
    """Split of [i - w, i + w) minimising the L1 cost of the two levels (the `l1` cost of
    ruptures' change-point search), sharper than the argmax of the windowed test."""
    lo, hi = max(0, i - window), min(len(x), i + window)
    seg = x[lo:hi]
    cost_before = np.concatenate(([0.0], np.cumsum(np.nan_to_num(np.abs(seg - level_before)))))
    cost_after = np.concatenate(([0.0], np.cumsum(np.nan_to_num(np.abs(seg - level_after)))))
    # cost(j) = sum_{t < j} |x_t - before| + sum_{t >= j} |x_t - after|, j = 0..len(seg)
    total = cost_before + (cost_after[-1] - cost_after)
    return lo + int(np.argmin(total[1:-1])) + 1 if len(seg) > 2 else i


def _merged_episodes(candidates: list[tuple[int, int, Anomaly]], cooldown: int) -> list[Anomaly]:
    """One anomaly per episode. Candidates are (first, last flagged index, anomaly); one that
    starts within `cooldown` points of the previous episode's last flagged point joins it, and
    the episode keeps the earliest start and the strongest candidate's description."""
    merged: list[tuple[int, int, Anomaly]] = []
    for first, last, a in sorted(candidates, key=lambda c: c[0]):
        if merged and first <= merged[-1][1] + cooldown:
            p_first, p_last, prev = merged[-1]
            if prev.kind == a.kind == "level_shift" and prev.direction != a.direction:
                # A shift and its reversal (a bad release, then its rollback): the episode is
                # the first shift, and it ends where the level came back.
                episode = replace(prev, end=a.start, score=max(prev.score, a.score))
            else:
                strongest = a if a.score > prev.score else prev
                episode = replace(strongest, start=prev.start, end=max(prev.end, a.end))
            merged[-1] = (p_first, max(p_last, last), episode)
        else:
            merged.append((first, last, a))
    return [a for _, _, a in merged]


def detect_anomalies(
    data: pd.Series | Sequence | np.ndarray,
    values: Sequence | np.ndarray | None = None,
    config: DetectorConfig | None = None,
) -> AnomalyScan:
    """Scan a metric series for spikes, dips and level shifts, one anomaly per episode.

    `data` is a Series indexed by timestamp, or an array of timestamps with `values` beside it.
    Never raises on bad input: returns an empty scan whose `reason` says what is missing.
    """
    config = config or DetectorConfig()
    series = _to_series(data, values)
    if isinstance(series, str):
        return AnomalyScan(reason=series)
    grid = _regular_grid(series)
    if isinstance(grid, str):
        return AnomalyScan(reason=grid)
    x = grid.values
    n = len(x)
    seasons = _season_periods(grid.interval)
    shortest = min((p for _, p in seasons), default=None)
    if shortest is not None and n < config.min_cycles * shortest:
        span = grid.interval * n
        return AnomalyScan(
            reason=(
                f"not enough data: the series covers {span}, shorter than "
                f"{config.min_cycles} seasons of {grid.interval * shortest}"
            ),
            interval=grid.interval,
            notes=grid.notes,
        )
    if np.isfinite(x).sum() < 24:
        return AnomalyScan(
            reason=f"not enough data: {int(np.isfinite(x).sum())} points, at least 24 are needed",
            interval=grid.interval,
            notes=grid.notes,
        )

    # Trend: running median over the shortest season (or a day's worth of points if none fits).
    trend_window = min(shortest or max(24, int(_points(timedelta(days=1), grid.interval))), n)
    best_name, best_seasonal = "none", np.zeros(n)
    best_scale = _robust_scale(x - _rolling_median(x, trend_window))
    for name, period in seasons:
        if n < config.season_min_cycles * period:
            continue
        seasonal, scale = _seasonal_fit(x, period)
        if scale < (1.0 - config.min_season_gain) * best_scale:
            best_name, best_seasonal, best_scale = name, seasonal, scale
    deseasonalised = x - best_seasonal
    trend = _rolling_median(deseasonalised, trend_window)
    residual = deseasonalised - trend
    floor = _scale_floor(x, config)
    scale = max(_robust_scale(residual), floor)
    point_scale = _point_scale(residual, trend_window, floor, config)
    expected = trend + best_seasonal
    z = residual / point_scale
    z[~np.isfinite(z)] = 0.0

    index = pd.DatetimeIndex(grid.start + grid.interval * np.arange(n))
    cooldown = max(1, int(round(_points(config.cooldown, grid.interval))))
    window = int(np.clip(round(_points(config.shift_window, grid.interval)), 6, 120))

    candidates: list[tuple[int, int, Anomaly]] = []
    shift_spans: list[tuple[int, int]] = []
    shift_test = _two_window_test(deseasonalised, window)
    for i, stat, level_before, level_after in _level_shift_points(
        shift_test, window, scale, config
    ):
        i = _refined_change_point(deseasonalised, i, window, level_before, level_after)
        up = level_after > level_before
        end = _shift_end(shift_test, i, window, level_before, level_after, n)
        shift_spans.append((i, i + window))
        candidates.append(
            (
                i,
                i + window,
                Anomaly(
                    start=index[i],
                    end=index[end],
                    peak=index[i],
                    value=float(x[i]) if np.isfinite(x[i]) else float(level_after),
                    expected=float(level_before + best_seasonal[i]),
                    score=stat,
                    kind="level_shift",
                    direction="up" if up else "down",
                ),
            )
        )

    flags = np.abs(z) > config.z_threshold
    for first, last in _episodes(flags, cooldown):
        # A spike at a level shift's edge is the same episode as the shift.
        if any(a - cooldown <= first <= b for a, b in shift_spans):
            continue
        segment = z[first : last + 1]
        k = first + int(np.argmax(np.abs(segment)))
        up = z[k] > 0
        candidates.append(
            (
                first,
                last,
                Anomaly(
                    start=index[first],
                    end=index[last],
                    peak=index[k],
                    value=float(x[k]),
                    expected=float(expected[k]),
                    score=float(abs(z[k])),
                    kind="spike" if up else "dip",
                    direction="up" if up else "down",
                ),
            )
        )
    return AnomalyScan(
        anomalies=_merged_episodes(candidates, cooldown),
        interval=grid.interval,
        season=best_name,
        notes=grid.notes,
    )


def label_with_deployments(
    anomalies: Iterable[Anomaly],
    deployments: Iterable[tuple[object, str | None, str | None]],
    lookback: timedelta = timedelta(hours=2),
) -> list[Anomaly]:
    """Anomalies labelled with the latest deployment in [start - lookback, start].

    `deployments` holds (deployed_at, release, deployment id). Anomalies with no deployment in
    the lookback come back unchanged.
    """
    deploys = sorted(
        (pd.Timestamp(t), release, dep_id) for t, release, dep_id in deployments if t is not None
    )
    deploys = [
        (t.tz_convert("UTC").tz_localize(None) if t.tzinfo else t, r, d) for t, r, d in deploys
    ]
    times = [t for t, _, _ in deploys]
    out = []
    for anomaly in anomalies:
        pos = (
            int(
                np.searchsorted(
                    np.array(times, dtype="datetime64[ns]"),
                    anomaly.start.to_datetime64(),
                    side="right",
                )
            )
            - 1
            if times
            else -1
        )
        if pos >= 0 and anomaly.start - times[pos] <= pd.Timedelta(lookback):
            t, release, dep_id = deploys[pos]
            anomaly = replace(anomaly, deployed_at=t, release=release, deployment_id=dep_id)
        out.append(anomaly)
    return out
