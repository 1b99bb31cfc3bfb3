"""The analyses find what the demo simulator planted (collectors/demo_truth.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analysis.errors import error_groups, error_rate_by_release
from analysis.latency import stage_percentiles
from analysis.security import api_usage_anomalies, credential_stuffing, failed_login_bursts
from analysis.uptime import incidents
from analysis.ux import feedback_drivers
from tests.demo_data import simulated_warehouse

ANCHOR = datetime(2025, 8, 20, 12, 0, tzinfo=UTC)
DAYS = 14  # every planted episode sits in the last 14 days before the anchor


def naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


@pytest.fixture(scope="module")
def world():
    start = ANCHOR - timedelta(days=DAYS)
    con, truth = simulated_warehouse(ANCHOR, timedelta(days=DAYS))
    yield con, truth, naive(start), naive(ANCHOR)
    con.close()


def test_planted_outage_found_with_start_and_end(world):
    con, truth, start, end = world
    o = truth.outage
    found = incidents(con, start, end, retries=o.pending_checks, targets=[o.target]).incidents
    # probes run a few seconds past the minute (the demo's per-target offset)
    near = timedelta(minutes=1)
    match = [i for i in found if abs(i.start - naive(o.start)) < near]
    assert len(match) == 1, [(i.start, i.end) for i in found]
    assert abs(match[0].end - naive(o.end)) < near
    assert abs(match[0].down_at - naive(o.down_from)) < near
    assert match[0].duration_s == pytest.approx((o.end - o.start).total_seconds(), abs=1)


def test_brute_force_found_per_ip_and_account(world):
    con, truth, start, end = world
    bf = truth.brute_force
    by_ip = {d.entity: d for d in failed_login_bursts(con, start, end, by="ip").items}
    assert bf.ip in by_ip
    d = by_ip[bf.ip]
    assert naive(bf.start) <= d.start <= naive(bf.end) and d.count >= 0.9 * bf.attempts
    accounts = {d.entity for d in failed_login_bursts(con, start, end, by="user_id").items}
    assert bf.user_id in accounts


def test_credential_stuffing_found_with_taken_over_accounts(world):
    con, truth, start, end = world
    cs = truth.credential_stuffing
    found = {d.entity: d for d in credential_stuffing(con, start, end).items}
    assert set(found) == {cs.ip}
    d = found[cs.ip]
    assert d.count >= 0.9 * cs.accounts
    assert naive(cs.start) <= d.start < naive(cs.end)
    taken = set(d.evidence.loc[d.evidence["success"].eq(True), "user_id"])
    assert set(cs.successful_accounts) <= taken


def test_bad_release_has_higher_llm_ttft_and_error_rate(world):
    con, truth, start, end = world
    bad = truth.bad_release
    st = stage_percentiles(con, start, end, by="release")
    llm = st[st.stage == "llm_ttft_ms"].set_index("release")["p50_ms"]
    assert llm[bad.release] > 1.4 * llm[bad.previous_release]
    rates = error_rate_by_release(con, start, end).frame.set_index("release")
    assert (
        rates.loc[bad.release, "http_5xx_rate"]
        > 3 * rates.loc[bad.previous_release, "http_5xx_rate"]
    )
    groups = error_groups(con, start, end).frame
    new = groups[groups.error_type == bad.error_type]
    assert len(new) >= 1 and new.iloc[0]["first_release"] == bad.release


def test_latency_raises_odds_of_negative_feedback(world):
    con, truth, start, end = world
    res = feedback_drivers(con, start, end, predictors=("e2e_s", "interruptions"))
    assert res.reason is None
    lat = res.frame.set_index("term").loc["e2e_s"]
    assert lat["ci_low"] > 1
    # the planted per-second log-odds lies inside the reported interval (odds-ratio scale)
    import math

    assert lat["ci_low"] <= math.exp(truth.feedback.per_e2e_s) <= lat["ci_high"]


def test_api_spike_user_found_against_own_history(world):
    con, truth, start, end = world
    spike = truth.api_spike
    found = {d.entity: d for d in api_usage_anomalies(con, start + timedelta(days=10), end).items}
    assert spike.user_id in found
    d = found[spike.user_id]
    assert d.start <= naive(spike.start) + timedelta(hours=1) and d.end >= naive(spike.end)
