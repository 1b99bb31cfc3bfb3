"""The simulated agent drives the SDK as a production agent does: calls overlap, a session's
start and end rows leave in different batches, requests go through the middleware and turns
through the LiveKit hook; and a session's rows merge in the warehouse in either order."""

from __future__ import annotations

from collections import Counter

import pytest

from collectors.engine import commit_batch
from collectors.instrumentation import (
    configure_monitoring,
    flush_monitoring,
    reset_monitoring,
    user_experience_monitor,
)
from collectors.instrumentation.sinks import MemorySink
from collectors.simulated_agent import RAISE, Call, Failure, Request, Turn, Workload, play
from collectors.sources.base import Batch
from collectors.warehouse import open_warehouse


class BatchRecorder(MemorySink):
    """Remembers which write() call each row came in."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[str, list[dict]]] = []

    def write(self, table: str, rows: list[dict]) -> None:
        super().write(table, rows)
        self.batches.append((table, [dict(r) for r in rows]))


@pytest.fixture(autouse=True)
def fresh_sdk():
    reset_monitoring()
    yield
    reset_monitoring()


def _call(i: int, start: float, n_turns: int) -> Call:
    turns = [Turn(start + 0.5, llm_ttft_ms=400.0, tts_ttfb_ms=150.0)]
    turns += [
        Turn(start + 1.0 + k, 420.0, 160.0, 300.0, 250.0, 1100.0 + k, interrupted=k == 2)
        for k in range(1, n_turns)
    ]
    requests = (
        Request(start + 0.1, "POST", "/v1/calls", "/v1/calls", 201),
        Request(start + 1.5, "GET", "/v1/calls/{call_id}", f"/v1/calls/c{i}", 200),
    )
    return Call(f"c{i}", start, 20.0 - 2 * i, "resolved", tuple(turns),
                requests=requests, hook_records_call=i % 2 == 0)  # fmt: skip


def test_calls_overlap_and_each_sessions_start_and_end_leave_in_different_batches():
    # c0 starts first and ends last: calls end in another order than they start
    calls = tuple(_call(i, float(i), 6 - i) for i in range(5))
    failing = Request(2.0, "POST", "/v1/agent/turn", "/v1/agent/turn", 500,
                      failure=Failure("ToolError", "tool 7 failed", RAISE))  # fmt: skip
    sink = BatchRecorder()
    report = play(Workload(calls=calls, requests=(failing,)), sink=sink, flush_every=10_000)

    batch_of: dict[tuple[str, bool], int] = {}
    for b, (table, rows) in enumerate(sink.batches):
        for row in table == "calls" and rows or ():
            batch_of[(row["call_id"], row["ended_at"] is not None)] = b
    for call in calls:
        assert batch_of[(call.call_id, False)] < batch_of[(call.call_id, True)], call.call_id
    ends = [r["call_id"] for r in sink.table("calls") if r["ended_at"] is not None]
    assert ends == ["c4", "c3", "c2", "c1", "c0"]
    assert report.stats["invalid_calls"] == 0

    # requests went through the middleware: route templates, the raised error linked
    routes = Counter((r["route"], r["status_code"]) for r in sink.table("requests"))
    assert routes == {("/v1/calls", 201): 5, ("/v1/calls/{call_id}", 200): 5,
                      ("/v1/agent/turn", 500): 1}  # fmt: skip
    (error,) = sink.table("errors")
    assert error["error_type"] == "ToolError" and error["request_id"] is not None
    # turns through the LiveKit hook, in ms, with the planned interruptions
    turns = sink.table("voice_turns")
    assert len(turns) == sum(len(c.turns) for c in calls)
    assert {t["e2e_ms"] for t in turns if t["turn_index"] == 1} == {1101.0}
    assert sum(t["interrupted"] for t in turns) == sum(c.interruptions for c in calls)


def test_a_session_start_row_arriving_after_its_end_row_keeps_the_calls_counts(tmp_path):
    sink = MemorySink()
    configure_monitoring(None, {"sink": {"type": "none"}}, sink=sink)
    user_experience_monitor.start_session("call-9", "caller-1")
    user_experience_monitor.end_session("call-9", "resolved", turns=7, interruptions=2)
    flush_monitoring()
    start, end = sink.table("calls")
    assert (start["turns"], start["interruptions"], start["outcome"]) == (None, None, None)

    con = open_warehouse(tmp_path / "w.duckdb")
    for row in (end, start):  # delivered out of order, as a retried batch can be
        commit_batch(con, 1, "sdk", Batch("calls", [row]))
    assert con.execute("SELECT outcome, turns, interruptions, ended_at IS NOT NULL FROM calls")\
        .fetchall() == [("resolved", 7, 2, True)]  # fmt: skip
