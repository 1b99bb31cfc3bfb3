"""Anomalies of a catalogue metric, as the Anomalies page shows them: the online detector
(analysis.online_anomalies) run over the metric's hourly values, so the page shows exactly the
verdicts and episodes an anomaly alert rule on the same metric reaches (each verdict uses only
the data up to its hour; a later visit never moves or removes an episode already shown).

The detector learns its baselines (daily and weekly seasons, scale, the size of a typical
day's largest deviation) from a lead-in of `LEAD_IN` before the window shown, so the first
days of the window are scored like the last. Episodes are labelled with the deployment that
preceded them (`attribute_deployments`).

The retrospective batch scan this module used to hold is gone: it saw the whole window at
once (centred medians, a whole-series scale, a look-ahead level test), so its episodes could
appear or vanish as data arrived and disagreed with what an alert would have said.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import duckdb
import pandas as pd

from analysis.deployments import deployment_marks
from analysis.metrics import Metric, hourly_values
from analysis.online_anomalies import (
    Episode,
    OnlineConfig,
    attribute_deployments,
    scan_series,
)

# The history the detector learns from before the window shown: four weeks, so the weekly
# season has its cycles and the daily maxima their 14 days (OnlineConfig.tail_days).
LEAD_IN = timedelta(days=28)
# Sensitivity: a factor on every rule's limits (the z of a spike, the runs rule's median z and
# the multiple of a typical day's largest deviation). "normal" is the benchmarked default.
SENSITIVITY: dict[str, float] = {"low": 1.25, "normal": 1.0, "high": 0.8}
SENSITIVITY_LABELS: dict[str, str] = {
    "low": "Low (fewer, larger episodes)",
    "normal": "Normal (benchmarked default)",
    "high": "High (more, smaller episodes)",
}
# How a unit reads in a title or an axis label.
UNIT_WORDS: dict[str, str] = {
    "ms": "milliseconds",
    "s": "seconds",
    "%": "percent",
    "MOS": "MOS, 1 to 5",
}

# Kept for callers of the former name.
label_with_deployments = attribute_deployments


def detector_config(timezone: str = "UTC", sensitivity: str = "normal") -> OnlineConfig:
    """The detector's settings for the operator's time zone (IANA name; daily and weekly
    seasons follow its clock, daylight saving included) and a sensitivity of SENSITIVITY."""
    base = OnlineConfig()
    factor = SENSITIVITY.get(sensitivity, 1.0)
    return replace(
        base,
        timezone=timezone,
        z_threshold=base.z_threshold * factor,
        shift_threshold=base.shift_threshold * factor,
        tail_factor=base.tail_factor * factor,
    )


def unit_words(metric: Metric) -> str:
    """The metric's unit as words ("milliseconds", "percent"), or '' when it has none."""
    return UNIT_WORDS.get(metric.unit, metric.unit)


def chart_title(metric: Metric) -> str:
    """A chart title in words with the unit: "Calls started per hour", "p95 request latency
    by hour (milliseconds)"."""
    if metric.type == "count":
        return f"{metric.title} per hour"
    unit = unit_words(metric)
    return f"{metric.title} by hour ({unit})" if unit else f"{metric.title} by hour"


@dataclass(frozen=True)
class AnomalyView:
    """What the page shows for one metric over [start, end): the hourly values with the band
    the detector accepted as normal (`frame`: hour, value, expected, lower, upper, status),
    the episodes that overlap the window (an episode with `end` None is still going on), and
    why nothing could be judged (`reason`), with the season and notes of the scan."""

    frame: pd.DataFrame
    episodes: list[Episode] = field(default_factory=list)
    reason: str | None = None
    season: str | None = None
    interval: pd.Timedelta | None = None
    notes: tuple[str, ...] = ()


def episode_span(episode: Episode, interval: pd.Timedelta, last: pd.Timestamp) -> pd.Timestamp:
    """Where an episode ends on a chart: past its last anomalous hour, or at the last hour
    seen while it is still going on."""
    return (last if episode.end is None else episode.end) + interval


def anomaly_view(
    con: duckdb.DuckDBPyConnection,
    metric: Metric,
    start: datetime,
    end: datetime,
    timezone: str = "UTC",
    sensitivity: str = "normal",
    deploy_lookback: timedelta = timedelta(hours=6),
    lead_in: timedelta = LEAD_IN,
) -> AnomalyView:
    """Scan `metric`'s hourly values from `lead_in` before `start` to `end` with the online
    detector and keep what falls in [start, end); episodes are labelled with the latest
    deployment within `deploy_lookback` before their first hour."""
    series = hourly_values(con, metric, start - lead_in, end)
    scan = scan_series(series, detector_config(timezone, sensitivity))
    frame = scan.verdicts.frame().rename(columns={"time": "hour"})
    frame = frame[(frame["hour"] >= pd.Timestamp(start).floor("h")) & (frame["hour"] < end)]
    frame = frame.reset_index(drop=True)
    shown_from = pd.Timestamp(start).floor("h")
    episodes = [
        e
        for e in scan.episodes
        if e.start < pd.Timestamp(end) and (e.end is None or e.end >= shown_from)
    ]
    marks = deployment_marks(con, start - lead_in - deploy_lookback, end)
    episodes = attribute_deployments(episodes, marks, deploy_lookback)
    reason = scan.reason
    if reason is None and frame.empty:
        reason = "not enough data: no hourly value in this period"
    return AnomalyView(frame, episodes, reason, scan.season, scan.interval, scan.notes)


def episodes_table(episodes: list[Episode]) -> pd.DataFrame:
    """One row per episode, as the page lists them (newest first)."""
    rows = [
        {
            "start": e.start,
            "confirmed": e.confirmed_at,
            "end": e.end,
            "state": "ongoing"
            if e.end is None
            else ("recovered" if e.recovered else "new level accepted"),
            "kind": e.kind.replace("_", " "),
            "direction": e.direction,
            "peak": e.peak,
            "value": e.value,
            "expected": e.expected,
            "score": e.score,
            "preceding release": e.release,
            "deployed at": e.deployed_at,
        }
        for e in sorted(episodes, key=lambda e: e.start, reverse=True)
    ]
    columns = [
        "start",
        "confirmed",
        "end",
        "state",
        "kind",
        "direction",
        "peak",
        "value",
        "expected",
        "score",
        "preceding release",
        "deployed at",
    ]
    return pd.DataFrame(rows, columns=columns)
