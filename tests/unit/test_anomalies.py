"""The Anomalies page's analysis (analysis/anomalies.py): episodes of the online detector over
hourly values, labelled with the deployment before them; the sensitivity a user picks; chart
titles in words. The detector itself is tested in test_online_anomalies.py and test_nab.py."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from analysis.anomalies import (
    SENSITIVITY,
    chart_title,
    detector_config,
    episode_span,
    episodes_table,
)
from analysis.metrics import builtin_metrics
from analysis.online_anomalies import Episode, attribute_deployments, scan_series


def make_episode(start: str, end: str | None = None) -> Episode:
    t = pd.Timestamp(start)
    return Episode(
        t, t, t, 1.0, 0.0, 9.0, "spike", "up", None if end is None else pd.Timestamp(end)
    )


def hourly(days: int, seed: int) -> pd.Series:
    """Hourly request latency: 1 s with a daily wave (busy afternoons) and noise."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2026-03-01", periods=24 * days, freq="h")
    hour = index.hour.to_numpy()
    values = 1000 + 150 * np.sin(2 * np.pi * (hour - 9) / 24) + rng.normal(0, 20, len(index))
    return pd.Series(values, index=index)


def test_deployments_label_the_episode_they_precede_within_the_lookback():
    episodes = [
        make_episode("2024-03-04 12:00"),  # v2 deployed 30 min before
        make_episode("2024-03-04 18:00"),  # last deploy 6 h before: unlabelled
        make_episode("2024-03-04 09:00"),  # before any deploy
    ]
    deploys = [
        (pd.Timestamp("2024-03-04 10:30"), "v1", "dep-1"),
        (pd.Timestamp("2024-03-04 11:30", tz="UTC"), "v2", "dep-2"),  # aware: read as UTC
        (pd.Timestamp("2024-03-04 12:05"), "v3", "dep-3"),  # after the episode: not its cause
    ]
    labelled = attribute_deployments(episodes, deploys)
    assert [(e.release, e.deployment_id) for e in labelled] == [
        ("v2", "dep-2"),
        (None, None),
        (None, None),
    ]
    assert labelled[0].deployed_at == pd.Timestamp("2024-03-04 11:30")
    wide = attribute_deployments(episodes, deploys, lookback=timedelta(hours=7))
    assert wide[1].release == "v3"
    assert attribute_deployments([], deploys) == []
    assert attribute_deployments(episodes, []) == episodes


def test_a_bad_release_and_its_rollback_are_one_recovered_episode_labelled_with_the_release():
    s = hourly(28, seed=11)
    bump = (s.index >= "2026-03-24 14:00") & (s.index < "2026-03-24 19:00")
    s[bump] += 900
    scan = scan_series(s, detector_config())
    deploy = (pd.Timestamp("2026-03-24 13:50"), "2026.03.24-1", "d-42")
    episodes = attribute_deployments(scan.episodes, [deploy])
    assert len(episodes) == 1
    episode = episodes[0]
    assert episode.direction == "up" and episode.recovered is True
    assert episode.start == pd.Timestamp("2026-03-24 14:00")
    assert pd.Timestamp("2026-03-24 18:00") <= episode.end <= pd.Timestamp("2026-03-24 19:00")
    assert episode.release == "2026.03.24-1"
    table = episodes_table(episodes)
    assert (
        table.loc[0, "state"] == "recovered" and table.loc[0, "preceding release"] == "2026.03.24-1"
    )


def test_an_ongoing_episode_is_shown_to_the_last_hour_seen():
    s = hourly(21, seed=12)
    s[s.index >= "2026-03-21 20:00"] += 900  # still high when the data ends
    scan = scan_series(s, detector_config())
    assert [e.end for e in scan.episodes] == [None]
    last = s.index[-1]
    assert episode_span(scan.episodes[0], pd.Timedelta(hours=1), last) == last + pd.Timedelta(
        hours=1
    )
    assert episodes_table(scan.episodes).loc[0, "state"] == "ongoing"


def test_higher_sensitivity_finds_every_episode_lower_ones_find_and_more():
    s = hourly(28, seed=13)
    picks = np.random.default_rng(1).choice(np.arange(24 * 8, len(s)), 12, replace=False)
    sizes = np.linspace(60, 200, len(picks))  # 3 to 10 sigma
    s.iloc[picks] += sizes
    found = {k: scan_series(s, detector_config(sensitivity=k)).alarms for k in SENSITIVITY}
    assert set(found["low"]) <= set(found["normal"]) <= set(found["high"])
    assert len(found["low"]) < len(found["high"])


def test_sensitivity_scales_every_limit_and_keeps_the_time_zone():
    normal = detector_config("Europe/Paris")
    high = detector_config("Europe/Paris", "high")
    assert high.timezone == normal.timezone == "Europe/Paris"
    for name in ("z_threshold", "shift_threshold", "tail_factor"):
        assert getattr(high, name) == pytest.approx(0.8 * getattr(normal, name))
    assert detector_config(sensitivity="unknown") == detector_config()


def test_chart_titles_say_the_unit_in_words():
    metrics = builtin_metrics()
    assert chart_title(metrics["error_rate"]) == "5xx error rate by hour (percent)"
    assert chart_title(metrics["p95_request_latency"]) == (
        "p95 request latency by hour (milliseconds)"
    )
    assert chart_title(metrics["calls"]) == "Calls per hour"
    assert chart_title(metrics["mos"]) == "Mean MOS by hour (MOS, 1 to 5)"
