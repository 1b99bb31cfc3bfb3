"""Anomaly rules: an episode of the online detector (analysis.online_anomalies) on a catalogue
metric's hourly values, the series the Anomalies page shows, with the same verdicts.

    the latest judged hour is anomalous in the rule's direction, or a level shift in that
    direction has not come back                                              -> breach
    otherwise (the hour is back within the expected band)                    -> no reading

So a confirmed episode fires when the detector confirms it (the end of its first anomalous
hour, or of the run of hours that confirms a level shift) and resolves with the first hour
back in the band; a rule's `keep_firing_for` bridges a normal hour between two anomalous ones.
Nothing is judged before the detector has seen `min_history` of the metric (its weekly
season), nor on a verdict older than STALE (a metric that stopped reporting says nothing).

An hour is judged once it is complete: once a request later than its end has been published
(`feed_end`), never on a partial hour, so a replay and the live service judge the same hours
at the same moments. The detector's state is carried between evaluations: the service puts a
`DetectorStates` in the context's memo under DETECTOR_STATES, keeps it between evaluations and
saves what changed in the control store (collectors/alerts/engine.py), so each evaluation
feeds only the hours completed since the last one (usually none; one each hour) and a restart
neither rescans nor re-alerts. Without it (the Alerts page's "test this rule") the check scans
the lead-in from scratch.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from analysis.alerts.model import (
    Context,
    Evidence,
    Level,
    Param,
    Reading,
    Rule,
    RuleKind,
    Timeline,
    describe_duration,
    labels_of,
    steps,
)
from analysis.alerts.threshold import format_value, metric_of
from analysis.anomalies import LEAD_IN, SENSITIVITY, detector_config
from analysis.metrics import Metric, metric_series
from analysis.online_anomalies import (
    DetectorState,
    Verdicts,
    new_state,
    state_from_json,
    state_to_json,
    update,
)

DETECTOR_STATES = "anomaly.detector_states"  # the memo key the service fills
HOUR = timedelta(hours=1)
DIRECTIONS = ("worse", "up", "down", "both")
# A verdict older than this at the latest complete hour is no reading: a metric that stopped
# reporting (no turns at night) neither keeps an alert firing nor starts one.
STALE = timedelta(hours=3)
# Judge only after a week of the metric: the weekly season, and days of learnt deviations.
MIN_HISTORY = timedelta(days=7)

PARAMS = (
    Param(
        "metric", "metric", "A metric of the catalogue (built-in or [[metrics]]).", required=True
    ),
    Param(
        "direction",
        "choice",
        "Which episodes alert: worse (up for a metric where lower is better, else down), "
        "up, down or both.",
        "worse",
        choices=DIRECTIONS,
    ),
    Param(
        "sensitivity",
        "choice",
        "The detector's sensitivity, as on the Anomalies page (normal: the benchmarked default).",
        "normal",
        choices=tuple(SENSITIVITY),
    ),
    Param(
        "timezone",
        "text",
        "The time zone whose clock the daily and weekly seasons follow (IANA name).",
        "UTC",
    ),
    Param(
        "lead_in",
        "duration",
        "History the detector learns from before it judges (a first evaluation reads it).",
        LEAD_IN.total_seconds(),
        low=MIN_HISTORY.total_seconds(),
    ),
    Param(
        "min_history",
        "duration",
        "Alert only once the detector has seen this much of the metric (before that its "
        "seasons and limits are still being learnt).",
        MIN_HISTORY.total_seconds(),
        low=0,
    ),
)


# ---- the state carried between evaluations ------------------------------------------------


@dataclass
class Carried:
    """One rule's detector: its settings' key (a state for other settings is not reused), the
    state, the hour before which every hour was fed, and the last verdict."""

    key: str
    state: DetectorState
    through: datetime
    last: dict[str, Any] | None = None
    dirty: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "state": state_to_json(self.state),
            "through": self.through.isoformat(),
            "last": self.last,
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Carried:
        return Carried(
            str(data["key"]),
            state_from_json(str(data["state"])),
            datetime.fromisoformat(str(data["through"])),
            data.get("last"),
            dirty=False,
        )


class DetectorStates:
    """The detectors of the anomaly rules, by rule name: what the service keeps between
    evaluations (in memory) and saves when they change (JSON: bounded, about 10-30 KiB each)."""

    def __init__(self) -> None:
        self.carried: dict[str, Carried] = {}
        self.seen: set[str] = set()

    def known(self, name: str) -> bool:
        return name in self.seen

    def load(self, name: str, saved: Mapping[str, Any] | None) -> None:
        """A rule's saved detector (None: none saved); unreadable ones start again."""
        self.seen.add(name)
        if saved:
            try:
                self.carried[name] = Carried.from_json(saved)
            except (KeyError, TypeError, ValueError):
                self.carried.pop(name, None)

    def changed(self) -> dict[str, dict[str, Any]]:
        """The detectors that moved since the last call, as JSON-able values."""
        out = {}
        for name, c in self.carried.items():
            if c.dirty:
                out[name] = c.to_json()
                c.dirty = False
        return out


# ---- which hours are complete -------------------------------------------------------------


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def feed_end(ctx: Context, now: datetime, since: datetime | None = None) -> datetime:
    """Hours before this are complete at `now`: the hour of the latest request published
    before `now` (a request later than an hour's end means the hour is in), at most now's.
    With `since`, only hours from `since` on are asked about (a carried detector has fed the
    ones before): the search reads only the requests since then, and finding none answers
    `since` (no new hour is complete)."""
    if since is None:
        row = ctx.con.execute(
            "SELECT max(started_at) FROM requests WHERE started_at < ?", [now]
        ).fetchone()
    else:
        row = ctx.con.execute(
            "SELECT max(started_at) FROM requests WHERE started_at >= ? AND started_at < ?",
            [since, now],
        ).fetchone()
    latest = row[0] if row else None
    if latest is None:
        return floor_hour(now) if since is None else min(since, floor_hour(now))
    return min(floor_hour(now), floor_hour(pd.Timestamp(latest).to_pydatetime()))


def complete_hours(ctx: Context, metric: Metric, start: datetime, end: datetime) -> pd.Series:
    """The metric per hour over [start, end), hours known to be complete (`end` from
    `feed_end`): what analysis.metrics.hourly_values gives the Anomalies page (counts 0 in
    hours without events, other kinds NaN), without its search of the whole requests table
    for an hour still being collected."""
    hours = pd.date_range(
        pd.Timestamp(start).floor("h"), pd.Timestamp(end), freq="h", inclusive="left"
    )
    values = metric_series(ctx.con, metric, start, end, bucket="hour").set_index("hour")["value"]
    if metric.type == "count":
        values = values.reindex(hours, fill_value=0)
    out = pd.Series(values, dtype=float).reindex(hours)
    out.index.name = "hour"
    return out


def _hours_available_at(ctx: Context, hours: pd.DatetimeIndex, end: datetime) -> np.ndarray:
    """For each hour, when it became complete: the first request at or after its end (NaT if
    none before `end`), so that `feed_end` at t includes it exactly when that time is < t."""
    if len(hours) == 0:
        return np.zeros(0, dtype="datetime64[ns]")
    frame = ctx.con.execute(
        "SELECT date_trunc('hour', started_at) AS hour, min(started_at) AS first "
        "FROM requests WHERE started_at >= ? AND started_at < ? GROUP BY 1 ORDER BY 1",
        [hours[0].to_pydatetime() + HOUR, end],
    ).df()
    firsts = pd.Series(
        pd.to_datetime(frame["first"]).to_numpy(), index=pd.to_datetime(frame["hour"])
    )
    # first request in any hour >= h + 1 h: a suffix minimum over the hours with requests
    out = np.full(len(hours), np.datetime64("NaT"), dtype="datetime64[ns]")
    if firsts.empty:
        return out
    idx = np.searchsorted(firsts.index.to_numpy(), (hours + HOUR).to_numpy(), side="left")
    values = firsts.to_numpy().astype("datetime64[ns]")
    ok = idx < len(values)
    out[ok] = values[idx[ok]]
    return out


# ---- the rule -----------------------------------------------------------------------------


def _settings(rule: Rule) -> tuple[str, str, float]:
    """What the detector depends on: sensitivity, time zone and lead-in (seconds)."""
    return (
        str(rule.param("sensitivity", "normal")),
        str(rule.param("timezone", "UTC")),
        float(rule.param("lead_in", LEAD_IN.total_seconds())),
    )


def state_key(rule: Rule) -> str:
    """What a carried detector depends on: the metric and the detector's settings, defaults
    included (a detector saved under other defaults starts again)."""
    sensitivity, timezone, _ = _settings(rule)
    config = detector_config(timezone, sensitivity).to_dict()
    text = json.dumps([str(rule.param("metric")), *_settings(rule), config], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fresh(rule: Rule) -> DetectorState:
    sensitivity, timezone, _ = _settings(rule)
    return new_state(detector_config(timezone, sensitivity))


def _last_verdict(verdicts: Verdicts, previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """The latest judged point of an update (points still learning count: they are news)."""
    if len(verdicts) == 0:
        return previous
    v = verdicts[len(verdicts) - 1]
    return {
        "hour": v.time.isoformat(),
        "value": v.value,
        "expected": v.expected,
        "score": v.score,
        "status": v.status,
    }


def _feed(carried: Carried, series: pd.Series, metric: Metric) -> None:
    finite = series[np.isfinite(series.to_numpy(dtype=float))]
    if carried.state.first_ns is None and metric.type == "count":
        # A count is 0 in every hour before its table's first row: those hours are no history
        # (a lead-in reaching back before the data began would be a level shift from 0).
        nonzero = np.flatnonzero(finite.to_numpy(dtype=float) != 0)
        finite = finite.iloc[int(nonzero[0]) :] if len(nonzero) else finite.iloc[:0]
    if finite.empty:
        return
    state, result = update(carried.state, pd.Index(finite.index), finite.to_numpy(dtype=float))
    carried.state = state
    carried.last = _last_verdict(result.verdicts, carried.last)
    carried.dirty = True


def _wanted(direction: str, metric: Metric) -> tuple[str, ...]:
    if direction == "worse":
        return ("up",) if metric.lower_is_better else ("down",)
    return ("up", "down") if direction == "both" else (direction,)


def _judged(rule: Rule, carried: Carried) -> bool:
    """Whether the detector's latest verdict may alert: recent (within STALE of the hours fed,
    `carried.through`) and after `min_history` of the metric."""
    last, first = carried.last, carried.state.first_ns
    if last is None or first is None:
        return False
    hour = datetime.fromisoformat(str(last["hour"]))
    if hour < carried.through - STALE:
        return False
    min_history = timedelta(seconds=float(rule.param("min_history", MIN_HISTORY.total_seconds())))
    return hour - pd.Timestamp(int(first), unit="ns").to_pydatetime() >= min_history


def _reading(rule: Rule, metric: Metric, carried: Carried) -> list[Reading]:
    """breach when the last hour is anomalous in a wanted direction or a wanted level shift
    is still out; nothing otherwise."""
    if not _judged(rule, carried):
        return []
    wanted = _wanted(str(rule.param("direction", "worse")), metric)
    last = carried.last
    episode = carried.state.episode
    anomalous = (
        last is not None
        and last["status"] == "anomalous"
        and ("up" if float(last["score"]) > 0 else "down") in wanted
    )
    shifted = (
        episode is not None
        and episode.get("phase") == "shifted"
        and episode.get("direction") in wanted
    )
    if not (anomalous or shifted) or last is None:
        return []
    hour = datetime.fromisoformat(str(last["hour"]))
    value, expected = float(last["value"]), float(last["expected"])
    if episode is not None:
        since = pd.Timestamp(int(episode["start"]), unit="ns").to_pydatetime()
        kind = str(episode.get("kind", "spike")).replace("_", " ")
    else:
        since, kind = hour, ("spike" if float(last["score"]) > 0 else "dip")
    expected_text = format_value(metric, expected) if math.isfinite(expected) else "n/a"
    summary = (
        f"{metric.title} was {format_value(metric, value)} in the hour from "
        f"{hour:%Y-%m-%d %H:%M} UTC where {expected_text} was expected (robust z "
        f"{float(last['score']):+.1f}): a {kind} since {since:%Y-%m-%d %H:%M} UTC."
    )
    if not anomalous:
        summary = (
            f"{metric.title} has not come back from a level shift since "
            f"{since:%Y-%m-%d %H:%M} UTC (last hour {format_value(metric, value)})."
        )
    level: Level = "breach"
    return [
        Reading(
            labels_of({"metric": metric.name}),
            level,
            float(last["score"]),
            summary,
            Evidence(
                "anomalies",
                f"{metric.title} by hour with the detector's expected band.",
                since,
                hour + HOUR,
                # the Anomalies page's widgets (bound to its URL): the same series and limits
                labels_of({"metric": metric.name, "sensitivity": _settings(rule)[0]}),
            ),
        )
    ]


def _states(ctx: Context) -> DetectorStates | None:
    found = ctx.memo.get(DETECTOR_STATES)
    return found if isinstance(found, DetectorStates) else None


def _carried(ctx: Context, rule: Rule, states: DetectorStates | None) -> tuple[Carried, datetime]:
    """The rule's detector and the end of the hours complete now: the carried one if it is for
    these settings and not older than the lead-in, else a new one starting a lead-in back."""
    key = state_key(rule)
    lead_in = timedelta(seconds=_settings(rule)[2])
    carried = states.carried.get(rule.name) if states is not None else None
    if carried is not None and carried.key == key and carried.through >= floor_hour(ctx.now):
        return carried, carried.through  # no hour can have completed since: nothing to read
    if carried is not None and carried.key == key:
        end = feed_end(ctx, ctx.now, since=carried.through)
        if carried.through >= end - lead_in:
            return carried, end
    end = feed_end(ctx, ctx.now, since=floor_hour(ctx.now) - lead_in)
    return Carried(key, _fresh(rule), end - lead_in), end


def check(ctx: Context, rule: Rule) -> list[Reading]:
    metric = metric_of(ctx, rule)
    states = _states(ctx)
    carried, end = _carried(ctx, rule, states)
    if carried.through < end:
        _feed(carried, complete_hours(ctx, metric, carried.through, end), metric)
        carried.through = end
        carried.dirty = True
    if states is not None:
        states.carried[rule.name] = carried
    return _reading(rule, metric, carried)


def history(ctx: Context, rule: Rule, start: datetime, end: datetime) -> Timeline:
    """The readings at each step of [start, end) as live checks would have found them: each
    hour is fed when it became complete, one at a time (the detector gives the same verdicts
    however its input is split). The detector at `end` is left for the live checks."""
    metric = metric_of(ctx, rule)
    step = timedelta(seconds=rule.every_s)
    lead_in = timedelta(seconds=_settings(rule)[2])
    moments = steps(start, end, step)
    stop = feed_end(ctx, end)
    first_end = feed_end(ctx, moments[0]) if moments else stop
    series = complete_hours(ctx, metric, first_end - lead_in, stop)
    times = pd.DatetimeIndex(series.index)
    available = _hours_available_at(ctx, times, end)
    carried = Carried(state_key(rule), _fresh(rule), first_end - lead_in)
    before = times < pd.Timestamp(first_end)
    _feed(carried, series[before], metric)
    carried.through = first_end
    readings: dict[datetime, list[Reading]] = {}
    current = _reading(rule, metric, carried)
    moment_ns = np.array(moments, dtype="datetime64[ns]")
    position = 0  # moments before this index have their reading
    for i in np.flatnonzero(~before):
        at = available[i]
        if np.isnat(at):
            break
        # the reading so far holds for the moments up to and including `at`
        upto = int(np.searchsorted(moment_ns, at, side="right"))
        if current:
            for t in moments[position:upto]:
                readings[t] = current
        position = max(position, upto)
        _feed(carried, series.iloc[i : i + 1], metric)
        carried.through = times[int(i)].to_pydatetime() + HOUR
        current = _reading(rule, metric, carried)
    if current:
        for t in moments[position:]:
            readings[t] = current
    carried.through = max(carried.through, stop)
    carried.dirty = True
    states = _states(ctx)
    if states is not None:
        states.carried[rule.name] = carried
    return Timeline(step, readings)


def problems(params: Mapping[str, Any], metrics: Mapping[str, Metric]) -> list[str]:
    """What is inconsistent between parameters (each: '<key> <text>')."""
    out = []
    name = params.get("metric")
    metric = metrics.get(str(name))
    if metric is not None and not metric.on("anomalies"):
        offered = ", ".join(n for n, m in metrics.items() if m.on("anomalies"))
        out.append(
            f"metric {name!r} has no hourly series the detector can judge (the Anomalies page "
            f"offers {offered})"
        )
    timezone = str(params.get("timezone") or "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        out.append(f"timezone {timezone!r} is not a time zone (an IANA name such as Europe/Paris)")
    lead_in, min_history = params.get("lead_in"), params.get("min_history")
    if lead_in is not None and min_history is not None and float(min_history) > float(lead_in):
        out.append(
            f"min_history ({describe_duration(float(min_history))}) must not be longer than "
            f"lead_in ({describe_duration(float(lead_in))}): a check that starts afresh reads "
            "only the lead-in"
        )
    return out


ANOMALY = RuleKind(
    "anomaly",
    "Anomaly episode on a metric",
    "A spike, dip or level shift of a catalogue metric's hourly values, found by the online "
    "detector the Anomalies page shows; resolves when the metric is back in its band.",
    PARAMS,
    check,
    history,
    problems,
)
