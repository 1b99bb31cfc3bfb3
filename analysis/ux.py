"""User experience: sessions, CSAT, feature usage and the drivers of negative feedback.

CSAT = share of ratings 4-5 (the usual top-two-box definition), with a Wilson 95 % interval
(`analysis.stats.frequentist.wilson_interval`).

Feedback drivers: a logistic regression (`analysis.stats.logistic`, maximum likelihood) of
negative feedback on call-level predictors, one row per call that left a rating:
  logit P(min rating <= 2) = b0 + b1 * mean e2e latency (s) + b2 * interruptions + b3 * MOS
Odds ratios are exp(b) per second, per interruption and per MOS point, with Wald 95 %
intervals exp(b +- 1.96 se). Predictors with no values or no variation are dropped (and
named); too few rows or events, or perfect separation, give a reason instead of numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from analysis.stats.frequentist import wilson_interval
from analysis.stats.logistic import logistic_regression


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame
    reason: str | None = None


# Outcome shares are over calls that have ended (an outcome or an end time): a call still in
# progress (the SDK records its start first) has no outcome yet and is counted apart.
_SESSIONS_SQL = """
SELECT {group} AS grp, count(*) AS sessions,
       count(*) FILTER (WHERE ended_at IS NULL AND outcome IS NULL) AS in_progress,
       avg(duration_s) AS mean_duration_s, median(duration_s) AS median_duration_s,
       avg(turns) AS mean_turns, avg(interruptions) AS mean_interruptions,
       avg(CASE WHEN outcome = 'resolved' THEN 1.0 ELSE 0.0 END) FILTER (WHERE ended) AS resolved_share,
       avg(CASE WHEN outcome = 'escalated' THEN 1.0 ELSE 0.0 END) FILTER (WHERE ended) AS escalated_share,
       avg(CASE WHEN outcome = 'abandoned' THEN 1.0 ELSE 0.0 END) FILTER (WHERE ended) AS abandoned_share,
       avg(CASE WHEN outcome = 'failed' THEN 1.0 ELSE 0.0 END) FILTER (WHERE ended) AS failed_share,
       avg(CASE WHEN outcome IS NULL OR outcome NOT IN ('resolved', 'escalated', 'abandoned',
                'failed') THEN 1.0 ELSE 0.0 END) FILTER (WHERE ended) AS other_share
FROM (SELECT *, ended_at IS NOT NULL OR outcome IS NOT NULL AS ended FROM calls
      WHERE started_at >= ? AND started_at < ?)
GROUP BY ALL ORDER BY sessions DESC
"""
_SESSION_GROUPS = ("release", "variant", "region", "network", "experiment_key")
_SESSIONS = {None: _SESSIONS_SQL.replace("{group}", "'all'")} | {
    g: _SESSIONS_SQL.replace("{group}", f"coalesce({g}, '(none)')") for g in _SESSION_GROUPS
}


def session_summary(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, by: str | None = None
) -> Table:
    """Sessions (calls): count, duration, turns, interruptions and outcome shares."""
    if by not in _SESSIONS:
        return Table(pd.DataFrame(), f"cannot group sessions by {by!r}")
    df = con.execute(_SESSIONS[by], [start, end]).df()
    if df.empty or df["sessions"].sum() == 0:
        return Table(df, "no sessions in this window")
    return Table(df.rename(columns={"grp": by or "group"}))


_CSAT_SQL = """
SELECT {group} AS grp, count(*) AS ratings,
       count(*) FILTER (WHERE rating >= 4) AS satisfied,
       avg(rating) AS mean_rating,
       count(*) FILTER (WHERE rating = 1) AS r1, count(*) FILTER (WHERE rating = 2) AS r2,
       count(*) FILTER (WHERE rating = 3) AS r3, count(*) FILTER (WHERE rating = 4) AS r4,
       count(*) FILTER (WHERE rating = 5) AS r5
FROM feedback
WHERE submitted_at >= ? AND submitted_at < ? AND rating BETWEEN 1 AND 5
GROUP BY ALL ORDER BY ratings DESC
"""
_CSAT = {None: _CSAT_SQL.replace("{group}", "'all'")} | {
    g: _CSAT_SQL.replace("{group}", f"coalesce({g}, '(none)')") for g in ("category", "release")
}


def csat(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, by: str | None = "category"
) -> Table:
    """CSAT (share of 4-5) with a Wilson interval and the 1-5 distribution per group."""
    if by not in _CSAT:
        return Table(pd.DataFrame(), f"cannot group feedback by {by!r}")
    df = con.execute(_CSAT[by], [start, end]).df()
    if df.empty or df["ratings"].sum() == 0:
        return Table(df, "no ratings in this window")
    df["csat"] = df["satisfied"] / df["ratings"]
    lo, hi = wilson_interval(df["satisfied"], df["ratings"], alpha=0.05)
    df["csat_ci_low"], df["csat_ci_high"] = np.asarray(lo), np.asarray(hi)
    return Table(df.rename(columns={"grp": by or "group"}))


_FEATURES_SQL = """
SELECT feature_name, count(*) AS uses, count(DISTINCT user_id) AS users,
       count(DISTINCT coalesce(session_id, call_id)) AS sessions,
       avg(duration_s) AS mean_duration_s,
       min(used_at) AS first_used, max(used_at) AS last_used
FROM feature_usage
WHERE used_at >= ? AND used_at < ?
GROUP BY feature_name ORDER BY uses DESC
"""


def feature_usage(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> Table:
    """Per feature: uses, distinct users and sessions, mean duration, share of all uses."""
    df = con.execute(_FEATURES_SQL, [start, end]).df()
    if df.empty:
        return Table(df, "no feature usage in this window")
    df["share_of_uses"] = df["uses"] / df["uses"].sum()
    return Table(df)


# A rating is left during or soon after its call (the demo: within 25 minutes of its end), so
# a rated call's data is looked for from CALL_LOOKBACK before the window to its end: the scans
# follow the window (and its days' files), not the retention, and a call id that a source
# reuses weeks apart never mixes two calls.
CALL_LOOKBACK = timedelta(days=1)
_DRIVERS_SQL = """
WITH f AS (
  SELECT call_id, min(rating) AS rating FROM feedback
  WHERE submitted_at >= $start AND submitted_at < $end AND call_id IS NOT NULL
    AND rating BETWEEN 1 AND 5
  GROUP BY call_id
), t AS (
  SELECT call_id, avg(e2e_ms) AS mean_e2e_ms FROM voice_turns
  WHERE started_at >= $since AND started_at < $end
    AND call_id IN (SELECT call_id FROM f) AND NOT isnan(e2e_ms) GROUP BY call_id
), q AS (
  SELECT call_id, avg(mos_reported) AS mos FROM voice_quality
  WHERE measured_at >= $since AND measured_at < $end
    AND call_id IN (SELECT call_id FROM f) AND NOT isnan(mos_reported) GROUP BY call_id
), c AS (
  SELECT call_id, any_value(interruptions) AS interruptions FROM calls
  WHERE started_at >= $since AND started_at < $end AND call_id IN (SELECT call_id FROM f)
  GROUP BY call_id
)
SELECT f.call_id, f.rating, t.mean_e2e_ms, c.interruptions, q.mos
FROM f LEFT JOIN t USING (call_id) LEFT JOIN c USING (call_id) LEFT JOIN q USING (call_id)
"""

PREDICTORS = {
    "e2e_s": "mean end-to-end turn latency (per second)",
    "interruptions": "interruptions in the call (per interruption)",
    "mos": "reported MOS (per point)",
}


@dataclass(frozen=True)
class FeedbackDrivers:
    frame: pd.DataFrame  # term, description, coef, odds_ratio, ci_low, ci_high, p_value
    calls: int
    negatives: int
    dropped: list[str] = field(default_factory=list)
    reason: str | None = None


def call_feedback_rows(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime
) -> pd.DataFrame:
    """One row per rated call: rating (the call's lowest), negative, e2e_s, interruptions, mos,
    from the call's turns, quality samples and call row since CALL_LOOKBACK before `start`."""
    params = {"start": start, "end": end, "since": start - CALL_LOOKBACK}
    df = con.execute(_DRIVERS_SQL, params).df()
    df["negative"] = (df["rating"] <= 2).astype(int)
    df["e2e_s"] = df["mean_e2e_ms"] / 1000.0
    return df


def feedback_drivers(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    predictors: tuple[str, ...] = ("e2e_s", "interruptions", "mos"),
    min_calls: int = 50,
    min_events: int = 10,
) -> FeedbackDrivers:
    """Odds ratios of negative feedback (rating <= 2) per predictor, with 95 % CIs."""
    cols = ["term", "description", "coef", "odds_ratio", "ci_low", "ci_high", "p_value"]
    empty = pd.DataFrame(columns=cols)
    bad = [p for p in predictors if p not in PREDICTORS]
    if bad:
        return FeedbackDrivers(empty, 0, 0, [], f"unknown predictors {bad}")
    df = call_feedback_rows(con, start, end)
    dropped = []
    use = []
    for p in predictors:
        v = df[p].astype(float)
        if v.notna().sum() == 0 or v.dropna().nunique() < 2:
            dropped.append(p)
        else:
            use.append(p)
    if not use:
        return FeedbackDrivers(empty, len(df), 0, dropped, "no predictor has enough values")
    d = df.dropna(subset=use)
    n, events = len(d), int(d["negative"].sum())
    if n < min_calls:
        return FeedbackDrivers(empty, n, events, dropped, f"need {min_calls} rated calls, have {n}")
    if min(events, n - events) < min_events:
        return FeedbackDrivers(
            empty,
            n,
            events,
            dropped,
            f"need at least {min_events} negative and {min_events} other ratings",
        )
    x = np.column_stack([np.ones(n), d[use].to_numpy(float)])
    try:
        fit = logistic_regression(d["negative"].to_numpy(float), x, alpha=0.05, max_iter=200)
    except np.linalg.LinAlgError as exc:
        return FeedbackDrivers(empty, n, events, dropped, f"model not computable: {exc}")
    if fit.separated:
        return FeedbackDrivers(
            empty, n, events, dropped, "perfect separation: the predictors alone split the ratings"
        )
    if not fit.converged:
        return FeedbackDrivers(empty, n, events, dropped, "the model did not converge")
    rows = [
        [
            t,
            PREDICTORS[t],
            fit.coef[i],
            np.exp(fit.coef[i]),
            np.exp(fit.ci_low[i]),
            np.exp(fit.ci_high[i]),
            fit.p_value[i],
        ]
        for i, t in enumerate(use, start=1)
    ]
    return FeedbackDrivers(pd.DataFrame(rows, columns=cols), n, events, dropped)


def csat_daily(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pd.DataFrame:
    """Per day: ratings, CSAT % (share of 4-5) and mean rating, from the feedback rollup."""
    return con.execute(
        """
        SELECT CAST(date_trunc('day', hour) AS TIMESTAMP) AS day, sum(n) AS ratings,
               100.0 * sum(n_positive) / nullif(sum(n), 0) AS csat_pct,
               sum(sum_rating) / nullif(sum(n), 0) AS mean_rating
        FROM feedback_hourly WHERE hour >= ? AND hour < ? GROUP BY day ORDER BY day
        """,
        [start, end],
    ).df()


def recent_feedback(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    limit: int = 50,
    with_comment: bool = True,
) -> pd.DataFrame:
    """The latest feedback in the window, newest first (only rows with a comment by default)."""
    return con.execute(
        """
        SELECT submitted_at, rating, category, comment, call_id, release
        FROM feedback
        WHERE submitted_at >= ? AND submitted_at < ?
          AND (NOT ? OR (comment IS NOT NULL AND trim(comment) <> ''))
        ORDER BY submitted_at DESC LIMIT ?
        """,
        [start, end, with_comment, int(limit)],
    ).df()


def feature_usage_daily(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime
) -> pd.DataFrame:
    """Per day: uses of each feature, one column per feature (wide)."""
    df = con.execute(
        "SELECT CAST(date_trunc('day', used_at) AS TIMESTAMP) AS day, feature_name, "
        "count(*) AS uses FROM feature_usage WHERE used_at >= ? AND used_at < ? GROUP BY ALL",
        [start, end],
    ).df()
    if df.empty:
        return pd.DataFrame(columns=["day"])
    wide = df.pivot_table(
        index="day", columns="feature_name", values="uses", aggfunc="sum", fill_value=0
    )
    return wide.reset_index().rename_axis(columns=None)
