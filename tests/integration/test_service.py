"""The collectors service: schedules from the control store, run-now, crash safety, and readers
that never see half a snapshot."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from collectors.control import ControlStore
from collectors.engine import run_source
from collectors.publish import publish
from collectors.service import CollectorService, DataPaths, Job
from collectors.snapshot import open_snapshot
from collectors.warehouse import open_warehouse
from tests.conftest import REPO
from tests.integration.sources_for_tests import CountingSource, SlowSource, truth


def wait_for(predicate, timeout=20.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


@pytest.fixture
def service(tmp_path):
    source = CountingSource()
    svc = CollectorService(
        DataPaths(tmp_path),
        {"counting": Job(source, {"kind": "interval", "seconds": 3600})},
        poll_seconds=0.2,
    )
    thread = threading.Thread(target=svc.serve_forever, daemon=True)
    thread.start()
    yield svc, source
    svc.stop()
    thread.join(timeout=20)


def test_run_now_request_is_picked_up_within_seconds(service, tmp_path):
    svc, source = service
    assert wait_for(lambda: source.runs >= 1)  # the initial run at start
    control = ControlStore(tmp_path / "control.sqlite")
    request_id = control.request_run("counting")
    assert wait_for(lambda: control.request(request_id)["status"] == "ok", timeout=10)
    assert source.runs >= 2
    assert (
        open_snapshot(tmp_path / "serving")
        .con.execute("SELECT count(*) FROM requests")
        .fetchone()[0]
        >= 2
    )


def test_schedule_edit_is_picked_up(service, tmp_path):
    svc, source = service
    assert wait_for(lambda: source.runs >= 1)
    control = ControlStore(tmp_path / "control.sqlite")
    control.set_schedule("counting", "interval", every_seconds=5)
    runs_before = source.runs
    assert wait_for(lambda: source.runs >= runs_before + 2, timeout=20)
    assert svc.scheduler.get_job("counting").trigger.interval.total_seconds() == 5


def test_run_now_for_an_unknown_source_fails_with_a_sentence(service, tmp_path):
    control = ControlStore(tmp_path / "control.sqlite")
    request_id = control.request_run("nope")
    assert wait_for(lambda: control.request(request_id)["status"] == "failed", timeout=10)
    assert "No source named 'nope'" in control.request(request_id)["message"]


def test_sigkill_mid_run_then_restart_leaves_exactly_the_sources_rows(tmp_path):
    total = 30_000
    cmd = [sys.executable, "-m", "tests.integration.run_slow_service", str(tmp_path), str(total)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(cmd, cwd=REPO, env=env)
    control_path = tmp_path / "control.sqlite"
    try:
        # Kill once a few batches are committed but well before the end.
        assert wait_for(
            lambda: (
                control_path.exists()
                and (ControlStore(control_path).progress().get("slow") or {}).get("rows_read", 0)
                >= 5_000
            ),
            timeout=60,
        )
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    partial = con.execute("SELECT count(*) FROM requests").fetchone()[0]
    con.close()
    assert 0 < partial < total  # really killed mid-run

    child = subprocess.Popen(cmd, cwd=REPO, env=env)
    try:
        assert wait_for(
            lambda: (ControlStore(control_path).progress().get("slow") or {}).get("state") == "ok",
            timeout=120,
        )
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    expected = truth(total)
    con.register("expected", expected)
    got = con.execute("SELECT count(*), count(DISTINCT request_id) FROM requests").fetchone()
    differences = con.execute(
        "SELECT count(*) FROM (SELECT request_id, started_at, route, status_code, duration_ms "
        "FROM requests EXCEPT SELECT request_id, started_at::TIMESTAMP, route, status_code, "
        "duration_ms FROM expected)"
    ).fetchone()[0]
    runs = con.execute("SELECT status FROM collector_runs ORDER BY run_id").fetchall()
    assert got == (total, total)
    assert differences == 0
    assert runs[0][0] == "failed" and runs[-1][0] == "ok"  # the killed run is recorded


def test_readers_see_the_old_or_the_new_snapshot_never_a_mix(tmp_path):
    con = open_warehouse(tmp_path / "w.duckdb")
    serving = tmp_path / "serving"
    source = SlowSource(total=60_000, batch_size=5_000, pause_s=0)
    publish(con, serving)
    published_counts = {0}
    errors: list[Exception] = []
    seen: list[tuple[int, int]] = []
    done = threading.Event()

    def reader():
        while not done.is_set():
            try:
                snap = open_snapshot(serving)
                n = snap.con.execute("SELECT count(*) FROM requests").fetchone()[0]
                seen.append((snap.version, n))
                snap.con.close()
            except Exception as exc:  # noqa: BLE001 - any error is a failure of the test
                errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    marks: dict[str, str] = {}
    for batch in source.fetch(marks):
        from collectors.engine import commit_batch

        commit_batch(con, 0, "slow", batch)
        publish(con, serving)
        published_counts.add(con.execute("SELECT count(*) FROM requests").fetchone()[0])
    done.set()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert seen, "the readers never read"
    assert {n for _, n in seen} <= published_counts


def test_workbench_collect_hands_the_request_to_a_running_service(service, tmp_path):
    svc, source = service
    assert wait_for(lambda: source.runs >= 1)
    # The CLI finds the warehouse locked by the service and hands the job over.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "collectors.cli",
            "--data-dir",
            str(tmp_path),
            "collect",
            "counting",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert "asked it to run counting" in result.stderr
    assert result.stdout.strip() == "counting: ok"
    assert result.returncode == 0


def test_run_source_can_be_followed_by_an_unlocked_reader_of_the_snapshot(tmp_path):
    con = open_warehouse(tmp_path / "w.duckdb")
    run_source(con, SlowSource(total=3000, batch_size=1000, pause_s=0))
    publish(con, tmp_path / "serving")
    # The app's reader opens Parquet only, so it works while the warehouse is held open.
    assert Path(tmp_path / "w.duckdb").exists()
    snap = open_snapshot(tmp_path / "serving")
    assert snap.con.execute("SELECT count(*) FROM requests").fetchone()[0] == 3000


def test_frequent_runs_share_one_publish(tmp_path):
    svc = CollectorService(
        DataPaths(tmp_path),
        {"counting": Job(CountingSource(), {"kind": "interval", "seconds": 5})},
        min_publish_interval_s=60,
    )
    try:
        for _ in range(5):
            svc.run_job("counting")
        assert open_snapshot(tmp_path / "serving").version == 1  # only the first run published
        assert svc._publish_pending
        svc.publish()  # not yet due: stays pending
        assert open_snapshot(tmp_path / "serving").version == 1
        svc.publish(force=True)
        snap = open_snapshot(tmp_path / "serving")
        assert snap.version == 2
        assert snap.con.execute("SELECT count(*) FROM requests").fetchone()[0] == 5
    finally:
        svc.con.close()
