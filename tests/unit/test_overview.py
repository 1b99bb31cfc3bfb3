"""Overview KPIs read from rollups agree with the same numbers computed on raw rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analysis.overview import data_end, deployments, hourly_trend, kpis
from collectors.engine import run_source
from collectors.publish import publish
from collectors.snapshot import open_snapshot
from collectors.sources.base import Batch
from collectors.warehouse import open_warehouse

END = datetime(2026, 3, 1, tzinfo=UTC)
rng = np.random.default_rng(3)


def ts(hours_ago: float) -> str:
    return (END - timedelta(hours=hours_ago)).isoformat()


def frames() -> dict[str, list[dict]]:
    n = 400
    ago = rng.uniform(0.01, 47.9, n)  # two days: the current and the previous 24 hours
    return {
        "probe_results": [
            {"target": "supabase", "checked_at": ts(h / 10), "status": s, "latency_ms": 20.0}
            for h, s in enumerate(
                ["up"] * 420 + ["pending"] * 10 + ["down"] * 20 + ["maintenance"] * 30
            )
        ],
        "requests": [
            {
                "request_id": f"r{i}",
                "started_at": ts(ago[i]),
                "route": "/v1/agent/turn",
                "method": "POST",
                "status_code": 503 if i % 25 == 0 else 200,
                "duration_ms": 100.0,
            }
            for i in range(n)
        ],
        "voice_turns": [
            {
                "turn_id": f"t{i}",
                "call_id": f"c{i}",
                "started_at": ts(ago[i]),
                "e2e_ms": float(rng.lognormal(7, 0.4)),
            }
            for i in range(n)
        ],
        "voice_quality": [
            {
                "sample_id": f"q{i}",
                "measured_at": ts(ago[i]),
                "mos_reported": float(rng.uniform(3, 4.5)),
            }
            for i in range(n)
        ],
        "feedback": [
            {"feedback_id": f"f{i}", "submitted_at": ts(ago[i]), "rating": int(rng.integers(1, 6))}
            for i in range(n)
        ],
        "calls": [
            {
                "call_id": f"c{i}",
                "started_at": ts(ago[i]),
                # every fifth call is still in progress: the SDK records a call's start first
                "outcome": None if i % 5 == 0 else ["resolved", "escalated", "abandoned"][i % 3],
            }
            for i in range(n)
        ],
        "deployments": [
            {"deployment_id": "d1", "created_at": ts(5), "release": "v2", "is_rollback": False}
        ],
    }


class Fixed:
    name = "fixed"

    def __init__(self, data):
        self.data = data

    def fetch(self, marks):
        for table, rows in self.data.items():
            yield Batch(table, rows)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    root = tmp_path_factory.mktemp("overview")
    data = frames()
    con = open_warehouse(root / "w.duckdb")
    assert run_source(con, Fixed(data)).status == "ok"
    publish(con, root / "serving")
    raw = {name: pd.DataFrame(rows) for name, rows in data.items()}
    return open_snapshot(root / "serving").con, raw


def window(raw: pd.DataFrame, column: str, start: datetime, end: datetime) -> pd.DataFrame:
    t = pd.to_datetime(raw[column])
    return raw[(t >= start) & (t < end)]


def test_kpis_match_raw_rows_for_the_period_and_the_one_before(snapshot):
    con, raw = snapshot
    end = data_end(con)
    start = end - timedelta(days=1)
    values = {k.key: k for k in kpis(con, start, end.replace(tzinfo=None))}
    s, e = start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)

    probes = window(raw["probe_results"], "checked_at", s, e)
    counted = probes[probes.status != "maintenance"]
    assert values["uptime"].value == pytest.approx(100 * (counted.status == "up").mean())

    req = window(raw["requests"], "started_at", s, e)
    assert values["error_rate"].value == pytest.approx(100 * (req.status_code >= 500).mean())

    q = window(raw["voice_quality"], "measured_at", s, e)
    assert values["mos"].value == pytest.approx(q.mos_reported.mean())

    fb = window(raw["feedback"], "submitted_at", s, e)
    assert values["csat"].value == pytest.approx(100 * (fb.rating >= 4).mean())

    calls = window(raw["calls"], "started_at", s, e)
    ended = calls[calls.outcome.notna()]  # a call in progress has no outcome yet
    assert len(ended) < len(calls)
    assert values["resolved"].value == pytest.approx(100 * (ended.outcome == "resolved").mean())

    turns = window(raw["voice_turns"], "started_at", s, e)
    exact = np.quantile(turns.e2e_ms, 0.95, method="lower")
    assert values["p95_e2e"].value == pytest.approx(exact, rel=0.02)  # DDSketch: 1 % + rank

    before = window(raw["requests"], "started_at", s - timedelta(days=1), s)
    assert values["error_rate"].previous == pytest.approx(100 * (before.status_code >= 500).mean())
    assert values["error_rate"].change == pytest.approx(
        values["error_rate"].value - values["error_rate"].previous
    )


def test_an_empty_period_has_no_values_and_says_why(snapshot):
    con, _ = snapshot
    far = datetime(2020, 1, 1)
    for kpi in kpis(con, far, far + timedelta(days=1)):
        assert kpi.value is None and kpi.reason == "no data in this period"


def test_trend_covers_complete_hours_and_deployments_the_window(snapshot):
    con, raw = snapshot
    end = data_end(con)
    trend = hourly_trend(con, end - timedelta(days=2), end)
    started = pd.to_datetime(raw["calls"]["started_at"])
    complete = started < started.max().floor("h")  # the hour still being collected is left out
    assert trend["calls"].sum() == complete.sum() < 400
    assert list(deployments(con, end - timedelta(days=1), end)["release"]) == ["v2"]
