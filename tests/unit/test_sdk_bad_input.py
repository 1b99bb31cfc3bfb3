"""Hostile input to every public recording call: None, NaN, infinities, negatives, 10 MB
strings, deep nesting, objects whose str() raises. Nothing raises into the agent, the call
is dropped and counted (or, for free text, cut to its documented maximum), the log line is
short, and the valid rows around it arrive."""

from __future__ import annotations

import logging
import math
import time

import pytest

from collectors.instrumentation import (
    assign,
    configure_monitoring,
    error_monitor,
    experiments,
    flush_monitoring,
    monitoring_stats,
    performance_monitor,
    reset_monitoring,
    security_monitor,
    user_experience_monitor,
)
from collectors.instrumentation.runtime import MAX
from collectors.instrumentation.sinks import MemorySink, SpoolSink
from collectors.instrumentation.spool import read_committed

HUGE = "x" * 10_000_000


class Unprintable:
    def __str__(self):
        raise RuntimeError("str() of this object fails")

    __repr__ = __str__


class UnprintableError(Exception):
    def __str__(self):
        raise RuntimeError("str() of this exception fails")


def deep(levels: int) -> dict:
    d: dict = {}
    for _ in range(levels):
        d = {"d": d}
    return d


BAD_VALUES = [None, math.nan, math.inf, -math.inf, -1, HUGE, deep(10_000), Unprintable(), 10**400]


@pytest.fixture(autouse=True)
def fresh_sdk(monkeypatch):
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    reset_monitoring()
    yield
    reset_monitoring()


def raised_exception(message="boom") -> Exception:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


# One valid call per public recording method; each argument is replaced by each bad value.
CALLS = {
    "track_request": (
        performance_monitor.track_request,
        {"endpoint": "/x", "method": "GET", "response_time": 0.1, "status_code": 200},
    ),
    "track_db_query": (performance_monitor.track_db_query, {"query": "select 1", "duration": 0.01}),
    "record_voice_turn": (
        performance_monitor.record_voice_turn,
        {"call_id": "c1", "e2e_ms": 900.0, "turn_index": 0, "started_at": 1.7e9},
    ),
    "track_error": (error_monitor.track_error, {"error_type": "E", "message": "m"}),
    "capture_exception": (
        error_monitor.capture_exception,
        {"exc": raised_exception(), "route": "/r", "method": "GET", "severity": "error"},
    ),
    "start_session": (user_experience_monitor.start_session, {"session_id": "s1"}),
    "record_feedback": (
        user_experience_monitor.record_feedback,
        {"rating": 5, "comment": "ok", "session_id": "s1"},
    ),
    "record_voice_quality": (
        user_experience_monitor.record_voice_quality,
        {"conversation_id": "c1", "latency_ms": 50.0, "packet_loss": 0.1, "mos_score": 4.2},
    ),
    "track_feature_usage": (
        user_experience_monitor.track_feature_usage,
        {"feature_name": "f", "duration": 1.0},
    ),
    "log_security_event": (
        security_monitor.log_security_event,
        {"event_type": "probe", "severity": "info", "details": {"a": 1}},
    ),
    "log_auth_event": (security_monitor.log_auth_event, {"event_type": "login", "success": True}),
    "track_api_usage": (
        security_monitor.track_api_usage,
        {"endpoint": "/x", "method": "GET", "status_code": 200, "response_time": 0.1},
    ),
    "assign": (assign, {"experiment_key": "exp", "unit_id": "u1"}),
}
CASES = [
    (name, arg, i)
    for name, (_, kwargs) in CALLS.items()
    for arg in kwargs
    for i in range(len(BAD_VALUES))
]


@pytest.mark.parametrize("name, arg, i", CASES)
def test_a_bad_argument_never_raises_and_never_logs_a_long_line(name, arg, i, caplog):
    sink = MemorySink()
    configure_monitoring(
        None,
        {"experiments": {"definitions": {"exp": {"variants": ["a", "b"]}}}},
        sink=sink,
    )
    fn, kwargs = CALLS[name]
    bad = BAD_VALUES[i]
    with caplog.at_level(logging.DEBUG, logger="collectors.instrumentation"):
        started = time.perf_counter()
        fn(**{**kwargs, arg: bad})  # must not raise
        took = time.perf_counter() - started
        assert flush_monitoring()
    assert took < 0.5  # a 10 MB value is never walked character by character
    stats = monitoring_stats()
    assert stats["balanced"], stats
    for record in caplog.records:
        assert len(record.getMessage()) < 600, record.getMessage()[:200]
    for rows in sink.rows.values():  # whatever was kept is within its limits
        for row in rows:
            for column, value in row.items():
                if isinstance(value, str):
                    assert len(value) <= MAX["stack_trace"], (column, len(value))
                if isinstance(value, float):
                    assert math.isfinite(value), (column, value)


def test_a_valid_call_of_each_kind_records_rows():
    sink = MemorySink()
    configure_monitoring(
        None, {"experiments": {"definitions": {"exp": {"variants": ["a", "b"]}}}}, sink=sink
    )
    for fn, kwargs in CALLS.values():
        fn(**kwargs)
    assert flush_monitoring()
    assert monitoring_stats()["invalid_calls"] == 0
    assert {t for t, rows in sink.rows.items() if rows} >= {
        "requests",
        "db_queries",
        "voice_turns",
        "errors",
        "calls",
        "feedback",
        "voice_quality",
        "feature_usage",
        "security_events",
        "auth_events",
        "experiment_exposures",
    }


@pytest.mark.parametrize(
    "call",
    [
        lambda: error_monitor.capture_exception(raised_exception(), route=Unprintable()),
        lambda: error_monitor.capture_exception(raised_exception(), method="GET /x"),
        lambda: error_monitor.capture_exception(raised_exception(), severity="fatal"),
        lambda: error_monitor.capture_exception(raised_exception(), call_id="c" * 600),
        lambda: error_monitor.capture_exception("not an exception"),
        lambda: user_experience_monitor.record_feedback(rating=math.nan),
        lambda: user_experience_monitor.track_feature_usage("f", duration=-1),
        lambda: performance_monitor.record_voice_turn("c", started_at=1.7e12),  # ms, not s
        lambda: security_monitor.log_auth_event("login", success=1),
        lambda: assign("exp", HUGE),
    ],
)
def test_wrong_values_are_dropped_and_counted(call):
    sink = MemorySink()
    configure_monitoring(None, sink=sink)
    call()
    assert flush_monitoring()
    stats = monitoring_stats()
    assert stats["invalid_calls"] == 1 and stats["dropped"]["invalid"] == 1
    assert not any(sink.rows.values())


def test_long_text_is_cut_to_its_documented_maximum():
    sink = MemorySink()
    configure_monitoring(None, sink=sink)
    error_monitor.capture_exception(raised_exception(HUGE), route=HUGE, method="get")
    error_monitor.track_error("E", HUGE, stack_trace=HUGE + "END", request_path=HUGE)
    user_experience_monitor.record_feedback(rating=3, comment=HUGE)
    security_monitor.log_security_event("e", details={"k": HUGE, "deep": deep(10_000)})
    assert flush_monitoring()
    assert monitoring_stats()["invalid_calls"] == 0
    captured, tracked = sink.table("errors")
    assert len(captured["route"]) == MAX["name"] and captured["method"] == "GET"
    assert len(captured["message"]) == MAX["message"]
    assert len(tracked["stack_trace"]) == MAX["stack_trace"]
    assert tracked["stack_trace"].endswith("END")  # the end of a trace is kept
    assert len(sink.table("feedback")[0]["comment"]) == MAX["message"]
    assert len(sink.table("security_events")[0]["details"]) <= MAX["details"]


def test_an_exception_whose_str_raises_is_still_recorded():
    sink = MemorySink()
    configure_monitoring(None, sink=sink)
    try:
        raise UnprintableError()
    except UnprintableError as exc:
        error_monitor.capture_exception(exc)
    assert flush_monitoring()
    (row,) = sink.table("errors")
    assert row["error_type"] == "UnprintableError"
    assert row["message"] == "<unprintable UnprintableError>"


def test_one_bad_call_never_costs_the_valid_rows_of_its_batch(tmp_path):
    """Before: a route whose str() raised made the spool's batch serialisation fail, and all
    200 valid rows of the batch were lost."""
    sink = SpoolSink(tmp_path)
    configure_monitoring(None, {"sink": {"batch_size": 500}}, sink=sink)
    for i in range(100):
        error_monitor.capture_exception(raised_exception(), route=f"/ok/{i}")
    error_monitor.capture_exception(raised_exception(), route=Unprintable())
    error_monitor.capture_exception(raised_exception(), route=HUGE)
    for i in range(100, 200):
        error_monitor.capture_exception(raised_exception(), route=f"/ok/{i}")
    assert flush_monitoring()
    sink.close()
    rows = [
        r for c in read_committed(tmp_path / "errors", None, now=time.time() + 10) for r in c.rows
    ]
    assert len(rows) == 201
    lines = [line for f in (tmp_path / "errors").glob("*.jsonl") for line in f.open()]
    assert max(len(line) for line in lines) < 20_000  # no 10 MB line
    assert monitoring_stats()["invalid_calls"] == 1


def test_experiments_with_a_wrong_key_or_unit_give_control():
    configure_monitoring(
        None,
        {"experiments": {"definitions": {"exp": {"variants": ["a", "b"]}}}},
        sink=MemorySink(),
    )
    assert assign(None, "u") == "control"
    assert assign("exp", Unprintable()) == "control"
    assert experiments.assign("exp", 123) in ("a", "b")  # an integer unit id is its digits
