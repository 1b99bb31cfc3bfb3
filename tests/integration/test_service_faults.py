"""The collectors service under faults: a source that hangs, floods of "run now" requests,
SIGTERM while a job hangs, a control store corrupted while running, a failing publish, and
requests left behind by a killed service."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import duckdb

import collectors.service as service_module
from collectors.control import ControlStore
from collectors.service import CollectorService, DataPaths, Job
from collectors.snapshot import open_snapshot
from tests.conftest import REPO
from tests.integration.sources_for_tests import CountingSource, HangingSource

HOURLY = {"kind": "interval", "seconds": 3600}


def wait_for(predicate, timeout=20.0, interval=0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


class Running:
    """A service serving in a thread, stopped (and its hanging sources released) at the end."""

    def __init__(self, tmp_path, jobs: dict[str, Job], **kwargs):
        self.service = CollectorService(DataPaths(tmp_path), jobs, poll_seconds=0.2, **kwargs)
        self.control = ControlStore(tmp_path / "control.sqlite")
        self.thread = threading.Thread(target=self.service.serve_forever, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for job in self.service.jobs.values():
            if isinstance(job.source, HangingSource):
                job.source.release.set()
        self.service.stop()
        self.thread.join(timeout=30)

    def status(self, request_id: int) -> str:
        return (self.control.request(request_id) or {}).get("status", "")


def test_a_hung_source_flooded_with_run_now_does_not_stop_the_others(tmp_path):
    hanging, counting = HangingSource(), CountingSource()
    jobs = {"hanging": Job(hanging, HOURLY), "counting": Job(counting, HOURLY)}
    with Running(tmp_path, jobs) as running:
        assert wait_for(lambda: hanging.runs >= 1 and counting.runs >= 1)
        for _ in range(50):  # impatient users pressing "Run now" on the stuck source
            running.control.request_run("hanging")
        time.sleep(1)  # the service claims them
        request = running.control.request_run("counting")
        assert wait_for(lambda: running.status(request) == "ok", timeout=15)
        # ...and the healthy source keeps its schedule
        running.control.set_schedule("counting", "interval", every_seconds=5)
        runs = counting.runs
        assert wait_for(lambda: counting.runs >= runs + 2, timeout=25)


def test_a_backlog_of_requests_is_served_by_one_run(tmp_path):
    counting = CountingSource()
    control = ControlStore(tmp_path / "control.sqlite")
    with sqlite3.connect(tmp_path / "control.sqlite") as con:  # e.g. a script looping on collect
        con.executemany(
            "INSERT INTO run_requests (job, requested_at) VALUES ('counting', '2026-01-01')",
            [()] * 2000,
        )
    with Running(tmp_path, {"counting": Job(counting, HOURLY)}):
        assert wait_for(
            lambda: not [r for r in control.recent_requests(3000) if r["status"] != "ok"],
            timeout=30,
        )
        assert counting.runs <= 3  # the initial run and one for the whole backlog


def test_a_run_that_hangs_times_out_and_its_source_is_reported_as_hung(tmp_path):
    hanging, counting = HangingSource(), CountingSource()
    jobs = {
        "hanging": Job(hanging, {**HOURLY, "timeout_s": 1}),
        "counting": Job(counting, HOURLY),
    }
    with Running(tmp_path, jobs) as running:
        assert wait_for(
            lambda: (running.control.progress().get("hanging") or {}).get("state") == "hung",
            timeout=15,
        )
        request = running.control.request_run("hanging")
        assert wait_for(lambda: running.status(request) == "failed", timeout=10)
        assert "not responding" in running.control.request(request)["message"]
        ok = running.control.request_run("counting")
        assert wait_for(lambda: running.status(ok) == "ok", timeout=10)
        runs = (
            open_snapshot(tmp_path / "serving")
            .con.execute("SELECT status, error FROM collector_runs WHERE source = 'hanging'")
            .fetchall()
        )
        assert runs and runs[0][0] == "failed"
        assert runs[0][1].startswith("timed out after 1 s")
        status = subprocess.run(
            [sys.executable, "-m", "collectors.cli", "--data-dir", str(tmp_path), "status"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        line = next(x for x in status.stdout.splitlines() if "hanging" in x)
        assert "hung" in line and "timed out after 1 s" in line
        hanging.release.set()  # the stuck call returns at last: the source runs again
        assert wait_for(
            lambda: (running.control.progress().get("hanging") or {}).get("state") != "hung"
        )


def test_sigterm_with_a_hung_job_and_queued_requests_exits_promptly(tmp_path):
    cmd = [sys.executable, "-m", "tests.integration.run_hung_service", str(tmp_path)]
    child = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    control_path = tmp_path / "control.sqlite"
    try:
        assert wait_for(
            lambda: (
                control_path.exists()
                and (ControlStore(control_path).progress().get("counting") or {}).get("state")
                == "ok"
                and (ControlStore(control_path).progress().get("hanging") or {}).get("state")
                == "running"
            ),
            timeout=60,
        )
        control = ControlStore(control_path)
        for _ in range(20):
            control.request_run("hanging")
        time.sleep(1)
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)  # it used to be alive a minute later
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM requests").fetchone()[0] == 1  # committed: kept
    status, error = con.execute(
        "SELECT status, error FROM collector_runs WHERE source = 'hanging'"
    ).fetchone()
    assert status == "failed" and error.startswith("interrupted")
    assert not [
        r for r in ControlStore(control_path).recent_requests(100) if r["status"] == "running"
    ]


def test_requests_left_running_by_a_killed_service_are_closed_at_start(tmp_path):
    control = ControlStore(tmp_path / "control.sqlite")
    request = control.request_run("counting")
    control.claim_requests()  # claimed by a service that was then killed
    with Running(tmp_path, {"counting": Job(CountingSource(), HOURLY)}) as running:
        assert wait_for(lambda: running.status(request) == "failed", timeout=10)
        assert "stopped before" in running.control.request(request)["message"]


def test_a_control_store_corrupted_while_running_is_recovered_once(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    counting = CountingSource()
    path = tmp_path / "control.sqlite"
    with Running(tmp_path, {"counting": Job(counting, HOURLY)}):
        assert wait_for(lambda: counting.runs >= 1)
        time.sleep(0.5)
        path.write_bytes(b"not a database any more " * 400)
        assert wait_for(lambda: "recreated" in caplog.text, timeout=30)
        time.sleep(1.5)  # several polls later
        control = ControlStore(path)
        assert "counting" in control.schedules()  # the service seeded its schedule again
        request = control.request_run("counting")
        assert wait_for(lambda: (control.request(request) or {}).get("status") == "ok")
    recoveries = [r for r in caplog.records if "recreated" in r.getMessage()]
    assert len(recoveries) == 1
    assert not [r for r in caplog.records if r.exc_info]  # no traceback on every poll


def test_a_failing_publish_is_reported_at_once_and_retried_with_backoff(tmp_path, monkeypatch):
    svc = CollectorService(
        DataPaths(tmp_path),
        {"counting": Job(CountingSource(), HOURLY)},
        min_publish_interval_s=0,
    )
    real_publish = service_module.publish
    attempts = []

    def full_disk(con, serving):
        attempts.append(time.monotonic())
        raise OSError(28, "No space left on device")

    try:
        real_publish(svc.con, svc.paths.serving)
        monkeypatch.setattr(service_module, "publish", full_disk)
        svc.run_job("counting")
        problem = svc.control.service_info().get("publish_error") or {}
        assert "No space left on device" in problem.get("message", "")
        svc.publish()
        svc.publish()
        assert len(attempts) == 1  # the next attempt waits for its backoff
        monkeypatch.setattr(service_module, "publish", real_publish)
        svc.publish(force=True)
        assert not svc.control.service_info().get("publish_error")
        snap = open_snapshot(tmp_path / "serving")
        assert snap.con.execute("SELECT count(*) FROM requests").fetchone()[0] == 1
    finally:
        svc.con.close()
