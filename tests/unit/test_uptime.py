"""Uptime, incidents (Kuma retry semantics), SLO burn rates and start-up times."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from analysis.uptime import incidents, slo_status, startup_times, uptime_by_target

MIGRATION = Path(__file__).resolve().parents[2] / "collectors" / "migrations" / "0001_initial.sql"
T0 = datetime(2025, 3, 1)


@pytest.fixture()
def con():
    c = duckdb.connect()
    c.execute(MIGRATION.read_text())
    yield c
    c.close()


def _probes(con, target: str, statuses: list[str], every_s: int = 60, error: str = "timeout"):
    df = pd.DataFrame(
        {
            "target": target,
            "checked_at": [T0 + timedelta(seconds=every_s * i) for i in range(len(statuses))],
            "kind": "http",
            "status": statuses,
            "latency_ms": 50.0,
            "status_code": [200 if s == "up" else 503 for s in statuses],
            "error": [None if s == "up" else error for s in statuses],
        }
    )
    con.register("p", df)
    con.execute("INSERT INTO probe_results SELECT * FROM p")
    con.unregister("p")


def test_planted_outage_found_with_start_and_duration(con):
    # one day of minute checks, a 25-minute outage starting at 10:00, and a one-off blip
    statuses = ["up"] * 1440
    for i in range(600, 625):
        statuses[i] = "down"
    statuses[900] = "down"
    _probes(con, "api", statuses, error="HTTP 503 from /health")
    rep = incidents(con, T0, T0 + timedelta(days=1), retries=2)
    assert len(rep.incidents) == 1  # the single failed check stays pending under 2 retries
    inc = rep.incidents[0]
    assert inc.start == T0 + timedelta(minutes=600)
    assert inc.down_at == T0 + timedelta(minutes=602)
    assert inc.end == T0 + timedelta(minutes=625)
    assert inc.duration_s == 25 * 60
    assert inc.cause == "HTTP 503 from /health"
    # with no retries the blip is an incident too
    assert len(incidents(con, T0, T0 + timedelta(days=1), retries=0).incidents) == 2


def test_ongoing_outage_has_no_end(con):
    _probes(con, "db", ["up", "up", "down", "down", "down"])
    inc = incidents(con, T0, T0 + timedelta(hours=1), retries=1).incidents
    assert len(inc) == 1 and inc[0].end is None and inc[0].duration_s == 120


def test_uptime_matches_independent_count_and_kuma_pending_rule(con):
    rng = np.random.default_rng(1)
    statuses = list(
        rng.choice(["up", "down", "pending", "maintenance"], 500, p=[0.9, 0.04, 0.03, 0.03])
    )
    _probes(con, "lk", statuses)
    s = pd.Series(statuses)
    up, down, pend = (s == "up").sum(), (s == "down").sum(), (s == "pending").sum()
    strict = uptime_by_target(con, T0, T0 + timedelta(days=1)).frame.iloc[0]
    lenient = uptime_by_target(con, T0, T0 + timedelta(days=1), pending_counts_as_up=True).frame
    assert strict["uptime"] == pytest.approx(up / (up + down + pend))
    assert lenient.iloc[0]["uptime"] == pytest.approx((up + pend) / (up + down + pend))
    assert strict["maintenance"] == (s == "maintenance").sum()


def test_uptime_reports_unknown_gap_when_checker_was_down(con):
    statuses = ["up"] * 100
    _probes(con, "x", statuses)
    con.execute(
        "DELETE FROM probe_results WHERE checked_at BETWEEN ? AND ?",
        [T0 + timedelta(minutes=20), T0 + timedelta(minutes=49)],
    )
    row = uptime_by_target(con, T0, T0 + timedelta(days=1)).frame.iloc[0]
    assert row["unknown_s"] == 31 * 60


def test_empty_window_gives_reason_not_exception(con):
    assert uptime_by_target(con, T0, T0 + timedelta(hours=1)).reason
    assert incidents(con, T0, T0 + timedelta(hours=1)).reason
    assert slo_status(con, T0).reason
    assert startup_times(con, T0, T0 + timedelta(hours=1)).reason


def _requests(con, times, codes):
    df = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(len(times))],
            "started_at": times,
            "route": "/v1/call",
            "method": "POST",
            "status_code": codes,
            "duration_ms": 100.0,
            "release": "1.0",
            "service": "agent",
            "user_id": None,
            "ip": "10.0.0.1",
            "call_id": None,
        }
    )
    con.register("r", df)
    con.execute("INSERT INTO requests SELECT * FROM r")
    con.unregister("r")


def test_slo_fast_burn_fires_and_budget_matches_hand_computation(con):
    end = T0 + timedelta(days=30)
    # a request a minute for 30 days; 20 of the last 60 fail: 1 h burn rate (20/60)/0.001
    n = 30 * 24 * 60
    times = [T0 + timedelta(minutes=i) for i in range(n)]
    codes = [200] * n
    rng = np.random.default_rng(3)
    last_hour = np.arange(n - 60, n)
    for k in rng.choice(last_hour, 20, replace=False):
        codes[k] = 500
    _requests(con, times, codes)
    st = slo_status(con, end, objective=0.999)
    assert st.total == n and st.good == n - 20
    assert st.error_budget_remaining == pytest.approx(1 - 20 / (0.001 * n))
    fast = st.windows[0]
    assert fast.long_burn == pytest.approx((20 / 60) / 0.001)
    assert fast.firing is (fast.short_burn > 14.4)
    slow = st.windows[1]
    assert slow.long_burn == pytest.approx((20 / 360) / 0.001)


def test_startup_percentiles_match_numpy(con):
    rng = np.random.default_rng(5)
    vals = rng.lognormal(7, 0.3, 40)
    df = pd.DataFrame(
        {
            "host": [f"h{i}" for i in range(40)],
            "started_at": [T0 + timedelta(hours=i) for i in range(40)],
            "startup_ms": vals,
            "init_ms": vals / 2,
            "release": "2.0",
        }
    )
    con.register("s", df)
    con.execute("INSERT INTO app_starts SELECT * FROM s")
    row = startup_times(con, T0, T0 + timedelta(days=3)).frame.iloc[0]
    assert row["startup_p95_ms"] == pytest.approx(np.percentile(vals, 95))
    assert row["init_p50_ms"] == pytest.approx(np.percentile(vals / 2, 50))


def test_by_default_incidents_follow_the_states_the_probes_recorded():
    from datetime import datetime, timedelta

    import duckdb

    from analysis.uptime import incidents
    from collectors.warehouse import migrate

    con = duckdb.connect()
    migrate(con)
    t0 = datetime(2026, 5, 1)
    statuses = [
        "up",
        "pending",
        "up",  # a blip that recovered: no incident
        "up",
        "pending",
        "pending",
        "down",
        "down",
        "up",
    ]  # an outage
    con.executemany(
        "INSERT INTO probe_results (target, checked_at, status, error) VALUES ('db', ?, ?, ?)",
        [
            (t0 + timedelta(minutes=i), s, None if s == "up" else "timeout")
            for i, s in enumerate(statuses)
        ],
    )
    found = incidents(con, t0, t0 + timedelta(hours=1))
    assert len(found.incidents) == 1
    outage = found.incidents[0]
    assert outage.start == t0 + timedelta(minutes=4)
    assert outage.down_at == t0 + timedelta(minutes=6)
    assert outage.end == t0 + timedelta(minutes=8)
    assert outage.failed_checks == 4
    # Re-applying a count of 0 retries counts the blip too.
    assert len(incidents(con, t0, t0 + timedelta(hours=1), retries=0).incidents) == 2
