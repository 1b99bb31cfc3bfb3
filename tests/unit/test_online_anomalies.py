"""Online anomaly detector: a verdict never changes once given (prefix runs and split runs
equal the full run on every development series), series without anomalies stay quiet,
planted anomalies are found as episodes with their recovery, real-world sampling (jitter,
gaps, outages, irregular points, duplicates, daylight saving) is scanned, bad input gives a
reason instead of an exception, and the state survives JSON."""

from __future__ import annotations

import json
import math
import zlib
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.online_anomalies import (
    MAD_TO_SIGMA,
    DetectorState,
    Episode,
    OnlineConfig,
    Verdicts,
    _median_cols,
    _robust_scale_cols,
    _trailing_median,
    attribute_deployments,
    new_state,
    scan,
    scan_series,
    state_from_json,
    state_to_json,
    update,
)

SHARED = Path(__file__).resolve().parents[1] / "data"  # the NAB development series
FOLDERS = ("nab", "nab-more")
PARIS = "Europe/Paris"


# --- synthetic series -------------------------------------------------------------------------


def series(
    kind: str,
    freq: str = "5min",
    days: float = 30,
    seed: int = 0,
    tz: str = PARIS,
    start: str = "2024-03-01",
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """UTC timestamps and values of a series without anomalies; patterns follow the local
    time of `tz` (the 2024 spring change in Paris is on 31 March)."""
    n = int(pd.Timedelta(days=days) / pd.Timedelta(freq))
    index = pd.date_range(start, periods=n, freq=freq, tz="UTC")
    local = index.tz_convert(tz)
    hour = np.asarray(local.hour + local.minute / 60, dtype=float)
    rng = np.random.default_rng(seed)
    if kind == "flat":
        values = np.full(n, 42.0)
    elif kind == "flat_noise":
        values = 42.0 + rng.normal(0, 0.5, n)
    elif kind == "noise":
        values = rng.normal(0, 10, n)
    elif kind == "sine":
        values = 100 + 30 * np.sin(2 * np.pi * hour / 24) + rng.normal(0, 2, n)
    elif kind == "square":  # a perfect daily square wave: 80 from 08:00 to 20:00, else 20
        values = np.where((hour >= 8) & (hour < 20), 80.0, 20.0)
    elif kind == "weekly":  # office hours on weekdays, lower weekends, noise
        dow = np.asarray(local.day_of_week)
        busy = (dow < 5) & (hour >= 9) & (hour < 18)
        values = np.where(busy, 300.0, 50.0) - np.where(dow >= 5, 20.0, 0.0)
        values = values + rng.normal(0, 5, n)
    else:
        raise ValueError(kind)
    return index, values


NO_ANOMALY = ["flat", "flat_noise", "noise", "sine", "square", "weekly"]


@pytest.mark.parametrize(("freq", "days"), [("5min", 40), ("1min", 10), ("1h", 90)])
@pytest.mark.parametrize("kind", NO_ANOMALY)
def test_series_without_anomalies_raise_at_most_one_alarm(kind, freq, days):
    index, values = series(kind, freq, days)
    result = scan(index, values, OnlineConfig(timezone=PARIS))
    assert len(result.episodes) <= 1, [(e.confirmed_at, e.kind) for e in result.episodes]
    if kind in ("sine", "square"):
        assert result.season in {"daily", "weekly"}  # a daily season repeats every week too


def test_perfect_square_wave_is_learnt_as_a_daily_season_across_daylight_saving():
    # 90 hourly days through the spring change: the season is in local time, so no alarm.
    index, values = series("square", "1h", 90)
    local = scan(index, values, OnlineConfig(timezone=PARIS))
    assert local.episodes == [] and local.season == "daily"
    # Read in UTC the same series moves by an hour at the change, and that is news.
    assert len(scan(index, values).episodes) >= 1


def test_weekly_pattern_uses_the_weekly_season():
    index, values = series("weekly", "30min", 60)
    result = scan(index, values, OnlineConfig(timezone=PARIS))
    assert result.season == "weekly"
    assert len(result.episodes) <= 1


# --- planted anomalies --------------------------------------------------------------------------


def noisy(days: float = 12, seed: int = 1) -> tuple[pd.DatetimeIndex, np.ndarray]:
    return series("sine", "5min", days, seed, tz="UTC")


def test_planted_spike_is_one_episode_confirmed_at_its_point():
    index, values = noisy()
    k = 8 * 288 + 100
    values[k] += 40.0  # 20 sigma
    result = scan(index, values)
    assert [(e.kind, e.direction, e.confirmed_at) for e in result.episodes] == [
        ("spike", "up", index[k].tz_localize(None))
    ]
    episode = result.episodes[0]
    assert episode.start == episode.confirmed_at == episode.peak
    assert episode.score == pytest.approx(20, rel=0.35)
    assert episode.recovered is True and episode.end is not None


def test_planted_dip_goes_down():
    index, values = noisy(seed=2)
    k = 9 * 288 + 7
    values[k] -= 40.0
    kinds = [(e.kind, e.direction) for e in scan(index, values).episodes]
    assert kinds == [("dip", "down")]


def test_a_shift_and_its_rollback_are_one_episode_that_recovers():
    index, values = noisy(seed=3)
    k = 8 * 288
    values[k : k + 36] += 15.0  # three hours higher, then back
    result = scan(index, values)
    assert len(result.episodes) == 1
    episode = result.episodes[0]
    assert episode.kind == "level_shift" and episode.direction == "up"
    assert episode.recovered is True
    assert abs(episode.start - index[k].tz_localize(None)) <= pd.Timedelta(minutes=15)
    assert episode.confirmed_at - episode.start <= pd.Timedelta(hours=1)


def test_a_lasting_shift_is_accepted_as_the_new_level_after_settle():
    index, values = noisy(days=14, seed=4)
    k = 8 * 288
    values[k:] += 15.0
    result = scan(index, values)
    assert len(result.episodes) == 1
    episode = result.episodes[0]
    assert episode.kind == "level_shift" and episode.recovered is False
    assert episode.end is not None and episode.end - episode.confirmed_at >= timedelta(days=1)


def test_dense_spikes_after_quiet_days_are_flagged():
    # Spikes on 2 % of the points for a day: the burst is news even though it is dense (a
    # whole-series tail quantile would have absorbed it).
    index, values = series("flat_noise", "5min", 14, seed=5)
    rng = np.random.default_rng(5)
    day = np.arange(10 * 288, 11 * 288)
    hit = rng.choice(day, size=6, replace=False)
    values[hit] += 8.0  # 16 sigma
    result = scan(index, values)
    assert result.episodes, "no episode for the burst of spikes"
    first = result.episodes[0].confirmed_at
    assert index[day[0]].tz_localize(None) <= first <= index[day[-1]].tz_localize(None)


def test_routine_daily_bursts_are_learnt_not_alarmed_every_day():
    # A nightly job: every night at 02:00 the metric jumps for 15 minutes.
    index, values = series("flat_noise", "5min", 30, seed=6, tz="UTC")
    job = (index.hour == 2) & (index.minute < 15)
    values[job] += 30.0
    result = scan(index, values)
    assert len(result.episodes) <= 1


# --- real-world sampling --------------------------------------------------------------------


def stamps_ns(index: pd.DatetimeIndex) -> np.ndarray:
    return index.tz_localize(None).as_unit("ns").asi8.copy()


def test_jittered_timestamps_keep_the_interval_and_the_season():
    index, values = series("square", "5min", 20)
    rng = np.random.default_rng(7)
    jittered = stamps_ns(index) + rng.integers(-20, 21, len(index)) * 1_000_000_000
    result = scan(jittered.astype("datetime64[ns]"), values, OnlineConfig(timezone=PARIS))
    assert result.interval == pd.Timedelta(minutes=5)
    assert result.season == "daily" and result.episodes == []


def test_timestamps_offset_by_half_an_interval_fill_one_bucket_each():
    index, values = series("square", "5min", 20)
    offset = stamps_ns(index) + 150 * 1_000_000_000  # every point at mm:02:30
    result = scan(offset.astype("datetime64[ns]"), values, OnlineConfig(timezone=PARIS))
    assert result.interval == pd.Timedelta(minutes=5) and result.episodes == []


@pytest.mark.parametrize("how", ["outage", "drop60", "irregular"])
def test_gaps_outages_and_irregular_points_are_scanned_on_what_exists(how):
    index, values = series("sine", "5min", 30, seed=8)
    t = stamps_ns(index)
    rng = np.random.default_rng(8)
    if how == "outage":  # 55 % of the month missing in one block
        keep = np.ones(len(t), bool)
        keep[int(0.3 * len(t)) : int(0.85 * len(t))] = False
    elif how == "drop60":
        keep = rng.random(len(t)) > 0.6
    else:  # about a third of the points, each moved by up to 4 minutes
        keep = rng.random(len(t)) < 0.35
        t = t + rng.integers(0, 240, len(t)) * 1_000_000_000
    result = scan(t[keep].astype("datetime64[ns]"), values[keep], OnlineConfig(timezone=PARIS))
    assert result.reason is None
    assert result.verdicts.frame()["status"].eq("normal").mean() > 0.5
    assert len(result.episodes) <= 1


def test_after_an_outage_longer_than_the_warmup_the_detector_learns_again():
    index, values = series("sine", "5min", 20, seed=9, tz="UTC")
    gap = (index >= "2024-03-08") & (index < "2024-03-12")
    values = values + np.where(index >= "2024-03-12", 50.0, 0.0)  # the level moved meanwhile
    result = scan(index[~gap], values[~gap])
    after = result.verdicts.frame().set_index("time").loc["2024-03-12":"2024-03-13 23:00"]
    assert after["status"].eq("learning").all()
    assert result.episodes == []


def test_a_lone_spike_between_gaps_does_not_become_the_level():
    # Sparse sampling: three hours without data, one spike, three more hours. The level is
    # the median of the last values however far apart, so the spike does not become it.
    index, values = series("flat_noise", "5min", 12, seed=12, tz="UTC")
    k = 8 * 288
    keep = np.ones(len(index), dtype=bool)
    keep[k - 36 : k] = keep[k + 1 : k + 37] = False
    values[k] += 10.0  # 20 sigma
    result = scan(index[keep], values[keep])
    assert [(e.kind, e.confirmed_at) for e in result.episodes] == [
        ("spike", index[k].tz_localize(None))
    ]
    after = result.verdicts[int(np.searchsorted(index[keep], index[k])) + 1]
    assert after.status == "normal"
    assert after.expected == pytest.approx(42.0, abs=1.0)


def test_no_new_alarm_within_the_refractory_period():
    index, values = noisy(seed=13)
    k = 8 * 288
    spikes = [k, k + 36, k + 120]  # then 3 h and 10 h later
    values[spikes] += 40.0
    plain = scan(index, values).alarms
    assert plain == [index[i].tz_localize(None) for i in spikes]
    config = OnlineConfig(refractory=timedelta(hours=6))
    quiet = scan(index, values, config).alarms
    assert quiet == [index[i].tz_localize(None) for i in (spikes[0], spikes[2])]
    # The last alarm's time is carried in the state: any split gives the same alarms.
    _, events = split_run(index.to_numpy(), values, np.array([k + 1, k + 50]), config)
    assert [e.confirmed_at for e in events if e.is_open] == quiet


def test_duplicates_unsorted_points_and_rereads_change_nothing():
    index, values = noisy(days=6, seed=10)
    once = scan(index, values)
    rng = np.random.default_rng(10)
    order = rng.permutation(len(index))
    shuffled = np.concatenate([order, order[:500]])  # unsorted, 500 duplicated
    again = scan(index[shuffled], values[shuffled])
    assert np.array_equal(again.verdicts.time_ns, once.verdicts.time_ns)
    assert np.array_equal(again.verdicts.score, once.verdicts.score)
    assert any("already seen" in n for n in again.notes)
    # A collector re-reading with an overlap: points already seen are ignored.
    state, first = update(new_state(), index[:1000], values[:1000])
    state2, overlap = update(state, index[900:1100], values[900:1100])
    assert len(overlap.verdicts) == 100
    assert state2.ignored["late_or_duplicate"] == 100


def test_aware_timestamps_are_instants_and_daily_seasons_follow_local_time():
    index, values = series("square", "1h", 60)
    aware = scan(index.tz_convert("America/New_York"), values, OnlineConfig(timezone=PARIS))
    naive_utc = scan(index.tz_localize(None), values, OnlineConfig(timezone=PARIS))
    assert np.array_equal(aware.verdicts.time_ns, naive_utc.verdicts.time_ns)
    assert aware.episodes == naive_utc.episodes == []


# --- the online property -------------------------------------------------------------------


def split_run(
    timestamps: np.ndarray, values: np.ndarray, cuts: np.ndarray, config: OnlineConfig
) -> tuple[Verdicts, list[Episode]]:
    state: DetectorState = new_state(config)
    parts, events = [], []
    bounds = np.concatenate([[0], cuts, [len(timestamps)]])
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        state = state_from_json(state_to_json(state))
        state, result = update(state, timestamps[a:b], values[a:b])
        parts.append(result.verdicts)
        events.extend(result.events)
    return Verdicts.concat(parts), events


def assert_same_verdicts(a: Verdicts, b: Verdicts) -> None:
    assert np.array_equal(a.time_ns, b.time_ns)
    assert np.array_equal(a.status_code, b.status_code)
    assert np.array_equal(a.score, b.score)
    assert np.array_equal(a.expected, b.expected, equal_nan=True)
    assert np.array_equal(a.limit, b.limit, equal_nan=True)


def opened(events: list[Episode]) -> list[tuple[pd.Timestamp, pd.Timestamp, str]]:
    return [(e.start, e.confirmed_at, e.kind) for e in events if e.is_open]


def development_series():
    found = []
    for folder in FOLDERS:
        labels = SHARED / folder / "labels" / "combined_windows.json"
        if labels.exists():
            found += [(folder, name) for name in sorted(json.loads(labels.read_text()))]
    return found or [("missing", "missing")]


@pytest.mark.parametrize(("folder", "name"), development_series())
def test_prefix_and_split_runs_equal_the_full_run(folder, name):
    if folder == "missing":
        from tests.conftest import missing

        missing(f"The NAB development series in {SHARED}/nab and {SHARED}/nab-more")
    frame = pd.read_csv(SHARED / folder / "data" / name, parse_dates=["timestamp"])
    ts, vs = frame["timestamp"].to_numpy(), frame["value"].to_numpy()
    config = OnlineConfig()
    state, full = update(new_state(config), ts, vs)
    alarms = [e.confirmed_at for e in full.events if e.is_open]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for end in rng.integers(len(ts) // 10, len(ts), size=2).tolist():
        _, prefix = update(new_state(config), ts[:end], vs[:end])
        upto = pd.Timestamp(ts[end - 1])
        assert [e.confirmed_at for e in prefix.events if e.is_open] == [
            a for a in alarms if a <= upto
        ]
        seen = full.verdicts.time_ns <= prefix.verdicts.time_ns[-1]
        assert np.array_equal(prefix.verdicts.status_code, full.verdicts.status_code[seen])
    cuts = np.sort(rng.choice(np.arange(1, len(ts)), size=30, replace=False))
    verdicts, events = split_run(ts, vs, cuts, config)
    assert_same_verdicts(verdicts, full.verdicts)
    assert opened(events) == opened(full.events)
    assert [e for e in events if not e.is_open] == [e for e in full.events if not e.is_open]


def test_one_point_at_a_time_equals_one_update_across_daylight_saving():
    index, values = series("weekly", "1h", 45)
    values[800] += 400.0
    config = OnlineConfig(timezone=PARIS)
    _, whole = update(new_state(config), index, values)
    verdicts, events = split_run(index.to_numpy(), values, np.arange(1, len(index)), config)
    assert_same_verdicts(verdicts, whole.verdicts)
    assert opened(events) == opened(whole.events) and opened(events)


def test_state_size_does_not_grow_with_history():
    index, values = noisy(days=60, seed=11)
    short = state_to_json(update(new_state(), index[: 30 * 288], values[: 30 * 288])[0])
    long = state_to_json(update(new_state(), index, values)[0])
    assert abs(len(long) - len(short)) < 0.05 * len(short)
    assert len(long) < 100_000


def test_config_and_state_survive_json():
    config = OnlineConfig(timezone=PARIS, cooldown=timedelta(minutes=30), seasons=("daily",))
    assert OnlineConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    index, values = noisy(days=5, seed=12)
    state, _ = update(new_state(config), index, values)
    again = state_from_json(state_to_json(state))
    assert again.config == config
    assert state_to_json(again) == state_to_json(state)


# --- bad input ----------------------------------------------------------------------------


T0 = pd.Timestamp("2024-03-04")


@pytest.mark.parametrize(
    ("timestamps", "values", "words"),
    [
        ([], [], "no points"),
        ([T0], [1.0], "1 point"),
        (pd.date_range(T0, periods=500, freq="5min"), np.full(500, 3.0), "constant"),
        (pd.date_range(T0, periods=50, freq="5min"), np.full(50, np.nan), "finite"),
        (pd.date_range(T0, periods=50, freq="5min"), np.full(50, np.inf), "finite"),
        ([T0 + pd.Timedelta(minutes=m) for m in (10, 0, 5)], [1.0, 2.0, 3.0], "3 points"),
        ([T0] * 40, np.arange(40.0), "1 point"),
        (
            [T0, pd.Timestamp("2024-03-04 01:00", tz="UTC")],
            [1.0, 2.0],
            "mix time zone-aware and naive",
        ),
        (["2024-03-04T00:00", "2024-03-04T01:00+01:00"], [1.0, 2.0], "mix time zone-aware"),
        ([T0, T0 + pd.Timedelta(minutes=5)], [1.0], "2 timestamps but 1 values"),
        (["not a time", "x"], [1, 2], "could not be read"),
        (np.zeros((2, 2)), np.zeros((2, 2)), "one-dimensional"),
    ],
    ids=[
        "empty",
        "one-point",
        "constant",
        "all-nan",
        "infinite",
        "unsorted-short",
        "duplicated",
        "tz-mixed",
        "tz-mixed-strings",
        "lengths",
        "garbage",
        "2d",
    ],
)
def test_bad_input_gives_a_not_enough_data_reason_and_never_raises(timestamps, values, words):
    result = scan(timestamps, values)
    assert result.reason is not None and result.reason.startswith("not enough data")
    assert words in result.reason, result.reason
    assert result.episodes == []


def test_aware_timestamps_with_different_offsets_are_fine():
    stamps = ["2024-03-31T01:00+01:00", "2024-03-31T03:00+02:00", "2024-03-31T03:05+02:00"]
    result = scan(stamps, [1.0, 2.0, 3.0])
    assert result.reason is not None and "sampling interval" in result.reason
    assert list(result.verdicts.times) == list(
        pd.to_datetime(["2024-03-31 00:00", "2024-03-31 01:00", "2024-03-31 01:05"])
    )


def test_unknown_time_zone_is_a_reason():
    result = scan([T0], [1.0], OnlineConfig(timezone="Mars/Olympus"))
    assert result.reason is not None and "Mars/Olympus" in result.reason


# --- deployments, pages, exact helpers ----------------------------------------------------


def test_episodes_keep_their_deploy_attribution():
    index, values = noisy(seed=13)
    k = 8 * 288 + 30
    values[k:] += 20.0
    start = index[k].tz_localize(None)
    deploys = [(start - pd.Timedelta(minutes=20), "2024.03.09-1", "d-9")]
    labelled = attribute_deployments(scan(index, values).episodes, deploys)
    assert [(e.kind, e.release, e.deployment_id) for e in labelled] == [
        ("level_shift", "2024.03.09-1", "d-9")
    ]
    assert attribute_deployments(labelled, [], lookback=timedelta(hours=1)) == labelled


def test_scan_series_reads_a_time_indexed_series_with_gaps():
    index, values = noisy(days=4, seed=14)
    s = pd.Series(values, index=index.tz_localize(None))
    s.iloc[100:110] = np.nan
    result = scan_series(s)
    assert len(result.verdicts) == len(s) - 10
    assert any("non-finite" in n for n in result.notes)
    frame = result.verdicts.frame()
    assert {"time", "value", "expected", "lower", "upper", "score", "status"} <= set(frame)


def test_exact_helpers_agree_with_numpy_and_pandas():
    rng = np.random.default_rng(15)
    x = rng.normal(size=400)
    x[rng.integers(0, 400, 40)] = np.nan
    table = x.reshape(20, 20)
    expected = np.array([np.nanmedian(c) if np.isfinite(c).any() else np.nan for c in table.T])
    assert np.array_equal(_median_cols(table, 1), expected, equal_nan=True)
    for window in (12, 33):
        fast = _trailing_median(x, window, 200, 3)  # pandas path
        small = np.concatenate(
            [_trailing_median(x[: 200 + k + 1], window, 1, 3) for k in range(200)]
        )
        assert np.array_equal(fast, small, equal_nan=True)
    zeros = np.abs(np.concatenate([np.zeros(30), rng.normal(size=10)]))[:, None]
    # More than half the residuals exactly zero: the MeanAD fallback, 1.2533 * mean.
    assert _robust_scale_cols(zeros)[0] == pytest.approx(1.2533 * zeros.mean())
    assert _robust_scale_cols(np.abs(x[np.isfinite(x)])[:, None])[0] == pytest.approx(
        MAD_TO_SIGMA * np.median(np.abs(x[np.isfinite(x)]))
    )
    assert math.isnan(_median_cols(np.full((3, 1), np.nan), 1)[0])
