"""Security detectors on planted attacks beside normal background traffic."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.stats import median_abs_deviation

from analysis.security import (
    api_usage_anomalies,
    blacklisted_ip_activity,
    credential_stuffing,
    failed_login_bursts,
    password_spraying,
    rate_limit_violations,
)

MIGRATION = Path(__file__).resolve().parents[2] / "collectors" / "migrations" / "0001_initial.sql"
T0 = datetime(2025, 6, 1)
T1 = T0 + timedelta(days=1)
BRUTE_IP, STUFF_IP, SPRAY_IP = "185.220.101.47", "45.146.164.110", "203.0.113.9"


def _auth_rows():
    rng = np.random.default_rng(0)
    rows = []
    # background: 2000 logins over the day from 300 users, 3 % typos, never 5 in 5 min
    for _ in range(2000):
        u = int(rng.integers(300))
        rows.append(
            (
                T0 + timedelta(seconds=int(rng.integers(86_000))),
                True,
                f"user_{u:04d}",
                f"10.0.{u // 200}.{u % 200}",
            )
        )
        if rng.random() < 0.03:
            rows.append(
                (
                    rows[-1][0] - timedelta(seconds=20),
                    False,
                    f"user_{u:04d}",
                    f"10.0.{u // 200}.{u % 200}",
                )
            )
    # brute force: 72 failures on one account from one IP in 6 minutes at 02:13
    bf = T0 + timedelta(hours=2, minutes=13)
    rows += [(bf + timedelta(seconds=5 * k), False, "user_0003", BRUTE_IP) for k in range(72)]
    # credential stuffing: 150 accounts x 2 attempts in 25 minutes, 2 successes
    cs = T0 + timedelta(hours=3, minutes=40)
    for k in range(150):
        for a in range(2):
            ok = k in (17, 99) and a == 1
            rows.append((cs + timedelta(seconds=5 * (2 * k + a)), ok, f"acct_{k:06d}", STUFF_IP))
    # spraying: 30 accounts once each over 50 minutes at 12:00
    sp = T0 + timedelta(hours=12)
    rows += [(sp + timedelta(seconds=100 * k), False, f"user_{k:04d}", SPRAY_IP) for k in range(30)]
    df = pd.DataFrame(rows, columns=["occurred_at", "success", "user_id", "ip"])
    df.insert(0, "event_id", [f"a{i}" for i in range(len(df))])
    df["event_type"] = "login"
    return df


@pytest.fixture()
def con():
    c = duckdb.connect()
    c.execute(MIGRATION.read_text())
    df = _auth_rows()
    c.register("a", df)
    c.execute("INSERT INTO auth_events BY NAME SELECT * FROM a")
    c.unregister("a")
    yield c
    c.close()


def test_planted_brute_force_is_found_per_account_and_per_ip(con):
    acct = failed_login_bursts(con, T0, T1, by="user_id").items
    assert [d.entity for d in acct] == ["user_0003"]
    d = acct[0]
    assert d.start == T0 + timedelta(hours=2, minutes=13)
    assert d.count == 72 and set(d.evidence["ip"]) == {BRUTE_IP}
    by_ip = {d.entity: d for d in failed_login_bursts(con, T0, T1, by="ip").items}
    assert BRUTE_IP in by_ip and by_ip[BRUTE_IP].count == 72
    assert STUFF_IP in by_ip  # many failures from one IP also trip the per-IP counter
    assert not any(e.startswith("10.0.") for e in by_ip)


def test_sliding_window_count_matches_brute_force_definition(con):
    # independent: pandas rolling count over 300 s on the planted account
    df = _auth_rows()
    f = df[(~df.success) & (df.user_id == "user_0003")].set_index("occurred_at").sort_index()
    rolling = f["event_id"].rolling("300s").count()
    first_flag = rolling[rolling >= 5].index[0]
    d = failed_login_bursts(con, T0, T1, by="user_id").items[0]
    assert d.evidence["occurred_at"].iloc[4] == first_flag


def test_credential_stuffing_found_with_successful_accounts(con):
    res = credential_stuffing(con, T0, T1)
    assert [d.entity for d in res.items] == [STUFF_IP]
    d = res.items[0]
    assert d.count == 150
    assert d.start == T0 + timedelta(hours=3, minutes=40)
    assert set(d.evidence.loc[d.evidence.success, "user_id"]) == {"acct_000017", "acct_000099"}
    assert "2 successful" in d.detail


def test_password_spraying_is_slow_many_accounts_and_not_stuffing(con):
    res = password_spraying(con, T0, T1)
    assert [d.entity for d in res.items] == [SPRAY_IP]
    assert res.items[0].count == 30


def test_whitelisted_ip_is_ignored(con):
    assert failed_login_bursts(con, T0, T1, by="ip", whitelist=(BRUTE_IP,)).items
    assert BRUTE_IP not in {
        d.entity for d in failed_login_bursts(con, T0, T1, by="ip", whitelist=(BRUTE_IP,)).items
    }


def _requests(con, rows):
    df = pd.DataFrame(rows, columns=["started_at", "route", "ip", "user_id"])
    df.insert(0, "request_id", [f"r{i}" for i in range(len(df))])
    df["method"], df["status_code"], df["duration_ms"] = "GET", 200, 10.0
    con.register("r", df)
    con.execute("INSERT INTO requests BY NAME SELECT * FROM r")
    con.unregister("r")
    return df


def test_rate_limit_fixed_windows_match_pandas(con):
    rng = np.random.default_rng(1)
    rows = [
        (T0 + timedelta(seconds=int(s)), "/api/auth/login", f"10.1.0.{rng.integers(50)}", None)
        for s in rng.integers(0, 86_000, 3000)
    ]
    # one IP hammers the login route for 3 minutes: 30 requests a minute
    rows += [
        (T0 + timedelta(hours=5, seconds=2 * k), "/api/auth/login", "198.51.100.7", None)
        for k in range(90)
    ]
    df = _requests(con, rows)
    limits = {"/api/auth/login": {"limit": 10, "window": 60}}
    res = rate_limit_violations(con, T0, T1, limits)
    w = df.assign(w=df.started_at.dt.floor("60s")).groupby(["ip", "w"]).size()
    expected_ips = {ip for (ip, _), n in w.items() if n > 10}
    assert {d.entity for d in res.items} == expected_ips == {"198.51.100.7"}
    d = res.items[0]
    assert d.count == 90 and len(d.evidence) == 3  # three consecutive windows merge
    assert rate_limit_violations(con, T0, T1, {"/api/auth/login": (1000, 60)}).reason


def test_blacklisted_ip_activity(con):
    res = blacklisted_ip_activity(con, T0, T1, blacklist=(BRUTE_IP, "192.168.1.1"))
    assert [d.entity for d in res.items] == [BRUTE_IP] and res.items[0].count == 72
    assert blacklisted_ip_activity(con, T0, T1).reason


def test_api_usage_spike_against_own_history_matches_scipy(con):
    rng = np.random.default_rng(2)
    rows = []
    start = T0 - timedelta(days=20)
    for d in range(21):
        for u in range(5):
            n = int(rng.poisson(40))
            if d == 20 and u == 3:
                n = 400  # the planted spike on the last day
            day = start + timedelta(days=d)
            rows += [
                (day + timedelta(seconds=int(s)), "/v1/x", "10.9.9.9", f"user_{u}")
                for s in rng.integers(9 * 3600, 17 * 3600, n)
            ]
    df = _requests(con, rows)
    res = api_usage_anomalies(con, T0, T1, by="user_id")
    assert [d.entity for d in res.items] == ["user_3"]
    # independent robust z with scipy for the flagged day
    daily = df[df.user_id == "user_3"].groupby(df.started_at.dt.floor("D")).size()
    past, today = daily.iloc[:-1].to_numpy(float), daily.iloc[-1]
    mad = median_abs_deviation(past[-28:], scale=1.0)
    med = np.median(past[-28:])
    z = 0.6745 * (today - med) / max(mad, 1.0, 0.6745 * np.sqrt(med))
    assert f"robust z {z:.1f}" in res.items[0].detail
    assert res.items[0].count == 400


def test_empty_inputs_give_reasons():
    c = duckdb.connect()
    c.execute(MIGRATION.read_text())
    for r in (
        failed_login_bursts(c, T0, T1),
        credential_stuffing(c, T0, T1),
        password_spraying(c, T0, T1),
        rate_limit_violations(c, T0, T1, {}),
        api_usage_anomalies(c, T0, T1),
        failed_login_bursts(c, T0, T1, by="user_agent"),
    ):
        assert r.reason and r.items == []
