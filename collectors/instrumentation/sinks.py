"""Where finished rows go: Supabase (through supabase-py), a local spool, memory, or nowhere.

A sink's `write` is called only from the pipeline's shipper thread (and at shutdown), never
from a request; `flush` and `close` from the thread that flushes or shuts down. `write` should
not block: Supabase sends from its own thread and falls back to disk. Every sink of ours keeps
`books()`: what became of each row handed to `write`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Protocol

from collectors.instrumentation.spool import (
    SpoolFile,
    SpoolWriter,
    file_chunks,
    pid_alive,
    spool_files,
)
from collectors.schema import TABLES

log = logging.getLogger("collectors.instrumentation")


class Sink(Protocol):
    def write(self, table: str, rows: list[dict[str, Any]]) -> None: ...
    def tick(self) -> None: ...
    def flush(self, timeout: float | None = None) -> None: ...
    def close(self, timeout: float | None = None) -> None: ...


class BaseSink:
    """No-op maintenance, flush and close."""

    def tick(self) -> None:
        pass

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


class NullSink(BaseSink):
    """Discards rows (sink type `none`, and before configure_monitoring); counted."""

    def __init__(self) -> None:
        self.discarded = 0
        self._lock = threading.Lock()

    def write(self, table: str, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self.discarded += len(rows)

    def books(self) -> dict[str, Any]:
        return {"shipped": 0, "spooled": 0, "pending": 0, "dropped": {"no_sink": self.discarded}}


class MemorySink(BaseSink):
    """Keeps rows per table in memory (tests and local experiments)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._count = 0

    def write(self, table: str, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self.rows.setdefault(table, []).extend(rows)
            self._count += len(rows)

    def table(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.rows.get(name, []))

    def books(self) -> dict[str, Any]:
        return {"shipped": self._count, "spooled": 0, "pending": 0, "dropped": {}}


class SpoolSink(BaseSink):
    """JSON-lines files the collectors' `SpoolSource` ingests (a row written there has
    arrived: it is `shipped`)."""

    def __init__(self, directory: str | Path, **kw: Any) -> None:
        self.writer = SpoolWriter(directory, **kw)

    @property
    def dropped(self) -> int:
        return self.writer.dropped

    def write(self, table: str, rows: list[dict[str, Any]]) -> None:
        self.writer.write(table, rows)

    def tick(self) -> None:
        self.writer.tick()

    def close(self, timeout: float | None = None) -> None:
        self.writer.close()

    def books(self) -> dict[str, Any]:
        w = self.writer
        with w._lock:
            return {
                "shipped": w.written,
                "spooled": 0,
                "pending": 0,
                "dropped": {
                    "disk_full": w.dropped,
                    "unserialisable": w.unserialisable,
                    "disk_error": w.disk_errors,
                },
                "up": w.failing_since is None,
                "failing_since": w.failing_since,
                "last_error": w.last_error,
            }


class SupabaseWriteError(RuntimeError):
    def __init__(self, message: str, status: int | None, transient: bool) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient
        self.unsent: list[dict[str, Any]] = []


def merged_parts(rows: list[dict[str, Any]], key: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows of a table that arrives in parts, one per key: each part's known values over the
    earlier ones'. (One upsert may not touch a row twice, and a part must not blank a value.)"""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        k = tuple(row.get(c) for c in key)
        if k in merged:
            merged[k].update((c, v) for c, v in row.items() if v is not None)
        else:
            merged[k] = dict(row)
    return list(merged.values())


class SupabaseSink(BaseSink):
    """Upserts rows into Supabase from a sender thread; the disk outbox takes over whenever
    Supabase is slow, failing or hanging, and is replayed once it answers again.

    `write` never waits on the network: it hands the batch to the sender while the sender keeps
    up (at most `queue_batches` waiting) and Supabase is not failing, and otherwise appends it
    to the outbox on disk (fsynced). A hanging Supabase therefore only holds the sender, never
    the pipeline, and nothing is dropped until the outbox reaches `max_bytes`.

    Upserts are on each table's natural key, so a batch sent twice (a timeout after Supabase
    committed it, a replay after a crash) is harmless: `resolution=ignore-duplicates`, except
    for tables whose rows arrive in parts (a call's start, then its end), which merge
    (`resolution=merge-duplicates`; the migration's trigger keeps every known value).
    401/403 (wrong key), 5xx, 429 and timeouts keep the rows on disk; 413 splits the batch;
    other 4xx, and a row that cannot be serialised, isolate and drop the offending rows.
    Several processes may share one outbox folder: each writes its own files, and one at a
    time (holding a lock file) sends the sealed ones, including files of processes that died.

    `books()` accounts for every row handed to `write`: sent from memory (`shipped`), written
    to the outbox (`spooled`), waiting in memory (`pending`) or dropped by reason. Rows sent
    from the outbox later are counted apart (`replayed`): they may be another process's.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        outbox_dir: str | Path,
        *,
        timeout: float = 10.0,
        client: Any = None,
        max_bytes: int = 512 << 20,
        file_bytes: int = 8 << 20,
        rotate_seconds: float = 10.0,
        queue_batches: int = 4,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.queue_batches = queue_batches
        self.outbox_dir = Path(outbox_dir)
        self.outbox = SpoolWriter(
            self.outbox_dir,
            max_bytes=max_bytes,
            file_bytes=file_bytes,
            rotate_seconds=rotate_seconds,
        )
        self.rows_sent = 0  # every row Supabase accepted, from memory or from the outbox
        self.rows_replayed = 0  # of which from the outbox
        self.rows_spooled = 0  # rows handed to write() that went to the outbox
        self.rows_rejected = 0  # rows Supabase refused, or that cannot be serialised
        self.replay_rejected = 0  # of which from the outbox
        self._unserialisable_direct = 0  # of rows_rejected: not JSON (never sent)
        self.last_error: str | None = None
        self.failing_since: float | None = None  # wall time of the first failure in a row
        self._sending = 0  # rows handed to write() that the sender holds now
        self._request_since: float | None = None  # monotonic start of the request in flight
        self._status = threading.local()
        self._down_until = 0.0
        self._backoff = 1.0
        self._lock = threading.Lock()  # the queue, the counters, up/down; never held on I/O
        self._send_lock = threading.Lock()  # one sender at a time: the thread, flush or close
        self._queue: deque[tuple[str, list[dict[str, Any]]]] = deque()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._thread_pid = 0
        self._replayer: Any = None  # the open lock file while this process replays the outbox
        self._next_scan = 0.0  # when to look for rows other processes left on disk
        self._client = client if client is not None else self._make_client(url, api_key)

    @property
    def dropped(self) -> int:
        return self.outbox.dropped

    @property
    def up(self) -> bool:
        return self.failing_since is None and self._hanging_for() is None

    def _hanging_for(self) -> float | None:
        """Seconds the request in flight has waited, once that is longer than a healthy
        Supabase takes (half the timeout, at most 5 s); else None."""
        since = self._request_since
        if since is None:
            return None
        waited = time.monotonic() - since
        return waited if waited > min(5.0, self.timeout / 2) else None

    def books(self) -> dict[str, Any]:
        hanging = self._hanging_for()
        with self._lock:
            failing_since = self.failing_since
            last_error = self.last_error
            if hanging is not None and failing_since is None:
                failing_since = time.time() - hanging
                last_error = f"Supabase at {self.url} has not answered for {hanging:.0f} s"
            pending = self._sending + sum(len(rows) for _, rows in self._queue)
            sent_direct = self.rows_sent - self.rows_replayed
            rejected_direct = self.rows_rejected - self.replay_rejected
            return {
                "shipped": sent_direct,
                "spooled": self.rows_spooled,
                "pending": pending,
                "dropped": {
                    "refused": rejected_direct - self._unserialisable_direct,
                    "unserialisable": self._unserialisable_direct + self.outbox.unserialisable,
                    "disk_full": self.outbox.dropped,
                    "disk_error": self.outbox.disk_errors,
                },
                "replayed": self.rows_replayed,
                "replay_refused": self.replay_rejected,
                "up": failing_since is None,
                "failing_since": failing_since,
                "last_error": last_error,
            }

    def _make_client(self, url: str, api_key: str) -> Any:
        import httpx  # lazy: only when this sink is used
        from supabase.lib.client_options import SyncClientOptions

        from supabase import create_client  # lazy: the optional `supabase` extra

        def remember_status(response: httpx.Response) -> None:
            self._status.code = response.status_code

        http = httpx.Client(timeout=self.timeout, event_hooks={"response": [remember_status]})
        options = SyncClientOptions(
            httpx_client=http,
            postgrest_client_retry=False,
            postgrest_client_timeout=self.timeout,
            auto_refresh_token=False,
            persist_session=False,
        )
        return create_client(url, api_key, options=options)

    # -- one request ------------------------------------------------------------------------
    def _post(self, table: str, rows: list[dict[str, Any]]) -> None:
        from postgrest import APIError
        from postgrest.types import ReturnMethod

        spec = TABLES[table]
        if spec.arrives_in_parts:
            rows = merged_parts(rows, spec.key)
        self._status.code = None
        self._request_since = time.monotonic()
        try:
            (
                self._client.table(table)
                .upsert(
                    rows,
                    on_conflict=",".join(spec.key),
                    ignore_duplicates=not spec.arrives_in_parts,
                    returning=ReturnMethod.minimal,
                    default_to_null=True,
                )
                .execute()
            )
        except APIError as exc:
            status = getattr(self._status, "code", None)
            code = str(getattr(exc, "code", "") or "")
            message = str(getattr(exc, "message", "") or "")[:200]
            msg = f"Supabase refused {table} rows (HTTP {status}, {code[:20]}): {message}"
            transient = (
                status is None
                or status >= 500
                or status in (401, 403, 408, 429)
                or code in ("PGRST301", "42501")
                or code.startswith("PGRST0")
            )
            raise SupabaseWriteError(msg, status, transient) from exc
        except (TypeError, ValueError, RecursionError, OverflowError) as exc:
            # raised while serialising the body, before anything was sent: a bad row
            raise SupabaseWriteError(
                f"a {table} row cannot be serialised: {type(exc).__name__}", None, False
            ) from exc
        except Exception as exc:  # noqa: BLE001 - network faults of any kind are transient
            raise SupabaseWriteError(
                f"Supabase at {self.url} is unreachable: {type(exc).__name__}: {str(exc)[:200]}",
                None,
                True,
            ) from exc

    def _send(self, table: str, rows: list[dict[str, Any]], replay: bool = False) -> None:
        """Send rows, splitting on 413 and isolating bad rows. A transient failure raises
        SupabaseWriteError with `unsent`: the rows not sent yet, in order."""
        parts = [rows]
        while parts:
            part = parts.pop()
            try:
                self._post(table, part)
            except SupabaseWriteError as exc:
                if exc.transient:
                    exc.unsent = part + [r for p in reversed(parts) for r in p]
                    raise
                if len(part) > 1:  # 413 or a bad row somewhere: halve until the culprit is alone
                    mid = len(part) // 2
                    parts.append(part[mid:])
                    parts.append(part[:mid])
                    continue
                with self._lock:
                    self.rows_rejected += 1
                    if replay:
                        self.replay_rejected += 1
                    else:
                        self._sending -= 1
                        if exc.status is None:
                            self._unserialisable_direct += 1
                    self.last_error = str(exc)[:300]
                log.warning(
                    "monitoring: dropped one %s row Supabase will not accept: %s",
                    table,
                    str(exc)[:300],
                )
                continue
            with self._lock:
                self.rows_sent += len(part)
                if replay:
                    self.rows_replayed += len(part)
                else:
                    self._sending -= len(part)

    # -- up and down ------------------------------------------------------------------------
    def _mark_down(self, exc: Exception) -> None:
        """Supabase failed: wait (with exponential backoff) before trying again, and move the
        batches waiting for the sender to disk."""
        with self._lock:
            if self.failing_since is None:
                log.warning(
                    "monitoring: %s; writing events to %s until it recovers",
                    str(exc)[:300],
                    self.outbox_dir,
                )
                self.failing_since = time.time()
            self.last_error = str(exc)[:300]
            self._down_until = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, 300.0)
        self._spill_waiting()

    def _mark_up(self) -> None:
        with self._lock:
            if self.failing_since is not None:
                log.info("monitoring: Supabase answers again")
            self.failing_since = None
            self._backoff = 1.0

    def _spill(self, table: str, rows: list[dict[str, Any]]) -> None:
        written = self.outbox.write(table, rows)
        with self._lock:
            self.rows_spooled += written

    # -- sink protocol ----------------------------------------------------------------------
    def write(self, table: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        with self._lock:
            hand_over = (
                not self._closed
                and time.monotonic() >= self._down_until
                and len(self._queue) < self.queue_batches
            )
            if hand_over:
                self._queue.append((table, rows))
        if hand_over:
            self._ensure_sender()
            self._wake.set()
        else:
            self._spill(table, rows)

    def _ensure_sender(self) -> None:
        alive = self._thread is not None and self._thread.is_alive()
        if alive and self._thread_pid == os.getpid():
            return
        with self._lock:  # started once per process (a forked worker starts its own)
            if self._thread is not None and self._thread.is_alive():
                if self._thread_pid == os.getpid():
                    return
            self._thread_pid = os.getpid()
            self._thread = threading.Thread(
                target=self._sender_loop, name="monitoring-supabase", daemon=True
            )
            self._thread.start()

    def _sender_loop(self) -> None:
        while not self._closed:
            self._wake.wait(0.5)
            self._wake.clear()
            if self._closed:
                return
            try:
                self.deliver()
            except Exception:  # noqa: BLE001 - the sender must outlive any one failure
                log.exception("monitoring: sending to Supabase failed")

    def deliver(self, timeout: float | None = None) -> int:
        """Send the waiting batches, then (while Supabase answers) the outbox on disk.
        Returns the rows sent; 0 when another caller is sending and `timeout` passes."""
        if not self._send_lock.acquire(timeout=-1 if timeout is None else timeout):
            return 0
        try:
            sent = 0
            while True:
                with self._lock:
                    if not self._queue:
                        break
                    table, rows = self._queue.popleft()
                    self._sending += len(rows)
                try:
                    self._send(table, rows)
                except SupabaseWriteError as exc:
                    unsent = exc.unsent
                    with self._lock:
                        self._sending -= len(unsent)
                    self._spill(table, unsent)
                    self._mark_down(exc)
                    return sent
                sent += len(rows)
                self._mark_up()
            if time.monotonic() >= self._down_until and time.monotonic() >= self._next_scan:
                sent += self._replay()
            return sent
        finally:
            self._send_lock.release()

    def tick(self) -> None:
        self.outbox.tick()
        self._ensure_sender()
        self._wake.set()

    def replay(self, max_rows: int = 50_000) -> int:
        """Send the rows waiting on disk now, in order; stops at the first failure."""
        with self._send_lock:
            return self._replay(max_rows)

    def _holds_replay_lock(self) -> bool:
        if self._replayer is not None:
            return True
        fh = open(self.outbox_dir / ".replay.lock", "a")  # noqa: SIM115 - held while we live
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        self._replayer = fh
        return True

    def _replay(self, max_rows: int = 50_000) -> int:
        """Send the outbox file by file. A sealed file never changes, so its progress is a
        byte offset kept beside it (`<file>.sent`), and it is deleted once sent: files are
        independent, so one that appears late (another process's) is never skipped."""
        self._next_scan = time.monotonic() + 5.0  # rows other processes spilled: look again
        if not self._holds_replay_lock():
            return 0  # another process replays this outbox
        self.outbox.close()  # seal this process's open files so they can be sent
        sent = 0
        for f in self._sendable_files():
            table = f.path.parent.name
            progress = f.path.with_suffix(".sent")
            start = int(progress.read_text() or 0) if progress.exists() else 0
            for rows, offset in file_chunks(f.path, start, max_bytes=1 << 20):
                try:
                    for i in range(0, len(rows), 500):
                        self._send(table, rows[i : i + 500], replay=True)
                except SupabaseWriteError as exc:
                    self._mark_down(exc)
                    return sent
                self._mark_up()
                sent += len(rows)
                tmp = progress.with_suffix(".tmp")
                tmp.write_text(str(offset))
                tmp.replace(progress)
                if sent >= max_rows:
                    self._next_scan = 0.0  # more to do: carry on at the next wake-up
                    return sent
            f.path.unlink(missing_ok=True)
            progress.unlink(missing_ok=True)
        if sent:
            log.info("monitoring: replayed %d rows from the outbox to Supabase", sent)
        return sent

    def _sendable_files(self) -> list[SpoolFile]:
        """Sealed outbox files, oldest first; another process's open file is its writer's
        until sealed, unless that process has died (then it is sealed here)."""
        writing = self.outbox.open_paths()
        out = []
        for table_dir in sorted(p for p in self.outbox_dir.iterdir() if p.is_dir()):
            if table_dir.name not in TABLES:
                continue
            for f in spool_files(table_dir):
                if not f.sealed:
                    if f.path in writing:
                        continue  # this process appends to it: sent once sealed
                    # (an unknown file with our pid is a dead predecessor's: containers
                    # reuse pids)
                    if f.pid != os.getpid() and pid_alive(f.pid):
                        continue
                    sealed = f.path.with_suffix(".jsonl")
                    try:
                        os.replace(f.path, sealed)
                    except FileNotFoundError:
                        continue
                    f = SpoolFile(f.stem, sealed, True)
                out.append(f)
        return sorted(out, key=lambda f: f.stem)

    def pending_on_disk(self) -> bool:
        """Rows in the outbox that this process could send now."""
        return bool(self._sendable_files()) or bool(self.outbox.open_paths())

    def flush(self, timeout: float | None = None) -> None:
        """Send everything waiting, in memory and on disk, unless Supabase is failing; at most
        `timeout` seconds (three request timeouts by default). Batches that could not be sent
        by then are written to disk: after a flush, every row is delivered or durable."""
        deadline = time.monotonic() + (3 * self.timeout if timeout is None else timeout)
        self.outbox.tick()
        while time.monotonic() < deadline:
            self._next_scan = 0.0
            self.deliver(timeout=max(0.0, deadline - time.monotonic()))
            with self._lock:
                done = not self._queue
            if time.monotonic() < self._down_until or (done and not self.pending_on_disk()):
                break
            time.sleep(0.05)
        self._spill_waiting()

    def _spill_waiting(self) -> None:
        with self._lock:
            waiting = list(self._queue)
            self._queue.clear()
        for table, rows in waiting:
            self._spill(table, rows)

    def close(self, timeout: float | None = None) -> None:
        """Stop the sender; batches still waiting in memory go to disk for the next start.
        Waits at most `timeout` (a request timeout and a second by default) for a request
        in flight."""
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.timeout + 1 if timeout is None else timeout)
        self._spill_waiting()
        self.outbox.close()
        if self._replayer is not None:
            self._replayer.close()  # releases the lock for the next process
            self._replayer = None
