"""The golden path: a simulated agent -> the SDK -> a transport -> `workbench collect` ->
publish -> the snapshot the app opens -> the functions the pages call, compared with the truth.

A transport is the part that differs between deployments: what the SDK ships to (its sink
configuration, or a sink object) and how the collectors read it back (a `workbench collect`
run into the data folder). `spool_transport` is the local spool; a Supabase transport gives
the SDK a Supabase sink and collects over REST or Postgres, and the rest is the same:

    observed = run_golden_path(workload, supabase_transport(...), tmp_path / "data")
    assert_agent_report(truth, observed.report)
    assert_truth(truth, observed.con)

The agent runs in the test's process (configure, play, shut down, reset), so the SDK reads
SUPABASE_URL / SUPABASE_API_KEY from os.environ (monkeypatch them) unless the transport hands
it a sink object. Experiments come from the config (`source: local`) whatever the transport.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from analysis import conversations, errors, latency, overview, security, ux
from analysis import experiments as ex
from analysis.metrics import metric_registry
from analysis.sketch import ALPHA
from collectors.cli import main as workbench
from collectors.simulated_agent import AgentReport, Workload, play
from tests.golden.workload import (
    EXPERIMENT,
    OUTCOMES,
    STAGES,
    UNMATCHED,
    VARIANTS,
    Truth,
)

RELEASE = "golden-1.0.0"
SERVICE = "voice-agent"


@dataclass
class Transport:
    """`sdk_config` is merged into the SDK's configuration (its `sink` section, say); `sink`,
    if given, is passed to configure_monitoring as the sink object; `collect(data_dir)` runs
    the collectors into `data_dir` and fails the test if they fail. `settle_s` is how long
    to wait between the agent's shutdown and collecting."""

    name: str
    sdk_config: dict[str, Any]
    collect: Callable[[Path], None]
    sink: Any = None
    settle_s: float = 0.0


@dataclass
class Observed:
    con: duckdb.DuckDBPyConnection  # the published snapshot, opened as the app opens it
    report: AgentReport
    seconds: dict[str, float] = field(default_factory=dict)  # agent, collect, publish


def workbench_cli(*args: str) -> None:
    """Run `workbench ARGS...` (the console script's entry point) and require success."""
    code = workbench(list(args))
    assert code == 0, f"workbench {' '.join(args)} exited with {code}"


def spool_transport(root: Path) -> Transport:
    """The SDK's spool sink into `root/spool`; `workbench collect spool` with a
    workbench.toml naming that folder (and the demo off)."""
    spool = root / "spool"
    config = root / "workbench.toml"
    config.write_text(f'[spool]\ndirectory = "{spool.as_posix()}"\n\n[demo]\nenabled = false\n')

    def collect(data_dir: Path) -> None:
        workbench_cli("--data-dir", str(data_dir), "--config", str(config), "collect", "spool")

    return Transport(
        "spool",
        # Small files, so calls' start and end rows also land in different collector batches.
        {"sink": {"type": "spool", "spool_dir": str(spool), "spool_file_bytes": 256 << 10}},
        collect,
        settle_s=1.1,  # the spool reader leaves files younger than a second to their writer
    )


def sdk_config(transport: Transport) -> dict[str, Any]:
    """The agent's monitoring config: queues large enough for a workload played as fast as
    possible (a real agent's events are spread over hours), experiments from the config."""
    sink = {"max_queue": 1_000_000, "max_outbox": 1_000_000, "batch_size": 500}
    config: dict[str, Any] = {
        "release": RELEASE,
        "service": SERVICE,
        "experiments": {"source": "local"},
        "sink": sink,
    }
    for key, value in transport.sdk_config.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


@contextmanager
def _data_dir_env(data_dir: Path) -> Iterator[None]:
    old = os.environ.get("WORKBENCH_DATA_DIR")
    os.environ["WORKBENCH_DATA_DIR"] = str(data_dir)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("WORKBENCH_DATA_DIR", None)
        else:
            os.environ["WORKBENCH_DATA_DIR"] = old


def open_as_the_app_does(data_dir: Path) -> duckdb.DuckDBPyConnection:
    """A cursor on the latest published snapshot, through the app's own data layer."""
    from app import data

    with _data_dir_env(data_dir):
        return data.cursor()


def run_golden_path(workload: Workload, transport: Transport, data_dir: Path) -> Observed:
    """Play `workload` through the SDK into `transport`, collect, publish, open the snapshot."""
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    report = play(workload, sdk_config(transport), sink=transport.sink)
    seconds["agent"] = time.perf_counter() - t0
    time.sleep(transport.settle_s)
    t0 = time.perf_counter()
    transport.collect(data_dir)
    seconds["collect"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    workbench_cli("--data-dir", str(data_dir), "publish")
    seconds["publish"] = time.perf_counter() - t0
    return Observed(open_as_the_app_does(data_dir), report, seconds)


# ---------------------------------------------------------------------------------- checks


def assert_agent_report(truth: Truth, report: AgentReport) -> None:
    """The SDK took every event (nothing dropped, nothing refused) and assigned the variants
    GrowthBook's hash gives; the app answered the planned statuses."""
    stats = report.stats
    for counter in ("dropped_queue", "dropped_outbox", "rows_lost_sink", "processing_errors"):
        assert stats.get(counter, 0) == 0, (counter, stats)
    assert stats["invalid_calls"] == 0, stats
    assert stats["sink_dropped"] == 0, stats
    assert report.assigned == truth.variants
    assert report.statuses == truth.statuses


def data_window(con: duckdb.DuckDBPyConnection) -> tuple[datetime, datetime]:
    """[first event - 1 h, last event + 1 h): the whole run, whatever clock it ran on."""
    first, last = con.execute(
        "SELECT min(t), max(t) FROM (SELECT started_at AS t FROM requests "
        "UNION ALL SELECT started_at FROM calls UNION ALL SELECT submitted_at FROM feedback "
        "UNION ALL SELECT occurred_at FROM auth_events)"
    ).fetchone()
    assert first is not None, "the snapshot holds no data"
    return first - timedelta(hours=1), last + timedelta(hours=1)


def sketch_quantile_matches(estimate: float, values: list[float], q: float) -> bool:
    """The sketch reads the bucket of the value of 0-based rank floor(q (n - 1)) (DDSketch's
    rule, analysis.sketch), so it is within ALPHA of numpy's 'lower' percentile."""
    exact = float(np.percentile(np.asarray(values), q * 100, method="lower"))
    return abs(estimate - exact) <= ALPHA * exact * (1 + 1e-9)


def assert_truth(truth: Truth, con: duckdb.DuckDBPyConnection) -> None:
    """Every page function the workbench uses returns the truth: counts and rates exactly,
    percentiles within the sketch's relative error."""
    start, end = data_window(con)
    _assert_rows_whole(truth, con)
    _assert_values_unchanged(truth, con)
    _assert_overview(truth, con, start, end)
    _assert_conversations(truth, con, start, end)
    _assert_latency(truth, con, start, end)
    _assert_errors(truth, con, start, end)
    _assert_feedback(truth, con, start, end)
    _assert_features(truth, con, start, end)
    _assert_experiment(truth, con)
    _assert_security(truth, con, start, end)


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple:
    return con.execute(sql).fetchone()


def _assert_rows_whole(truth: Truth, con: duckdb.DuckDBPyConnection) -> None:
    # SDK-generated ids survive, unique; no row was refused on the way.
    requests = _one(con, "SELECT count(*), count(DISTINCT request_id) FROM requests")
    assert requests == (truth.requests_total,) * 2, f"requests (rows, ids): {requests}"
    n_fb = sum(truth.ratings.values())
    feedback = _one(con, "SELECT count(*), count(DISTINCT feedback_id) FROM feedback")
    assert feedback == (n_fb, n_fb), f"feedback (rows, ids): {feedback}"
    rejects = con.execute("SELECT reason, row_json FROM rejects LIMIT 3").fetchall()
    assert not rejects, f"rows were rejected: {rejects}"
    calls = _one(con, "SELECT count(*), count(ended_at), count(turns) FROM calls")
    assert calls == (truth.calls,) * 3, f"calls (rows, ended, with turns): {calls}"
    # Every run succeeded, except runs a test killed (recorded as interrupted at the next start).
    runs = con.execute("SELECT status, rows_rejected, error FROM collector_runs").fetchall()
    assert runs and all(
        (status, rejected) == ("ok", 0) or (status == "failed" and "interrupted" in error)
        for status, rejected, error in runs
    ), runs


def _close(a: Any, b: Any) -> bool:
    """Equal, or both missing, or numbers equal to 1e-12 relative (milliseconds travel as
    seconds through the LiveKit events and back)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= 1e-12 * max(abs(a), abs(b))
    return a == b


def _assert_values_unchanged(truth: Truth, con: duckdb.DuckDBPyConnection) -> None:
    turns = con.execute(
        f"SELECT call_id, turn_index, {', '.join(STAGES)}, interrupted, llm_prompt_tokens, "
        "llm_completion_tokens, tts_characters FROM voice_turns"
    ).fetchall()
    got = {(r[0], r[1]): r[2:] for r in turns}
    assert set(got) == set(truth.turn_rows)
    changed = [k for k, v in truth.turn_rows.items() if not all(map(_close, got[k], v))]
    assert not changed, f"{len(changed)} turns changed, e.g. {changed[0]}: {got[changed[0]]}"
    quality = con.execute(
        "SELECT call_id, latency_ms, jitter_ms, packet_loss_pct, mos_reported FROM voice_quality"
    ).fetchall()
    got_q = {r[0]: r[1:] for r in quality}
    assert got_q.keys() == truth.quality_rows.keys()
    assert all(all(map(_close, got_q[k], v)) for k, v in truth.quality_rows.items())


def _assert_overview(truth: Truth, con, start: datetime, end: datetime) -> None:
    kpis = {k.key: k for k in overview.kpis(con, start, end)}
    n_5xx = sum(truth.requests_5xx.values())
    assert kpis["error_rate"].value == pytest.approx(
        100.0 * n_5xx / truth.requests_total, rel=1e-12
    )
    ratings = sum(truth.ratings.values())
    satisfied = truth.ratings[4] + truth.ratings[5]
    assert kpis["csat"].value == pytest.approx(100.0 * satisfied / ratings, rel=1e-12)
    resolved = truth.outcomes["resolved"] / truth.calls
    assert kpis["resolved"].value == pytest.approx(100.0 * resolved, rel=1e-12)
    assert kpis["mos"].value == pytest.approx(truth.mos_sum / truth.quality_n, rel=1e-12)
    assert sketch_quantile_matches(kpis["p95_e2e"].value, truth.stage_values["e2e_ms"], 0.95)


def _assert_conversations(truth: Truth, con, start: datetime, end: datetime) -> None:
    summary = ux.session_summary(con, start, end)
    assert summary.reason is None
    row = summary.frame.iloc[0]
    assert row["sessions"] == truth.calls
    assert row["mean_turns"] == pytest.approx(truth.turns / truth.calls, rel=1e-12)
    assert row["mean_interruptions"] == pytest.approx(truth.interruptions / truth.calls, rel=1e-12)
    for outcome in OUTCOMES:
        share = truth.outcomes[outcome] / truth.calls
        assert row[f"{outcome}_share"] == pytest.approx(share, rel=1e-12), outcome
    assert row["other_share"] == 0
    by_variant = ux.session_summary(con, start, end, by="variant").frame.set_index("variant")
    for variant in VARIANTS:
        assert by_variant.loc[variant, "sessions"] == truth.calls_by_variant[variant]
    by_region = ux.session_summary(con, start, end, by="region").frame
    assert dict(zip(by_region["region"], by_region["sessions"], strict=True)) == dict(
        truth.calls_by_region
    )
    hourly = conversations.outcomes_hourly(con, start, end)
    assert int(hourly["calls"].sum()) == truth.calls
    assert {o: int(hourly[o].sum()) for o in OUTCOMES} == {o: truth.outcomes[o] for o in OUTCOMES}
    turns = conversations.turns_hourly(con, start, end)
    assert int(turns["turns"].sum()) == truth.turns
    assert int(turns["interrupted"].sum()) == truth.interruptions


def _assert_latency(truth: Truth, con, start: datetime, end: datetime) -> None:
    qs = (0.5, 0.9, 0.95, 0.99)
    table = latency.stage_percentiles(con, start, end, qs).set_index("stage")
    assert list(table.index) == list(STAGES)
    for stage in STAGES:
        values = truth.stage_values[stage]
        assert table.loc[stage, "turns"] == len(values), stage
        for q in qs:
            estimate = table.loc[stage, f"p{round(q * 100)}_ms"]
            assert sketch_quantile_matches(estimate, values, q), (stage, q, estimate)
    routes = latency.route_percentiles(con, start, end)
    got = {(r.route, r.method): r for r in routes.itertuples()}
    assert set(got) == set(truth.requests)
    for key, n in truth.requests.items():
        r = got[key]
        assert r.requests == n, key
        assert r.error_5xx_pct == pytest.approx(100.0 * truth.requests_5xx[key] / n, abs=1e-9), key
        assert r.error_4xx_pct == pytest.approx(100.0 * truth.requests_4xx[key] / n, abs=1e-9), key
    assert (UNMATCHED, "GET") in got  # the scanner's paths are never stored


def _assert_errors(truth: Truth, con, start: datetime, end: datetime) -> None:
    hourly = errors.errors_hourly(con, start, end)
    assert int(hourly["events"].sum()) == sum(truth.errors.values())
    groups = errors.error_groups(con, start, end)
    assert groups.reason is None
    by_type = groups.frame.groupby("error_type")["events"].agg(["sum", "count"])
    assert by_type["sum"].to_dict() == dict(truth.errors)
    assert (by_type["count"] == 1).all(), "each error type is one group"
    assert int(groups.frame["is_critical"].sum()) == (1 if truth.critical_errors else 0)
    rates = errors.error_rate_by_release(con, start, end).frame.set_index("release")
    assert list(rates.index) == [RELEASE]
    row = rates.loc[RELEASE]
    assert row["requests"] == truth.requests_total
    assert row["http_5xx"] == sum(truth.requests_5xx.values())
    assert row["errors"] == sum(truth.errors.values())


def _assert_feedback(truth: Truth, con, start: datetime, end: datetime) -> None:
    overall = ux.csat(con, start, end, by=None)
    row = overall.frame.iloc[0]
    ratings = sum(truth.ratings.values())
    assert row["ratings"] == ratings
    assert row["satisfied"] == truth.ratings[4] + truth.ratings[5]
    assert [row[f"r{k}"] for k in range(1, 6)] == [truth.ratings[k] for k in range(1, 6)]
    total = sum(k * n for k, n in truth.ratings.items())
    assert row["mean_rating"] == pytest.approx(total / ratings, rel=1e-12)
    by_category = ux.csat(con, start, end, by="category").frame.set_index("category")
    for category, counts in truth.ratings_by_category.items():
        assert [by_category.loc[category, f"r{k}"] for k in range(1, 6)] == [
            counts[k] for k in range(1, 6)
        ], category
    daily = ux.csat_daily(con, start, end)
    assert int(daily["ratings"].sum()) == ratings


def _assert_features(truth: Truth, con, start: datetime, end: datetime) -> None:
    usage = ux.feature_usage(con, start, end).frame.set_index("feature_name")
    assert set(usage.index) == set(truth.features)
    for name, f in truth.features.items():
        assert usage.loc[name, "uses"] == f["uses"], name
        assert usage.loc[name, "users"] == len(f["users"]), name
        assert usage.loc[name, "sessions"] == len(f["sessions"]), name


def _assert_experiment(truth: Truth, con) -> None:
    found = {e["key"]: e for e in ex.discovered_experiments(con)}
    assert found[EXPERIMENT]["units"] == dict(truth.calls_by_variant)
    definition = ex.ExperimentDefinition(EXPERIMENT, control="control", cuped=False)
    result = ex.evaluate_experiment(
        con, definition, [metric_registry()["resolved_rate"]], include_daily=False
    )
    assert result.computable, result.reason
    assert result.units == dict(truth.calls_by_variant)
    arm = result.result("resolved_rate", "treatment")
    for variant, stat in (("control", arm.control), ("treatment", arm.treatment)):
        assert (stat.n, stat.sum) == (
            truth.calls_by_variant[variant],
            truth.resolved_by_variant[variant],
        ), variant


def _assert_security(truth: Truth, con, start: datetime, end: datetime) -> None:
    for by, expected in (
        ("ip", truth.failed_login_bursts_by_ip),
        ("user_id", truth.failed_login_bursts_by_user),
    ):
        found = security.failed_login_bursts(con, start, end, by=by)
        assert {d.entity: d.count for d in found.items} == expected, by
    attempts = security.auth_failures_hourly(con, start, end)
    assert int(attempts["attempts"].sum()) == truth.login_attempts
    assert int(attempts["failed"].sum()) == truth.login_failures
    events = security.security_event_summary(con, start, end)
    assert dict(zip(events["event_type"], events["events"], strict=True)) == dict(
        truth.security_events
    )
