"""Where finished rows go: Supabase (through supabase-py), a local spool, memory, or nowhere.

A sink is called only from the pipeline's shipper thread (and at shutdown), never from a
request. `write` may block (a slow Supabase only delays the shipper); the pipeline's bounded
queues keep memory bounded meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from collectors.instrumentation.spool import SpoolWriter, read_committed
from collectors.schema import TABLES

log = logging.getLogger("collectors.instrumentation")


class Sink(Protocol):
    def write(self, table: str, rows: list[dict[str, Any]]) -> None: ...
    def tick(self) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class NullSink:
    def write(self, table: str, rows: list[dict[str, Any]]) -> None:
        pass

    def tick(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class MemorySink(NullSink):
    """Keeps rows per table in memory (tests and local experiments)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def write(self, table: str, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self.rows.setdefault(table, []).extend(rows)

    def table(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.rows.get(name, []))


class SpoolSink(NullSink):
    """JSON-lines files the collectors' `SpoolSource` ingests."""

    def __init__(self, directory: str | Path, **kw: Any) -> None:
        self.writer = SpoolWriter(directory, **kw)

    @property
    def dropped(self) -> int:
        return self.writer.dropped

    def write(self, table: str, rows: list[dict[str, Any]]) -> None:
        self.writer.write(table, rows)

    def tick(self) -> None:
        self.writer.tick()

    def close(self) -> None:
        self.writer.close()


class SupabaseWriteError(RuntimeError):
    def __init__(self, message: str, status: int | None, transient: bool) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient


class SupabaseSink(NullSink):
    """Upserts rows into Supabase tables; spools to disk while Supabase fails, then replays.

    Inserts use `Prefer: resolution=ignore-duplicates` on each table's natural key, so a batch
    replayed after a crash is harmless. 401/403 (wrong key), 5xx, 429 and timeouts keep the rows
    in the outbox spool; 413 splits the batch; other 4xx isolate and drop the offending rows.
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
        rotate_seconds: float = 60.0,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.outbox_dir = Path(outbox_dir)
        self.outbox = SpoolWriter(
            self.outbox_dir,
            max_bytes=max_bytes,
            file_bytes=file_bytes,
            rotate_seconds=rotate_seconds,
        )
        self.rows_sent = 0
        self.rows_spooled = 0
        self.rows_rejected = 0
        self.last_error: str | None = None
        self._status = threading.local()
        self._down_until = 0.0
        self._backoff = 1.0
        self._lock = threading.Lock()
        self._client = client if client is not None else self._make_client(url, api_key)

    @property
    def dropped(self) -> int:
        return self.outbox.dropped

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

        self._status.code = None
        try:
            (
                self._client.table(table)
                .upsert(
                    rows,
                    on_conflict=",".join(TABLES[table].key),
                    ignore_duplicates=True,
                    returning=ReturnMethod.minimal,
                    default_to_null=True,
                )
                .execute()
            )
        except APIError as exc:
            status = getattr(self._status, "code", None)
            code = str(getattr(exc, "code", "") or "")
            msg = f"Supabase refused {table} rows (HTTP {status}, {code}): {exc.message}"
            transient = (
                status is None
                or status >= 500
                or status in (401, 403, 408, 429)
                or code in ("PGRST301", "42501")
                or code.startswith("PGRST0")
            )
            raise SupabaseWriteError(msg, status, transient) from exc
        except Exception as exc:  # noqa: BLE001 - network faults of any kind are transient
            raise SupabaseWriteError(
                f"Supabase at {self.url} is unreachable: {type(exc).__name__}: {exc}", None, True
            ) from exc

    def _send(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Send rows, splitting on 413 and isolating bad rows; raises only transient errors."""
        try:
            self._post(table, rows)
            self.rows_sent += len(rows)
        except SupabaseWriteError as exc:
            if exc.transient:
                raise
            if len(rows) > 1:  # 413 or a bad row somewhere: halve until the culprit is alone
                mid = len(rows) // 2
                self._send(table, rows[:mid])
                self._send(table, rows[mid:])
                return
            self.rows_rejected += 1
            self.last_error = str(exc)
            log.warning("monitoring: dropped one %s row Supabase will not accept: %s", table, exc)

    def _mark_down(self, exc: Exception) -> None:
        if self.last_error != str(exc):
            log.warning(
                "monitoring: %s; spooling events to %s until it recovers", exc, self.outbox_dir
            )
        self.last_error = str(exc)
        self._down_until = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, 300.0)

    # -- sink protocol ----------------------------------------------------------------------
    def write(self, table: str, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            if time.monotonic() >= self._down_until and not self._has_backlog(table):
                try:
                    self._send(table, rows)
                    self._backoff = 1.0
                    return
                except SupabaseWriteError as exc:
                    self._mark_down(exc)
            self.rows_spooled += self.outbox.write(table, rows)

    def _has_backlog(self, table: str) -> bool:
        d = self.outbox_dir / table
        return d.exists() and any(d.iterdir())

    def tick(self) -> None:
        self.outbox.tick()
        if time.monotonic() >= self._down_until:
            self.replay()

    def replay(self, max_rows: int = 50_000) -> int:
        """Send spooled rows in order; stops at the first transient failure."""
        sent = 0
        with self._lock:
            self.outbox.close()  # seal open files so they can be read to the end
            for table_dir in sorted(p for p in self.outbox_dir.iterdir() if p.is_dir()):
                table = table_dir.name
                if table not in TABLES:
                    continue
                state = table_dir / ".position"
                position = state.read_text().strip() if state.exists() else None
                for chunk in read_committed(table_dir, position, max_bytes=1 << 20, now=1e12):
                    try:
                        for i in range(0, len(chunk.rows), 500):
                            self._send(table, chunk.rows[i : i + 500])
                    except SupabaseWriteError as exc:
                        self._mark_down(exc)
                        return sent
                    sent += len(chunk.rows)
                    tmp = state.with_suffix(".tmp")
                    tmp.write_text(chunk.watermark)
                    tmp.replace(state)
                    position = chunk.watermark
                    if sent >= max_rows:
                        return sent
                # Every file was sealed under the lock and read to its end: all sent.
                for p in table_dir.iterdir():
                    p.unlink(missing_ok=True)
            self._backoff = 1.0
        if sent:
            log.info("monitoring: replayed %d spooled rows to Supabase", sent)
        return sent

    def flush(self) -> None:
        self.outbox.tick()

    def close(self) -> None:
        self.outbox.close()
