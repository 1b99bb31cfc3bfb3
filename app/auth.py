"""The login gate. Three modes, chosen by configuration:

- OIDC (`[auth]` in .streamlit/secrets.toml): Streamlit's st.login / st.user.
- A shared password (env WORKBENCH_PASSWORD): for a small team without an identity provider.
- None: local use on 127.0.0.1 (the default), where the machine's login is the gate.
"""

from __future__ import annotations

import hmac
import os

import streamlit as st


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
            if hmac.compare_digest(attempt.encode(), password.encode()):
                st.session_state["signed_in"] = True
                st.rerun()
            st.error("Wrong password.")
    st.stop()
