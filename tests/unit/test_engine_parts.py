"""Rows that arrive in parts (a call's start, then its end): the warehouse keeps every known
value whatever order the parts arrive in, and never holds two rows for one call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from collectors.engine import commit_batch
from collectors.sources.base import Batch
from collectors.warehouse import open_warehouse

START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def start_part(call_id: str) -> dict:
    return {"call_id": call_id, "started_at": START.isoformat(), "release": "v1", "variant": "a"}


def end_part(call_id: str, outcome: str = "resolved") -> dict:
    return {
        **start_part(call_id),
        "ended_at": (START + timedelta(seconds=90)).isoformat(),
        "duration_s": 90.0,
        "outcome": outcome,
        "turns": 7,
        "interruptions": 2,
    }


@pytest.fixture
def con(tmp_path):
    con = open_warehouse(tmp_path / "w.duckdb")
    yield con
    con.close()


def calls(con) -> list[tuple]:
    return con.execute(
        "SELECT call_id, outcome, turns, interruptions, duration_s, release FROM calls "
        "ORDER BY call_id"
    ).fetchall()


COMPLETE = ("c1", "resolved", 7, 2, 90.0, "v1")


@pytest.mark.parametrize(
    "batches",
    [
        [[start_part("c1")], [end_part("c1")]],  # start, then end
        [[end_part("c1")], [start_part("c1")]],  # the end delivered before the start
        [[start_part("c1"), end_part("c1")]],  # both in one batch
        [[end_part("c1"), start_part("c1")]],  # both in one batch, end first
        [[end_part("c1")], [end_part("c1")], [start_part("c1")]],  # every part twice
    ],
    ids=["in-order", "end-first", "one-batch", "one-batch-end-first", "redelivered"],
)
def test_a_call_is_complete_whatever_order_its_parts_arrive_in(con, batches):
    for i, rows in enumerate(batches):
        commit_batch(con, 1, "t", Batch("calls", rows, watermark=str(i)))
    assert calls(con) == [COMPLETE]


def test_a_late_start_part_counts_as_no_change(con):
    commit_batch(con, 1, "t", Batch("calls", [end_part("c1")]))
    read, inserted, updated, rejected = commit_batch(
        con, 1, "t", Batch("calls", [start_part("c1")])
    )
    assert (read, inserted, updated, rejected) == (1, 0, 0, 0)


def test_a_known_value_can_still_change(con):
    commit_batch(con, 1, "t", Batch("calls", [end_part("c1", "escalated")]))
    commit_batch(con, 1, "t", Batch("calls", [end_part("c1", "resolved")]))
    assert calls(con) == [COMPLETE]


def test_other_tables_keep_the_last_row_as_sent(con):
    """Only tables declared as arriving in parts merge; a request row is replaced whole."""
    row = {
        "request_id": "r1",
        "started_at": START.isoformat(),
        "route": "/x",
        "method": "GET",
        "status_code": 200,
        "duration_ms": 5.0,
        "release": "v1",
    }
    commit_batch(con, 1, "t", Batch("requests", [row]))
    commit_batch(con, 1, "t", Batch("requests", [{**row, "release": None}]))
    assert con.execute("SELECT release FROM requests").fetchall() == [(None,)]
