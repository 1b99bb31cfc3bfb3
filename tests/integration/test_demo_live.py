"""The demo's live traffic goes through the production path: simulated agents play the
simulator's rows through the real SDK into a spool folder, the spool source collects them,
and together with the directly written history nothing is lost or doubled."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from analysis import latency, ux
from collectors.engine import run_source
from collectors.publish import publish
from collectors.simulated_agent import play
from collectors.snapshot import open_snapshot
from collectors.sources.demo import DemoSimulator, DemoSource, _floor_minute
from collectors.sources.demo_live import (
    AGENT_TABLES,
    AgentRowsOnly,
    LiveDemoSource,
    _read_json,
    agent_config,
    releases_between,
    workload_from_window,
)
from collectors.sources.spool import SpoolSource
from collectors.warehouse import open_warehouse

SEED = 7


def _us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def _count(con, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture
def anchor() -> datetime:
    # In the past, so the simulator's own timestamps (probes, deployments) are not "future".
    return _floor_minute(datetime.now(UTC)) - timedelta(hours=2)


def test_live_traffic_through_the_sdk_joins_the_history_without_a_gap(tmp_path, anchor):
    """History [anchor - 1 day, anchor) written directly; the next 30 minutes played by the
    demo's agents (as fast as possible) through the SDK and the spool; the warehouse holds
    exactly the simulator's rows of the whole range."""
    con = open_warehouse(tmp_path / "wh.duckdb")
    assert run_source(con, DemoSource(SEED, 1, now=lambda: anchor)).status == "ok"
    history = {t: _count(con, t) for t in AGENT_TABLES}

    sim = DemoSimulator(SEED, anchor, 1)
    start, end = anchor.timestamp(), (anchor + timedelta(minutes=30)).timestamp()
    window = sim.window(_us(anchor), _us(anchor + timedelta(minutes=30)))
    spool = tmp_path / "spool"
    for share in releases_between(sim, start, end):
        report = play(
            workload_from_window(window, share),
            agent_config(share.release),
            sink=AgentRowsOnly(spool),
        )
        assert report.stats["invalid_calls"] == 0 and not report.stats.get("rows_lost_sink")
    time.sleep(1.1)  # the spool reader leaves files younger than a second alone
    collected = run_source(con, SpoolSource(spool))
    assert (collected.status, collected.rows_rejected) == ("ok", 0)

    whole = sim.window(_us(anchor - timedelta(days=1)), _us(anchor + timedelta(minutes=30)))
    for table in AGENT_TABLES:
        assert window[table].num_rows > 0 or table in ("auth_events", "security_events", "errors")
        assert _count(con, table) == whole[table].num_rows, table
    # the same calls and turns, with the simulator's latencies, under the SDK's ids
    live_calls = set(window["calls"]["call_id"].to_pylist())
    got = con.execute(
        "SELECT call_id, turn_index, llm_ttft_ms, e2e_ms FROM voice_turns WHERE turn_id LIKE '%:%'"
    ).fetchall()
    expected = {
        (t["call_id"], t["turn_index"]): (t["llm_ttft_ms"], t["e2e_ms"])
        for t in window["voice_turns"].to_pylist()
    }
    assert {(c, i) for c, i, _, _ in got} == set(expected)
    for c, i, llm, e2e in got:
        assert llm == pytest.approx(expected[(c, i)][0], rel=1e-12)
        assert (e2e is None) == (expected[(c, i)][1] is None)
    assert {c for c, _, _, _ in got} == live_calls
    # the live requests carry the SDK's ids, the history the simulator's
    sdk_ids = con.execute("SELECT count(*) FROM requests WHERE request_id NOT LIKE 'req_%'")
    assert sdk_ids.fetchone()[0] == window["requests"].num_rows
    assert _count(con, "requests") == history["requests"] + window["requests"].num_rows
    assert con.execute("SELECT count(*) FROM calls WHERE turns IS NULL").fetchone() == (0,)
    # each live call is in the arm the simulator planted its outcome for: the SDK's assignment
    planted = {c["call_id"]: c["variant"] for c in window["calls"].to_pylist()}
    assert sum(v == "treatment" for v in planted.values()) > 0
    arms = con.execute(
        "SELECT call_id, variant FROM calls WHERE list_contains(?, call_id)", [list(planted)]
    ).fetchall()
    diff = {c: (v, planted[c]) for c, v in arms if v != planted[c]}
    assert len(arms) == len(planted) and not diff, list(diff.items())[:5]

    # what the pages read: the published snapshot's rollups
    publish(con, tmp_path / "serving")
    snap = open_snapshot(tmp_path / "serving").con
    first, last = anchor - timedelta(days=2), datetime.now(UTC) + timedelta(hours=1)
    first, last = first.replace(tzinfo=None), last.replace(tzinfo=None)
    summary = ux.session_summary(snap, first, last).frame.iloc[0]
    assert summary["sessions"] == whole["calls"].num_rows
    stages = latency.stage_percentiles(snap, first, last).set_index("stage")
    assert stages.loc["llm_ttft_ms", "turns"] == whole["voice_turns"].num_rows


def _play_until(source: LiveDemoSource, t: datetime, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reports = [_read_json(a.progress) for a in source.agents.values()]
        if reports and all(r.get("played_until", 0) >= t.timestamp() for r in reports):
            return
        time.sleep(0.3)
    pytest.fail(f"the agents did not play up to {t} in time: {reports}")


def test_live_agents_ship_through_the_spool_and_a_restart_loses_and_doubles_nothing(
    tmp_path, anchor
):
    """The demo job as `make run` runs it, its agent processes 60x faster than real time:
    after the backfill agents play the traffic; the service stops (agents stop gracefully)
    and starts again minutes later (the gap is written directly, new agents go on); the
    spool job collects. Every call that ended is there once, with the simulator's turns,
    feature uses, requests and ratings, neither lost at either boundary nor doubled."""
    con = open_warehouse(tmp_path / "wh.duckdb")
    spool, state = tmp_path / "spool", tmp_path / "agents"
    clock = [anchor]
    first = LiveDemoSource(spool, state, seed=SEED, history_days=1, now=lambda: clock[0], speed=60)
    try:
        assert run_source(con, first).status == "ok"  # the history; then agents start
        assert first.agents, "no agent was started after the backfill"
        processes = [a.process for a in first.agents.values()]
        _play_until(first, anchor + timedelta(minutes=4))
        assert run_source(con, first).status == "ok"  # the watermark follows the agents
    finally:
        first.stop()
    assert all(p.returncode == 0 for p in processes), "an agent did not stop cleanly"

    clock[0] = anchor + timedelta(minutes=15)  # the service comes back some minutes later
    second = LiveDemoSource(spool, state, seed=SEED, history_days=1, now=lambda: clock[0], speed=60)
    try:
        assert run_source(con, second).status == "ok"  # the gap directly; new agents
        _play_until(second, anchor + timedelta(minutes=18))
        assert run_source(con, second).status == "ok"
    finally:
        second.stop()
    mark = con.execute("SELECT value FROM watermarks WHERE source = 'demo'").fetchone()[0]
    until = datetime.fromisoformat(json.loads(mark)["until"])
    assert until >= anchor + timedelta(minutes=18)

    time.sleep(1.1)
    assert run_source(con, SpoolSource(spool)).status == "ok"
    assert con.execute("SELECT count(*) FROM rejects").fetchone() == (0,)
    live = DemoSimulator(SEED, anchor, 1).window(_us(anchor), _us(until))
    ended = sorted(live["calls"]["call_id"].to_pylist())
    assert len(ended) > 5, "too few calls ended in the live minutes to mean anything"

    def per_call(sql: str) -> dict:
        return dict(con.execute(sql, [ended]).fetchall())

    expected_turns = {c["call_id"]: c["turns"] for c in live["calls"].to_pylist()}
    assert (
        per_call("SELECT call_id, turns FROM calls WHERE call_id IN (SELECT unnest(?))")
        == expected_turns
    )
    assert (
        per_call(
            "SELECT call_id, count(DISTINCT turn_index) FROM voice_turns "
            "WHERE call_id IN (SELECT unnest(?)) GROUP BY 1"
        )
        == expected_turns
    )
    doubled = con.execute(
        "SELECT count(*) - count(DISTINCT (call_id, turn_index)) FROM voice_turns"
    ).fetchone()[0]
    assert doubled == 0
    uses: dict[str, int] = {}
    for u in live["feature_usage"].to_pylist():
        uses[u["call_id"]] = uses.get(u["call_id"], 0) + 1
    got_uses = per_call(
        "SELECT call_id, count(*) FROM feature_usage WHERE call_id IN (SELECT unnest(?)) GROUP BY 1"
    )
    assert got_uses == uses
    for table, column in (("requests", "started_at"), ("feedback", "submitted_at")):
        n = con.execute(
            f"SELECT count(*) FROM {table} WHERE {column} >= ?", [anchor.replace(tzinfo=None)]
        ).fetchone()[0]
        assert n >= live[table].num_rows, table  # the agents' clock ran ahead: later rows too
    requests_in_range = con.execute(
        "SELECT count(*) FROM requests WHERE request_id LIKE 'req_%' AND started_at >= ?",
        [anchor.replace(tzinfo=None)],
    ).fetchone()[0]
    assert requests_in_range > 0, "the restart's gap was written directly"


def test_agents_stop_when_the_demo_job_stops_running_and_the_next_run_takes_over(tmp_path, anchor):
    """Pausing the demo job (no run for ten minutes) stops its agents; the next run writes
    the gap directly and starts new agents, without doubling a turn."""
    con = open_warehouse(tmp_path / "wh.duckdb")
    spool, state = tmp_path / "spool", tmp_path / "agents"
    clock = [anchor]
    source = LiveDemoSource(spool, state, seed=SEED, history_days=1, now=lambda: clock[0], speed=60)
    try:
        assert run_source(con, source).status == "ok"
        paused = [a.process for a in source.agents.values()]
        _play_until(source, anchor + timedelta(minutes=2))
        os.utime(state / "heartbeat", (0, 0))  # as if the job had not run for ages
        for process in paused:
            process.wait(timeout=30)
        assert all(p.returncode == 0 for p in paused)
        assert all(not _read_json(a.progress)["done"] for a in source.agents.values())
        clock[0] = anchor + timedelta(minutes=10)
        assert run_source(con, source).status == "ok"  # the gap directly, new agents
        assert source.agents and all(a.process.poll() is None for a in source.agents.values())
        _play_until(source, anchor + timedelta(minutes=12))
    finally:
        source.stop()
    time.sleep(1.1)
    assert run_source(con, SpoolSource(spool)).status == "ok"
    doubled = con.execute(
        "SELECT count(*) - count(DISTINCT (call_id, turn_index)) FROM voice_turns"
    ).fetchone()[0]
    assert doubled == 0
    assert con.execute("SELECT count(*) FROM rejects").fetchone() == (0,)
