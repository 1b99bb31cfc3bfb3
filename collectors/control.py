"""The control store (data/control.sqlite): what the app asks of the collectors service.

The app writes schedules, "run now" requests, experiments, alert rules, silences and
acknowledgements here; the service reads them within seconds and writes back progress, a
heartbeat, and every alert's state, history and notifications (collectors/alerts/store.py). SQLite in WAL mode
is safe across processes, unlike the warehouse, so this is the only place both processes write.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar, cast

from analysis.experiment_rules import (
    METHODS,
    STATUSES,
    UNIT_TYPES,
    Method,
    Status,
    UnitType,
    may_become,
)
from collectors.schedules import ScheduleKind

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
Store = TypeVar("Store", bound="ControlStore")

# Each version is a script, or columns to add (added only where missing, so a store that was
# partly migrated by hand still migrates).
SCHEMA: list[str | list[tuple[str, str, str]]] = [
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
    # version 3: per-source run timeouts, why a source is hung, and experiment revisions (a
    # save names the revision it edited, so a stale one is refused instead of overwriting)
    [
        ("schedules", "timeout_s", "INTEGER"),
        ("progress", "message", "TEXT"),
        ("experiments", "revision", "INTEGER NOT NULL DEFAULT 1"),
    ],
    # version 4: the app reads user-defined metrics from the configuration; an older service
    # relayed them here, where nothing reads them any more
    "DELETE FROM service WHERE key = 'custom_metrics';",
    # version 5: alerting (collectors/alerts/store.py). Rules written on the Alerts page; every
    # alert's state and history; the notification outbox (written in the transaction of the
    # state change that caused it) with one delivery per receiver; the notification log per
    # group (Alertmanager's nflog); silences and acknowledgements. Times are naive-UTC ISO.
    """
    CREATE TABLE alert_rules (
        name TEXT PRIMARY KEY,
        definition TEXT NOT NULL,
        author TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL,
        revision INTEGER NOT NULL DEFAULT 1,
        deleted INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE alert_instances (
        fingerprint TEXT PRIMARY KEY,
        rule TEXT NOT NULL,
        labels TEXT NOT NULL,
        group_key TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('inactive', 'pending', 'firing', 'resolved')),
        episode INTEGER NOT NULL,
        active_since TEXT,
        fired_at TEXT,
        resolved_at TEXT,
        clear_since TEXT,
        value REAL,
        summary TEXT NOT NULL DEFAULT '',
        evidence TEXT,
        inhibited_by TEXT,
        evaluated_at TEXT
    );
    CREATE INDEX alert_instances_group ON alert_instances (group_key);
    CREATE INDEX alert_instances_state ON alert_instances (state);
    CREATE TABLE alert_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        rule TEXT NOT NULL,
        labels TEXT NOT NULL,
        episode INTEGER NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        value REAL,
        summary TEXT NOT NULL DEFAULT '',
        evidence TEXT,
        inhibited_by TEXT,
        replayed INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX alert_events_at ON alert_events (at);
    CREATE INDEX alert_events_alert ON alert_events (fingerprint, episode);
    CREATE TABLE alert_groups (
        group_key TEXT PRIMARY KEY,
        labels TEXT NOT NULL,
        notified TEXT NOT NULL DEFAULT '[]',
        last_sent_at TEXT
    );
    CREATE TABLE alert_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        group_key TEXT NOT NULL,
        created_at TEXT NOT NULL,
        due_at TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('waiting', 'ready', 'skipped')),
        reason TEXT NOT NULL DEFAULT '',
        frozen_at TEXT,
        body TEXT
    );
    CREATE INDEX alert_outbox_status ON alert_outbox (status, due_at);
    CREATE TABLE alert_deliveries (
        notification INTEGER NOT NULL,
        receiver TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sent')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        sent_at TEXT,
        last_error TEXT,
        PRIMARY KEY (notification, receiver)
    );
    CREATE INDEX alert_deliveries_pending ON alert_deliveries (receiver, status, notification);
    CREATE TABLE alert_silences (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        matchers TEXT NOT NULL,
        author TEXT NOT NULL,
        comment TEXT NOT NULL,
        starts_at TEXT NOT NULL,
        ends_at TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expired_at TEXT
    );
    CREATE TABLE alert_acks (
        fingerprint TEXT NOT NULL,
        episode INTEGER NOT NULL,
        author TEXT NOT NULL,
        comment TEXT NOT NULL DEFAULT '',
        at TEXT NOT NULL,
        PRIMARY KEY (fingerprint, episode)
    );
    CREATE TABLE alert_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # version 6: experiments can be archived (hidden from the page's list, kept with their data)
    [("experiments", "archived", "INTEGER NOT NULL DEFAULT 0")],
]
TABLES = (
    "schedules",
    "run_requests",
    "progress",
    "service",
    "experiments",
    "alert_rules",
    "alert_instances",
    "alert_events",
    "alert_groups",
    "alert_outbox",
    "alert_deliveries",
    "alert_silences",
    "alert_acks",
    "alert_meta",
)
# SQLite's result codes for a damaged file (the extended codes share the low byte).
_CORRUPTION_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# A run request waits (pending), is claimed (running), and ends as its run did (a request the
# service could not serve is failed, with the reason in its message).
RequestStatus = Literal["pending", "running", "ok", "partial", "failed"]
# A source's live state: running, hung (a run past its timeout), or how its last run ended.
ProgressState = Literal["running", "hung", "ok", "partial", "failed"]


@dataclass(frozen=True)
class Schedule:
    job: str
    kind: ScheduleKind
    every_seconds: int | None
    cron: str | None
    enabled: bool
    updated_at: str
    timeout_s: int | None = None  # a run without progress this long is abandoned as hung

    def describe(self) -> str:
        if self.kind == "interval":
            return f"every {self.every_seconds} s"
        return f"cron {self.cron}"


class ScheduleError(ValueError):
    pass


def validate_schedule(
    kind: str, every_seconds: int | None, cron: str | None, timeout_s: int | None = None
) -> None:
    """Raise ScheduleError with one sentence if the schedule cannot run."""
    if timeout_s is not None and (not isinstance(timeout_s, int) or timeout_s < 1):
        raise ScheduleError("A run timeout must be a whole number of seconds, at least 1.")
    if kind == "interval":
        if not isinstance(every_seconds, int) or every_seconds < 5:
            raise ScheduleError("An interval schedule needs every_seconds of at least 5.")
    elif kind == "cron":
        from collectors.schedules import cron_problem  # the rule the config file uses too

        problem = cron_problem(cron or "")
        if problem is not None:
            raise ScheduleError(f"The cron expression {cron!r} is not valid: {problem}.")
    else:
        raise ScheduleError(f"Schedule kind must be 'interval' or 'cron', not {kind!r}.")


_EXPERIMENT_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ExperimentError(ValueError):
    """An experiment definition or status change the user must fix (one sentence)."""


class ControlStoreError(RuntimeError):
    """The control store could not be used, even after recovering it (one sentence)."""


@dataclass(frozen=True)
class SavedExperiment:
    key: str
    name: str
    variants: tuple[str, ...]  # the first is control
    weights: tuple[float, ...]  # planned split, sums to 1
    unit_type: UnitType = "call"
    primary_metrics: tuple[str, ...] = ()
    guardrail_metrics: tuple[str, ...] = ()
    hypothesis: str = ""
    start_at: str | None = None  # naive-UTC ISO timestamps
    end_at: str | None = None
    method: Method = "sequential"
    status: Status = "draft"
    created_at: str = ""
    updated_at: str = ""
    revision: int = 0  # the stored revision this definition was read at; 0: not saved yet
    archived: bool = False  # hidden from the Experiments page's list unless asked for


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
    if e.unit_type not in UNIT_TYPES:
        raise ExperimentError(f"The unit must be one of {', '.join(UNIT_TYPES)}.")
    if e.method not in METHODS:
        raise ExperimentError(f"The method must be one of {', '.join(METHODS)}.")
    if e.status not in STATUSES:
        raise ExperimentError(f"The status must be one of {', '.join(STATUSES)}.")
    if not e.primary_metrics:
        raise ExperimentError("Choose at least one primary metric.")
    if e.start_at and e.end_at and e.end_at <= e.start_at:
        raise ExperimentError("The experiment's end must be after its start.")
    return replace(e, name=(e.name or e.key).strip(), variants=variants, weights=weights)


def _design_changed(row: sqlite3.Row, e: SavedExperiment) -> bool:
    """Whether `e` changes the stored variants, split or randomisation unit."""
    weights = json.loads(row["weights"])
    return (
        tuple(json.loads(row["variants"])) != e.variants
        or row["unit_type"] != e.unit_type
        or len(weights) != len(e.weights)
        or any(abs(a - b) > 1e-6 for a, b in zip(weights, e.weights, strict=True))
    )


def _next_version_key(con: sqlite3.Connection, key: str) -> str:
    """`<key>-v2`, `-v3`, ...: the first free one. A key that is itself a version of a stored
    experiment counts on from it; any other key (e.g. `prompt-v2`, named so by its author) is
    the base."""
    match = re.fullmatch(r"(.+)-v(\d+)", key)
    exists = "SELECT 1 FROM experiments WHERE key = ?"
    if match and con.execute(exists, [match[1]]).fetchone() is not None:
        base, n = match[1], int(match[2]) + 1
    else:
        base, n = key, 2
    while True:
        suffix = f"-v{n}"
        candidate = base[: 64 - len(suffix)] + suffix
        if con.execute(exists, [candidate]).fetchone() is None:
            return candidate
        n += 1


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _CORRUPTION_CODES


def _recovering(
    method: Callable[Concatenate[Store, P], R],
) -> Callable[Concatenate[Store, P], R]:
    """Run a store method; if the file turns out damaged (or deleted) while we run, recover
    the store once and retry, so neither process needs a restart. Other database errors
    become ControlStoreError with one sentence."""

    @functools.wraps(method)
    def guarded(self: Store, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                self._recover(exc)
            elif "no such table" in str(exc):  # the file was deleted and came back empty
                self._migrate()
            else:
                raise ControlStoreError(self._sentence(exc)) from exc
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise ControlStoreError(self._sentence(exc)) from exc

    return cast(Callable[Concatenate[Store, P], R], guarded)


class ControlStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.recoveries = 0  # how often this object found the file damaged and recreated it
        self._recovery_mutex = threading.Lock()
        try:
            self._migrate()
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise ControlStoreError(self._sentence(exc)) from exc
            self._recover(exc)

    def _sentence(self, exc: BaseException) -> str:
        return f"The control store {self.path} could not be used ({exc})."

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        con.row_factory = sqlite3.Row
        try:
            yield con
        finally:
            con.close()

    def _migrate(self) -> None:
        # One migrating process at a time: the service and the app open a new store together,
        # and both would read version 0 and create the same tables ("table ... already exists").
        with open(f"{self.path}.migrate-lock", "a") as lock, self._connect() as con:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            con.execute("PRAGMA journal_mode=WAL")
            version = con.execute("PRAGMA user_version").fetchone()[0]
            for number, step in enumerate(SCHEMA, start=1):
                if number <= version:
                    continue
                script = step if isinstance(step, str) else self._added_columns(con, step)
                con.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    @staticmethod
    def _added_columns(con: sqlite3.Connection, columns: list[tuple[str, str, str]]) -> str:
        statements = []
        for table, column, declaration in columns:
            existing = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
            if column not in existing:
                statements.append(f"ALTER TABLE {table} ADD COLUMN {column} {declaration};")
        return " ".join(statements)

    # ---- recovering a damaged file ------------------------------------------------------------

    @contextmanager
    def _recovery_lock(self) -> Iterator[None]:
        """One recovery at a time, across threads and across the app and the service."""
        with self._recovery_mutex, open(f"{self.path}.recovery-lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _is_healthy(self) -> bool:
        try:
            with self._connect() as con:
                checked = con.execute("PRAGMA quick_check").fetchone()[0]
                version = con.execute("PRAGMA user_version").fetchone()[0]
            return bool(checked == "ok" and version == len(SCHEMA))
        except sqlite3.DatabaseError:
            return False

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """Move the damaged file aside, start a new store and copy into it every table that
        can still be read. The store holds requests and settings, never collected data."""
        with self._recovery_lock():
            if self._is_healthy():  # the other process (or thread) has just recovered it
                return
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.time_ns()}")
            for suffix in ("", "-wal", "-shm"):
                source = Path(f"{self.path}{suffix}")
                if source.exists():
                    os.replace(source, f"{aside}{suffix}")
            self._migrate()
            kept = self._copy_readable_rows(aside)
            self.recoveries += 1
            log.warning(
                "control store %s was unreadable (%s); moved it to %s and recreated it, "
                "keeping %d row(s) that could still be read",
                self.path,
                exc,
                aside.name,
                kept,
            )

    def _copy_readable_rows(self, damaged: Path) -> int:
        kept = 0
        with self._connect() as con:
            try:
                con.execute("ATTACH DATABASE ? AS damaged", [str(damaged)])
            except sqlite3.DatabaseError:
                return 0
            for name in TABLES:
                try:
                    old = {r[1] for r in con.execute(f"PRAGMA damaged.table_info({name})")}
                    new = [r[1] for r in con.execute(f"PRAGMA main.table_info({name})")]
                    cols = ", ".join(c for c in new if c in old)
                    if cols:
                        # One statement per table: a table that cannot be read whole is
                        # skipped, never half-copied. Names are our own schema's.
                        kept += con.execute(
                            f"INSERT OR IGNORE INTO main.{name} ({cols}) "  # noqa: S608
                            f"SELECT {cols} FROM damaged.{name}"
                        ).rowcount
                except sqlite3.DatabaseError:
                    continue
            con.execute("DETACH DATABASE damaged")
        return kept

    # ---- schedules ----------------------------------------------------------------------------

    @_recovering
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
                r["timeout_s"],
            )
            for r in rows
        }

    @_recovering
    def set_schedule(
        self,
        job: str,
        kind: ScheduleKind,
        every_seconds: int | None = None,
        cron: str | None = None,
        enabled: bool = True,
        timeout_s: int | None = None,
    ) -> None:
        validate_schedule(kind, every_seconds, cron, timeout_s)
        with self._connect() as con:
            con.execute(
                "INSERT INTO schedules (job, kind, every_seconds, cron, enabled, updated_at, "
                "timeout_s) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job) DO UPDATE SET "
                "kind = excluded.kind, every_seconds = excluded.every_seconds, "
                "cron = excluded.cron, enabled = excluded.enabled, "
                "updated_at = excluded.updated_at, timeout_s = excluded.timeout_s",
                [
                    job,
                    kind,
                    every_seconds if kind == "interval" else None,
                    cron if kind == "cron" else None,
                    int(enabled),
                    now_iso(),
                    timeout_s,
                ],
            )

    def ensure_schedule(
        self,
        job: str,
        kind: ScheduleKind,
        every_seconds: int | None,
        cron: str | None,
        timeout_s: int | None = None,
    ) -> None:
        """Seed a job's default schedule without overriding what a user has set."""
        if job not in self.schedules():
            self.set_schedule(job, kind, every_seconds, cron, timeout_s=timeout_s)

    # ---- run requests -------------------------------------------------------------------------

    @_recovering
    def queue_run(self, job: str) -> tuple[int, bool]:
        """Ask the service to run `job`: (request id, True) when a request for it is already
        waiting, which this one joins, so a source has at most one pending request."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            row = con.execute(
                "SELECT id FROM run_requests WHERE job = ? AND status = 'pending' "
                "ORDER BY id LIMIT 1",
                [job],
            ).fetchone()
            if row is not None:
                con.execute("COMMIT")
                return int(row["id"]), True
            cur = con.execute(
                "INSERT INTO run_requests (job, requested_at) VALUES (?, ?)", [job, now_iso()]
            )
            con.execute("COMMIT")
            assert cur.lastrowid is not None  # set by the INSERT just run
            return int(cur.lastrowid), False

    def request_run(self, job: str) -> int:
        return self.queue_run(job)[0]

    @_recovering
    def claim_requests(self) -> list[tuple[int, str]]:
        """Atomically claim every pending request (the service calls this)."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            rows = con.execute(
                "SELECT id, job FROM run_requests WHERE status = 'pending' ORDER BY id"
            ).fetchall()
            if rows:
                con.execute(
                    "UPDATE run_requests SET status = 'running', claimed_at = ? "
                    "WHERE status = 'pending' AND id <= ?",
                    [now_iso(), rows[-1]["id"]],
                )
            con.execute("COMMIT")
        return [(r["id"], r["job"]) for r in rows]

    def finish_request(
        self, request_id: int, status: RequestStatus, message: str | None, run_id: int | None = None
    ) -> None:
        self.finish_requests([request_id], status, message, run_id)

    @_recovering
    def finish_requests(
        self,
        request_ids: Sequence[int],
        status: RequestStatus,
        message: str | None,
        run_id: int | None = None,
    ) -> None:
        """Close requests served by one run (or refused for one reason), in one transaction."""
        finished = now_iso()
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            con.executemany(
                "UPDATE run_requests SET status = ?, message = ?, finished_at = ?, run_id = ? "
                "WHERE id = ?",
                [(status, message, finished, run_id, i) for i in request_ids],
            )
            con.execute("COMMIT")

    @_recovering
    def close_stale_requests(
        self,
        message: str = "interrupted: the collectors service stopped before this run finished; "
        "ask for it again if you still need it",
    ) -> int:
        """Close requests a service claimed and will never finish (it stopped or was killed);
        pending ones stay, for the next service to run."""
        with self._connect() as con:
            cur = con.execute(
                "UPDATE run_requests SET status = 'failed', message = ?, finished_at = ? "
                "WHERE status = 'running'",
                [message, now_iso()],
            )
        return cur.rowcount

    @_recovering
    def request(self, request_id: int) -> dict[str, Any] | None:
        with self._connect() as con:
            row = con.execute("SELECT * FROM run_requests WHERE id = ?", [request_id]).fetchone()
        return dict(row) if row else None

    @_recovering
    def recent_requests(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._connect() as con:
            rows = con.execute(
                "SELECT * FROM run_requests ORDER BY id DESC LIMIT ?", [limit]
            ).fetchall()
        return [dict(r) for r in rows]

    # ---- progress and heartbeat ---------------------------------------------------------------

    @_recovering
    def set_progress(
        self,
        job: str,
        state: ProgressState,
        run_id: int | None = None,
        rows_read: int = 0,
        done: int | None = None,
        total: int | None = None,
        message: str | None = None,
    ) -> None:
        """`state` is running, hung, or how the last run ended; `message` says why a source
        is hung."""
        with self._connect() as con:
            con.execute(
                "INSERT INTO progress (job, run_id, rows_read, done, total, started_at, "
                "updated_at, state, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (job) DO UPDATE "
                "SET run_id = excluded.run_id, rows_read = excluded.rows_read, "
                "done = excluded.done, total = excluded.total, "
                "started_at = CASE WHEN excluded.state = 'running' AND progress.state != 'running' "
                "THEN excluded.started_at ELSE progress.started_at END, "
                "updated_at = excluded.updated_at, state = excluded.state, "
                "message = excluded.message",
                [job, run_id, rows_read, done, total, now_iso(), now_iso(), state, message],
            )

    @_recovering
    def progress(self) -> dict[str, dict[str, Any]]:
        with self._connect() as con:
            rows = con.execute("SELECT * FROM progress").fetchall()
        return {r["job"]: dict(r) for r in rows}

    @_recovering
    def set_service_info(self, /, **values: Any) -> None:
        with self._connect() as con:
            con.executemany(
                "INSERT INTO service VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    @_recovering
    def service_info(self) -> dict[str, Any]:
        with self._connect() as con:
            rows = con.execute("SELECT key, value FROM service").fetchall()
        return {r["key"]: json.loads(r["value"]) for r in rows}

    # ---- experiments --------------------------------------------------------------------------

    @_recovering
    def save_experiment(self, experiment: SavedExperiment) -> SavedExperiment:
        """Create a definition (revision 0) or update the one at `experiment.revision`; its
        status is kept. ExperimentError when the key is taken by another experiment, or when
        someone saved the experiment since this copy was read.

        Once an experiment has started, its variants, split and unit are locked: units already
        assigned must keep their variant, and a new split over the same key would reshuffle
        them. Such a change is saved as a new version instead, a draft under the next free key
        `<key>-v2`, `-v3`, ...; the returned definition is that version."""
        e = validate_experiment(experiment)
        now = now_iso()
        values = [
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
        ]
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            row = con.execute(
                "SELECT revision, status, variants, weights, unit_type FROM experiments "
                "WHERE key = ?",
                [e.key],
            ).fetchone()
            if e.revision == 0 and row is not None:
                con.execute("ROLLBACK")
                raise ExperimentError(
                    f"An experiment with key {e.key!r} already exists; choose another key, "
                    "or open that experiment to edit it."
                )
            if e.revision and (row is None or row["revision"] != e.revision):
                con.execute("ROLLBACK")
                raise ExperimentError(
                    f"Experiment {e.key!r} was changed since you opened it (by another session "
                    "or person); reload the page to see the current definition, then save again."
                )
            if row is not None and row["status"] != "draft" and _design_changed(row, e):
                version = _next_version_key(con, e.key)
                con.execute(
                    "INSERT INTO experiments (name, hypothesis, variants, weights, unit_type, "
                    "primary_metrics, guardrail_metrics, start_at, end_at, method, key, "
                    "status, created_at, updated_at, revision) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'draft', ?, ?, 1)",
                    [f"{e.name} (version {version.rsplit('-v', 1)[1]})", *values[1:], version]
                    + [now, now],
                )
                con.execute("COMMIT")
                return self.experiments()[version]
            if row is None:
                con.execute(
                    "INSERT INTO experiments (name, hypothesis, variants, weights, unit_type, "
                    "primary_metrics, guardrail_metrics, start_at, end_at, method, key, "
                    "status, created_at, updated_at, revision) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                    [*values, e.key, e.status, now, now],
                )
            else:
                con.execute(
                    "UPDATE experiments SET name = ?, hypothesis = ?, variants = ?, weights = ?, "
                    "unit_type = ?, primary_metrics = ?, guardrail_metrics = ?, start_at = ?, "
                    "end_at = ?, method = ?, updated_at = ?, revision = revision + 1 "
                    "WHERE key = ?",
                    [*values, now, e.key],
                )
            con.execute("COMMIT")
        return self.experiments()[e.key]

    @_recovering
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
                revision=r["revision"],
                archived=bool(r["archived"]),
            )
            for r in rows
        }

    @_recovering
    def delete_experiment(self, key: str) -> None:
        """Delete a draft (it never ran, so nothing was assigned under it); ExperimentError
        for any other status, whose exposures belong to it."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            row = con.execute("SELECT status FROM experiments WHERE key = ?", [key]).fetchone()
            if row is None or row["status"] != "draft":
                con.execute("ROLLBACK")
                raise ExperimentError(
                    f"No experiment with key {key!r} to delete."
                    if row is None
                    else f"Only a draft can be deleted; {key!r} is {row['status']}, so callers "
                    "were assigned under it: stop it and archive it instead."
                )
            con.execute("DELETE FROM experiments WHERE key = ?", [key])
            con.execute("COMMIT")

    @_recovering
    def archive_experiment(self, key: str, archived: bool = True) -> SavedExperiment:
        """Hide a draft or stopped experiment from the page's list (or bring it back);
        ExperimentError for one that is running or paused, which still assigns callers."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            row = con.execute("SELECT status FROM experiments WHERE key = ?", [key]).fetchone()
            if row is None or (archived and row["status"] not in ("draft", "stopped")):
                con.execute("ROLLBACK")
                raise ExperimentError(
                    f"No experiment with key {key!r}; save it first."
                    if row is None
                    else f"Experiment {key!r} is {row['status']}: stop it before archiving it."
                )
            con.execute(
                "UPDATE experiments SET archived = ?, updated_at = ?, revision = revision + 1 "
                "WHERE key = ?",
                [int(archived), now_iso(), key],
            )
            con.execute("COMMIT")
        return self.experiments()[key]

    @_recovering
    def set_experiment_status(self, key: str, status: Status) -> SavedExperiment:
        """Start (running), pause, resume or stop; ExperimentError if the change is not allowed
        (analysis.experiment_rules)."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            row = con.execute("SELECT status FROM experiments WHERE key = ?", [key]).fetchone()
            if row is None:
                con.execute("ROLLBACK")
                raise ExperimentError(f"No experiment with key {key!r}; save it first.")
            if status not in STATUSES or not may_become(row["status"], status):
                con.execute("ROLLBACK")
                raise ExperimentError(
                    f"Experiment {key!r} is {row['status']}; it cannot become {status}."
                )
            con.execute(
                "UPDATE experiments SET status = ?, updated_at = ?, revision = revision + 1 "
                "WHERE key = ?",
                [status, now_iso(), key],
            )
            con.execute("COMMIT")
        return self.experiments()[key]
