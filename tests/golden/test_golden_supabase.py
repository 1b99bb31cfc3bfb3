"""The production path through Supabase: the simulated agent (2,000 calls) ships through the
SDK's Supabase sink (the real supabase-py) to a PostgREST-compatible server over a real
PostgreSQL carrying `supabase/migrations`; `workbench collect supabase` reads it over REST and,
separately, over Postgres; each is published and every page function returns the truth. Then
the same truth under faults, each a test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from collectors.instrumentation.sinks import SupabaseSink
from collectors.schema import TABLES
from tests.conftest import REPO
from tests.golden.harness import (
    Transport,
    assert_agent_report,
    assert_truth,
    open_as_the_app_does,
    run_golden_path,
    workbench_cli,
)
from tests.golden.workload import golden_workload, truth_of
from tests.integration.pgcluster import fresh_database
from tests.integration.postgrest_stub import PostgrestStub

pytestmark = pytest.mark.postgres
KEY = "service-role-key"


@pytest.fixture(scope="module")
def golden():
    workload = golden_workload(seed=11, calls=2000)
    return workload, truth_of(workload)


@pytest.fixture
def supabase():
    """A fresh database with the SDK's migrations, behind the PostgREST-compatible server."""
    dsn = fresh_database()
    with PostgrestStub(dsn, KEY) as stub:
        yield dsn, stub


@pytest.fixture
def secrets(monkeypatch):
    monkeypatch.setenv("SUPABASE_API_KEY", KEY)
    for name in (
        "SUPABASE_URL",
        "SUPABASE_DB_URL",
        "WORKBENCH_CONFIG",
        "SUPABASE_SERVICE_ROLE_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def collector_config(root: Path, url: str, mode: str) -> Path:
    path = root / f"workbench-{mode}.toml"
    path.write_text(
        f'[supabase]\nurl = "{url}"\nmode = "{mode}"\nperformance = false\n\n'
        "[demo]\nenabled = false\n"
    )
    return path


def collect(data_dir: Path, config: Path) -> None:
    workbench_cli("--data-dir", str(data_dir), "--config", str(config), "collect", "supabase")


def supabase_transport(
    root: Path, stub: PostgrestStub, dsn: str, secrets, mode: str = "rest", sink=None
) -> Transport:
    """The SDK's Supabase sink to `stub`; the collectors read back over REST or Postgres."""
    if mode == "postgres":
        secrets.setenv("SUPABASE_DB_URL", dsn)
    secrets.setenv("SUPABASE_URL", stub.url)  # the SDK reads its Supabase from the environment
    config = collector_config(root, stub.url, mode)
    return Transport(
        f"supabase-{mode}",
        {"sink": {"type": "supabase", "spool_dir": str(root / "agent-spool")}},
        lambda data_dir: collect(data_dir, config),
        sink=sink,
    )


def publish_and_open(data_dir: Path):
    workbench_cli("--data-dir", str(data_dir), "publish")
    return open_as_the_app_does(data_dir)


def test_rest_and_postgres_collects_both_deliver_exactly_the_truth(
    golden, supabase, secrets, tmp_path
):
    workload, truth = golden
    dsn, stub = supabase
    observed = run_golden_path(
        workload, supabase_transport(tmp_path, stub, dsn, secrets), tmp_path / "rest"
    )
    assert_agent_report(truth, observed.report)
    assert_truth(truth, observed.con)
    # The same Supabase tables, read over a direct Postgres connection into another warehouse.
    secrets.setenv("SUPABASE_DB_URL", dsn)
    collect(tmp_path / "pg", collector_config(tmp_path, stub.url, "postgres"))
    assert_truth(truth, publish_and_open(tmp_path / "pg"))


class FaultySink(SupabaseSink):
    """The real Supabase sink with a fault switched on for part of the agent's run: after
    `start` batches, for `batches` batches, `fault(stub, on)` is applied."""

    def __init__(self, *args, stub: PostgrestStub, fault, start: int, batches: int, **kw):
        super().__init__(*args, **kw)
        self.stub, self.fault, self.start, self.batches = stub, fault, start, batches
        self.seen = 0

    def write(self, table, rows):
        if self.seen == self.start:
            self.fault(self.stub, True)
        if self.seen == self.start + self.batches:
            self.fault(self.stub, False)
        self.seen += 1
        super().write(table, rows)

    def flush(self, timeout=None):
        self.fault(self.stub, False)  # the outage ends before the agent's last flush
        super().flush(timeout=60)


def stub_set_refusing(stub: PostgrestStub, on: bool) -> None:
    stub.faults.clear()
    if on:
        for _ in range(10_000):
            stub.inject("status", code=503)


def hanging(stub: PostgrestStub, on: bool) -> None:
    """Accepts every request and answers none until the fault ends."""
    if on:
        stub.hold()
    else:
        stub.release()


@pytest.mark.parametrize("fault", [stub_set_refusing, hanging], ids=["down", "hanging"])
def test_supabase_down_or_hanging_while_the_agent_runs_loses_nothing(
    golden, supabase, secrets, tmp_path, fault
):
    """Supabase fails (503 on every request, or no answer at all) for a stretch of the run
    (40 of the agent's batches, several seconds of wall time here, a minute or more of real
    traffic); the SDK writes to its disk outbox meanwhile and replays it when Supabase is back."""
    workload, truth = golden
    dsn, stub = supabase
    sink = FaultySink(
        stub.url,
        KEY,
        tmp_path / "outbox",
        timeout=2.0,
        stub=stub,
        fault=fault,
        start=20,
        batches=40,
    )
    transport = supabase_transport(tmp_path, stub, dsn, secrets, sink=sink)
    observed = run_golden_path(workload, transport, tmp_path / "data")
    assert sink.rows_spooled > 0, "the fault never sent rows to the outbox"
    assert not sink.pending_on_disk() and sink.dropped == 0
    assert_agent_report(truth, observed.report)
    assert_truth(truth, observed.con)


class TwiceSink(SupabaseSink):
    """Every batch delivered twice, the second time after the next one (a retry that crossed
    the following batch)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.previous = None

    def write(self, table, rows):
        super().write(table, rows)
        if self.previous is not None:
            super().write(*self.previous)
        self.previous = (table, [dict(r) for r in rows])

    def flush(self, timeout=None):
        if self.previous is not None:
            super().write(*self.previous)
            self.previous = None
        super().flush(timeout)


def test_every_batch_delivered_twice_changes_nothing(golden, supabase, secrets, tmp_path):
    workload, truth = golden
    dsn, stub = supabase
    sink = TwiceSink(stub.url, KEY, tmp_path / "outbox")
    observed = run_golden_path(
        workload, supabase_transport(tmp_path, stub, dsn, secrets, sink=sink), tmp_path / "data"
    )
    assert sink.rows_sent >= 2 * observed.report.stats["tracked"] - 1000
    assert_truth(truth, observed.con)


class EndFirstSink(SupabaseSink):
    """Holds back every batch of call starts until the next batch of calls has been sent, so
    the ends of short calls reach Supabase before their starts."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.held: list[dict] = []

    def write(self, table, rows):
        if table != "calls":
            return super().write(table, rows)
        starts = [r for r in rows if r.get("ended_at") is None]
        ends = [r for r in rows if r.get("ended_at") is not None]
        super().write(table, ends)
        if self.held:
            super().write(table, self.held)
        self.held = starts

    def flush(self, timeout=None):
        if self.held:
            super().write("calls", self.held)
            self.held = []
        super().flush(timeout)


def test_a_calls_end_delivered_before_its_start_leaves_it_complete(
    golden, supabase, secrets, tmp_path
):
    workload, truth = golden
    dsn, stub = supabase
    sink = EndFirstSink(stub.url, KEY, tmp_path / "outbox")
    observed = run_golden_path(
        workload, supabase_transport(tmp_path, stub, dsn, secrets, sink=sink), tmp_path / "data"
    )
    assert_truth(truth, observed.con)


def test_a_collect_killed_mid_run_resumes_and_loses_nothing(golden, supabase, secrets, tmp_path):
    """`workbench collect` over Postgres, SIGKILLed while it commits, then run again."""
    workload, truth = golden
    dsn, stub = supabase
    transport = supabase_transport(tmp_path, stub, dsn, secrets, mode="postgres")
    from collectors.simulated_agent import play
    from tests.golden.harness import sdk_config

    play(workload, sdk_config(transport))
    config = collector_config(tmp_path, stub.url, "postgres")
    data_dir = tmp_path / "data"
    # small chunks, so the kill lands between commits of one run
    config.write_text(config.read_text().replace("mode =", "chunk_rows = 2000\nmode ="))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = 0
    for delay in (1.5, 2.5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "collectors.cli", "--data-dir", str(data_dir),
             "--config", str(config), "collect", "supabase"],
            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
    assert killed, "the collect finished before it could be killed: use more rows"
    collect(data_dir, config)  # the next run resumes from the last committed chunk
    assert_truth(truth, publish_and_open(data_dir))


def test_rows_committed_after_a_collect_passed_them_are_read_by_the_next(
    golden, supabase, secrets, tmp_path
):
    """Thirty requests rows commit late: they are absent when a collect runs (still in their
    transaction), and appear afterwards carrying the older updated_at their transaction's
    now() gave them, behind the watermark that collect left. The default overlap window reads
    them; a collector configured without one loses exactly those thirty."""
    workload, truth = golden
    dsn, stub = supabase
    transport = supabase_transport(tmp_path, stub, dsn, secrets)
    from collectors.simulated_agent import play
    from tests.golden.harness import sdk_config

    report = play(workload, sdk_config(transport))
    columns = "id, created_at, updated_at, " + ", ".join(TABLES["requests"].column_names)
    with psycopg.connect(dsn, autocommit=True) as con:
        late = con.execute(
            f"DELETE FROM requests WHERE id IN (SELECT id FROM requests "
            f"ORDER BY updated_at DESC, id DESC OFFSET 100 LIMIT 30) RETURNING {columns}"
        ).fetchall()
    with_window = collector_config(tmp_path, stub.url, "rest")
    without = tmp_path / "no-overlap.toml"
    without.write_text(with_window.read_text().replace("mode =", "overlap_s = 0\nmode ="))
    collect(tmp_path / "data", with_window)
    collect(tmp_path / "no-overlap", without)
    with psycopg.connect(dsn, autocommit=True) as con:  # the late transactions commit
        con.cursor().executemany(
            f"INSERT INTO requests ({columns}) OVERRIDING SYSTEM VALUE "
            f"VALUES ({', '.join(['%s'] * (3 + len(TABLES['requests'].column_names)))})",
            late,
        )
    collect(tmp_path / "data", with_window)
    collect(tmp_path / "no-overlap", without)
    assert_agent_report(truth, report)
    assert_truth(truth, publish_and_open(tmp_path / "data"))
    missed = publish_and_open(tmp_path / "no-overlap").execute("SELECT count(*) FROM requests")
    assert missed.fetchone()[0] == truth.requests_total - 30


def test_an_agent_killed_mid_batch_and_restarted_delivers_everything(
    golden, supabase, secrets, tmp_path
):
    """The agent runs while Supabase hangs: one batch is in flight, the rest go to its disk
    outbox. It is SIGKILLed there (its outbox files never sealed), Supabase recovers, and a
    restarted agent on the same spool folder replays what the first one left."""
    workload, truth = golden
    dsn, stub = supabase
    spool = tmp_path / "agent-spool"
    base = [sys.executable, "-m", "tests.golden.agent_process", stub.url, KEY, str(spool)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    stub.hold()
    first = subprocess.Popen(
        [*base, "--freeze-at-close"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout.readline().strip() == "frozen"
        assert list((spool / "_supabase_outbox").rglob("*.part")), "nothing left on disk"
    finally:
        first.kill()
        first.wait()
    stub.release()  # the batch in flight when the agent died reaches the database now
    second = subprocess.run([*base, "--empty"], cwd=REPO, env=env, timeout=120)
    assert second.returncode == 0
    collect(tmp_path / "data", collector_config(tmp_path, stub.url, "rest"))
    assert_truth(truth, publish_and_open(tmp_path / "data"))


def test_the_migration_is_what_the_sink_writes_into(supabase):
    dsn, _ = supabase
    with psycopg.connect(dsn) as con:
        triggers = {
            r[0]
            for r in con.execute(
                "SELECT event_object_table FROM information_schema.triggers "
                "WHERE trigger_name LIKE '%updated_at'"
            )
        }
    assert {"calls", "requests", "voice_turns", "experiment_exposures"} <= triggers
