"""The control store (data/control.sqlite): what the app asks of the collectors service.

The app writes schedules, "run now" requests and (later) experiments and alert rules here; the
service reads them within seconds and writes back progress and a heartbeat. SQLite in WAL mode
is safe across processes, unlike the warehouse, so this is the only place both processes write.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
