"""The password login is throttled per client and per account, as Grafana and fail2ban do it
(reference/monitoring_peers.md section 4, Grafana's brute-force login protection): guessing stops
after 5 failures and the page says how long to wait."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO

MAIN = REPO / "app" / "main.py"


@pytest.fixture
def with_password(with_demo, monkeypatch):
    monkeypatch.setenv("WORKBENCH_PASSWORD", "s3cret-pass")
    st.cache_resource.clear()  # the throttle is shared by every session of the process
    yield
    st.cache_resource.clear()


def sign_in(at: AppTest, password: str) -> AppTest:
    at.text_input[0].input(password)
    at.button[0].click().run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_after_five_wrong_passwords_even_the_right_one_waits(with_password):
    at = AppTest.from_file(str(MAIN), default_timeout=60)
    at.run()
    for _ in range(5):
        sign_in(at, "wrong")
    sign_in(at, "s3cret-pass")
    assert at.title[0].value == "Voice Agent Workbench" and not at.metric  # still at the gate
    assert any("Too many failed sign-ins" in e.value and "10 minutes" in e.value for e in at.error)
    # a new session from the same client is held too
    fresh = AppTest.from_file(str(MAIN), default_timeout=60)
    fresh.run()
    sign_in(fresh, "s3cret-pass")
    assert fresh.title[0].value == "Voice Agent Workbench"
    assert any("Too many failed sign-ins" in e.value for e in fresh.error)


def test_a_few_mistakes_do_not_lock_anyone_out(with_password):
    at = AppTest.from_file(str(MAIN), default_timeout=60)
    at.run()
    for _ in range(4):
        sign_in(at, "wrong")
    assert any(e.value == "Wrong password." for e in at.error)
    sign_in(at, "s3cret-pass")
    assert at.title[0].value == "Overview"


def test_per_client_ban_is_fail2bans_default():
    """maxretry 5 within findtime 10 min bans the client for bantime 10 min."""
    from app.auth import LoginThrottle

    throttle = LoginThrottle()
    for t in (0, 60, 120, 180):
        throttle.failed("10.0.0.1", t)
    assert throttle.wait_s("10.0.0.1", 200) == 0
    throttle.failed("10.0.0.1", 240)
    assert throttle.wait_s("10.0.0.1", 240) == 600
    assert throttle.wait_s("10.0.0.1", 839) == 1  # the account's 5 min have passed, the ban not
    assert throttle.wait_s("10.0.0.1", 840) == 0
    # failures spread wider than findtime never ban
    slow = LoginThrottle()
    for t in range(0, 5 * 700, 700):
        slow.failed("10.0.0.2", t)
    assert slow.wait_s("10.0.0.2", 5 * 700) == 0


def test_per_account_lock_is_grafanas_default_across_clients():
    """5 failures within 5 minutes lock the account's sign-in, from whichever clients they came,
    until the oldest of them is 5 minutes old: spreading guesses over addresses gains nothing."""
    from app.auth import LoginThrottle

    throttle = LoginThrottle()
    for i, t in enumerate((0, 10, 20, 30, 40)):
        throttle.failed(f"10.0.1.{i}", t)
    assert throttle.wait_s("10.0.9.9", 50) == 250  # a client that never failed waits too
    assert throttle.wait_s("10.0.9.9", 300) == 0


def test_a_successful_sign_in_clears_the_clients_count():
    from app.auth import LoginThrottle

    throttle = LoginThrottle()
    for t in (0, 1, 2, 3):
        throttle.failed("10.0.0.1", t)
    throttle.succeeded("10.0.0.1")
    throttle.failed("10.0.0.1", 400)
    assert throttle.wait_s("10.0.0.1", 400) == 0
