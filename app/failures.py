"""What a user sees when a page fails: one sentence naming the page and a reference to the log
line that holds the traceback. Nothing internal reaches the browser (showErrorDetails is "none")."""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import streamlit as st

log = logging.getLogger("workbench.app")
PAGE_KEY = "_workbench_page_title"  # set by main.py for the messages of fragments


@contextmanager
def reported_failures(what: str) -> Iterator[None]:
    """Run a page (or a part of one); an exception becomes a logged traceback and a message.
    st.rerun and st.stop raise BaseExceptions, which pass through untouched."""
    try:
        yield
    except Exception:
        reference = secrets.token_hex(4)
        log.exception("%s failed (reference %s)", what, reference)
        st.error(
            f"{what} failed to load. The details are in the workbench's log (the terminal "
            f"running `make run` or `workbench up`) under reference {reference}.",
            icon=":material/error:",
        )


def fragment(func: Callable | None = None, *, run_every: str | None = None):
    """st.fragment whose failures are reported like a page's: a fragment's own reruns do not
    pass through the page's guard in main.py."""

    def wrap(body: Callable) -> Callable:
        @functools.wraps(body)
        def guarded(*args, **kwargs):
            page = st.session_state.get(PAGE_KEY, "this")
            with reported_failures(f"Part of the {page} page"):
                return body(*args, **kwargs)

        return st.fragment(guarded, run_every=run_every)

    return wrap(func) if func is not None else wrap
