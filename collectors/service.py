"""`workbench serve`: the one process that owns the warehouse.

It runs each source on its schedule (APScheduler 3.x), reconciles schedules and "run now"
requests that the app writes to the control store every `poll_seconds`, and publishes the serving
snapshot after every run.

Faults it contains:
- Each run goes on a thread of its own; the scheduler's worker waits for it only while it makes
  progress. A run that commits no batch for its timeout is abandoned (the worker is freed, the
  run recorded failed, the source reported hung until the stuck call returns), so one source
  that hangs never holds up the others.
- "Run now" requests are queued per source: every request that arrives while a source is busy
  is served by its next run, so a flood of requests costs one run, not one worker each.
- A stop (SIGTERM) gives running runs a moment to reach a batch boundary, then abandons them.
- A failing publish is retried with backoff and reported in the control store at once.

Alerting (collectors/alerts), when given, runs on threads of its own: it is woken after each
publish and evaluates on the published snapshot, so it never holds a run or a publish; the
alert episodes it reports join the warehouse's `alerts` table and the next snapshot.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from collectors.control import ControlStore, Schedule, now_iso
from collectors.engine import WRITE_LOCK, RunSummary, recover_interrupted_runs, run_source
from collectors.publish import publish
from collectors.serving_format import read_manifest
from collectors.sources.base import Source
from collectors.warehouse import open_warehouse

if TYPE_CHECKING:
    from collectors.alerts.engine import Episode
    from collectors.alerts.runner import Alerting

log = logging.getLogger(__name__)

# A run that commits no batch for this long is abandoned as hung (per source: a schedule's
# "timeout_s", or the Collectors page). Generous: a source's own retries fit well inside it.
DEFAULT_RUN_TIMEOUT_S = 300
# On stop, how long running runs may take to reach their next batch boundary.
STOP_GRACE_S = 2.0
# A failed publish is retried after 2, 4, 8 ... seconds, at most this long apart.
PUBLISH_BACKOFF_S = 2.0
PUBLISH_BACKOFF_MAX_S = 300.0
INTERRUPTED = (
    "interrupted: the collectors service stopped during this run; committed batches were kept "
    "and the next run resumes from them"
)


@dataclass
class Job:
    """A configured source and its default schedule ({"kind": "interval", "seconds": 60},
    optionally with "timeout_s", the run timeout for this source)."""

    source: Source
    schedule: Mapping[str, Any]


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


@dataclass
class _Run:
    """One run of a source, on its own thread, which the service may give up on."""

    progress_at: float = field(default_factory=time.monotonic)  # start, or last batch committed
    reported_at: float = 0.0  # last progress written to the control store
    stop: str | None = None  # once set, the run commits nothing more and fails with this
    summary: RunSummary | None = None
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _SourceState:
    mutex: threading.Lock = field(default_factory=threading.Lock)
    run: _Run | None = None  # the run in progress (or the hung one, until its call returns)
    hung: str | None = None  # why the source is reported hung
    waiting: list[int] = field(default_factory=list)  # requests the next run serves
    dispatched: bool = False  # a worker is on its way to serve `waiting`


def seed_schedules(control: ControlStore, jobs: Mapping[str, Job]) -> None:
    for name, job in jobs.items():
        s = job.schedule
        timeout = int(s["timeout_s"]) if s.get("timeout_s") else None
        if s.get("kind", "interval") == "cron":
            control.ensure_schedule(name, "cron", None, s["expr"], timeout)
        else:
            control.ensure_schedule(name, "interval", int(s.get("seconds", 60)), None, timeout)


def publish_failure_sentence(exc: BaseException) -> str:
    """What went wrong when publishing, in words a user can act on."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class CollectorService:
    def __init__(
        self,
        paths: DataPaths,
        jobs: Mapping[str, Job],
        poll_seconds: float = 2.0,
        min_publish_interval_s: float = 2.0,
        run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
    ):
        self.paths = paths
        # Many small runs (probes every few seconds) share one publish at most this often.
        self.min_publish_interval_s = min_publish_interval_s
        self.run_timeout_s = run_timeout_s  # for sources whose schedule sets none
        self._publish_lock = threading.Lock()
        self._last_publish = 0.0
        self._publish_pending = False
        self._publish_failures = 0
        self._publish_failing_since: str | None = None
        self._publish_retry_at = 0.0
        self.jobs = dict(jobs)
        self._states = {name: _SourceState() for name in self.jobs}
        self.poll_seconds = poll_seconds
        self.control = ControlStore(paths.control)
        self._control_recoveries = self.control.recoveries
        self.con = open_warehouse(paths.warehouse)  # raises WarehouseLocked if held elsewhere
        self.scheduler = BackgroundScheduler(
            timezone="UTC",
            # Each source holds at most one worker at a time (a run it waits for), so the pool
            # never fills up while any source has work.
            executors={"default": ThreadPoolExecutor(max(10, len(self.jobs) + 4))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        )
        self._applied: dict[str, Schedule] = {}
        self._stop = threading.Event()
        self._request_jobs = itertools.count(1)
        self._last_poll_error = ""
        # What the service announces in the control store (written again if it is recreated).
        self.info: dict[str, Any] = {}
        # Called on every poll beside reconciling (e.g. syncing experiments to Supabase).
        self.poll_tasks: list[Callable[[], Any]] = []
        # Called with (job, rows_read, progress) on each throttled progress update (the CLI bar).
        self.on_progress: Callable[[str, int, Mapping[str, Any]], None] | None = None
        self.alerting: Alerting | None = None  # set before start() (collectors/alerts)
        self._alert_episodes: list[Episode] = []
        self._alert_episodes_lock = threading.Lock()

    def use_alerting(self, alerting: Alerting) -> None:
        """Evaluate alert rules after each publish; their episodes go to the warehouse."""
        self.alerting = alerting
        alerting.on_episodes = self._queue_alert_episodes

    def _queue_alert_episodes(self, episodes: list[Episode]) -> None:
        with self._alert_episodes_lock:
            self._alert_episodes.extend(episodes)
        self._publish_pending = True  # the next publish carries them

    def _record_alert_episodes(self) -> None:
        """Upsert the alert episodes reported since the last publish into `alerts`."""
        with self._alert_episodes_lock:
            episodes, self._alert_episodes = self._alert_episodes, []
        if not episodes:
            return
        with WRITE_LOCK:
            cur = self.con.cursor()
            try:
                cur.executemany(
                    "INSERT OR REPLACE INTO alerts (alert_id, rule, severity, fired_at, "
                    "resolved_at, summary, labels) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [list(e) for e in episodes],
                )
            finally:
                cur.close()

    # ---- runs -----------------------------------------------------------------------------------

    def run_job(self, name: str) -> RunSummary | None:
        """Run `name` now and wait for it, then serve the requests that arrived meanwhile.
        None when the source is unknown, already running or hung, or the run was abandoned."""
        if name not in self.jobs:
            log.error("No source named %r; configured sources: %s.", name, ", ".join(self.jobs))
            return None
        return self._run_and_serve(name, run_first=True)

    def _serve_requests(self, name: str) -> None:
        with self._states[name].mutex:
            self._states[name].dispatched = False
        self._run_and_serve(name, run_first=False)

    def _run_and_serve(self, name: str, run_first: bool) -> RunSummary | None:
        state = self._states[name]
        summary = None
        while not self._stop.is_set():
            with state.mutex:
                # A source busy with a run is skipped, never stacked: its worker serves the
                # requests that wait when that run ends.
                if state.run is not None or not (run_first or state.waiting):
                    return summary
                request_ids, state.waiting = state.waiting, []
                run = state.run = _Run()
            threading.Thread(
                target=self._execute, args=(name, run), name=f"run-{name}", daemon=True
            ).start()
            summary = self._wait_for(name, run, request_ids)
            if summary is None:
                return None
            run_first = False
        return summary

    def _execute(self, name: str, run: _Run) -> None:
        """The run itself, on its own thread: it may outlive the worker that started it."""
        state = self._states[name]
        self._safely(self.control.set_progress, name, "running")
        try:
            run.summary = run_source(
                self.con,
                self.jobs[name].source,
                on_progress=lambda run_id, rows, p: self._on_progress(name, run, run_id, rows, p),
                stop_reason=lambda: run.stop,
            )
        except Exception as exc:  # noqa: BLE001 - e.g. the warehouse closed under a stopping run
            log.warning("%s: the run ended without its record (%s)", name, exc)
        summary = run.summary
        if summary is not None:
            self._safely(
                self.control.set_progress, name, summary.status, summary.run_id, summary.rows_read
            )
        with state.mutex:
            state.run = None
            was_hung, state.hung = state.hung, None
            run.done.set()
        if was_hung:
            log.info("%s: the run that hung has returned; the source runs on schedule again", name)

    def _wait_for(self, name: str, run: _Run, request_ids: list[int]) -> RunSummary | None:
        """Wait while the run makes progress; give up on it after its timeout without any."""
        timeout = self.run_timeout_for(name)
        while not run.done.wait(0.2):
            if self._stop.is_set():
                return None  # close() records the run and the requests as interrupted
            if time.monotonic() - run.progress_at >= timeout and self._give_up(
                name, run, timeout, request_ids
            ):
                return None
        summary = run.summary
        if summary is None:
            self._safely(self.control.finish_requests, request_ids, "failed", INTERRUPTED)
            return None
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
        self.publish(force=bool(request_ids))
        if request_ids:
            self._safely(
                self.control.finish_requests,
                request_ids,
                summary.status,
                summary.error,
                summary.run_id,
            )
        return summary

    def _give_up(self, name: str, run: _Run, timeout: float, request_ids: list[int]) -> bool:
        """Abandon a run that made no progress for `timeout` seconds: free the worker, record
        the run failed and report the source hung. False if it finished meanwhile."""
        state = self._states[name]
        reason = f"timed out after {timeout:g} s without committing a batch"
        with state.mutex:
            if state.run is not run:
                return False
            run.stop = reason
            state.hung = reason
            refused = request_ids + state.waiting
            state.waiting = []
        log.warning("%s: %s; abandoned the run, the other sources carry on", name, reason)
        self._fail_open_run(name, reason)
        self._safely(self.control.set_progress, name, "hung", message=reason)
        self._safely(
            self.control.finish_requests, refused, "failed", self._not_responding(name, reason)
        )
        self.publish(force=True)  # so the pages show the failed run
        return True

    @staticmethod
    def _not_responding(name: str, reason: str) -> str:
        return f"{name} is not responding: its last run {reason}; it was not run again."

    def _fail_open_run(self, name: str, reason: str) -> None:
        """Record `name`'s open run as failed now; its thread records the same when it ends."""
        with WRITE_LOCK:
            cur = self.con.cursor()
            try:
                cur.execute(
                    "UPDATE collector_runs SET status = 'failed', ended_at = ?, error = ? "
                    "WHERE source = ? AND status = 'running'",
                    [datetime.now(UTC).replace(tzinfo=None), reason, name],
                )
            finally:
                cur.close()

    def run_timeout_for(self, name: str) -> float:
        applied = self._applied.get(name)
        if applied is not None and applied.timeout_s:
            return float(applied.timeout_s)
        return float(self.jobs[name].schedule.get("timeout_s") or self.run_timeout_s)

    def _on_progress(
        self, name: str, run: _Run, run_id: int, rows_read: int, progress: Mapping[str, Any]
    ) -> None:
        now = run.progress_at = time.monotonic()
        if now - run.reported_at < 0.5:
            return
        run.reported_at = now
        self._safely(
            self.control.set_progress,
            name,
            "running",
            run_id,
            rows_read,
            progress.get("done"),
            progress.get("total"),
        )
        if self.on_progress is not None:
            self.on_progress(name, rows_read, progress)

    def _safely(self, write: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """A control-store write that must never stop a run or the service."""
        try:
            write(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the next write or poll tries again
            log.warning("could not update the control store: %s", exc)

    # ---- publishing -----------------------------------------------------------------------------

    def publish(self, force: bool = False) -> None:
        """Publish the snapshot, at most once per min_publish_interval_s (and, after a failure,
        not before its backoff) unless forced."""
        with self._publish_lock:
            now = time.monotonic()
            due = now - self._last_publish >= self.min_publish_interval_s
            if not force and (not due or now < self._publish_retry_at):
                self._publish_pending = True  # the service loop publishes it shortly
                return
            self._publish_pending = False
            try:
                self._record_alert_episodes()
                result = publish(self.con, self.paths.serving)
            except Exception as exc:  # noqa: BLE001 - a failed publish must not stop collection
                self._publish_failed(exc)
            else:
                if self._publish_failures:
                    log.info("publishing works again after %d failure(s)", self._publish_failures)
                    self._safely(self.control.set_service_info, publish_error=None)
                self._publish_failures = 0
                self._publish_failing_since = None
                self._publish_retry_at = 0.0
                if self.alerting is not None:
                    self.alerting.wake()
                if result.days_written:
                    log.info(
                        "published snapshot v%d (%d day partitions) in %.2fs",
                        result.version,
                        result.days_written,
                        result.seconds,
                    )
            self._last_publish = time.monotonic()

    def _publish_failed(self, exc: Exception) -> None:
        self._publish_pending = True
        self._publish_failures += 1
        self._publish_failing_since = self._publish_failing_since or now_iso()
        wait = min(PUBLISH_BACKOFF_MAX_S, PUBLISH_BACKOFF_S * 2 ** (self._publish_failures - 1))
        self._publish_retry_at = time.monotonic() + wait
        reason = publish_failure_sentence(exc)
        if self._publish_failures == 1:
            log.exception("publishing the snapshot failed: %s; retrying in %.0f s", reason, wait)
        else:
            log.error(
                "publishing the snapshot failed again (%d times): %s; retrying in %.0f s",
                self._publish_failures,
                reason,
                wait,
            )
        retry_at = datetime.now(UTC) + timedelta(seconds=wait)
        self._safely(
            self.control.set_service_info,
            publish_error={
                "since": self._publish_failing_since,
                "message": reason,
                "attempts": self._publish_failures,
                "retry_at": retry_at.isoformat(timespec="seconds"),
            },
        )

    # ---- reconciling with the control store -------------------------------------------------

    def reconcile(self) -> None:
        if self.control.recoveries != self._control_recoveries:
            # The control store was damaged and recreated: put back what the service owns.
            self._control_recoveries = self.control.recoveries
            seed_schedules(self.control, self.jobs)
            self.control.set_service_info(**self.info)
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
        claimed: dict[str, list[int]] = {}
        for request_id, name in self.control.claim_requests():
            claimed.setdefault(name, []).append(request_id)
        for name, request_ids in claimed.items():
            self._queue_requests(name, request_ids)
        self.control.set_service_info(heartbeat=now_iso())

    def _queue_requests(self, name: str, request_ids: list[int]) -> None:
        if name not in self.jobs:
            message = f"No source named {name!r}; configured sources: {', '.join(self.jobs)}."
            log.error(message)
            self.control.finish_requests(request_ids, "failed", message)
            return
        state = self._states[name]
        with state.mutex:
            hung = state.hung
            if not hung:
                state.waiting.extend(request_ids)
            dispatch = not hung and state.run is None and not state.dispatched
            state.dispatched = state.dispatched or dispatch
        if hung:
            self.control.finish_requests(request_ids, "failed", self._not_responding(name, hung))
        elif dispatch:
            self.scheduler.add_job(
                self._serve_requests,
                args=[name],
                id=f"requests-{name}-{next(self._request_jobs)}",
                name=name,
            )

    # ---- lifecycle --------------------------------------------------------------------------

    def announce(self, **values: Any) -> None:
        """Tell the app something about this service (kept if the control store is rebuilt)."""
        self.info.update(values)
        self.control.set_service_info(**values)

    def start(self) -> None:
        recovered = recover_interrupted_runs(self.con)
        if recovered:
            log.info("closed %d run(s) interrupted by an earlier stop", recovered)
        closed = self.control.close_stale_requests()
        if closed:
            log.info("closed %d run request(s) left open by an earlier stop", closed)
        seed_schedules(self.control, self.jobs)
        self.control.set_service_info(publish_error=None)  # an earlier process's problem
        if read_manifest(self.paths.serving) is None:
            self.publish(force=True)
        self.announce(pid=os.getpid(), started_at=now_iso(), jobs=sorted(self.jobs))
        self.scheduler.start()
        if self.alerting is not None:
            self.alerting.start()
            self.alerting.wake()
        self.reconcile()
        # First start: collect at once instead of waiting a whole interval.
        for name in self.jobs:
            self.scheduler.add_job(self.run_job, args=[name], id=f"initial-{name}", name=name)

    def serve_forever(self) -> None:
        self.start()
        try:
            while not self._stop.wait(self.poll_seconds):
                self.poll()
        finally:
            self.close()

    def poll(self) -> None:
        try:
            self.reconcile()
            self._last_poll_error = ""
        except Exception as exc:  # noqa: BLE001 - keep serving; the next poll retries
            # One traceback per distinct problem, not one every poll.
            if str(exc) != self._last_poll_error:
                log.exception("reading the control store failed; retrying every poll")
            self._last_poll_error = str(exc)
        if self._publish_pending:
            self.publish()
        for task in self.poll_tasks:
            try:
                task()
            except Exception:  # noqa: BLE001 - a task reports its own failures
                log.exception("a poll task failed; it runs again on the next poll")

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Stop promptly: runs get STOP_GRACE_S to reach a batch boundary, then are abandoned
        (recorded as interrupted; their committed batches stay)."""
        self._stop.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.alerting is not None:
            self.alerting.stop()
        running: dict[str, _Run] = {}
        for name, state in self._states.items():
            with state.mutex:
                if state.run is not None:
                    state.run.stop = state.run.stop or INTERRUPTED
                    running[name] = state.run
        deadline = time.monotonic() + STOP_GRACE_S
        for name, run in running.items():
            if not run.done.wait(max(0.0, deadline - time.monotonic())):
                log.warning("%s: its run did not stop (it hangs); abandoned it", name)
                self._fail_open_run(name, INTERRUPTED)
                self._safely(self.control.set_progress, name, "failed")  # no longer "hung"
        self._safely(self.control.close_stale_requests)
        self._safely(self.control.set_service_info, pid=None, stopped_at=now_iso())
        # Never close the warehouse under a commit; an abandoned run that wakes up later
        # finds it closed and commits nothing.
        if WRITE_LOCK.acquire(timeout=STOP_GRACE_S):
            try:
                self.con.close()
            finally:
                WRITE_LOCK.release()
