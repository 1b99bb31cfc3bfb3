"""The Collectors page follows a run someone asked for through each state the service puts it
in: queued, starting (the previous run's progress is not shown as this one's), running with its
progress, then finished with the run's row counts, or failed with the reason; the recent runs
are labelled and say why a run failed."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from analysis.collector_health import run_now_status
from collectors.control import ControlStore
from collectors.snapshot import open_snapshot
from tests.conftest import REPO

PAGE = REPO / "app" / "views" / "collector_status.py"


def _said(at: AppTest) -> str:
    parts = [e.value for kind in ("error", "warning", "success", "info") for e in at.get(kind)]
    parts += [p.proto.text for p in at.get("progress")]
    return " ".join(parts).replace("\\", "")


@pytest.fixture
def page(with_demo15):
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    return at, ControlStore(with_demo15 / "control.sqlite"), with_demo15


def test_a_requested_run_is_followed_to_its_row_counts(page):
    at, control, root = page
    control.set_progress("demo", "ok", 1, rows_read=999_999)  # the previous run's record
    next(b for b in at.button if b.label == "Run now").click().run()
    assert "demo: queued, waiting for the collectors service" in _said(at)

    [(request_id, _)] = control.claim_requests()  # the service takes it
    at.run()
    assert "demo: starting" in _said(at) and "999,999" not in _said(at)

    control.set_progress("demo", "running", 7, rows_read=1_234, done=1, total=4)
    at.run()
    assert "demo: running (25%), 1,234 rows read so far." in _said(at)

    con = open_snapshot(root / "serving").con
    run_id, read, new, updated, rejected = con.execute(
        "SELECT run_id, rows_read, rows_inserted, rows_updated, rows_rejected "
        "FROM collector_runs ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    control.finish_request(request_id, "ok", None, run_id)
    at.run()
    assert not at.exception
    assert "demo: the run finished ok in" in _said(
        at
    ) and f"{read:,} rows read, {new:,} new, {updated:,} updated, {rejected:,} rejected" in _said(
        at
    )
    assert [s.value for s in at.success if "finished ok" in s.value]


def test_a_failed_run_says_why(page):
    at, control, _ = page
    next(b for b in at.button if b.label == "Run now").click().run()
    [(request_id, _)] = control.claim_requests()
    control.finish_request(request_id, "failed", "Supabase refused the connection (check the URL)")
    at.run()
    assert any(
        "the run finished failed: Supabase refused the connection" in e.value.replace("\\", "")
        for e in at.error
    )


def test_recent_runs_are_labelled_with_units(page):
    at, _, _ = page
    columns = json.loads(at.dataframe[1].proto.columns)  # the labels the table shows
    assert columns["seconds"]["label"] == "Duration (s)"
    assert columns["error"]["label"] == "Why it failed"
    assert columns["rows_inserted"]["label"] == "New rows"


def test_run_now_status_reads_each_state():
    request = {"status": "running", "claimed_at": "2026-12-03T08:00:00.000000+00:00"}
    old = {"state": "running", "started_at": "2026-12-03T07:59:00.000000+00:00", "rows_read": 5}
    assert run_now_status("x", request, old, None)[0] == "starting"  # a run begun before the ask
    run = {"rows_read": 10, "rows_inserted": 8, "rows_updated": 1, "rows_rejected": 1,
           "seconds": 2.5, "error": None}  # fmt: skip
    state, text, _ = run_now_status("x", {"status": "partial"}, None, run)
    assert state == "partial" and "2.5 s: 10 rows read, 8 new, 1 updated, 1 rejected." in text
    assert "Rejected rows below" in text
    state, text, _ = run_now_status("x", {"status": "failed", "message": None}, None,
                                    {**run, "error": "HTTP 401 from Supabase"})  # fmt: skip
    assert state == "failed" and "HTTP 401 from Supabase" in text
