"""`workbench serve`: the one process that owns the warehouse.

It runs each source on its schedule (APScheduler 3.x), reconciles schedules and "run now"
requests that the app writes to the control store every `poll_seconds`, and publishes the serving
snapshot after every run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from collectors.control import ControlStore, Schedule, now_iso
from collectors.engine import RunSummary, recover_interrupted_runs, run_source
from collectors.publish import publish, read_manifest
from collectors.sources.base import Source
from collectors.warehouse import open_warehouse

log = logging.getLogger(__name__)


@dataclass
class Job:
    """A configured source and its default schedule ({"kind": "interval", "seconds": 60})."""

    source: Source
    schedule: Mapping[str, Any]
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class DataPaths:
    root: Path

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def serving(self) -> Path:
        return self.root / "serving"

    @property
    def control(self) -> Path:
        return self.root / "control.sqlite"


def seed_schedules(control: ControlStore, jobs: Mapping[str, Job]) -> None:
    for name, job in jobs.items():
        s = job.schedule
        if s.get("kind", "interval") == "cron":
            control.ensure_schedule(name, "cron", None, s["expr"])
        else:
            control.ensure_schedule(name, "interval", int(s.get("seconds", 60)), None)


class CollectorService:
    def __init__(
        self,
        paths: DataPaths,
        jobs: Mapping[str, Job],
        poll_seconds: float = 2.0,
        min_publish_interval_s: float = 2.0,
    ):
        self.paths = paths
        # Many small runs (probes every few seconds) share one publish at most this often.
        self.min_publish_interval_s = min_publish_interval_s
        self._publish_lock = threading.Lock()
        self._last_publish = 0.0
        self._publish_pending = False
        self.jobs = dict(jobs)
        self.poll_seconds = poll_seconds
        self.control = ControlStore(paths.control)
        self.con = open_warehouse(paths.warehouse)  # raises WarehouseLocked if held elsewhere
        self.scheduler = BackgroundScheduler(
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        )
        self._applied: dict[str, Schedule] = {}
        self._stop = threading.Event()
        self._progress_at: dict[str, float] = {}
        # Called on every poll beside reconciling (e.g. syncing experiments to Supabase).
        self.poll_tasks: list[Callable[[], Any]] = []
        # Called with (job, rows_read, progress) on each throttled progress update (the CLI bar).
        self.on_progress: Callable[[str, int, Mapping[str, Any]], None] | None = None

    # ---- one run --------------------------------------------------------------------------

    def run_job(self, name: str, request_id: int | None = None) -> RunSummary | None:
        job = self.jobs.get(name)
        if job is None:
            message = f"No source named {name!r}; configured sources: {', '.join(self.jobs)}."
            if request_id is not None:
                self.control.finish_request(request_id, "failed", message)
            log.error(message)
            return None
        with job.lock:  # a run-now request waits for a scheduled run of the same source
            self.control.set_progress(name, "running")
            summary = run_source(
                self.con, job.source, on_progress=lambda *a: self._on_progress(name, *a)
            )
            self.control.set_progress(name, summary.status, summary.run_id, summary.rows_read)
            log.info(
                "%s: %s, %d read, %d new, %d updated, %d rejected",
                name,
                summary.status,
                summary.rows_read,
                summary.rows_inserted,
                summary.rows_updated,
                summary.rows_rejected,
            )
        # A user who asked for this run waits for its data: publish now. Scheduled runs share.
        self.publish(force=request_id is not None)
        if request_id is not None:
            self.control.finish_request(request_id, summary.status, summary.error, summary.run_id)
        return summary

    def publish(self, force: bool = False) -> None:
        """Publish the snapshot, at most once per min_publish_interval_s unless forced."""
        with self._publish_lock:
            since = time.monotonic() - self._last_publish
            if not force and since < self.min_publish_interval_s:
                self._publish_pending = True  # the service loop publishes it shortly
                return
            self._publish_pending = False
            try:
                result = publish(self.con, self.paths.serving)
                if result.days_written:
                    log.info(
                        "published snapshot v%d (%d day partitions) in %.2fs",
                        result.version,
                        result.days_written,
                        result.seconds,
                    )
            except Exception:  # noqa: BLE001 - a failed publish must not stop collection
                self._publish_pending = True
                log.exception("publishing failed; the service retries shortly")
            self._last_publish = time.monotonic()

    def _on_progress(self, name: str, run_id: int, rows_read: int, progress: Mapping) -> None:
        now = time.monotonic()
        if now - self._progress_at.get(name, 0.0) < 0.5:
            return
        self._progress_at[name] = now
        self.control.set_progress(
            name, "running", run_id, rows_read, progress.get("done"), progress.get("total")
        )
        if self.on_progress is not None:
            self.on_progress(name, rows_read, progress)

    # ---- reconciling with the control store -------------------------------------------------

    def reconcile(self) -> None:
        schedules = self.control.schedules()
        for name, schedule in schedules.items():
            if name not in self.jobs or self._applied.get(name) == schedule:
                continue
            if self.scheduler.get_job(name):
                self.scheduler.remove_job(name)
            if schedule.enabled:
                trigger = (
                    IntervalTrigger(seconds=schedule.every_seconds, timezone="UTC")
                    if schedule.kind == "interval"
                    else CronTrigger.from_crontab(schedule.cron, timezone="UTC")
                )
                self.scheduler.add_job(self.run_job, trigger, args=[name], id=name, name=name)
            log.info(
                "schedule for %s: %s%s",
                name,
                schedule.describe(),
                "" if schedule.enabled else " (paused)",
            )
            self._applied[name] = schedule
        for request_id, name in self.control.claim_requests():
            self.scheduler.add_job(
                self.run_job, args=[name, request_id], id=f"request-{request_id}", name=name
            )
        self.control.set_service_info(heartbeat=now_iso())

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        recovered = recover_interrupted_runs(self.con)
        if recovered:
            log.info("closed %d run(s) interrupted by an earlier stop", recovered)
        seed_schedules(self.control, self.jobs)
        if read_manifest(self.paths.serving) is None:
            publish(self.con, self.paths.serving)
        self.control.set_service_info(pid=os.getpid(), started_at=now_iso(), jobs=sorted(self.jobs))
        self.scheduler.start()
        self.reconcile()
        # First start: collect at once instead of waiting a whole interval.
        for name in self.jobs:
            self.scheduler.add_job(self.run_job, args=[name], id=f"initial-{name}", name=name)

    def serve_forever(self) -> None:
        self.start()
        try:
            while not self._stop.wait(self.poll_seconds):
                try:
                    self.reconcile()
                except Exception:  # noqa: BLE001 - keep serving; the next poll retries
                    log.exception("reading the control store failed")
                if self._publish_pending:
                    self.publish()
                for task in self.poll_tasks:
                    try:
                        task()
                    except Exception:  # noqa: BLE001 - a task reports its own failures
                        log.exception("a poll task failed; it runs again on the next poll")
        finally:
            self.close()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.control.set_service_info(pid=None, stopped_at=now_iso())
        self.con.close()
