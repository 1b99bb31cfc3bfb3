"""Sessions, CSAT, feature usage and the feedback-driver logistic regression."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from analysis.ux import csat, feature_usage, feedback_drivers, session_summary

MIGRATION = Path(__file__).resolve().parents[2] / "collectors" / "migrations" / "0001_initial.sql"
T0 = datetime(2025, 7, 1)
T1 = T0 + timedelta(days=10)


def _insert(con, table, df):
    con.register("tmp", df)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM tmp")
    con.unregister("tmp")


def _world(n_calls=3000, seed=0, per_e2e_s=1.4, per_interruption=0.45):
    """Calls with latency, interruptions and MOS; negative feedback from a known logit."""
    rng = np.random.default_rng(seed)
    ids = [f"c{i}" for i in range(n_calls)]
    e2e_ms = rng.lognormal(np.log(1000), 0.35, n_calls)
    inter = rng.poisson(0.8, n_calls)
    mos = np.clip(rng.normal(4.1, 0.25, n_calls), 1, 4.5)
    z = -2.2 + per_e2e_s * (e2e_ms / 1000 - 1) + per_interruption * inter
    negative = rng.random(n_calls) < 1 / (1 + np.exp(-z))
    rating = np.where(negative, rng.integers(1, 3, n_calls), rng.integers(3, 6, n_calls))
    starts = [T0 + timedelta(minutes=4 * i) for i in range(n_calls)]
    calls = pd.DataFrame(
        {
            "call_id": ids,
            "started_at": starts,
            "duration_s": rng.gamma(3, 40, n_calls),
            "outcome": rng.choice(
                ["resolved", "escalated", "abandoned", "failed"], n_calls, p=[0.6, 0.2, 0.15, 0.05]
            ),
            "turns": rng.integers(2, 12, n_calls),
            "interruptions": inter,
            "release": rng.choice(["v1", "v2"], n_calls),
        }
    )
    turns = pd.DataFrame(
        {
            "turn_id": [f"t{i}" for i in range(n_calls)],
            "call_id": ids,
            "started_at": starts,
            "e2e_ms": e2e_ms,
        }
    )
    quality = pd.DataFrame(
        {"sample_id": ids, "call_id": ids, "measured_at": starts, "mos_reported": mos}
    )
    feedback = pd.DataFrame(
        {
            "feedback_id": [f"f{i}" for i in range(n_calls)],
            "submitted_at": [s + timedelta(minutes=3) for s in starts],
            "rating": rating,
            "category": rng.choice(["voice_quality", "answer", "speed"], n_calls),
            "call_id": ids,
        }
    )
    return calls, turns, quality, feedback


@pytest.fixture()
def con():
    c = duckdb.connect()
    c.execute(MIGRATION.read_text())
    yield c
    c.close()


def _load(con, world):
    for table, df in zip(["calls", "voice_turns", "voice_quality", "feedback"], world, strict=True):
        _insert(con, table, df)


def test_latency_raises_odds_of_negative_feedback_matching_statsmodels_formula(con):
    world = _world()
    _load(con, world)
    res = feedback_drivers(con, T0, T1)
    assert res.reason is None and res.calls == 3000
    f = res.frame.set_index("term")
    lat = f.loc["e2e_s"]
    assert lat["odds_ratio"] > 1 and lat["ci_low"] > 1  # interval excludes 1
    assert f.loc["interruptions", "ci_low"] > 1
    assert f.loc["mos", "ci_low"] < 1 < f.loc["mos", "ci_high"]  # MOS has no planted effect
    # independent fit with the formula API on the same rows
    calls, turns, quality, fb = world
    d = pd.DataFrame(
        {
            "neg": (fb.rating <= 2).astype(int),
            "e2e_s": turns.e2e_ms / 1000,
            "interruptions": calls.interruptions,
            "mos": quality.mos_reported,
        }
    )
    ref = smf.logit("neg ~ e2e_s + interruptions + mos", d).fit(disp=0)
    assert lat["coef"] == pytest.approx(ref.params["e2e_s"], rel=1e-6)
    assert lat["ci_high"] == pytest.approx(np.exp(ref.conf_int().loc["e2e_s", 1]), rel=1e-6)
    assert abs(lat["coef"] - 1.4) < 3 * ref.bse["e2e_s"]  # recovers the planted effect


def test_a_call_id_reused_weeks_earlier_does_not_mix_into_the_rated_call(con):
    world = _world()
    _load(con, world)
    before = feedback_drivers(con, T0 + timedelta(days=2), T1)
    calls, turns, quality, _ = world
    # the same call ids a month earlier (a source that reuses room names), slow and bad
    earlier = timedelta(days=30)
    old_calls = calls.assign(started_at=calls.started_at - earlier, interruptions=9)
    old_turns = turns.assign(
        turn_id="old" + turns.turn_id, started_at=turns.started_at - earlier, e2e_ms=9000.0
    )
    old_quality = quality.assign(
        sample_id="old" + quality.sample_id,
        measured_at=quality.measured_at - earlier,
        mos_reported=1.0,
    )
    _load(con, (old_calls, old_turns, old_quality, world[3].iloc[:0]))
    after = feedback_drivers(con, T0 + timedelta(days=2), T1)
    assert after.calls == before.calls > 0
    pd.testing.assert_frame_equal(after.frame, before.frame)


def test_drivers_degrade_with_too_few_rows_and_drop_empty_predictors(con):
    calls, turns, quality, fb = _world(n_calls=30)
    _load(con, (calls, turns, quality.iloc[:0], fb))
    res = feedback_drivers(con, T0, T1)
    assert res.reason and "30" in res.reason and res.frame.empty
    assert "mos" in res.dropped


def test_perfect_separation_gives_a_reason(con):
    calls, turns, quality, fb = _world(n_calls=400)
    fb["rating"] = np.where(turns.e2e_ms > 1000, 1, 5)  # latency alone splits the ratings
    _load(con, (calls, turns, quality, fb))
    res = feedback_drivers(con, T0, T1, predictors=("e2e_s",))
    assert res.reason and "separation" in res.reason


def test_csat_and_distribution_match_pandas(con):
    world = _world()
    _load(con, world)
    fb = world[3]
    res = csat(con, T0, T1, by="category").frame.set_index("category")
    for cat, g in fb.groupby("category"):
        assert res.loc[cat, "csat"] == pytest.approx((g.rating >= 4).mean())
        assert res.loc[cat, "r1"] == (g.rating == 1).sum()
        assert res.loc[cat, "csat_ci_low"] < res.loc[cat, "csat"] < res.loc[cat, "csat_ci_high"]
    assert csat(con, T0, T1, by="comment").reason


def test_sessions_and_feature_usage(con):
    world = _world()
    _load(con, world)
    calls = world[0]
    s = session_summary(con, T0, T1, by="release").frame.set_index("release")
    g = calls[calls.release == "v1"]
    assert s.loc["v1", "sessions"] == len(g)
    assert s.loc["v1", "resolved_share"] == pytest.approx((g.outcome == "resolved").mean())
    assert s.loc["v1", "median_duration_s"] == pytest.approx(g.duration_s.median())
    use = pd.DataFrame(
        {
            "usage_id": [f"u{i}" for i in range(6)],
            "used_at": [T0] * 6,
            "feature_name": ["book", "book", "book", "sms", "sms", "transfer"],
            "user_id": ["a", "a", "b", "a", "c", "c"],
            "session_id": ["s1", "s2", "s3", "s1", "s1", "s4"],
            "duration_s": [1.0, 3.0, 5.0, 2.0, 2.0, 9.0],
        }
    )
    _insert(con, "feature_usage", use)
    f = feature_usage(con, T0, T1).frame.set_index("feature_name")
    assert f.loc["book", "uses"] == 3 and f.loc["book", "users"] == 2
    assert f.loc["book", "mean_duration_s"] == 3.0
    assert f["share_of_uses"].sum() == pytest.approx(1.0)


def test_empty_window(con):
    assert session_summary(con, T0, T1).reason
    assert csat(con, T0, T1).reason
    assert feature_usage(con, T0, T1).reason
    assert feedback_drivers(con, T0, T1).reason


def test_calls_in_progress_are_counted_apart_from_outcome_shares(con):
    calls = pd.DataFrame(
        {
            "call_id": [f"c{i}" for i in range(10)],
            "started_at": [T0 + timedelta(minutes=i) for i in range(10)],
            "ended_at": [T0 + timedelta(minutes=i + 1) if i < 6 else None for i in range(10)],
            "outcome": ["resolved"] * 3 + ["escalated"] * 3 + [None] * 4,
        }
    )
    _insert(con, "calls", calls)
    row = session_summary(con, T0, T1).frame.iloc[0]
    assert (row["sessions"], row["in_progress"]) == (10, 4)
    assert row["resolved_share"] == pytest.approx(0.5)  # 3 of the 6 that ended
    assert row["other_share"] == 0
