"""The login gate. Three modes, chosen by configuration:

- OIDC (`[auth]` in .streamlit/secrets.toml): Streamlit's st.login / st.user.
- A shared password (env WORKBENCH_PASSWORD): for a small team without an identity provider.
- None: local use on 127.0.0.1 (the default), where the machine's login is the gate.

The password is throttled as Grafana and fail2ban do it, with their defaults (reference
monitoring_peers.md section 4; Grafana's pkg/login/brute_force_login_protection.go):
- per account (Grafana): 5 failed sign-ins within 5 minutes block the account's sign-in until the
  oldest of them is 5 minutes old. A shared password is one account, so this bounds guessing
  however many clients (or spoofed addresses) an attacker uses.
- per client (fail2ban's jail: maxretry 5 within findtime 10 min, bantime 10 min): a client with
  5 failures in 10 minutes waits 10 minutes, longer than the account's lock (OWASP: count per
  account and per address separately, and keep address blocks temporary).
A blocked attempt is neither checked (guessing during a block learns nothing) nor counted.
"""

from __future__ import annotations

import hmac
import math
import os
import threading
import time
from collections import deque

import streamlit as st

MAX_FAILURES = 5
ACCOUNT_WINDOW_S = 5 * 60  # Grafana: loginAttemptsWindow
CLIENT_FINDTIME_S = 10 * 60  # fail2ban: findtime
CLIENT_BANTIME_S = 10 * 60  # fail2ban: bantime


class LoginThrottle:
    """Failed sign-ins of one process (every session shares it), by account and by client.
    Times are seconds on a monotonic clock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._account: deque[float] = deque()
        self._clients: dict[str, deque[float]] = {}
        self._banned_until: dict[str, float] = {}

    def wait_s(self, client: str, now: float) -> float:
        """Seconds before `client` may try again (0: now)."""
        with self._lock:
            waits = [self._banned_until.get(client, now) - now]
            recent = [t for t in self._account if t > now - ACCOUNT_WINDOW_S]
            if len(recent) >= MAX_FAILURES:
                waits.append(recent[-MAX_FAILURES] + ACCOUNT_WINDOW_S - now)
            return max(0.0, *waits)

    def failed(self, client: str, now: float) -> None:
        with self._lock:
            self._account.append(now)
            while self._account and self._account[0] <= now - ACCOUNT_WINDOW_S:
                self._account.popleft()
            failures = self._clients.setdefault(client, deque())
            failures.append(now)
            while failures[0] <= now - CLIENT_FINDTIME_S:
                failures.popleft()
            if len(failures) >= MAX_FAILURES:
                self._banned_until[client] = now + CLIENT_BANTIME_S
                del self._clients[client]

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)


@st.cache_resource(show_spinner=False)
def _throttle() -> LoginThrottle:
    return LoginThrottle()


def _client() -> str:
    # The connection's address (None on localhost). Behind a proxy it may be the proxy's or a
    # forwarded one; the per-account limit holds whatever it is.
    address = st.context.ip_address
    return address if isinstance(address, str) and address else "localhost"


def _wait_message(wait_s: float) -> str:
    minutes = math.ceil(wait_s / 60)
    how_long = (
        f"{math.ceil(wait_s)} seconds"
        if wait_s < 60
        else f"{minutes} minute{'s' if minutes != 1 else ''}"
    )
    return f"Too many failed sign-ins: wait {how_long} before trying again."


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except (FileNotFoundError, KeyError):
        return False
    except Exception:  # noqa: BLE001 - a malformed secrets file must not open the app
        st.error("`.streamlit/secrets.toml` could not be read; fix it to enable sign-in.")
        st.stop()


def require_login() -> None:
    """Stop the page unless the visitor is signed in (when a login is configured)."""
    if _oidc_configured():
        if not st.user.is_logged_in:
            st.title("Voice Agent Workbench")
            st.button("Sign in", on_click=st.login, type="primary")
            st.stop()
        return
    password = os.environ.get("WORKBENCH_PASSWORD")
    if not password or st.session_state.get("signed_in"):
        return
    st.title("Voice Agent Workbench")
    with st.form("login"):
        attempt = st.text_input("Password", type="password")
        if st.form_submit_button("Sign in"):
            throttle, client, now = _throttle(), _client(), time.monotonic()
            wait = throttle.wait_s(client, now)
            if wait > 0:
                st.error(_wait_message(wait))
            elif hmac.compare_digest(attempt.encode(), password.encode()):
                throttle.succeeded(client)
                st.session_state["signed_in"] = True
                st.rerun()
            else:
                throttle.failed(client, now)
                wait = throttle.wait_s(client, now)
                st.error("Wrong password." + (f" {_wait_message(wait)}" if wait > 0 else ""))
    st.stop()
