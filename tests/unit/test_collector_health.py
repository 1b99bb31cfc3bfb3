"""Collector health for the Operations page."""

from datetime import datetime

import duckdb

from analysis.collector_health import recent_rejects, recent_runs, source_status
from collectors.warehouse import migrate


def warehouse():
    con = duckdb.connect()
    migrate(con)
    runs = [
        (1, "demo", "2026-01-01 00:00", "2026-01-01 00:01", "ok", 10, 10, 0, 0, 1, None),
        (2, "demo", "2026-01-01 00:10", "2026-01-01 00:11", "partial", 5, 4, 0, 1, 1, None),
        (
            3,
            "supabase",
            "2026-01-01 00:05",
            "2026-01-01 00:05",
            "failed",
            0,
            0,
            0,
            0,
            4,
            "SUPABASE_API_KEY was rejected (401): put the service_role key in SUPABASE_API_KEY.",
        ),
    ]
    con.executemany("INSERT INTO collector_runs VALUES (?,?,?,?,?,?,?,?,?,?,?)", runs)
    return con


def test_every_configured_source_is_listed_with_status_last_success_and_lag():
    status = source_status(warehouse(), datetime(2026, 1, 1, 1, 0), ["demo", "supabase", "probes"])
    rows = status.set_index("source")
    assert list(rows.index) == ["demo", "probes", "supabase"]
    assert rows.loc["demo", "last_status"] == "partial"
    assert rows.loc["demo", "lag_minutes"] == 49.0  # last success ended 00:11
    assert rows.loc["supabase", "last_status"] == "failed"
    assert "SUPABASE_API_KEY" in rows.loc["supabase", "last_error"]
    assert (
        rows.loc["supabase", "last_success"] is None
        or str(rows.loc["supabase", "last_success"]) == "NaT"
    )
    assert str(rows.loc["probes", "last_run"]) == "NaT"  # configured, never run yet


def test_recent_runs_newest_first_with_duration():
    runs = recent_runs(warehouse(), limit=2)
    assert list(runs["run_id"]) == [3, 2]
    assert list(runs["seconds"]) == [0.0, 60.0]


def test_recent_rejects_empty_is_an_empty_table():
    assert recent_rejects(warehouse()).empty
