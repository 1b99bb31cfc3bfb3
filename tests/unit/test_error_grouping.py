"""Error grouping: normalisation, fingerprints, new/regressed/critical groups, sampling."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from analysis.errors import (
    error_groups,
    error_rate_by_release,
    fingerprint,
    normalise_frames,
    normalise_message,
)
from tests.rollup_tables import build_rollups

MIGRATION = Path(__file__).resolve().parents[2] / "collectors" / "migrations" / "0001_initial.sql"
T0 = datetime(2025, 4, 1)

TRACE = """Traceback (most recent call last):
  File "/app/agent/turn.py", line {a}, in handle_turn
    reply = await llm.generate(prompt)
  File "/app/agent/llm.py", line {b}, in generate
    return await client.chat(prompt)
  File "/usr/local/lib/python3.11/site-packages/openai/_client.py", line 812, in chat
    raise APITimeoutError()
openai.APITimeoutError: Request timed out after {ms} ms for call {call}
"""


def test_message_normalisation_strips_variable_tokens():
    a = normalise_message(
        "Call 3f2b1c9e-1111-4a4a-9b9b-123456789abc from 10.2.3.4 failed at 2025-04-01T10:22:33Z "
        "after 1500ms (user_0042, sha deadbeef12, code 0x1F, retry 3)"
    )
    b = normalise_message(
        "Call 0a0b0c0d-2222-4b4b-8c8c-abcdefabcdef from 192.168.0.9 failed at 2024-12-31 23:59:59 "
        "after 20ms (user_7, sha 00aa11bb22, code 0xFF, retry 12)"
    )
    assert a == b
    assert "<uuid>" in a and "<ip>" in a and "<date>" in a and "<hex>" in a and "<id>" in a
    assert normalise_message(None) == ""


def test_frames_keep_app_code_and_drop_library_frames_and_line_numbers():
    t1 = TRACE.format(a=10, b=20, ms=3000, call="c1")
    t2 = TRACE.format(a=11, b=99, ms=5000, call="c2")
    assert normalise_frames(t1) == ["turn:handle_turn", "llm:generate"]
    assert fingerprint("APITimeoutError", "x", t1) == fingerprint("APITimeoutError", "y", t2)
    assert fingerprint("APITimeoutError", "x", t1) != fingerprint("KeyError", "x", t1)
    # without a trace the normalised message decides
    assert fingerprint("E", "order 12 failed", None) == fingerprint("E", "order 977 failed", "")
    assert fingerprint("E", "order 12 failed", None) != fingerprint("E", "login failed", None)


def test_recursion_collapses():
    rec = (
        "\n".join(f'  File "/app/tree.py", line {i}, in walk' for i in range(5))
        + '\n  File "/app/tree.py", line 9, in leaf'
    )
    assert normalise_frames(rec) == ["tree:walk", "tree:leaf"]


@pytest.fixture()
def con():
    c = duckdb.connect()
    c.execute(MIGRATION.read_text())
    yield c
    c.close()


def _errors(con, rows):
    df = pd.DataFrame(
        rows,
        columns=[
            "occurred_at",
            "error_type",
            "message",
            "stack_trace",
            "severity",
            "release",
            "sample_rate",
        ],
    )
    df.insert(0, "error_id", [f"e{i}" for i in range(len(df))])
    con.register("e", df)
    con.execute("INSERT INTO errors BY NAME SELECT * FROM e")
    con.unregister("e")


def _deploys(con, releases):
    df = pd.DataFrame(
        {
            "deployment_id": [f"d{i}" for i in range(len(releases))],
            "created_at": [T0 + timedelta(days=7 * i) for i in range(len(releases))],
            "release": releases,
            "status": "SUCCESS",
        }
    )
    con.register("d", df)
    con.execute("INSERT INTO deployments BY NAME SELECT * FROM d")
    con.unregister("d")


def test_new_regressed_critical_and_sample_corrected_counts(con):
    _deploys(con, ["v1", "v2", "v3"])
    day = timedelta(days=1)
    tr = TRACE.format(a=1, b=2, ms=10, call="c")
    rows = []
    # timeout: in v1 (days 0-2) and again in v3 (days 15-16): absent in v2 -> regressed
    rows += [
        (T0 + i * day, "APITimeoutError", f"timed out {i}", tr, "error", "v1", 0.1)
        for i in range(3)
    ]
    rows += [
        (T0 + (15 + i) * day, "APITimeoutError", f"timed out {i}", tr, "error", "v3", 0.1)
        for i in range(2)
    ]
    # a steady group in every release: neither new nor regressed
    rows += [
        (
            T0 + i * day,
            "KeyError",
            f"missing key slot_{i}x",
            None,
            "error",
            ["v1", "v2", "v3"][min(i // 7, 2)],
            1.0,
        )
        for i in range(17)
    ]
    # new in v3 and critical
    rows += [(T0 + 16 * day, "ValidationError", "booking 12 invalid", None, "critical", "v3", 0.5)]
    _errors(con, rows)
    res = error_groups(con, T0 + 14 * day, T0 + 18 * day, quiet_period=timedelta(days=30))
    f = res.frame.set_index("error_type")
    assert f.loc["APITimeoutError", "is_regressed"]
    assert "absent in v2" in f.loc["APITimeoutError", "regression_reason"]
    assert f.loc["APITimeoutError", "events"] == 2
    assert f.loc["APITimeoutError", "estimated_events"] == pytest.approx(20.0)
    assert not f.loc["APITimeoutError", "is_new"]
    assert not f.loc["KeyError", "is_regressed"] and not f.loc["KeyError", "is_new"]
    assert f.loc["KeyError", "events"] == 3
    v = f.loc["ValidationError"]
    assert v["is_new"] and v["is_critical"] and v["first_release"] == "v3"
    assert v["estimated_events"] == pytest.approx(2.0)
    assert res.frame.iloc[0]["error_type"] == "ValidationError"  # critical first


def test_quiet_period_regression(con):
    rows = [
        (T0, "TimeoutError", "t", None, "error", "v1", 1.0),
        (T0 + timedelta(days=10), "TimeoutError", "t", None, "error", "v1", 1.0),
    ]
    _errors(con, rows)
    res = error_groups(con, T0 + timedelta(days=9), T0 + timedelta(days=11))
    row = res.frame.iloc[0]
    assert row["is_regressed"] and "reappeared" in row["regression_reason"]
    quiet = error_groups(
        con, T0 + timedelta(days=9), T0 + timedelta(days=11), quiet_period=timedelta(days=14)
    )
    assert not quiet.frame.iloc[0]["is_regressed"]


def test_ignored_types_and_empty_window(con):
    _errors(con, [(T0, "NotFoundError", "x", None, "error", "v1", 1.0)])
    assert error_groups(con, T0, T0 + timedelta(1), ignored_types=("NotFoundError",)).reason
    assert error_groups(con, T0 + timedelta(5), T0 + timedelta(6)).reason
    assert error_rate_by_release(con, T0 + timedelta(5), T0 + timedelta(6)).reason


def test_error_rate_by_release_matches_hand_count(con):
    reqs = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(300)],
            "started_at": [T0 + timedelta(minutes=i) for i in range(300)],
            "route": "/v1/turn",
            "method": "POST",
            "status_code": [500 if i % 50 == 0 else 200 for i in range(300)],
            "duration_ms": 1.0,
            "release": ["v1"] * 200 + ["v2"] * 100,
        }
    )
    con.register("r", reqs)
    con.execute("INSERT INTO requests BY NAME SELECT * FROM r")
    _errors(
        con, [(T0 + timedelta(minutes=i), "E", "m", None, "error", "v2", 0.25) for i in range(3)]
    )
    f = error_rate_by_release(con, T0, T0 + timedelta(days=1)).frame.set_index("release")
    assert f.loc["v1", "http_5xx_rate"] == pytest.approx(4 / 200)
    assert f.loc["v2", "errors_per_request"] == pytest.approx(12 / 100)
    assert f.loc["v1", "http_5xx_ci_low"] < 0.02 < f.loc["v1", "http_5xx_ci_high"]
    # the same figures with the requests counted from the hourly rollup, as in a snapshot
    build_rollups(con, "requests")
    rolled = error_rate_by_release(con, T0, T0 + timedelta(days=1)).frame.set_index("release")
    pd.testing.assert_frame_equal(rolled, f)
    hours = error_rate_by_release(con, T0 + timedelta(hours=1), T0 + timedelta(hours=4)).frame
    counts = hours.set_index("release")["requests"]
    assert (counts["v1"], counts["v2"]) == (140, 40)  # minutes 60-199 and 200-239
