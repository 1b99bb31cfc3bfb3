"""NAB scoring (checked against NAB's published values and hand computation) and the online
detector's results on both development folders, against the rolling median/MAD baseline. The
folders (tests/data/nab and tests/data/nab-more, MIT-licensed NAB series) are copies of the team's
../shared/nab and ../shared/nab-more, carried in the repository so that a clean clone runs these."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.nab_score import (
    STANDARD_PROFILE,
    WindowCount,
    count_windows,
    nab_normalised_score,
    nab_raw_score,
    probation_rows,
    rolling_mad_alarms,
    scaled_sigmoid,
)

NAB_ROOT = Path(__file__).resolve().parents[1] / "data" / "nab"  # tests/data: see conftest


# --- scoring, on small hand-made files ---------------------------------------------------


def stamps(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=n, freq="5min")


def test_scaled_sigmoid_matches_nab_published_values():
    # Values quoted in numenta/NAB nab/sweeper.py's docstring.
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == pytest.approx(0.0, abs=1e-12)
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.0) == -1.0


def test_probation_is_fifteen_percent_capped_at_750_rows():
    assert probation_rows(4032) == 604
    assert probation_rows(22695) == 750


def test_nab_raw_score_by_hand():
    ts = stamps(1000)  # probation: 150 rows
    window = [(ts[500], ts[599])]  # rows 500..599, width 100
    # Earliest possible detection earns A_TP exactly.
    assert nab_raw_score(ts, [ts[500]], window)[0] == pytest.approx(1.0)
    # Halfway: position -(599 - 550 + 1) / 100 = -0.5, scaled by 1 / sigmoid(-1).
    halfway = (2 / (1 + math.exp(5 * -0.5)) - 1) / (2 / (1 + math.exp(-5)) - 1)
    assert nab_raw_score(ts, [ts[550]], window)[0] == pytest.approx(halfway)
    # Only the earliest detection in a window counts.
    assert nab_raw_score(ts, [ts[500], ts[590]], window)[0] == pytest.approx(1.0)
    # Missed window: -A_FN.
    assert nab_raw_score(ts, [], window) == (-1.0, 1)
    # A false positive before any window costs A_FP * -1; alarms in probation are ignored.
    assert nab_raw_score(ts, [ts[200], ts[10]], window)[0] == pytest.approx(-1.0 - 0.11)
    # A false positive 50 rows after the window: position 50 / (100 - 1).
    after = 0.11 * (2 / (1 + math.exp(5 * 50 / 99)) - 1)
    assert nab_raw_score(ts, [ts[500], ts[649]], window)[0] == pytest.approx(1.0 + after)


def test_normalised_score_is_0_for_null_and_100_for_perfect():
    assert nab_normalised_score(-3.0, 3) == pytest.approx(0.0)
    assert nab_normalised_score(3.0, 3) == pytest.approx(100.0)
    assert nab_normalised_score(0.0, 3) == pytest.approx(50.0)
    assert STANDARD_PROFILE.fp == 0.11


def test_count_windows_by_hand():
    ts = stamps(1000)
    windows = [(ts[300], ts[349]), (ts[700], ts[749])]
    alarms = [ts[100], ts[310], ts[320], ts[500]]  # probation, 2 in window 1, one outside
    count = count_windows(ts, alarms, windows)
    assert count == WindowCount(windows=2, found=1, alarms=3, true_alarms=2)
    assert count.recall == 0.5 and count.precision == pytest.approx(2 / 3)
    assert count.false_alarms == 1


def test_baseline_z_matches_a_direct_median_mad_computation():
    rng = np.random.default_rng(0)
    x = rng.normal(10, 1, 400)
    x[350] = 16.0
    s = pd.Series(x, index=stamps(400))
    alarms = set(rolling_mad_alarms(s, window=100, threshold=3.5))
    # Independent computation with scipy's MAD for each point.
    from scipy.stats import median_abs_deviation

    flagged = []
    for i in range(100, 400):
        past = x[i - 100 : i]
        z = 0.6745 * (x[i] - np.median(past)) / median_abs_deviation(past)
        if abs(z) > 3.5:
            flagged.append(i)
    runs = [i for i in flagged if i - 1 not in flagged]  # one alarm per run of flags
    assert alarms == {s.index[i] for i in runs}
    assert s.index[350] in alarms


def test_baseline_goes_wild_on_a_stepped_series_and_the_detector_does_not():
    values = np.repeat([3.0, 3.0, 4.0, 3.0, 5.0, 5.0], 288)
    values[::7] += 1.0  # quantised jitter: the MAD of most windows is zero
    s = pd.Series(values, index=stamps(len(values)))
    assert len(rolling_mad_alarms(s)) > 50
    from analysis.online_anomalies import scan_series

    assert len(scan_series(s).alarms) <= 5


# --- the online detector on both development folders --------------------------------------


@pytest.fixture(scope="module", params=["nab", "nab-more"])
def online_results(request):
    from analysis.online_anomalies import scan

    root = NAB_ROOT.parent / request.param
    if not (root / "labels" / "combined_windows.json").exists():
        from tests.conftest import missing

        missing(f"The NAB data at {root}")
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    online = baseline = WindowCount(0, 0, 0, 0)
    raw_online = raw_baseline = 0.0
    n_windows = 0
    for name, spans in sorted(windows.items()):
        frame = pd.read_csv(root / "data" / name, parse_dates=["timestamp"])
        ts = frame["timestamp"]
        # An alarm is when the episode was confirmed: what an alert would have seen.
        alarms = scan(ts.to_numpy(), frame["value"].to_numpy()).alarms
        naive = rolling_mad_alarms(pd.Series(frame["value"].to_numpy(), index=pd.DatetimeIndex(ts)))
        online = online + count_windows(ts, alarms, spans)
        baseline = baseline + count_windows(ts, naive, spans)
        raw, scored = nab_raw_score(ts, alarms, spans)
        raw_online += raw
        raw_baseline += nab_raw_score(ts, naive, spans)[0]
        n_windows += scored
    return {
        "online": online,
        "baseline": baseline,
        "nab_online": nab_normalised_score(raw_online, n_windows),
        "nab_baseline": nab_normalised_score(raw_baseline, n_windows),
    }


def test_online_detector_finds_three_windows_in_four_on_each_folder(online_results):
    assert online_results["online"].recall >= 0.75, online_results["online"]


def test_online_detector_beats_the_baseline_on_each_folder(online_results):
    assert online_results["online"].precision > 2 * online_results["baseline"].precision
    assert online_results["nab_online"] >= 63
    assert online_results["nab_baseline"] < 55
