"""Online anomaly detection for metric series: every verdict uses only the data up to its point.

`new_state(config)` starts a detector; `update(state, timestamps, values)` feeds it new points
and returns the new state with the points' verdicts and the episodes they opened or closed;
`scan(timestamps, values, config)` is one update from an empty state. The state is a small
dataclass (`state_to_json` / `state_from_json`) whose size depends on the season, not on the
history, so a collector run costs time in proportion to its new points. A verdict, once given,
never changes: a run over any prefix of a series gives the verdicts and episodes of the full
run up to that point, and a run split into many updates (state carried, through JSON or not)
gives exactly those of one update.

Method (per series):

1. Points: timestamps are read as UTC instants (aware ones converted, naive ones taken as UTC;
   a mix of the two is refused), values as floats; non-finite values are dropped, and so are
   points not later than the last point seen (duplicates, late rows, re-reads with an
   overlap). Nothing needs a regular grid.
2. Buckets: the bucket width is the sampling step (the first quartile of the first
   `infer_points` gaps: missing points only lengthen gaps) rounded to a width that divides a
   day, at least `min_bucket`; bucket edges keep the clock grid of the step, half a step
   before the points, so timestamps jittered by less than half an interval (or offset by
   half of one) stay in their bucket, and irregular sampling or outages only leave buckets
   empty. A bucket's value is the median of its points. Seasonal slots are local times in
   the operator's time zone (IANA), so daily and weekly seasons follow daylight saving.
3. Baselines, three candidate models side by side, each from closed buckets only:
   none: expected = level, the running median of the last `level_buckets` bucket values
   (Tukey 1977: robust to spikes, keeps steps sharp), however far apart they are: with
   sparse or irregular sampling, or after a gap, the level is never the median of one or
   two values; daily / weekly: a seasonal component
   S = median of d around the same local time (+-`season_halfwidth` buckets) over the last
   `cycles` cycles, d = value - trend, the trend being the moving average over one cycle of
   classical decomposition (a day's mean; for a week, the mean of the last seven daily
   means), and the medians making it robust in the manner of robust STL (Cleveland et al.
   1990); plus the running median of the deseasonalised values. Once per block (a day of
   buckets) the model is chosen by prequential comparison (Dawid 1984): the mean absolute
   one-step error over the last `selection_blocks` blocks; a seasonal model replaces a
   simpler one only if it is at least `season_gain` better. A perfect season (zero error)
   wins over a plain fit whose errors sit at the edges; a constant series keeps the plain
   model.
4. Scale: 1.4826 * median |residual| (MAD, Iglewicz & Hoaglin 1993) of the buckets before the
   point, over the last `scale_buckets` buckets and, for a seasonal model, around the same
   time of day in the last cycles (noise that follows the day); the mean |residual| times
   1.2533 where more than half the residuals are exactly zero (counts, idle periods); never
   below a floor of `floor_range_frac` of a recent block's q05..q95 range or
   `floor_level_frac` of its largest magnitude (a perfect, quantised or constant series).
5. Rules, each point's statistics against thresholds learnt from earlier days only:
   spike or dip (Shewhart): |z|; level shift (a runs rule, after the Western Electric rules,
   with a median for robustness): |median z| of the last `shift_points` points; density:
   the number of the last `density_points` points with |z| > `density_z` (spikes turning
   dense). A rule flags a point when its statistic exceeds both its minimum and `tail_factor`
   times the `tail_quantile` of its daily maxima over the last `tail_days` days (block
   maxima, Gumbel 1958): the largest deviation of a typical day is not news, `tail_factor`
   times it is. Routine bursts are learnt; a burst after quiet days is flagged; a series
   whose deviations are all alike (pure noise, a season) stays quiet.
   Verdicts start after a warm-up (`warmup`, `warmup_points`); an outage longer than the
   warm-up starts it again, since the baselines before it are stale.
6. Episodes: a spike episode closes after `cooldown` without flags. A level shift (the runs
   rule, or a spike episode it confirms) absorbs flags until the level comes back past the
   midpoint between the levels before and after (recovered; it then closes after a quiet
   `cooldown`, so the return is not a new alarm) or until it has lasted `settle` (the new
   level is accepted). An episode is reported when it opens (its start and the time it was
   confirmed: the alarm) and when it closes (its end, and whether it recovered).
   Optionally (`refractory`, off by default) no episode opens within a set time of the last
   alarm, as alerting does after a page.

Measured with bench/nab_eval.py (defaults chosen there by a cross-folder rule): NAB
development folder nab (12 series) window recall 0.79, alarm precision 0.50, NAB standard
score 64.2; nab-more (17 series) 0.84, 0.32, 63.7. A 12-hour refractory lowers precision (it
also drops repeat alarms inside a window), so it is not the default.
"""

from __future__ import annotations

import base64
import json
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
Kind = Literal["spike", "dip", "level_shift"]
Direction = Literal["up", "down"]
Status = Literal["learning", "normal", "anomalous"]

NS = 1_000_000_000
DAY_NS = 86_400 * NS
# 1.4826 = 1 / Phi^-1(3/4): the MAD times this estimates sigma for normal data.
MAD_TO_SIGMA = 1.4826
# sqrt(pi / 2): the mean absolute deviation times this estimates sigma for normal data.
MEAN_AD_TO_SIGMA = 1.2533
MODELS = ("none", "daily", "weekly")
_CYCLE_NS = {"daily": DAY_NS, "weekly": 7 * DAY_NS}
# Bucket widths that divide a day (or a week), so seasons fall on whole buckets.
_NICE_WIDTHS_S = (
    1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 14400, 21600, 28800, 43200, 86400,
    7 * 86400,
)  # fmt: skip
_STATUS: tuple[Status, ...] = ("learning", "normal", "anomalous")
_Z_CAP = 1e9  # |z| of a change when the scale is exactly zero (a series constant at 0)
_NAT = np.iinfo(np.int64).min
_UTC_NAMES = frozenset({"UTC", "utc", "Etc/UTC", "Z", "GMT", "Etc/GMT"})
_N_RULES = 3  # spike, shift, density


@dataclass(frozen=True)
class OnlineConfig:
    """Detector settings (see the module docstring). Spans are durations; counts are buckets
    or points. The defaults are the ones chosen in bench/nab_eval.py."""

    timezone: str = "UTC"
    z_threshold: float = 5.0
    shift_points: int = 12
    shift_threshold: float = 3.0
    density_points: int = 24
    density_z: float = 3.0
    density_min: float = 5.0
    tail_factor: float = 1.5
    tail_quantile: float = 0.75
    tail_days: int = 14
    level_buckets: int = 12
    scale_buckets: int = 288
    cycles: int = 3
    season_halfwidth: int = 2
    seasons: tuple[str, ...] = ("daily", "weekly")
    season_gain: float = 0.3
    selection_blocks: int = 7
    cooldown: timedelta = timedelta(hours=2)
    refractory: timedelta = timedelta(0)
    settle: timedelta = timedelta(days=1)
    warmup: timedelta = timedelta(days=2)
    warmup_points: int = 24
    infer_points: int = 16
    min_bucket: timedelta = timedelta(minutes=5)
    bucket: timedelta | None = None
    floor_range_frac: float = 0.02
    floor_level_frac: float = 0.001

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (durations in seconds)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, timedelta):
                value = {"seconds": value.total_seconds()}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OnlineConfig:
        """The config saved by `to_dict` (unknown keys ignored, missing ones defaulted)."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in data:
                value = data[f.name]
                if isinstance(value, dict) and "seconds" in value:
                    value = timedelta(seconds=float(value["seconds"]))
                elif isinstance(value, list):
                    value = tuple(value)
                kwargs[f.name] = value
        return cls(**kwargs)


@dataclass(frozen=True)
class Episode:
    """An anomalous episode. `confirmed_at` is when the detector knew (the alarm); `start` its
    first anomalous point (earlier than `confirmed_at` for a shift confirmed by a run of
    points). `end` is None while open; once closed, `recovered` says whether the level came
    back (False: the new level was accepted after `settle`)."""

    start: pd.Timestamp
    confirmed_at: pd.Timestamp
    peak: pd.Timestamp
    value: float
    expected: float
    score: float
    kind: Kind
    direction: Direction
    end: pd.Timestamp | None = None
    recovered: bool | None = None
    deployed_at: pd.Timestamp | None = None
    release: str | None = None
    deployment_id: str | None = None

    @property
    def is_open(self) -> bool:
        return self.end is None


@dataclass(frozen=True)
class Verdict:
    """One point's verdict: `status` is learning (not enough history yet), normal or
    anomalous; `score` is its robust z and `limit` the |z| a spike needed at that time, so
    the band expected +- limit * scale is what passed as normal."""

    time: pd.Timestamp
    value: float
    expected: float
    scale: float
    score: float
    limit: float
    status: Status


def _empty_f() -> FloatArray:
    return np.zeros(0)


@dataclass(frozen=True)
class Verdicts:
    """The verdicts of an update as columns (a first scan holds tens of thousands); indexing
    and iteration give Verdict objects."""

    time_ns: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    value: FloatArray = field(default_factory=_empty_f)
    expected: FloatArray = field(default_factory=_empty_f)
    scale: FloatArray = field(default_factory=_empty_f)
    score: FloatArray = field(default_factory=_empty_f)
    limit: FloatArray = field(default_factory=_empty_f)
    status_code: NDArray[np.int8] = field(default_factory=lambda: np.zeros(0, np.int8))

    def __len__(self) -> int:
        return len(self.time_ns)

    def __getitem__(self, i: int) -> Verdict:
        return Verdict(
            time=pd.Timestamp(int(self.time_ns[i]), unit="ns"),
            value=float(self.value[i]),
            expected=float(self.expected[i]),
            scale=float(self.scale[i]),
            score=float(self.score[i]),
            limit=float(self.limit[i]),
            status=_STATUS[int(self.status_code[i])],
        )

    def __iter__(self) -> Iterator[Verdict]:
        return (self[i] for i in range(len(self)))

    @property
    def times(self) -> pd.DatetimeIndex:
        """The points' times, naive UTC."""
        return pd.DatetimeIndex(self.time_ns.astype("datetime64[ns]"))

    @property
    def anomalous(self) -> BoolArray:
        return np.asarray(self.status_code == 2)

    def frame(self) -> pd.DataFrame:
        """time, value, expected, scale, score, limit, status (and lower/upper of the band)."""
        return pd.DataFrame(
            {
                "time": self.times,
                "value": self.value,
                "expected": self.expected,
                "lower": self.expected - self.limit * self.scale,
                "upper": self.expected + self.limit * self.scale,
                "scale": self.scale,
                "score": self.score,
                "limit": self.limit,
                "status": np.array(_STATUS, dtype=object)[self.status_code],
            }
        )

    @staticmethod
    def concat(parts: Sequence[Verdicts]) -> Verdicts:
        if len(parts) == 1:
            return parts[0]
        return Verdicts(
            *(
                np.concatenate([getattr(p, f.name) for p in parts])
                if parts
                else getattr(Verdicts(), f.name)
                for f in fields(Verdicts)
            )
        )


@dataclass(frozen=True)
class UpdateResult:
    """What an update returns beside the new state: the new points' verdicts, the episodes
    they opened or closed in time order (one that opens and closes within the update appears
    twice), notes on the input, and a reason when nothing new could be used."""

    verdicts: Verdicts = field(default_factory=Verdicts)
    events: list[Episode] = field(default_factory=list)
    reason: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DetectorState:
    """Everything the detector carries between updates (`state_to_json` serialises it).

    Tails are arrays ending at the last closed bucket, as long as the longest window that
    reads them; `carry` holds scalars (last levels, running block maxima, the open bucket's
    baseline); `blocks` the statistics of the recent days.
    """

    config: OnlineConfig = field(default_factory=OnlineConfig)
    bucket_ns: int = 0  # 0 until inferred from the first points
    origin_ns: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    points: int = 0
    pending: tuple[tuple[int, float], ...] = ()
    open_bucket: int | None = None
    open_values: tuple[float, ...] = ()
    recent_times: tuple[int, ...] = ()
    tails: dict[str, FloatArray] = field(default_factory=dict)
    carry: dict[str, float] = field(default_factory=dict)
    blocks: tuple[tuple[int, tuple[float, ...]], ...] = ()
    episode: dict[str, Any] | None = None
    ignored: dict[str, int] = field(default_factory=dict)

    @property
    def interval(self) -> pd.Timedelta | None:
        """The bucket width (None until learnt)."""
        return pd.Timedelta(self.bucket_ns, unit="ns") if self.bucket_ns else None

    @property
    def season(self) -> str | None:
        """The model in use for the latest bucket: none, daily or weekly."""
        active = self.carry.get("active")
        return None if active is None else MODELS[int(active)]


@dataclass(frozen=True)
class OnlineScan:
    """A first scan: every verdict, every episode (each once: closed ones with their end, an
    open one last), the state to carry on from, notes, and a reason when nothing could be
    scored."""

    verdicts: Verdicts
    episodes: list[Episode]
    state: DetectorState
    reason: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def interval(self) -> pd.Timedelta | None:
        return self.state.interval

    @property
    def season(self) -> str | None:
        return self.state.season

    @property
    def alarms(self) -> list[pd.Timestamp]:
        """When each episode was confirmed: the times an alert would have fired."""
        return [e.confirmed_at for e in self.episodes]


# --- serialisation --------------------------------------------------------------------------

# Tails stored as float32 are rounded to float32 when computed, on every path, so a JSON
# round trip and any split of the updates give the same numbers.
_F32_TAILS = ("d_daily", "d_weekly", "absres", "err")


def state_to_json(state: DetectorState) -> str:
    """The state as JSON text; arrays are base64 (exact, and compact)."""
    tails = {}
    for key, arr in state.tails.items():
        dtype = "<f4" if key in _F32_TAILS else "<f8"
        tails[key] = base64.b64encode(np.ascontiguousarray(arr, dtype=dtype).tobytes()).decode()
    payload = {
        "version": 1,
        "config": state.config.to_dict(),
        "bucket_ns": state.bucket_ns,
        "origin_ns": state.origin_ns,
        "first_ns": state.first_ns,
        "last_ns": state.last_ns,
        "points": state.points,
        "pending": [[t, _json_float(x)] for t, x in state.pending],
        "open_bucket": state.open_bucket,
        "open_values": [_json_float(x) for x in state.open_values],
        "recent_times": list(state.recent_times),
        "tails": tails,
        "carry": {k: _json_float(v) for k, v in state.carry.items()},
        "blocks": [[b, [_json_float(x) for x in s]] for b, s in state.blocks],
        "episode": state.episode,
        "ignored": state.ignored,
    }
    return json.dumps(payload, separators=(",", ":"))


def state_from_json(text: str) -> DetectorState:
    """The state saved by `state_to_json`."""
    p = json.loads(text)
    tails = {}
    for key, blob in p["tails"].items():
        dtype = "<f4" if key in _F32_TAILS else "<f8"
        tails[key] = np.frombuffer(base64.b64decode(blob), dtype=dtype).astype(np.float64)
    return DetectorState(
        config=OnlineConfig.from_dict(p["config"]),
        bucket_ns=int(p["bucket_ns"]),
        origin_ns=int(p["origin_ns"]),
        first_ns=p["first_ns"],
        last_ns=p["last_ns"],
        points=int(p["points"]),
        pending=tuple((int(t), float(x)) for t, x in p["pending"]),
        open_bucket=p["open_bucket"],
        open_values=tuple(float(x) for x in p["open_values"]),
        recent_times=tuple(int(t) for t in p["recent_times"]),
        tails=tails,
        carry={k: float(v) for k, v in p["carry"].items()},
        blocks=tuple((int(b), tuple(float(x) for x in s)) for b, s in p["blocks"]),
        episode=p["episode"],
        ignored={k: int(v) for k, v in p["ignored"].items()},
    )


def _json_float(x: float) -> float | str:
    """JSON has no NaN or infinity: those travel as text that float() reads back."""
    return x if math.isfinite(x) else repr(float(x))


def _tail(a: NDArray[Any], n: int) -> NDArray[Any]:
    """The last n items of `a` (none for n <= 0; all when it is shorter)."""
    return a[max(len(a) - n, 0) :] if n > 0 else a[:0]


def _zero_nan(a: FloatArray) -> FloatArray:
    return np.where(np.isnan(a), 0.0, a)


def _f32(a: FloatArray) -> FloatArray:
    return a.astype(np.float32).astype(np.float64)


# --- input ----------------------------------------------------------------------------------


class _InputError(ValueError):
    pass


_MIXED = (
    "not enough data: the timestamps mix time zone-aware and naive values, so their instants "
    "are ambiguous; pass them all aware, or all naive in UTC"
)


def _read_points(timestamps: object, values: object) -> tuple[IntArray, FloatArray] | str:
    """(UTC nanoseconds, float values), or a reason. Unreadable values become NaN."""
    try:
        stamps = _utc_nanoseconds(timestamps)
    except _InputError as exc:
        return str(exc)
    x = _float_values(values)
    if x is None:
        return "not enough data: the values could not be read as numbers"
    if x.ndim != 1 or stamps.ndim != 1:
        return "not enough data: timestamps and values must be one-dimensional"
    if len(stamps) != len(x):
        return f"not enough data: {len(stamps)} timestamps but {len(x)} values"
    return stamps, x


def _float_values(values: object) -> FloatArray | None:
    if isinstance(values, pd.Series):
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.dtype.kind in "fiub":
        return arr.astype(np.float64)
    try:
        numeric = pd.to_numeric(pd.Series(arr.ravel(), dtype=object), errors="coerce")
        return numeric.to_numpy(dtype=float, na_value=np.nan).reshape(arr.shape)
    except (TypeError, ValueError):
        return None


def _utc_nanoseconds(timestamps: object) -> IntArray:
    if isinstance(timestamps, pd.Series):
        timestamps = pd.Index(timestamps)
    if isinstance(timestamps, pd.DatetimeIndex):
        index = timestamps
    else:
        arr = np.asarray(timestamps)
        if arr.dtype.kind == "M":
            ns = arr.astype("datetime64[ns]")
            out = ns.view(np.int64).copy()
            out[np.isnat(ns)] = _NAT
            return out
        index = _parse_objects(arr)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    out = index.as_unit("ns").asi8.astype(np.int64)
    nat = np.asarray(index.isna())
    if nat.any():
        out = out.copy()
        out[nat] = _NAT
    return out


def _parse_objects(arr: np.ndarray) -> pd.DatetimeIndex:
    if arr.ndim != 1:
        raise _InputError("not enough data: timestamps must be one-dimensional")
    if len(arr) == 0:
        return pd.DatetimeIndex([], dtype="datetime64[ns]")
    aware = {getattr(v, "tzinfo", None) is not None for v in arr if hasattr(v, "year")}
    if len(aware) > 1:
        raise _InputError(_MIXED)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "could not infer format"
            return pd.DatetimeIndex(pd.to_datetime(arr))
    except (TypeError, ValueError, OverflowError) as exc:
        message = str(exc)
    if "unconverted data remains" in message or "naive" in message:
        raise _InputError(_MIXED)
    try:  # aware values with different offsets (daylight saving) are fine as instants
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return pd.DatetimeIndex(pd.to_datetime(arr, utc=True))
    except (TypeError, ValueError, OverflowError) as exc:
        raise _InputError(
            f"not enough data: the timestamps could not be read ({str(exc)[:100]})"
        ) from exc


# --- exact helpers --------------------------------------------------------------------------
#
# Every statistic below is an order statistic, the mean of two middle ones, a maximum, an
# integer count, or a sum in a fixed order, so its value depends only on the numbers in its
# window, never on how the series was split between updates.


def _median_cols(table: FloatArray, min_count: int) -> FloatArray:
    """Median of each column, NaN skipped; NaN with fewer than `min_count` values."""
    counts = np.isfinite(table).sum(axis=0)
    out = np.full(table.shape[1], np.nan)
    ok = counts >= max(min_count, 1)
    if ok.any():
        srt = np.sort(np.ascontiguousarray(table[:, ok].T), axis=1)  # NaN sort last
        c = counts[ok]
        rows = np.arange(len(c))
        out[ok] = (srt[rows, (c - 1) // 2] + srt[rows, c // 2]) / 2
    return out


def _trailing_median(arr: FloatArray, window: int, n_out: int, min_count: int) -> FloatArray:
    """Median of the `window` values ending at each of the last `n_out` positions of `arr`
    (NaN skipped; NaN with fewer than `min_count` values)."""
    if n_out <= 0:
        return np.zeros(0)
    need = n_out + window - 1
    if len(arr) < need:
        arr = np.concatenate([np.full(need - len(arr), np.nan), arr])
    seg = arr[len(arr) - need :]
    if n_out <= 4:  # an update of a few points: one sort per window
        out = np.full(n_out, np.nan)
        for i in range(n_out):
            win = seg[i : i + window]
            fin = np.sort(win[~np.isnan(win)])
            c = len(fin)
            if c >= max(min_count, 1):
                out[i] = (fin[(c - 1) // 2] + fin[c // 2]) / 2
        return out
    if n_out <= 64:
        view = np.lib.stride_tricks.sliding_window_view(seg, window)
        return _median_cols(view.T, min_count)
    rolled = pd.Series(seg).rolling(window, min_periods=max(min_count, 1)).median()
    return np.asarray(rolled.to_numpy()[window - 1 :], dtype=float)


def _group_medians(groups: IntArray, values: FloatArray, n_groups: int) -> FloatArray:
    """Median of `values` per group id in [0, n_groups) (ids non-decreasing: points in time
    order); NaN for empty groups."""
    out = np.full(n_groups, np.nan)
    if len(values) == 0:
        return out
    starts = np.flatnonzero(np.concatenate(([True], groups[1:] != groups[:-1])))
    sizes = np.diff(np.concatenate((starts, [len(groups)])))
    ids = groups[starts]
    widest = int(sizes.max())
    if len(values) <= 8:
        for k, (a, size) in enumerate(zip(starts.tolist(), sizes.tolist(), strict=True)):
            grp = sorted(values[a : a + size].tolist())
            out[ids[k]] = (grp[(size - 1) // 2] + grp[size // 2]) / 2
        return out
    if widest == 1:
        out[ids] = values
        return out
    if widest <= 64:
        table = np.full((len(starts), widest), np.nan)
        owner = np.repeat(np.arange(len(starts)), sizes)
        table[owner, np.arange(len(values)) - starts[owner]] = values
        srt = np.sort(table, axis=1)
    else:
        order = np.lexsort((values, groups))
        srt_flat = values[order]
        srt = None
    rows = np.arange(len(starts))
    if srt is not None:
        out[ids] = (srt[rows, (sizes - 1) // 2] + srt[rows, sizes // 2]) / 2
    else:
        out[ids] = (srt_flat[starts + (sizes - 1) // 2] + srt_flat[starts + sizes // 2]) / 2
    return out


def _ffill(a: FloatArray, initial: float) -> FloatArray:
    """Each NaN replaced by the last finite value before it (or `initial`)."""
    ok = np.isfinite(a)
    if ok.all():
        return a
    idx = np.maximum.accumulate(np.where(ok, np.arange(len(a)), -1))
    return np.where(idx >= 0, a[np.maximum(idx, 0)], initial)


def _robust_scale_cols(table: FloatArray, min_count: int = 3) -> FloatArray:
    """Scale of each column of absolute residuals: 1.4826 * median, or, where that median is
    zero (most residuals exactly zero: counts, idle periods), 1.2533 * mean (the MeanAD
    fallback of the modified z-score); NaN with fewer than `min_count` values."""
    out = MAD_TO_SIGMA * _median_cols(table, min_count)
    zero = out == 0
    if zero.any():
        sub = table[:, zero]
        finite = np.isfinite(sub)
        total = np.zeros(sub.shape[1])
        for row in np.where(finite, sub, 0.0):  # fixed order: exact whatever the split
            total = total + row
        out[zero] = MEAN_AD_TO_SIGMA * total / finite.sum(axis=0)
    return out


def _trailing_scale(arr: FloatArray, window: int, n_out: int) -> FloatArray:
    """_robust_scale_cols of the `window` values ending at each of the last `n_out` positions."""
    need = n_out + window - 1
    if len(arr) < need:
        arr = np.concatenate([np.full(need - len(arr), np.nan), arr])
    seg = arr[len(arr) - need :]
    out = MAD_TO_SIGMA * _trailing_median(seg, window, n_out, 3)
    zero = out == 0
    if zero.any():
        view = np.lib.stride_tricks.sliding_window_view(seg, window)[zero]
        out[zero] = _robust_scale_cols(view.T)
    return out


def _gather(arr: FloatArray, arr_start: int, sources: IntArray, halfwidth: int) -> FloatArray:
    """Rows: `arr` (global buckets from `arr_start`) at each source bucket shifted by
    -halfwidth .. halfwidth; `sources` has one row per cycle back. NaN outside `arr`."""
    offsets = np.arange(-halfwidth, halfwidth + 1)
    pos = (sources[:, None, :] + offsets[None, :, None]).reshape(-1, sources.shape[1]) - arr_start
    inside = (pos >= 0) & (pos < len(arr))
    out = np.full(pos.shape, np.nan)
    out[inside] = arr[pos[inside]]
    return out


def _seasonal_component(
    d_all: FloatArray, d_start: int, sources: IntArray, cfg: OnlineConfig
) -> FloatArray:
    """Median of d around the same local time (+-`season_halfwidth` buckets) in the last
    cycles, NaN with fewer than two cycles' worth of values. A median over neighbouring slots
    keeps a seasonal step sharp and is far less noisy than a median of `cycles` values."""
    h = cfg.season_halfwidth
    return _median_cols(_gather(d_all, d_start, sources, h), 2 * h + 2)


def _utc_offsets(t_ns: IntArray, tz: str) -> IntArray:
    """UTC offset (ns) of zone `tz` at each instant (zoneinfo; pandas for long arrays)."""
    if len(t_ns) > 64:
        utc = pd.DatetimeIndex(t_ns.astype("datetime64[ns]"), tz="UTC")
        local = utc.tz_convert(tz).tz_localize(None).as_unit("ns").asi8
        return np.asarray(local - t_ns, dtype=np.int64)
    zone = ZoneInfo(tz)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    out = np.zeros(len(t_ns), dtype=np.int64)
    for i, t in enumerate(t_ns.tolist()):
        offset = (epoch + timedelta(microseconds=t // 1000)).astimezone(zone).utcoffset()
        out[i] = round(offset.total_seconds()) * NS if offset is not None else 0
    return out


def _lag_sources(
    starts: IntArray, cycle_ns: int, cycles: int, tz: str, origin: int, width: int
) -> IntArray:
    """(cycles, n) global buckets holding the same local wall-clock time 1 .. cycles cycles
    before each bucket start. In a zone with daylight saving a day lasts 23 or 25 hours; a
    wall time that does not exist (spring forward) maps to the later candidate."""
    ks = np.arange(1, cycles + 1, dtype=np.int64)[:, None]
    if tz in _UTC_NAMES:
        return (starts[None, :] - ks * cycle_ns - origin) // width
    off = _utc_offsets(starts, tz)
    wall = (starts + off)[None, :] - ks * cycle_ns
    t1 = (wall - off[None, :]).ravel()
    o1 = _utc_offsets(t1, tz)
    t2 = wall.ravel() - o1
    o2 = _utc_offsets(t2, tz)
    w = wall.ravel()
    src = np.where(t2 + o2 == w, t2, np.where(t1 + o1 == w, t1, np.maximum(t1, t2)))
    return ((src - origin) // width).reshape(cycles, -1)


def _nice_width_ns(gap_ns: float, minimum_ns: int) -> int:
    """The width of _NICE_WIDTHS_S nearest the gap on a log scale, at least `minimum_ns`."""
    widths = [w * NS for w in _NICE_WIDTHS_S if w * NS >= minimum_ns] or [minimum_ns]
    if gap_ns <= 0:
        return widths[0]
    return min(widths, key=lambda w: abs(math.log(w / gap_ns)))


# --- the detector -----------------------------------------------------------------------------


def new_state(config: OnlineConfig | None = None) -> DetectorState:
    """An empty detector."""
    return DetectorState(config=config or OnlineConfig())


@dataclass(frozen=True)
class _Layout:
    """Per-series constants that follow from the bucket width."""

    width: int
    origin: int
    models: tuple[int, ...]  # indices into MODELS that fit this width
    periods: tuple[int, ...]  # buckets per cycle, per model (0 for none)
    block: int  # buckets per block (a day, at least 24)
    level: int
    scale: int
    season_tail: int  # buckets of seasonal history kept per seasonal model


def _layout(state: DetectorState) -> _Layout:
    cfg = state.config
    width = state.bucket_ns
    models, periods = [0], [0]
    for name in ("daily", "weekly"):
        cycle = _CYCLE_NS[name]
        if name in cfg.seasons and cycle % width == 0 and cycle // width >= 4:
            models.append(MODELS.index(name))
            periods.append(cycle // width)
    per_day = DAY_NS // width if DAY_NS % width == 0 else 0
    block = max(24, per_day)
    return _Layout(
        width=width,
        origin=state.origin_ns,
        models=tuple(models),
        periods=tuple(periods),
        block=block,
        level=max(3, cfg.level_buckets),
        scale=max(24, cfg.scale_buckets),
        season_tail=block + cfg.season_halfwidth + 1,
    )


def update(
    state: DetectorState, timestamps: object, values: object
) -> tuple[DetectorState, UpdateResult]:
    """Feed new points: returns the new state, and the points' verdicts with the episodes they
    opened or closed. Never raises on bad input: `reason` says why nothing was used."""
    cfg = state.config
    if cfg.timezone not in _UTC_NAMES:
        try:
            ZoneInfo(cfg.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return state, UpdateResult(
                reason=f"not enough data: unknown time zone {cfg.timezone!r} in the settings"
            )
    read = _read_points(timestamps, values)
    if isinstance(read, str):
        return state, UpdateResult(reason=read)
    t, x = read
    given = len(t)
    notes: list[str] = []
    ignored = dict(state.ignored)
    ok = np.isfinite(x) & (t != _NAT)
    non_finite = int((~ok).sum())
    if not ok.all():
        n_bad = int((~ok).sum())
        notes.append(f"ignored {n_bad} missing or non-finite values")
        ignored["non_finite"] = ignored.get("non_finite", 0) + n_bad
        t, x = t[ok], x[ok]
    if len(t) > 1 and bool(np.any(np.diff(t) < 0)):
        order = np.argsort(t, kind="stable")
        t, x = t[order], x[order]
        notes.append("sorted the points by time")
    if len(t):
        keep = np.concatenate(([True], np.diff(t) > 0))
        if state.last_ns is not None:
            keep &= t > state.last_ns
        if not keep.all():
            n_old = int((~keep).sum())
            notes.append(f"ignored {n_old} points at or before a time already seen")
            ignored["late_or_duplicate"] = ignored.get("late_or_duplicate", 0) + n_old
            t, x = t[keep], x[keep]
    state = replace(state, ignored=ignored)
    if len(t) == 0:
        if given == 0:
            reason = "not enough data: no points"
        elif non_finite == given:
            reason = f"not enough data: none of the {given} values is a finite number"
        else:
            reason = "not enough data: every point is at or before a time already seen"
        return state, UpdateResult(reason=reason, notes=tuple(notes))

    parts: list[Verdicts] = []
    events: list[Episode] = []
    if state.bucket_ns == 0:
        state, learning, used = _collect_for_inference(state, t, x)
        parts.append(learning)
        if state.bucket_ns:
            # The buffered points were given 'learning' verdicts; now they feed the baselines.
            bt = np.array([p[0] for p in state.pending], dtype=np.int64)
            bx = np.array([p[1] for p in state.pending], dtype=float)
            state, _, ev = _advance(replace(state, pending=()), bt, bx)
            events.extend(ev)
        t, x = t[used:], x[used:]
    if len(t):
        state, verdicts, ev = _advance(state, t, x)
        parts.append(verdicts)
        events.extend(ev)
    return state, UpdateResult(verdicts=Verdicts.concat(parts), events=events, notes=tuple(notes))


def _collect_for_inference(
    state: DetectorState, t: IntArray, x: FloatArray
) -> tuple[DetectorState, Verdicts, int]:
    """Buffer the first points until the sampling interval is known: the median of the first
    `infer_points` gaps. Returns the state, the buffered points' verdicts, and how many of
    the new points it took."""
    cfg = state.config
    need = 1 if cfg.bucket is not None else cfg.infer_points + 1 - len(state.pending)
    used = min(len(t), max(need, 0))
    tu, xu = t[:used], x[:used]
    pending = state.pending + tuple(zip(tu.tolist(), xu.tolist(), strict=True))
    first = state.first_ns if state.first_ns is not None else int(tu[0])
    state = replace(state, pending=pending, first_ns=first, last_ns=int(tu[-1]))
    nan = np.full(used, np.nan)
    verdicts = Verdicts(
        tu.copy(), xu.copy(), nan, nan, np.zeros(used), nan, np.zeros(used, np.int8)
    )
    if cfg.bucket is not None:
        width = max(int(cfg.bucket.total_seconds() * NS), 1)
        step = width
    elif len(pending) > cfg.infer_points:
        # The sampling grid: the first quartile of the first gaps (missing points only make
        # gaps longer, jitter moves them both ways).
        gaps = np.sort(np.diff(np.array([p[0] for p in pending], dtype=np.int64)))
        gap = float(gaps[(len(gaps) - 1) // 4])
        width = _nice_width_ns(gap, int(cfg.min_bucket.total_seconds() * NS))
        step = min(_nice_width_ns(gap, NS), width)  # the sampling step, as a nice width
    else:
        return state, verdicts, used
    # Bucket edges on the clock grid of the width, moved by the first point's phase within a
    # sampling step, less half a step: points sit mid-step, and buckets of several points
    # start with a point that falls on the clock (08:00 opens a bucket of 1-minute points).
    origin = ((first % step) - step // 2) % width
    return replace(state, bucket_ns=width, origin_ns=origin), verdicts, used


@dataclass(frozen=True)
class _Baseline:
    """Per bucket c0 .. o_new: what its points are scored against, and the blocks that the
    update completes."""

    expected: FloatArray
    seasonal: FloatArray
    scale: FloatArray
    completed: tuple[int, ...] = ()


def _advance(
    state: DetectorState, t: IntArray, x: FloatArray
) -> tuple[DetectorState, Verdicts, list[Episode]]:
    """Score new points (sorted, later than every point seen) and close the buckets they end."""
    cfg = state.config
    lay = _layout(state)
    gb = (t - lay.origin) // lay.width
    first_ns = state.first_ns if state.first_ns is not None else int(t[0])
    o_old = state.open_bucket
    o_new = int(gb[-1])
    c0 = int(gb[0]) if o_old is None else o_old
    n_close = o_new - c0  # buckets c0 .. o_new - 1 close now; o_new stays open
    tails = dict(state.tails)
    carry = dict(state.carry)
    blocks = dict(state.blocks)
    old_vals = np.array(state.open_values, dtype=float)
    all_x = np.concatenate([old_vals, x])
    rel = np.concatenate([np.zeros(len(old_vals), dtype=np.int64), gb - c0])

    cached = n_close == 0 and "open_expected" in carry
    if cached:
        # Nothing closes: the open bucket's baseline is the one computed when it opened.
        base = _Baseline(
            np.array([carry["open_expected"]]),
            np.array([carry["open_seasonal"]]),
            np.array([carry["open_scale"]]),
        )
    else:
        base = _close_buckets(state, lay, c0, n_close, all_x, rel, tails, carry, blocks)
    carry.update(
        open_expected=float(base.expected[-1]),
        open_seasonal=float(base.seasonal[-1]),
        open_scale=float(base.scale[-1]),
    )

    # Scores of the new points (the old open bucket's points were scored before).
    b_new = rel[len(old_vals) :]
    expected = base.expected[b_new]
    scale = base.scale[b_new]
    r = x - expected
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(scale > 0, r / scale, np.sign(r) * _Z_CAP)
    z = np.where(np.isfinite(z), z, np.nan)
    w = max(1, cfg.shift_points)
    z_all = np.concatenate([tails.get("z", np.zeros(0)), z])
    shift_z = _trailing_median(z_all, w, len(z), w)

    # Flags after the warm-up; the thresholds learn from its second half on. An outage longer
    # than the warm-up starts it again (the baselines before it are stale).
    index = state.points + np.arange(len(t))
    warmup_ns = int(cfg.warmup.total_seconds() * NS)
    previous = state.last_ns if state.last_ns is not None else int(t[0])
    restart = np.diff(np.concatenate([[previous], t])) > warmup_ns
    last_restart = np.maximum.accumulate(np.where(restart, np.arange(len(t)), -1))
    since = np.where(last_restart >= 0, t[np.maximum(last_restart, 0)], first_ns)
    first_ns = int(since[-1])
    calibrating = (t >= since + warmup_ns // 2) & np.isfinite(z)
    warm = calibrating & (t >= since + warmup_ns) & (index >= cfg.warmup_points)
    hits = (calibrating & (np.abs(_zero_nan(z)) > cfg.density_z)).astype(np.float64)
    nd = max(1, cfg.density_points)
    h_all = np.concatenate([tails.get("hits", np.zeros(0)), hits])
    csum = np.concatenate([[0.0], np.cumsum(h_all)])  # integer-valued: exact
    ends = np.arange(len(h_all) - len(t), len(h_all)) + 1
    density = csum[ends] - csum[np.maximum(ends - nd, 0)]
    stats = (
        np.where(calibrating, z, np.nan),
        np.where(calibrating, shift_z, np.nan),
        np.where(calibrating, density, np.nan),
    )
    _running_maxima(carry, gb // lay.block, stats)
    if cached:
        limits = [np.array([carry[f"open_limit{r}"]]) for r in range(_N_RULES)]
    else:
        _close_maxima(carry, blocks, base.completed)
        limits = _bucket_limits(cfg, lay, blocks, c0, n_close + 1, carry)
        _forget_old_blocks(cfg, lay, blocks, o_new // lay.block)
    for r in range(_N_RULES):
        carry[f"open_limit{r}"] = float(limits[r][-1])
    z_lim, s_lim, d_lim = (lim[b_new] for lim in limits)
    spike = warm & (np.abs(_zero_nan(z)) > z_lim)
    spike |= warm & (density > d_lim) & (hits > 0)
    shift = warm & (np.abs(_zero_nan(shift_z)) > s_lim)
    status = np.where(warm, 1, 0).astype(np.int8)
    status[spike | shift] = 2

    # Per point, with the last w - 1 points of earlier updates in front: times (a shift's
    # start), levels (the level before an episode), deseasonalised values (recovery).
    seasonal = base.seasonal[b_new]
    lead = len(state.recent_times)
    times = np.concatenate([np.array(state.recent_times, dtype=np.int64), t])
    levels = np.concatenate([tails.get("lv", np.zeros(0)), expected - seasonal])
    u_all = np.concatenate([tails.get("up", np.zeros(0)), x - seasonal])
    starts_idx = np.maximum(np.arange(len(t)) + lead - (w - 1), 0)
    track = _PointTrack(
        t=t,
        x=x,
        z=z,
        shift_z=shift_z,
        spike=spike,
        shift=shift,
        expected=expected,
        start_time=times[starts_idx],
        start_level=levels[starts_idx],
        u_all=u_all,
        window=w,
    )
    episode, events = _episodes(state.episode, cfg, track, carry)
    keep = w - 1
    for key, arr in (("z", z_all), ("lv", levels), ("up", u_all)):
        tails[key] = _tail(arr, keep)
    tails["hits"] = _tail(h_all, nd - 1)
    new_state_ = replace(
        state,
        first_ns=first_ns,
        last_ns=int(t[-1]),
        points=state.points + len(t),
        open_bucket=o_new,
        open_values=tuple(all_x[rel == n_close].tolist()),
        recent_times=tuple(_tail(times, keep).tolist()),
        tails=tails,
        carry=carry,
        blocks=tuple(sorted(blocks.items())),
        episode=episode,
    )
    verdicts = Verdicts(
        time_ns=t.copy(),
        value=x.copy(),
        expected=expected,
        scale=scale,
        score=_zero_nan(z),
        limit=z_lim,
        status_code=status,
    )
    return new_state_, verdicts, events


def _close_buckets(
    state: DetectorState,
    lay: _Layout,
    c0: int,
    n_close: int,
    all_x: FloatArray,
    rel: IntArray,
    tails: dict[str, FloatArray],
    carry: dict[str, float],
    blocks: dict[int, tuple[float, ...]],
) -> _Baseline:
    """Close buckets c0 .. c0 + n_close - 1 (updating tails, carry and blocks in place) and
    return the baselines of buckets c0 .. c0 + n_close (the last one is the new open one)."""
    cfg = state.config
    n_out = n_close + 1
    v_new = _group_medians(rel, all_x, n_out)[:n_close]
    v_all = np.concatenate([tails.get("v", np.zeros(0)), v_new])
    v_start = c0 + n_close - len(v_all)  # global bucket of v_all[0]
    # The value statistics of the blocks completed now (needed by the weekly trend).
    completed = [
        j
        for j in range(c0 // lay.block, (c0 + n_close) // lay.block)
        if (j + 1) * lay.block <= c0 + n_close
    ]
    for j in completed:
        lo = max(j * lay.block - v_start, 0)
        blk = v_all[lo : (j + 1) * lay.block - v_start]
        blocks[j] = _value_stats(blk[np.isfinite(blk)])

    starts = lay.origin + (c0 + np.arange(n_out, dtype=np.int64)) * lay.width
    # Whether the `level` buckets before each bucket were all empty (a gap in the data).
    seen = np.concatenate([[0], np.cumsum(np.isfinite(v_all))])
    ends = np.arange(c0, c0 + n_out) - v_start  # bucket b - 1 is v_all[ends - 1]
    empty_before = seen[ends] - seen[np.maximum(ends - lay.level, 0)] == 0
    level_entries = _level_entries(state.config, lay, c0, v_new, carry)
    expected = np.full((len(MODELS), n_out), np.nan)
    seasonal_of = np.zeros((len(MODELS), n_out))
    day_sources: IntArray | None = None
    for m, period in zip(lay.models, lay.periods, strict=True):
        name = MODELS[m]
        if period:
            # d = value - trend over one cycle; S = median of d around the same local time in
            # the last cycles.
            if name == "daily":
                trend = _daily_trend(v_new, period, tails)
            else:
                trend = _weekly_trend(blocks, c0, n_close, lay, carry)
            d_all = np.concatenate([tails.get(f"d_{name}", np.zeros(0)), _f32(v_new - trend)])
            sources = _lag_sources(
                starts, _CYCLE_NS[name], cfg.cycles, cfg.timezone, lay.origin, lay.width
            )
            if name == "daily":
                day_sources = sources
            seasonal = _seasonal_component(d_all, c0 + n_close - len(d_all), sources, cfg)
            keep = cfg.cycles * period + lay.season_tail
            tails[f"d_{name}"] = _tail(d_all, keep)
        else:
            seasonal = np.zeros(n_out)
        # Level of bucket b: running median of the deseasonalised values of the last `level`
        # non-empty buckets before b, however far apart (sparse or irregular sampling leaves
        # buckets empty: a lone value after a gap is not the level); NaN where the model
        # cannot use those values yet (its level would be stale).
        raw, u_kept = _level_medians(
            tails.get(f"u_{name}", np.zeros(0)), v_new - seasonal[:n_close], level_entries, lay
        )
        filled = _ffill(raw, carry.get(f"level_{name}", math.nan))
        level = np.where(np.isnan(raw) & empty_before, filled, raw)
        if n_close:
            carry[f"level_{name}"] = float(filled[n_close - 1])
        tails[f"u_{name}"] = u_kept
        expected[m] = level + seasonal
        seasonal_of[m] = seasonal
    tails["v"] = _tail(v_all, lay.block)  # a block: a day's trend and the block statistics

    # The model of each bucket, decided per block from the errors of the blocks before it.
    err = _f32(np.abs(v_new[None, :] - expected[:, :n_close]))
    active = _choose_models(cfg, lay, c0, n_close, err, tails, carry, blocks, completed)
    cols = np.arange(n_out)
    e_act = expected[active, cols]
    s_act = np.where(np.isfinite(e_act), seasonal_of[active, cols], 0.0)
    e_act = np.where(np.isfinite(e_act), e_act, expected[0])

    # Scale: residuals of the buckets before, over the last `scale` buckets and, for a
    # seasonal model, around the same time of day in the last cycles; then the floor.
    absres = _f32(_group_medians(rel, np.abs(all_x - e_act[rel]), n_out)[:n_close])
    ar_all = np.concatenate([tails.get("absres", np.zeros(0)), absres])
    scale = _trailing_scale(np.concatenate([ar_all, [np.nan]]), lay.scale, n_out + 1)[:-1]
    if day_sources is not None and bool(np.any(active > 0)):
        table = _gather(ar_all, c0 + n_close - len(ar_all), day_sources, cfg.season_halfwidth)
        seasonal_scale = _robust_scale_cols(table)
        scale = np.where(active > 0, np.fmax(scale, seasonal_scale), scale)
    scale = _ffill(scale, carry.get("scale", math.nan))
    if n_close and math.isfinite(scale[n_close - 1]):
        carry["scale"] = float(scale[n_close - 1])
    day_keep = cfg.cycles * (lay.periods[1] if len(lay.periods) > 1 else 0) + lay.season_tail
    tails["absres"] = _tail(ar_all, max(lay.scale, day_keep))

    floor = np.full(n_out, np.nan)
    for j in range(c0 // lay.block, (c0 + n_close) // lay.block + 1):
        lo = max(j * lay.block, c0) - c0
        hi = min((j + 1) * lay.block, c0 + n_out) - c0
        floor[lo:hi] = _per_block(carry, "floor", j, partial(_block_floor, blocks, j, cfg))[0]
    return _Baseline(e_act, s_act, np.fmax(scale, floor), tuple(completed))


def _level_entries(
    cfg: OnlineConfig, lay: _Layout, c0: int, v_new: FloatArray, carry: dict[str, float]
) -> IntArray:
    """How many entries each closing bucket adds to the level's window: one per non-empty
    bucket, and before the first one after an outage longer than the warm-up, `level` empty
    ones, so that the level does not reach back across it (the baselines before it are
    stale)."""
    present = np.isfinite(v_new)
    idx = np.flatnonzero(present)
    counts = present.astype(np.int64)
    if len(idx):
        last = carry.get("level_last_bucket")
        buckets = c0 + idx
        gaps = np.diff(np.concatenate([[buckets[0] if last is None else int(last)], buckets]))
        outage = gaps * lay.width > int(cfg.warmup.total_seconds() * NS)
        counts[idx[outage]] += lay.level
        carry["level_last_bucket"] = float(buckets[-1])
    return counts


def _level_medians(
    kept: FloatArray, u_new: FloatArray, counts: IntArray, lay: _Layout
) -> tuple[FloatArray, FloatArray]:
    """Median of the deseasonalised values of the last `level` non-empty buckets before
    each of the buckets c0 .. c0 + len(u_new) (a bucket with a value the model cannot use
    yet counts, as NaN: NaN when all of them are), and the entries to keep for the next
    update (`kept`: those of earlier updates). `counts`: see _level_entries."""
    entries = np.full(len(kept) + int(counts.sum()), np.nan)
    entries[: len(kept)] = kept
    present = counts > 0
    entries[len(kept) + np.cumsum(counts)[present] - 1] = u_new[present]
    before = len(kept) + np.concatenate([[0], np.cumsum(counts)])  # entries before each
    out = np.full(len(before), np.nan)
    has = before > 0
    if has.any():
        lo, hi = int(before[has].min()), int(before[-1])
        medians = _trailing_median(entries[:hi], lay.level, hi - lo + 1, 1)
        out[has] = medians[before[has] - lo]
    return out, _tail(entries, lay.level)


def _bucket_limits(
    cfg: OnlineConfig,
    lay: _Layout,
    blocks: dict[int, tuple[float, ...]],
    c0: int,
    n_out: int,
    carry: dict[str, float],
) -> list[FloatArray]:
    """Each rule's threshold for buckets c0 .. c0 + n_out - 1 (constant within a block)."""
    limits = [np.zeros(n_out) for _ in range(_N_RULES)]
    minimums = (cfg.z_threshold, cfg.shift_threshold, cfg.density_min)
    for j in range(c0 // lay.block, (c0 + n_out - 1) // lay.block + 1):
        lo = max(j * lay.block, c0) - c0
        hi = min((j + 1) * lay.block, c0 + n_out) - c0
        block_limits = _per_block(
            carry, "limits", j, partial(_block_limits, blocks, j, cfg, minimums)
        )
        for rule, limit in enumerate(block_limits):
            limits[rule][lo:hi] = limit
    return limits


# Block statistics: per model (count, exact sum of |error|); the block's q05, q95, largest
# |value| and median value; then each rule's largest statistic over the block's points.
_N_MODEL_STATS = 2 * len(MODELS)
_Q05, _Q95, _MAG, _VMEAN = range(_N_MODEL_STATS, _N_MODEL_STATS + 4)
_MAX0 = _N_MODEL_STATS + 4
_N_STATS = _MAX0 + _N_RULES


def _value_stats(fin: FloatArray) -> tuple[float, ...]:
    """A block's statistics with its values filled in (errors and maxima come later)."""
    stats = [math.nan] * _N_STATS
    if len(fin):
        srt = np.sort(fin)
        stats[_Q05] = float(srt[math.floor(0.05 * (len(srt) - 1))])
        stats[_Q95] = float(srt[math.ceil(0.95 * (len(srt) - 1))])
        stats[_MAG] = float(np.max(np.abs(fin)))
        stats[_VMEAN] = math.fsum(fin.tolist()) / len(fin)
    return tuple(stats)


def _daily_trend(v_new: FloatArray, period: int, tails: dict[str, FloatArray]) -> FloatArray:
    """Mean of the last `period` bucket values (a day) at each closing bucket, NaN with fewer
    than half of them: the moving average over one cycle of classical decomposition. It is
    the difference of running sums carried in the state (np.cumsum adds in order, so a split
    run adds the same numbers in the same order; counts are whole numbers, exact)."""
    ok = np.isfinite(v_new)
    csum = np.concatenate([tails.get("csum", np.zeros(1)), np.zeros(len(v_new))])
    ccnt = np.concatenate([tails.get("ccnt", np.zeros(1)), np.zeros(len(v_new))])
    lead = len(csum) - len(v_new)
    csum[lead - 1 :] = np.cumsum(np.concatenate([[csum[lead - 1]], np.where(ok, v_new, 0.0)]))
    ccnt[lead - 1 :] = np.cumsum(np.concatenate([[ccnt[lead - 1]], ok.astype(np.float64)]))
    ends = np.arange(lead, len(csum))
    begins = ends - period
    c0 = np.where(begins >= 0, csum[np.maximum(begins, 0)], 0.0)
    n0 = np.where(begins >= 0, ccnt[np.maximum(begins, 0)], 0.0)
    count = ccnt[ends] - n0
    with np.errstate(invalid="ignore", divide="ignore"):
        trend = np.where(count >= period // 2, (csum[ends] - c0) / count, np.nan)
    tails["csum"] = _tail(csum, period + 1)
    tails["ccnt"] = _tail(ccnt, period + 1)
    return np.asarray(trend, dtype=float)


def _weekly_trend(
    blocks: dict[int, tuple[float, ...]],
    c0: int,
    n_close: int,
    lay: _Layout,
    carry: dict[str, float],
) -> FloatArray:
    """Trend for the weekly model, per closing bucket: the median of the medians of the last
    seven complete blocks (days) before the bucket's block (a remedian; NaN with fewer than
    four)."""
    out = np.full(n_close, np.nan)
    for j in range(c0 // lay.block, (c0 + max(n_close - 1, 0)) // lay.block + 1):
        lo = max(j * lay.block, c0) - c0
        hi = min((j + 1) * lay.block, c0 + n_close) - c0
        if hi > lo:
            out[lo:hi] = _per_block(carry, "wtrend", j, partial(_remedian, blocks, j))[0]
    return out


def _remedian(blocks: dict[int, tuple[float, ...]], j: int) -> float:
    """Mean of the means of the last seven blocks before block j (NaN with fewer than four)."""
    means = [blocks[b][_VMEAN] for b in range(j - 7, j) if b in blocks]
    means = [m for m in means if math.isfinite(m)]
    return math.fsum(means) / len(means) if len(means) >= 4 else math.nan


def _per_block(
    carry: dict[str, float], key: str, j: int, compute: Callable[[], float | list[float]]
) -> list[float]:
    """A quantity that depends only on the blocks before block j, computed once per block
    (kept in `carry` for the block in progress)."""
    if carry.get(f"{key}#block") != j:
        computed = compute()
        values = computed if isinstance(computed, list) else [computed]
        carry[f"{key}#block"] = float(j)
        for i, value in enumerate(values):
            carry[f"{key}#{i}"] = value
        carry[f"{key}#n"] = float(len(values))
    return [carry[f"{key}#{i}"] for i in range(int(carry[f"{key}#n"]))]


def _choose_models(
    cfg: OnlineConfig,
    lay: _Layout,
    c0: int,
    n_close: int,
    err: FloatArray,
    tails: dict[str, FloatArray],
    carry: dict[str, float],
    blocks: dict[int, tuple[float, ...]],
    completed: list[int],
) -> IntArray:
    """The model of each bucket c0 .. c0 + n_close, decided when its block starts from the
    blocks before it; the blocks completed now get their error statistics (math.fsum of
    float32 errors: exact, whatever the split)."""
    n_models = len(MODELS)
    b_err = np.concatenate([tails.get("err", np.zeros(0)).reshape(n_models, -1), err], axis=1)
    e_start = c0 + n_close - b_err.shape[1]
    active = np.zeros(n_close + 1, dtype=np.int64)
    for j in range(c0 // lay.block, (c0 + n_close) // lay.block + 1):
        if j in completed:
            lo = max(j * lay.block - e_start, 0)
            blk = b_err[:, lo : (j + 1) * lay.block - e_start]
            stats = list(blocks[j])
            for m in range(n_models):
                e = blk[m][np.isfinite(blk[m])]
                stats[2 * m], stats[2 * m + 1] = float(len(e)), math.fsum(e.tolist())
            blocks[j] = tuple(stats)
        if carry.get("choice_block") != j:
            carry.update(choice_block=float(j), choice=float(_decide(blocks, j, lay, cfg)))
        lo = max(j * lay.block, c0) - c0
        hi = min((j + 1) * lay.block, c0 + n_close + 1) - c0
        active[lo:hi] = int(carry["choice"])
    carry["active"] = float(active[-1])
    open_from = (c0 + n_close) // lay.block * lay.block
    keep = c0 + n_close - max(open_from, e_start)
    tails["err"] = b_err[:, b_err.shape[1] - keep :].reshape(-1) if keep > 0 else np.zeros(0)
    return active


def _decide(blocks: dict[int, tuple[float, ...]], j: int, lay: _Layout, cfg: OnlineConfig) -> int:
    """Model for block j: a seasonal model replaces a simpler one when its mean absolute error
    over the recent blocks (those both predicted) is at least `season_gain` smaller."""
    recent = [s for b, s in blocks.items() if j - cfg.selection_blocks <= b < j]
    best = 0
    for m in lay.models[1:]:
        common = [
            s for s in recent if s[2 * m] >= 0.5 * max(s[0], 1.0) and s[2 * best] > 0 and s[0] > 0
        ]
        if not common:
            continue
        mean_m = math.fsum(s[2 * m + 1] for s in common) / sum(s[2 * m] for s in common)
        mean_b = math.fsum(s[2 * best + 1] for s in common) / sum(s[2 * best] for s in common)
        if mean_m < (1.0 - cfg.season_gain) * mean_b:
            best = m
    return best


def _block_floor(blocks: dict[int, tuple[float, ...]], j: int, cfg: OnlineConfig) -> float:
    """Scale floor for block j: the largest, over the blocks of the last `tail_days`, of
    `floor_range_frac` of the q05..q95 range and `floor_level_frac` of the largest |value|
    (NaN before any block is complete)."""
    floors = [
        max(cfg.floor_range_frac * (s[_Q95] - s[_Q05]), cfg.floor_level_frac * s[_MAG])
        for b, s in blocks.items()
        if j - cfg.tail_days <= b < j and math.isfinite(s[_Q05])
    ]
    return max(floors) if floors else math.nan


def _block_limits(
    blocks: dict[int, tuple[float, ...]], j: int, cfg: OnlineConfig, minimums: Sequence[float]
) -> list[float]:
    """Each rule's threshold for block j: the larger of its minimum and `tail_factor` times
    the `tail_quantile` of its daily maxima over the last `tail_days` blocks."""
    recent = [s for b, s in blocks.items() if j - cfg.tail_days <= b < j]
    out = []
    for rule, minimum in enumerate(minimums):
        maxima = [s[_MAX0 + rule] for s in recent if math.isfinite(s[_MAX0 + rule])]
        limit = minimum
        if maxima and cfg.tail_factor > 0:
            typical = sorted(maxima)[math.ceil(cfg.tail_quantile * (len(maxima) - 1))]
            limit = max(minimum, cfg.tail_factor * typical)
        out.append(limit)
    return out


def _running_maxima(carry: dict[str, float], pb: IntArray, stats: Sequence[FloatArray]) -> None:
    """Fold the new points' |statistics| into each block's running maxima (kept in `carry`
    per block until the block completes: a max is exact whatever the split)."""
    ids, first = np.unique(pb, return_index=True)
    for r, a in enumerate(stats):
        per_block = np.maximum.reduceat(np.where(np.isfinite(a), np.abs(a), -np.inf), first)
        for j, value in zip(ids.tolist(), per_block.tolist(), strict=True):
            key = f"max{r}@{j}"
            carry[key] = max(carry.get(key, -math.inf), value)


def _close_maxima(
    carry: dict[str, float], blocks: dict[int, tuple[float, ...]], completed: Sequence[int]
) -> None:
    """Move the running maxima of the blocks completed now into their statistics."""
    for j in completed:
        stats = list(blocks[j])
        for r in range(_N_RULES):
            value = carry.pop(f"max{r}@{j}", -math.inf)
            stats[_MAX0 + r] = value if math.isfinite(value) else math.nan
        blocks[j] = tuple(stats)


def _forget_old_blocks(
    cfg: OnlineConfig, lay: _Layout, blocks: dict[int, tuple[float, ...]], current: int
) -> None:
    horizon = max(cfg.selection_blocks, cfg.tail_days, 7) + 1
    for b in [b for b in blocks if b < current - horizon]:
        del blocks[b]


# --- episodes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PointTrack:
    """What the episode logic reads per new point."""

    t: IntArray
    x: FloatArray
    z: FloatArray
    shift_z: FloatArray
    spike: BoolArray
    shift: BoolArray
    expected: FloatArray
    start_time: IntArray  # first point of the point's shift window
    start_level: FloatArray  # level (expected minus season) at that point
    u_all: FloatArray  # deseasonalised values, the last window - 1 of earlier updates first
    window: int

    def u_med(self, lo: int, hi: int) -> FloatArray:
        """Median deseasonalised value of the shift window of points lo .. hi - 1 (computed
        only where an episode needs it)."""
        lead = len(self.u_all) - len(self.t)
        return _trailing_median(self.u_all[: lead + hi], self.window, hi - lo, 1)


def _episodes(
    open_episode: dict[str, Any] | None,
    cfg: OnlineConfig,
    p: _PointTrack,
    carry: dict[str, float],
) -> tuple[dict[str, Any] | None, list[Episode]]:
    """Open, extend and close episodes over the new points (see the module docstring, 6).
    `carry` keeps the time of the last alarm, in microseconds (exact in a float)."""
    cooldown = int(cfg.cooldown.total_seconds() * NS)
    settle = int(cfg.settle.total_seconds() * NS)
    refractory = int(cfg.refractory.total_seconds() * NS)
    events: list[Episode] = []
    ep = dict(open_episode) if open_episode else None
    flagged = np.flatnonzero(p.spike | p.shift)
    n = len(p.t)
    i = 0
    while i < n:
        k = int(np.searchsorted(flagged, i))
        nxt = int(flagged[k]) if k < len(flagged) else n
        if ep is None:
            if nxt >= n:
                break
            last = carry.get("last_alarm_us")
            quiet_until = None if last is None else int(last) * 1000 + refractory
            if refractory > 0 and quiet_until is not None and p.t[nxt] < quiet_until:
                i = int(np.searchsorted(p.t, quiet_until))  # refractory: no new alarm
                continue
            ep = _opened(p, nxt)
            carry["last_alarm_us"] = float(int(p.t[nxt]) // 1000)
            events.append(_episode_of(ep))
            i = nxt + 1
        elif ep["phase"] == "shifted":
            # Recovery: the window's median deseasonalised value back past the midpoint.
            mid = (ep["before"] + ep["shifted"]) / 2
            end = i + int(np.searchsorted(p.t[i:], ep["confirmed"] + settle, side="right"))
            seg = p.u_med(i, min(end + 1, n))
            back = (seg < mid) if ep["direction"] == "up" else (seg > mid)
            rec = i + int(np.argmax(back)) if back.any() else n
            _absorb(ep, p, flagged[(flagged >= i) & (flagged < min(rec, end))])
            if rec < end:
                ep.update(phase="recovering", recovered=True, last_flag=int(p.t[rec]))
                i = rec + 1
            elif end < n:
                ep.update(recovered=False, last_flag=int(p.t[end]))
                events.append(_episode_of(ep, closed=True))
                ep, i = None, end
            else:
                break
        else:
            # A spike, or a shift that has recovered: it closes at the first point `cooldown`
            # after its last flag, unless a flag comes first.
            close = i + int(np.searchsorted(p.t[i:], ep["last_flag"] + cooldown, side="right"))
            if close < nxt:
                if close >= n:
                    break
                if ep["phase"] == "spike":
                    ep["recovered"] = True
                events.append(_episode_of(ep, closed=True))
                ep, i = None, close
                continue
            if nxt >= n:
                break
            _absorb(ep, p, flagged[k : k + 1])
            if p.shift[nxt] and ep["phase"] == "spike":
                # The runs rule confirms a sustained change: the spike episode is a shift.
                shifted = float(p.u_med(nxt, nxt + 1)[0])
                ep.update(phase="shifted", kind="level_shift", shifted=shifted)
                ep["direction"] = "up" if shifted > ep["before"] else "down"
            i = nxt + 1
    return ep, events


def _opened(p: _PointTrack, i: int) -> dict[str, Any]:
    """A new episode confirmed at point i (JSON-able: it is carried in the state)."""
    zi = float(p.z[i])
    is_spike = bool(p.spike[i])
    ep: dict[str, Any] = {
        "start": int(p.t[i]) if is_spike else int(p.start_time[i]),
        "confirmed": int(p.t[i]),
        "peak": int(p.t[i]),
        "value": float(p.x[i]),
        "expected": float(p.expected[i]),
        "score": abs(zi),
        "last_flag": int(p.t[i]),
        "recovered": None,
        "before": float(p.start_level[i]),
    }
    if is_spike:
        ep.update(phase="spike", kind="spike" if zi > 0 else "dip")
        ep["direction"] = "up" if zi > 0 else "down"
    else:
        shifted = float(p.u_med(i, i + 1)[0])
        ep.update(phase="shifted", kind="level_shift", shifted=shifted)
        ep["direction"] = "up" if shifted > ep["before"] else "down"
    return ep


def _absorb(ep: dict[str, Any], p: _PointTrack, idx: IntArray) -> None:
    """Flags inside an open episode extend it; the largest |z| is its peak."""
    if idx.size == 0:
        return
    ep["last_flag"] = max(ep["last_flag"], int(p.t[idx[-1]]))
    k = int(idx[np.argmax(np.abs(p.z[idx]))])
    if abs(float(p.z[k])) > ep["score"]:
        ep.update(peak=int(p.t[k]), value=float(p.x[k]), expected=float(p.expected[k]))
        ep["score"] = abs(float(p.z[k]))


def _episode_of(ep: dict[str, Any], closed: bool = False) -> Episode:
    return Episode(
        start=pd.Timestamp(ep["start"], unit="ns"),
        confirmed_at=pd.Timestamp(ep["confirmed"], unit="ns"),
        peak=pd.Timestamp(ep["peak"], unit="ns"),
        value=float(ep["value"]),
        expected=float(ep["expected"]),
        score=float(ep["score"]),
        kind=cast(Kind, ep["kind"]),
        direction=cast(Direction, ep["direction"]),
        end=pd.Timestamp(ep["last_flag"], unit="ns") if closed else None,
        recovered=ep.get("recovered") if closed else None,
    )


# --- entry points for pages and alert rules ---------------------------------------------------


def scan(timestamps: object, values: object, config: OnlineConfig | None = None) -> OnlineScan:
    """A first scan: `update` from an empty state, each episode reported once (closed ones
    with their end; one still open last), and a reason when no point could be scored."""
    state, result = update(new_state(config), timestamps, values)
    episodes: dict[pd.Timestamp, Episode] = {}
    for ev in result.events:
        episodes[ev.start] = ev
    reason = result.reason
    v = result.verdicts
    if reason is None and len(v) > 1 and float(np.ptp(v.value)) == 0.0:
        reason = f"not enough data: the series is constant (every value is {v.value[0]:g})"
    elif reason is None and len(v) and not bool(np.any(v.status_code > 0)):
        reason = _learning_reason(state, v)
    return OnlineScan(v, list(episodes.values()), state, reason, result.notes)


def scan_series(series: pd.Series, config: OnlineConfig | None = None) -> OnlineScan:
    """`scan` of a Series indexed by time (NaN values are gaps)."""
    return scan(pd.Index(series.index), series.to_numpy(), config)


def _learning_reason(state: DetectorState, v: Verdicts) -> str:
    cfg = state.config
    if state.bucket_ns == 0:
        return (
            f"not enough data: {len(v)} point{'s' if len(v) != 1 else ''}; "
            f"{cfg.infer_points + 1} are needed to learn the sampling interval"
        )
    span = pd.Timedelta(int(v.time_ns[-1] - v.time_ns[0]), unit="ns")
    return (
        f"not enough data: {len(v)} points over {span}; verdicts start after a warm-up of "
        f"{pd.Timedelta(cfg.warmup)} and {cfg.warmup_points} points"
    )


def attribute_deployments(
    episodes: Sequence[Episode],
    deployments: Sequence[tuple[object, str | None, str | None]],
    lookback: timedelta = timedelta(hours=2),
) -> list[Episode]:
    """Episodes labelled with the latest deployment in [start - lookback, start]
    (`deployments` as (time, release, id); aware times are read as UTC). Episodes with no
    deployment in the lookback come back unchanged."""
    deploys = []
    for t, release, dep_id in deployments:
        if t is None:
            continue
        stamp = pd.Timestamp(cast(Any, t))
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        deploys.append((stamp, release, dep_id))
    deploys.sort(key=lambda d: d[0])
    times = np.array([d[0].to_datetime64() for d in deploys], dtype="datetime64[ns]")
    out = []
    for episode in episodes:
        pos = int(np.searchsorted(times, episode.start.to_datetime64(), side="right")) - 1
        if pos >= 0 and episode.start - deploys[pos][0] <= pd.Timedelta(lookback):
            t, release, dep_id = deploys[pos]
            episode = replace(episode, deployed_at=t, release=release, deployment_id=dep_id)
        out.append(episode)
    return out
