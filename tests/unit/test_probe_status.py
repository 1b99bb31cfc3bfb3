"""Infrastructure's probe table: a probe that is up again shows no error now (the old
'timeout of 48000ms exceeded' misled), and its last failure keeps the error with its time."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from analysis.uptime import probe_status

MIGRATION = Path(__file__).resolve().parents[2] / "collectors" / "migrations" / "0001_initial.sql"


def test_a_probe_up_again_has_no_error_now_and_keeps_its_last_failure():
    con = duckdb.connect()
    con.execute(MIGRATION.read_text())
    rows = [
        ("supabase", datetime(2026, 11, 28, 10, 0), "up", 40.0, None),
        ("supabase", datetime(2026, 11, 28, 10, 1), "down", None, "timeout of 48000ms exceeded"),
        ("supabase", datetime(2026, 11, 28, 10, 2), "up", 42.0, None),
        ("livekit", datetime(2026, 11, 28, 10, 0), "up", 30.0, None),
        ("livekit", datetime(2026, 11, 28, 10, 2), "down", None, "HTTP 503"),
    ]
    con.executemany(
        "INSERT INTO probe_results (target, checked_at, kind, status, latency_ms, error) "
        "VALUES (?, ?, 'http', ?, ?, ?)",
        rows,
    )
    found = probe_status(con, datetime(2026, 11, 28), datetime(2026, 11, 29)).set_index("target")
    up = found.loc["supabase"]
    assert up["last_status"] == "up" and pd.isna(up["last_error"])
    assert up["last_failure_error"] == "timeout of 48000ms exceeded"
    assert up["last_failure_at"] == datetime(2026, 11, 28, 10, 1)
    down = found.loc["livekit"]
    assert down["last_error"] == "HTTP 503" and down["last_failure_error"] == "HTTP 503"
    assert found.loc["livekit", "up_pct"] == 50.0
