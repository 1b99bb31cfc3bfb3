"""Rules read the catalogue's own numbers: a metric over a trailing window from its minute
statistics equals analysis.metrics.metric_value over that window, and a rule replayed over the
past finds at each step what checking it live at that moment finds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analysis.alerts.kinds import KINDS
from analysis.alerts.model import Context, Rule, steps
from analysis.alerts.windows import window_values
from analysis.metrics import catalogue, metric_value
from tests.demo_data import simulated_warehouse

ANCHOR = datetime(2025, 8, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def con():
    con, _ = simulated_warehouse(ANCHOR, timedelta(hours=30), rollups=False)
    yield con
    con.close()


END = ANCHOR.replace(tzinfo=None)


@pytest.mark.parametrize(
    "name", ["error_rate", "p95_e2e_latency", "mos", "calls", "interruptions_per_turn", "llm_ttft"]
)
def test_a_window_value_is_the_catalogues_value_over_that_window(con, name):
    metric = catalogue()[name]
    ctx = Context(con, END, catalogue())
    ends = steps(END - timedelta(hours=20), END, timedelta(minutes=1))
    found = {w.end: w for w in window_values(ctx, metric, ends, timedelta(minutes=15))}
    for end in ends[::97]:
        expected = metric_value(con, metric, end - timedelta(minutes=15), end, source="raw")
        if expected.value is None:
            assert end not in found
            continue
        assert found[end].n == expected.n
        assert found[end].value == pytest.approx(expected.value, rel=1e-9)


@pytest.mark.parametrize(
    "definition",
    [
        {"kind": "threshold", "metric": "p95_e2e_latency", "threshold": 1500.0, "window": 900.0,
         "min_n": 20},
        {"kind": "threshold", "metric": "error_rate", "threshold": 0.2, "window": 1800.0,
         "op": ">", "recovery": 0.1},
        {"kind": "threshold", "metric": "p95_e2e_latency", "threshold": 1.1, "window": 1800.0,
         "baseline": 10800.0, "min_n": 20, "recovery": 1.0},
        {"kind": "slo_burn", "metric": "error_rate", "objective": 0.99995, "windows": "page",
         "min_n": 10},
        {"kind": "error_group", "window": 3600.0, "min_events": 2, "novel_for": 21600.0,
         "quiet_period": 3600.0, "warmup": 0.0, "history": 86400.0 * 90},
    ],
)  # fmt: skip
def test_a_replay_finds_at_each_step_what_a_live_check_would(con, definition):
    params = {k: v for k, v in definition.items() if k != "kind"}
    rule = Rule("r", definition["kind"], params, every_s=60)
    ctx = Context(con, END, catalogue())
    start = END - timedelta(hours=12)
    timeline = KINDS[rule.kind].history(ctx, rule, start, END)
    assert timeline.readings, "the thresholds are chosen so that something is found"
    for at in steps(start, END, timedelta(minutes=1))[::23]:
        live = KINDS[rule.kind].check(Context(con, at, catalogue()), rule)
        replayed = timeline.readings.get(at, [])
        assert sorted((r.labels, r.level, r.value) for r in live) == sorted(
            (r.labels, r.level, r.value) for r in replayed
        ), at
