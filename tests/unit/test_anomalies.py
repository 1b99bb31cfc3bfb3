"""Anomaly detector: planted anomalies are found, seasonal and stepped series stay quiet,
deployments label anomalies, bad input gives a reason instead of an exception."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.anomalies import Anomaly, DetectorConfig, detect_anomalies, label_with_deployments

START = pd.Timestamp("2024-03-04 00:00")


def minute_series(days: float, seed: int = 0, noise: float = 1.0) -> pd.Series:
    """Daily-seasonal latency-like series: 100 ms base, a smooth daily wave, gaussian noise."""
    n = int(days * 1440)
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = 100 + 20 * np.sin(2 * np.pi * t / 1440) + rng.normal(0, noise, n)
    return pd.Series(values, index=START + pd.to_timedelta(t, unit="min"))


def test_planted_spike_is_found_at_its_time_with_its_size():
    s = minute_series(4)
    at = START + pd.Timedelta(days=2, hours=7, minutes=13)
    s[at] += 12.0  # 12 sigma
    scan = detect_anomalies(s)
    assert scan.reason is None
    spikes = [a for a in scan.anomalies if a.kind == "spike"]
    assert [a.peak for a in spikes] == [at]
    spike = spikes[0]
    assert spike.direction == "up"
    # Closed form: expected is the noiseless seasonal value, the score about 12 sigma.
    minute = 2 * 1440 + 7 * 60 + 13
    assert spike.expected == pytest.approx(100 + 20 * np.sin(2 * np.pi * minute / 1440), abs=1.5)
    assert spike.score == pytest.approx(12.0, rel=0.25)
    # Nothing else in four days of clean noise.
    assert len(scan.anomalies) == 1


def test_planted_dip_is_reported_as_dip_going_down():
    s = minute_series(4, seed=1)
    at = START + pd.Timedelta(days=3, hours=2)
    s[at] -= 15.0
    kinds = [(a.kind, a.direction, a.peak) for a in detect_anomalies(s).anomalies]
    assert kinds == [("dip", "down", at)]


def test_planted_level_shift_is_a_level_shift_at_the_right_time():
    s = minute_series(5, seed=2)
    k = int(3.3 * 1440)
    s.iloc[k:] += 6.0  # error-rate-like step after a bad deploy
    scan = detect_anomalies(s)
    shifts = [a for a in scan.anomalies if a.kind == "level_shift"]
    assert len(shifts) == 1
    assert abs((shifts[0].start - s.index[k]) / pd.Timedelta(minutes=1)) <= 3
    assert shifts[0].direction == "up"
    assert shifts[0].end == s.index[-1]  # the new level lasts to the end
    assert len(scan.anomalies) == 1  # the shift's edge is not also reported as a spike


def test_purely_seasonal_series_with_sharp_daily_peaks_is_quiet():
    # Call volume: a sharp peak every day at 09:00 (30 sigma above the night), weekly lull.
    n = 30 * 1440
    t = np.arange(n)
    rng = np.random.default_rng(3)
    minute_of_day = t % 1440
    peak = 30 * np.exp(-0.5 * ((minute_of_day - 540) / 20) ** 2)
    weekend = np.where((t // 1440) % 7 >= 5, -5.0, 0.0)
    values = 50 + peak + weekend + rng.normal(0, 1, n)
    scan = detect_anomalies(pd.Series(values, index=START + pd.to_timedelta(t, unit="min")))
    assert scan.reason is None
    assert scan.season in {"daily", "weekly"}
    assert len(scan.anomalies) <= 1


def test_stepped_series_with_zero_mad_does_not_go_wild():
    # A quantised metric (e.g. replica count): flat plateaus, so the MAD of residuals is zero.
    levels = [2, 2, 4, 4, 3, 3, 3, 5]  # one level per day
    values = np.repeat(np.array(levels, float), 1440)
    s = pd.Series(values, index=START + pd.to_timedelta(np.arange(len(values)), unit="min"))
    scan = detect_anomalies(s)
    assert scan.reason is None
    steps = int(np.count_nonzero(np.diff(levels)))
    assert len(scan.anomalies) <= steps
    assert all(np.isfinite(a.score) for a in scan.anomalies)
    assert {a.kind for a in scan.anomalies} <= {"level_shift"}


def test_constant_series_gives_no_anomalies():
    s = pd.Series(7.0, index=START + pd.to_timedelta(np.arange(3 * 1440), unit="min"))
    scan = detect_anomalies(s)
    assert scan.reason is None and scan.anomalies == []


def test_timestamps_and_values_arrays_and_interval_inference():
    s = minute_series(3, seed=4).resample("5min").mean()
    s.iloc[500] += 40
    scan = detect_anomalies(s.index.to_numpy(), s.to_numpy())
    assert scan.interval == pd.Timedelta(minutes=5)
    assert [a.peak for a in scan.anomalies] == [s.index[500]]


def test_tz_aware_input_is_read_as_utc():
    s = minute_series(3, seed=5)
    s.iloc[3000] += 15
    aware = s.tz_localize("Europe/Paris")
    scan = detect_anomalies(aware)
    assert [a.peak for a in scan.anomalies] == [
        aware.index[3000].tz_convert("UTC").tz_localize(None)
    ]


def test_nan_duplicates_and_small_gaps_are_cleaned_and_noted():
    s = minute_series(3, seed=6)
    s.iloc[100:110] = np.nan
    s = s.drop(s.index[2000:2030])  # a 30-minute gap
    s = pd.concat([s, s.iloc[[50, 51]]])  # duplicated timestamps
    s.iloc[3500] += 20
    scan = detect_anomalies(s)
    assert scan.reason is None
    notes = " ".join(scan.notes)
    assert "missing" in notes and "duplicated" in notes and "gaps" in notes
    assert len(scan.anomalies) == 1 and scan.anomalies[0].kind == "spike"


@pytest.mark.parametrize(
    ("data", "values", "words"),
    [
        (pd.Series([], dtype=float), None, "empty"),
        (pd.Series([1.0], index=[START]), None, "one point"),
        (
            pd.Series([np.nan] * 50, index=START + pd.to_timedelta(range(50), unit="min")),
            None,
            "empty",
        ),
        (pd.Series([1.0, 2.0, 3.0], index=[START] * 3), None, "one timestamp"),
        (minute_series(1.5), None, "shorter than 2 seasons"),
        # Irregular timestamps: bursts of 1-minute points between gaps of hours leave the
        # inferred 1-minute grid mostly empty.
        (
            pd.Series(
                np.arange(3000.0),
                index=START
                + pd.to_timedelta(
                    np.cumsum(np.random.default_rng(0).choice([1, 1, 1, 180, 300], 3000)),
                    unit="min",
                ),
            ),
            None,
            "irregular",
        ),
        ([START, START + pd.Timedelta(minutes=1)], [1.0], "2 timestamps but 1 values"),
        ([1.0, 2.0, 3.0], None, "pass a pandas Series"),
        (["not a time", "x"], [1, 2], "could not be read"),
    ],
    ids=[
        "empty",
        "one-point",
        "all-nan",
        "duplicated-only",
        "short",
        "irregular",
        "lengths",
        "list",
        "garbage",
    ],
)
def test_bad_input_gives_an_empty_result_and_a_reason(data, values, words):
    scan = detect_anomalies(data, values)
    assert scan.anomalies == []
    assert scan.reason is not None and words in scan.reason
    assert scan.reason.startswith(("not enough data", "not computable"))


def make_anomaly(start: str) -> Anomaly:
    t = pd.Timestamp(start)
    return Anomaly(t, t, t, 1.0, 0.0, 9.0, "spike", "up")


def test_deployments_label_the_anomaly_they_precede_within_the_lookback():
    anomalies = [
        make_anomaly("2024-03-04 12:00"),  # v2 deployed 30 min before
        make_anomaly("2024-03-04 18:00"),  # last deploy 6.5 h before: unlabelled
        make_anomaly("2024-03-04 09:00"),  # before any deploy
    ]
    deploys = [
        (pd.Timestamp("2024-03-04 10:30"), "v1", "dep-1"),
        (pd.Timestamp("2024-03-04 11:30"), "v2", "dep-2"),
        (pd.Timestamp("2024-03-04 12:05"), "v3", "dep-3"),  # after the anomaly: not its cause
    ]
    labelled = label_with_deployments(anomalies, deploys)
    assert [(a.release, a.deployment_id) for a in labelled] == [
        ("v2", "dep-2"),
        (None, None),
        (None, None),
    ]
    assert labelled[0].deployed_at == pd.Timestamp("2024-03-04 11:30")
    wide = label_with_deployments(anomalies, deploys, lookback=timedelta(hours=7))
    assert wide[1].release == "v3"
    assert label_with_deployments([], deploys) == []
    assert label_with_deployments(anomalies, []) == anomalies


def test_detected_level_shift_is_labelled_with_the_deploy_before_it():
    s = minute_series(5, seed=7)
    k = 4 * 1440 + 120
    s.iloc[k:] += 8.0
    deploy = (s.index[k] - pd.Timedelta(minutes=10), "2024.03.08-1", "d-42")
    labelled = label_with_deployments(detect_anomalies(s).anomalies, [deploy])
    assert [(a.kind, a.release) for a in labelled] == [("level_shift", "2024.03.08-1")]


def test_higher_threshold_flags_fewer_points():
    s = minute_series(4, seed=8)
    s.iloc[[1000, 3000, 5000]] += [6.0, 9.0, 14.0]
    loose = detect_anomalies(s, config=DetectorConfig(z_threshold=5.0))
    strict = detect_anomalies(s, config=DetectorConfig(z_threshold=10.0))
    assert len(strict.anomalies) < len(loose.anomalies)


def test_robust_scale_matches_scipy_normal_mad():
    # The detector's scale for iid noise is 1.4826 * MAD; scipy's "normal" scale is the same.
    rng = np.random.default_rng(9)
    x = rng.normal(0, 3.0, 20000)
    from analysis.anomalies import _robust_scale

    assert _robust_scale(x) == pytest.approx(
        stats.median_abs_deviation(x, scale="normal"), rel=1e-3
    )


def test_a_shift_and_its_reversal_are_one_episode_ending_where_the_level_returned():
    """A bad release raises a metric for five hours until a rollback restores it."""
    rng = np.random.default_rng(11)
    index = pd.date_range("2026-03-01", periods=24 * 14, freq="h")
    values = 1000 + rng.normal(0, 20, len(index))
    bump = (index >= "2026-03-10 14:00") & (index < "2026-03-10 19:00")
    values[bump] += 900
    scan = detect_anomalies(pd.Series(values, index=index))
    assert len(scan.anomalies) == 1
    episode = scan.anomalies[0]
    assert episode.direction == "up"
    assert abs(episode.start - pd.Timestamp("2026-03-10 14:00")) <= pd.Timedelta(hours=1)
    assert abs(episode.end - pd.Timestamp("2026-03-10 19:00")) <= pd.Timedelta(hours=1)
