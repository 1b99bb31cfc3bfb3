"""The control store (data/control.sqlite): what the app asks of the collectors service.

The app writes schedules, "run now" requests and (later) experiments and alert rules here; the
service reads them within seconds and writes back progress and a heartbeat. SQLite in WAL mode
is safe across processes, unlike the warehouse, so this is the only place both processes write.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCHEMA = [
    # version 1
    """
    CREATE TABLE schedules (
        job TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('interval', 'cron')),
        every_seconds INTEGER,
        cron TEXT,
        enabled INTEGER NOT NULL DEFAULT 1,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE run_requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        claimed_at TEXT,
        finished_at TEXT,
        status TEXT NOT NULL DEFAULT 'pending',
        message TEXT,
        run_id INTEGER
    );
    CREATE TABLE progress (
        job TEXT PRIMARY KEY,
        run_id INTEGER,
        rows_read INTEGER NOT NULL DEFAULT 0,
        done INTEGER,
        total INTEGER,
        started_at TEXT,
        updated_at TEXT NOT NULL,
        state TEXT NOT NULL
    );
    CREATE TABLE service (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # version 2: experiments defined on the Experiments page (synced to Supabase for the SDK)
    """
    CREATE TABLE experiments (
        key TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        hypothesis TEXT NOT NULL DEFAULT '',
        variants TEXT NOT NULL,
        weights TEXT NOT NULL,
        unit_type TEXT NOT NULL CHECK (unit_type IN ('call', 'caller')),
        primary_metrics TEXT NOT NULL,
        guardrail_metrics TEXT NOT NULL,
        start_at TEXT,
        end_at TEXT,
        method TEXT NOT NULL CHECK (method IN ('fixed', 'sequential', 'bayesian')),
        status TEXT NOT NULL DEFAULT 'draft'
            CHECK (status IN ('draft', 'running', 'paused', 'stopped')),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Schedule:
    job: str
    kind: str  # interval|cron
    every_seconds: int | None
    cron: str | None
    enabled: bool
    updated_at: str

    def describe(self) -> str:
        if self.kind == "interval":
            return f"every {self.every_seconds} s"
        return f"cron {self.cron}"


class ScheduleError(ValueError):
    pass


def validate_schedule(kind: str, every_seconds: int | None, cron: str | None) -> None:
    """Raise ScheduleError with one sentence if the schedule cannot run."""
    if kind == "interval":
        if not isinstance(every_seconds, int) or every_seconds < 5:
            raise ScheduleError("An interval schedule needs every_seconds of at least 5.")
    elif kind == "cron":
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(cron or "", timezone="UTC")
        except ValueError as exc:
            raise ScheduleError(f"The cron expression {cron!r} is not valid: {exc}.") from None
    else:
        raise ScheduleError(f"Schedule kind must be 'interval' or 'cron', not {kind!r}.")


EXPERIMENT_STATUSES = ("draft", "running", "paused", "stopped")
EXPERIMENT_METHODS = ("fixed", "sequential", "bayesian")
EXPERIMENT_UNITS = ("call", "caller")
_EXPERIMENT_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Which status changes the page offers: start, pause, resume, stop (stopped is final).
_TRANSITIONS = {
    "draft": ("running", "stopped"),
    "running": ("paused", "stopped"),
    "paused": ("running", "stopped"),
    "stopped": (),
}


class ExperimentError(ValueError):
    """An experiment definition or status change the user must fix (one sentence)."""


@dataclass(frozen=True)
class SavedExperiment:
    key: str
    name: str
    variants: tuple[str, ...]  # the first is control
    weights: tuple[float, ...]  # planned split, sums to 1
    unit_type: str = "call"
    primary_metrics: tuple[str, ...] = ()
    guardrail_metrics: tuple[str, ...] = ()
    hypothesis: str = ""
    start_at: str | None = None  # naive-UTC ISO timestamps
    end_at: str | None = None
    method: str = "sequential"
    status: str = "draft"
    created_at: str = ""
    updated_at: str = ""

    def definition(self):
        """The analysis engine's view of this experiment. The end date is inclusive on the
        page, so the analysis window ends at the start of the next day."""
        from datetime import datetime, timedelta

        from analysis.experiments import ExperimentDefinition

        end = datetime.fromisoformat(self.end_at) + timedelta(days=1) if self.end_at else None
        return ExperimentDefinition(
            self.key,
            self.variants[0],
            tuple(self.variants[1:]),
            dict(zip(self.variants, self.weights, strict=True)),
            self.unit_type,
            datetime.fromisoformat(self.start_at) if self.start_at else None,
            end,
        )


def validate_experiment(e: SavedExperiment) -> SavedExperiment:
    """The definition with weights normalised; ExperimentError names the field to fix."""
    if not _EXPERIMENT_KEY.match(e.key or ""):
        raise ExperimentError(
            "The experiment key must be 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit."
        )
    variants = tuple(v.strip() for v in e.variants)
    if len(variants) < 2 or any(not v for v in variants) or len(set(variants)) != len(variants):
        raise ExperimentError("An experiment needs at least two distinct, non-empty variants.")
    weights = tuple(float(w) for w in e.weights)
    if len(weights) != len(variants) or any(not w >= 0 for w in weights) or sum(weights) <= 0:
        raise ExperimentError("Give one non-negative weight per variant (the traffic split).")
    total = sum(weights)
    weights = tuple(round(w / total, 6) for w in weights)
    if e.unit_type not in EXPERIMENT_UNITS:
        raise ExperimentError(f"The unit must be one of {', '.join(EXPERIMENT_UNITS)}.")
    if e.method not in EXPERIMENT_METHODS:
        raise ExperimentError(f"The method must be one of {', '.join(EXPERIMENT_METHODS)}.")
    if e.status not in EXPERIMENT_STATUSES:
        raise ExperimentError(f"The status must be one of {', '.join(EXPERIMENT_STATUSES)}.")
    if not e.primary_metrics:
        raise ExperimentError("Choose at least one primary metric.")
    if e.start_at and e.end_at and e.end_at <= e.start_at:
        raise ExperimentError("The experiment's end must be after its start.")
    return replace(e, name=(e.name or e.key).strip(), variants=variants, weights=weights)


class ControlStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._ensure()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        con.row_factory = sqlite3.Row
        try:
            yield con
        finally:
            con.close()

    def _ensure(self) -> None:
        try:
            self._migrate()
        except sqlite3.DatabaseError as exc:
            # A corrupt control store holds only requests and settings the app can re-enter:
            # keep it aside for inspection and start a fresh one.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            log.warning(
                "control store %s was unreadable (%s); moved to %s and recreated",
                self.path,
                exc,
                aside.name,
            )
            self._migrate()

    def _migrate(self) -> None:
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            version = con.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(SCHEMA, start=1):
                if number > version:
                    con.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    # ---- schedules ----------------------------------------------------------------------------

    def schedules(self) -> dict[str, Schedule]:
        with self._connect() as con:
            rows = con.execute("SELECT * FROM schedules ORDER BY job").fetchall()
        return {
            r["job"]: Schedule(
                r["job"],
                r["kind"],
                r["every_seconds"],
                r["cron"],
                bool(r["enabled"]),
                r["updated_at"],
            )
            for r in rows
        }

    def set_schedule(
        self,
        job: str,
        kind: str,
        every_seconds: int | None = None,
        cron: str | None = None,
        enabled: bool = True,
    ) -> None:
        validate_schedule(kind, every_seconds, cron)
        with self._connect() as con:
            con.execute(
                "INSERT INTO schedules VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job) DO UPDATE SET "
                "kind = excluded.kind, every_seconds = excluded.every_seconds, "
                "cron = excluded.cron, enabled = excluded.enabled, updated_at = excluded.updated_at",
                [
                    job,
                    kind,
                    every_seconds if kind == "interval" else None,
                    cron if kind == "cron" else None,
                    int(enabled),
                    now_iso(),
                ],
            )

    def ensure_schedule(self, job: str, kind: str, every_seconds: int | None, cron: str | None):
        """Seed a job's default schedule without overriding what a user has set."""
        if job not in self.schedules():
            self.set_schedule(job, kind, every_seconds, cron)

    # ---- run requests -------------------------------------------------------------------------

    def request_run(self, job: str) -> int:
        with self._connect() as con:
            cur = con.execute(
                "INSERT INTO run_requests (job, requested_at) VALUES (?, ?)", [job, now_iso()]
            )
            return int(cur.lastrowid)

    def claim_requests(self) -> list[tuple[int, str]]:
        """Atomically claim every pending request (the service calls this)."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            rows = con.execute(
                "SELECT id, job FROM run_requests WHERE status = 'pending' ORDER BY id"
            ).fetchall()
            con.executemany(
                "UPDATE run_requests SET status = 'running', claimed_at = ? WHERE id = ?",
                [(now_iso(), r["id"]) for r in rows],
            )
            con.execute("COMMIT")
        return [(r["id"], r["job"]) for r in rows]

    def finish_request(self, request_id: int, status: str, message: str | None, run_id=None):
        with self._connect() as con:
            con.execute(
                "UPDATE run_requests SET status = ?, message = ?, finished_at = ?, run_id = ? "
                "WHERE id = ?",
                [status, message, now_iso(), run_id, request_id],
            )

    def request(self, request_id: int) -> dict[str, Any] | None:
        with self._connect() as con:
            row = con.execute("SELECT * FROM run_requests WHERE id = ?", [request_id]).fetchone()
        return dict(row) if row else None

    def recent_requests(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._connect() as con:
            rows = con.execute(
                "SELECT * FROM run_requests ORDER BY id DESC LIMIT ?", [limit]
            ).fetchall()
        return [dict(r) for r in rows]

    # ---- progress and heartbeat ---------------------------------------------------------------

    def set_progress(
        self,
        job: str,
        state: str,
        run_id: int | None = None,
        rows_read: int = 0,
        done: int | None = None,
        total: int | None = None,
    ) -> None:
        with self._connect() as con:
            con.execute(
                "INSERT INTO progress VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job) DO UPDATE "
                "SET run_id = excluded.run_id, rows_read = excluded.rows_read, "
                "done = excluded.done, total = excluded.total, "
                "started_at = CASE WHEN excluded.state = 'running' AND progress.state != 'running' "
                "THEN excluded.started_at ELSE progress.started_at END, "
                "updated_at = excluded.updated_at, state = excluded.state",
                [job, run_id, rows_read, done, total, now_iso(), now_iso(), state],
            )

    def progress(self) -> dict[str, dict[str, Any]]:
        with self._connect() as con:
            rows = con.execute("SELECT * FROM progress").fetchall()
        return {r["job"]: dict(r) for r in rows}

    def set_service_info(self, **values: Any) -> None:
        with self._connect() as con:
            con.executemany(
                "INSERT INTO service VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    def service_info(self) -> dict[str, Any]:
        with self._connect() as con:
            rows = con.execute("SELECT key, value FROM service").fetchall()
        return {r["key"]: json.loads(r["value"]) for r in rows}

    # ---- experiments --------------------------------------------------------------------------

    def save_experiment(self, experiment: SavedExperiment) -> SavedExperiment:
        """Create or update a definition (its status is kept when it already exists)."""
        e = validate_experiment(experiment)
        now = now_iso()
        with self._connect() as con:
            con.execute(
                "INSERT INTO experiments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET name = excluded.name, "
                "hypothesis = excluded.hypothesis, variants = excluded.variants, "
                "weights = excluded.weights, unit_type = excluded.unit_type, "
                "primary_metrics = excluded.primary_metrics, "
                "guardrail_metrics = excluded.guardrail_metrics, start_at = excluded.start_at, "
                "end_at = excluded.end_at, method = excluded.method, "
                "updated_at = excluded.updated_at",
                [
                    e.key,
                    e.name,
                    e.hypothesis,
                    json.dumps(list(e.variants)),
                    json.dumps(list(e.weights)),
                    e.unit_type,
                    json.dumps(list(e.primary_metrics)),
                    json.dumps(list(e.guardrail_metrics)),
                    e.start_at,
                    e.end_at,
                    e.method,
                    e.status,
                    now,
                    now,
                ],
            )
        return self.experiments()[e.key]

    def experiments(self) -> dict[str, SavedExperiment]:
        with self._connect() as con:
            rows = con.execute("SELECT * FROM experiments ORDER BY created_at, key").fetchall()
        return {
            r["key"]: SavedExperiment(
                key=r["key"],
                name=r["name"],
                variants=tuple(json.loads(r["variants"])),
                weights=tuple(json.loads(r["weights"])),
                unit_type=r["unit_type"],
                primary_metrics=tuple(json.loads(r["primary_metrics"])),
                guardrail_metrics=tuple(json.loads(r["guardrail_metrics"])),
                hypothesis=r["hypothesis"],
                start_at=r["start_at"],
                end_at=r["end_at"],
                method=r["method"],
                status=r["status"],
                created_at=r["created_at"],
                updated_at=r["updated_at"],
            )
            for r in rows
        }

    def set_experiment_status(self, key: str, status: str) -> SavedExperiment:
        """Start (running), pause, resume or stop; ExperimentError if the change is not allowed."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            row = con.execute("SELECT status FROM experiments WHERE key = ?", [key]).fetchone()
            if row is None:
                con.execute("ROLLBACK")
                raise ExperimentError(f"No experiment with key {key!r}; save it first.")
            if status != row["status"] and status not in _TRANSITIONS[row["status"]]:
                con.execute("ROLLBACK")
                raise ExperimentError(
                    f"Experiment {key!r} is {row['status']}; it cannot become {status}."
                )
            con.execute(
                "UPDATE experiments SET status = ?, updated_at = ? WHERE key = ?",
                [status, now_iso(), key],
            )
            con.execute("COMMIT")
        return self.experiments()[key]
