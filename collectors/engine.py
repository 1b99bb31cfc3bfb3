"""The run engine: validate, upsert by natural key, advance the watermark, record the run.

Each batch a source yields is committed in one transaction together with its watermark and its
rejected rows, so a process killed at any instant (even SIGKILL) leaves the warehouse at a batch
boundary: the next run resumes from the last committed watermark, and re-reading rows that were
already committed changes nothing because rows are upserted by their natural key.

All writes in a process go through `WRITE_LOCK` (one writer, as datasette does): sources fetch
concurrently, but transactions never conflict.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb
import httpx
import numpy as np
import pyarrow as pa

from collectors.schema import Table, table
from collectors.sources.base import Batch, Source, SourceConfigError, TransientSourceError
from collectors.validate import Rejected, validate

log = logging.getLogger(__name__)

WRITE_LOCK = threading.RLock()
MAX_REJECT_ROW_CHARS = 4000

# Errors worth retrying: the source said so, or the network failed underneath it.
TRANSIENT = (TransientSourceError, httpx.TransportError, TimeoutError, ConnectionError)

ProgressCallback = Callable[[int, int, Mapping[str, Any]], None]  # run_id, rows_read, progress


class RunStopped(Exception):
    """The service gave up on this run (it timed out, or the service is stopping): the run
    ends failed with this sentence and commits nothing more."""


# A run is running until it ends ok, partial (some rows rejected) or failed; the same words
# are its collector_runs.status, and how the control store's requests and progress end.
RunStatus = Literal["running", "ok", "partial", "failed"]


@dataclass
class RunSummary:
    run_id: int
    source: str
    status: RunStatus
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_rejected: int = 0
    attempts: int = 1
    error: str | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def watermarks(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, str]:
    rows = con.execute("SELECT stream, value FROM watermarks WHERE source = ?", [source]).fetchall()
    return dict(rows)


def recover_interrupted_runs(con: duckdb.DuckDBPyConnection) -> int:
    """Close runs left 'running' by a killed process; their committed batches are kept."""
    with WRITE_LOCK:
        rows = con.execute(
            "UPDATE collector_runs SET status = 'failed', ended_at = coalesce(ended_at, ?), "
            "error = 'interrupted: the collector stopped during this run; committed batches "
            "were kept and the next run resumes from them' "
            "WHERE status = 'running' RETURNING run_id",
            [_utcnow()],
        ).fetchall()
    return len(rows)


def _start_run(con: duckdb.DuckDBPyConnection, source: str) -> int:
    with WRITE_LOCK:
        row = con.execute(
            "INSERT INTO collector_runs (run_id, source, started_at, status) "
            "VALUES (nextval('collector_run_ids'), ?, ?, 'running') RETURNING run_id",
            [source, _utcnow()],
        ).fetchone()
    assert row is not None  # INSERT ... RETURNING returns the row
    return int(row[0])


def _finish_run(con: duckdb.DuckDBPyConnection, s: RunSummary) -> None:
    with WRITE_LOCK:
        con.execute(
            "UPDATE collector_runs SET ended_at = ?, status = ?, rows_read = ?, "
            "rows_inserted = ?, rows_updated = ?, rows_rejected = ?, attempts = ?, error = ? "
            "WHERE run_id = ?",
            [
                _utcnow(),
                s.status,
                s.rows_read,
                s.rows_inserted,
                s.rows_updated,
                s.rows_rejected,
                s.attempts,
                s.error,
                s.run_id,
            ],
        )


def _reject_json(row: Mapping[str, Any]) -> str:
    """The rejected row as valid JSON of about MAX_REJECT_ROW_CHARS at most: long values are
    shortened inside the row (cutting the JSON text would leave it unparseable), and NaN or
    infinity, which JSON cannot spell, are stored as the strings 'nan', 'inf'."""

    def plain(value: Any) -> Any:
        if isinstance(value, float) and (value != value or abs(value) == float("inf")):
            return repr(value)
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
            return f"<an integer of {value.bit_length()} bits>"  # str() of a huge int raises
        if value is None or isinstance(value, str | int | float | bool):
            return value
        try:  # nested objects (a spool line's dicts) kept as they were, when they are JSON
            json.dumps(value, allow_nan=False)
            return value
        except (TypeError, ValueError):
            return str(value)

    def cut(value: Any, limit: int) -> Any:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if len(text) <= limit:
            return value
        return f"{text[:limit]}…(+{len(text) - limit} chars)"

    def dumps(values: Mapping[str, Any]) -> str:
        return json.dumps(values, ensure_ascii=False, allow_nan=False)

    values = {cut(str(k), 100): plain(v) for k, v in row.items()}
    text, limit = dumps(values), MAX_REJECT_ROW_CHARS
    while len(text) > MAX_REJECT_ROW_CHARS and limit > 16:  # halve the longest values' share
        limit //= 2
        text = dumps({k: cut(v, limit) for k, v in values.items()})
    if len(text) > MAX_REJECT_ROW_CHARS:  # too many fields: keep the first ones that fit
        kept: dict[str, Any] = {}
        for k, v in values.items():
            kept[k] = cut(v, limit)
            if len(dumps(kept)) > MAX_REJECT_ROW_CHARS - 40:
                del kept[k]
                break
        kept["…"] = f"{len(values) - len(kept)} more fields"
        text = dumps(kept)
    return text


def _upsert(con: duckdb.DuckDBPyConnection, spec: Table, data: Any) -> tuple[int, int]:
    """Insert new rows, update changed ones, skip identical ones. Returns (inserted, updated)."""
    cols = spec.column_names
    keys = spec.key
    non_keys = [c for c in cols if c not in keys]
    # Identifiers come from collectors.schema (a fixed whitelist), never from input.
    key_join = " AND ".join(f"s.{k} = t.{k}" for k in keys)
    if spec.arrives_in_parts:  # a missing value in a later part is "not known yet"
        changed = " OR ".join(
            f"(s.{c} IS NOT NULL AND s.{c} IS DISTINCT FROM t.{c})" for c in non_keys
        )
    else:
        changed = " OR ".join(f"s.{c} IS DISTINCT FROM t.{c}" for c in non_keys)
    changed = changed or "FALSE"
    con.register("_batch", data)
    source = "_batch"
    try:
        key_tuple = f"({', '.join(keys)})" if len(keys) > 1 else keys[0]
        duplicated = con.execute(
            f"SELECT count(*) > count(DISTINCT {key_tuple}) FROM _batch"
        ).fetchall()[0][0]  # fetchall: an unfinished result would block unregister()
        if duplicated:
            # Last occurrence of a key within the batch wins, as it would across batches.
            # The position is an explicit column: row_number() OVER () follows no promised
            # order under a parallel scan. (Only done when needed: the window is costly.)
            con.unregister("_batch")
            ordinal = pa.array(np.arange(data.num_rows, dtype=np.int64))
            con.register("_batch", data.append_column("_ord", ordinal))
            if spec.arrives_in_parts:
                # Parts of one row in one batch: each column takes its latest known value.
                merged = ", ".join(
                    f"arg_max({c}, _ord) FILTER (WHERE {c} IS NOT NULL) AS {c}" for c in non_keys
                )
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE _stage AS "
                    f"SELECT {', '.join(keys)}, {merged} FROM _batch GROUP BY ALL"
                )
            else:
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE _stage AS SELECT * EXCLUDE (_ord) FROM _batch "
                    f"QUALIFY row_number() OVER (PARTITION BY {', '.join(keys)} "
                    "ORDER BY _ord DESC) = 1"
                )
            source = "_stage"
        if not _any_stored(con, spec, source, key_join):
            # A backfill's usual case: a plain INSERT, without the anti-join's copy of the batch.
            return _insert_new(con, spec, source), 0
        _mark_changes(con, spec, source, key_join, changed)
    finally:
        con.unregister("_batch")
        con.execute("DROP TABLE IF EXISTS _stage")
    counts = con.execute(
        "SELECT count(*) FILTER (WHERE _is_new), count(*) FILTER (WHERE NOT _is_new) FROM _changes"
    ).fetchone()
    assert counts is not None  # an aggregate returns one row
    inserted, updated = counts
    col_list = ", ".join(cols)
    if inserted:
        con.execute(
            f"INSERT INTO {spec.name} ({col_list}) SELECT {col_list} FROM _changes WHERE _is_new"
        )
    if updated:
        if spec.arrives_in_parts:
            sets = ", ".join(f"{c} = coalesce(c.{c}, {spec.name}.{c})" for c in non_keys)
        else:
            sets = ", ".join(f"{c} = c.{c}" for c in non_keys)
        match = " AND ".join(f"{spec.name}.{k} = c.{k}" for k in keys)
        con.execute(
            f"UPDATE {spec.name} SET {sets} FROM _changes c WHERE NOT c._is_new AND {match}"
        )
    if inserted or updated:
        # An update may move a row to another day: both days are republished.
        con.execute(
            "INSERT INTO dirty_partitions SELECT DISTINCT ?, day FROM ("
            f"SELECT CAST({spec.time_column} AS DATE) AS day FROM _changes "
            "UNION SELECT _old_day FROM _changes WHERE _old_day IS NOT NULL) "
            "ON CONFLICT DO NOTHING",
            [spec.name],
        )
    con.execute("DROP TABLE _changes")
    return int(inserted), int(updated)


def _any_stored(con: duckdb.DuckDBPyConnection, spec: Table, source: str, key_join: str) -> bool:
    """Whether any row of `source` shares its key with a stored row."""
    return bool(
        con.execute(
            f"SELECT EXISTS (SELECT 1 FROM {source} s JOIN {spec.name} t ON {key_join})"
        ).fetchall()[0][0]
    )  # fetchall: an unfinished result would block unregister()


def _insert_new(con: duckdb.DuckDBPyConnection, spec: Table, source: str) -> int:
    """Insert every row of `source` (none is stored yet) and mark their days dirty."""
    col_list = ", ".join(spec.column_names)
    inserted = con.execute(
        f"INSERT INTO {spec.name} ({col_list}) SELECT {col_list} FROM {source}"
    ).fetchall()[0][0]
    con.execute(
        f"INSERT INTO dirty_partitions SELECT DISTINCT ?, CAST({spec.time_column} AS DATE) "
        f"FROM {source} ON CONFLICT DO NOTHING",
        [spec.name],
    )
    return int(inserted)


def _mark_changes(
    con: duckdb.DuckDBPyConnection, spec: Table, source: str, key_join: str, changed: str
) -> None:
    """_changes: the rows of `source` that are new or differ from the stored row."""
    first_key = spec.key[0]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _changes AS "
        f"SELECT s.*, t.{first_key} IS NULL AS _is_new, "
        f"CAST(t.{spec.time_column} AS DATE) AS _old_day FROM {source} s "
        f"LEFT JOIN {spec.name} t ON {key_join} "
        f"WHERE t.{first_key} IS NULL OR {changed}"
    )


def _store_rejects(
    con: duckdb.DuckDBPyConnection, run_id: int, source: str, table_name: str, rej: list[Rejected]
) -> int:
    """File rejected rows; returns how many are new. A row read again (inside a source's
    overlap window, or a batch delivered twice) is already filed and counts once."""
    fresh: dict[str, str] = {}
    for r in rej:
        fresh.setdefault(_reject_json(r.row), r.reason)
    known = {
        row[0]
        for row in con.execute(
            "SELECT row_json FROM rejects WHERE source = ? AND table_name = ? "
            "AND list_contains(?, row_json)",
            [source, table_name, list(fresh)],
        ).fetchall()
    }
    now = _utcnow()
    new = [
        (run_id, source, table_name, j, reason, now)
        for j, reason in fresh.items()
        if j not in known
    ]
    if new:
        con.executemany("INSERT INTO rejects VALUES (nextval('reject_ids'), ?, ?, ?, ?, ?, ?)", new)
    return len(new)


def commit_batch(
    con: duckdb.DuckDBPyConnection, run_id: int, source: str, batch: Batch
) -> tuple[int, int, int, int]:
    """Validate and commit one batch with its watermark.
    Returns (read, inserted, updated, newly rejected)."""
    spec = table(batch.table)
    checked = validate(spec, batch.rows)
    checked.rejected.extend(Rejected(row, reason) for row, reason in batch.unreadable)
    read = checked.table.num_rows + len(checked.rejected)
    with WRITE_LOCK:
        con.execute("BEGIN TRANSACTION")
        try:
            inserted = updated = rejected = 0
            if checked.table.num_rows:
                inserted, updated = _upsert(con, spec, checked.table)
            if checked.rejected:
                rejected = _store_rejects(con, run_id, source, spec.name, checked.rejected)
            if batch.watermark is not None:
                con.execute(
                    "INSERT INTO watermarks VALUES (?, ?, ?, ?) ON CONFLICT (source, stream) "
                    "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    [source, batch.stream_name, batch.watermark, _utcnow()],
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return read, inserted, updated, rejected


def _backoff_seconds(attempt: int, base: float, retry_after: float | None) -> float:
    if retry_after is not None:
        return max(0.0, retry_after)
    # Exponential backoff with full jitter (AWS architecture blog), capped at a minute.
    return random.uniform(0, min(60.0, base * 2 ** (attempt - 1)))


def _one_sentence(exc: BaseException) -> str:
    if isinstance(exc, SourceConfigError | TransientSourceError | RunStopped):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def read_ahead(batches: Iterator[Batch]) -> Iterator[Batch]:
    """The same batches, the next one fetched on a thread while the caller commits this one,
    so a backfill's network reads and parsing overlap the warehouse writes. Only for sources
    that declare `read_ahead = True`: their fetch has no side effect a commit must precede.
    An error in the fetch is raised here, in order; when the caller stops early the fetching
    thread stops at its next batch and closes the source's generator (its connection)."""
    slot: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def hand_over(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                slot.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fetch() -> None:
        try:
            for batch in batches:
                if not hand_over(("batch", batch)):
                    return
            hand_over(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
            hand_over(("error", exc))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=fetch, name="read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = slot.get()
            if kind == "done":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()


def _raise_if_stopped(stop_reason: Callable[[], str | None] | None) -> None:
    reason = stop_reason() if stop_reason is not None else None
    if reason:
        raise RunStopped(reason)


def run_source(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    *,
    max_attempts: int = 4,
    backoff_s: float = 1.0,
    on_progress: ProgressCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
    stop_reason: Callable[[], str | None] | None = None,
) -> RunSummary:
    """Run `source` once: every batch it yields is committed with its watermark.

    Transient faults are retried with backoff, resuming from the last committed watermark;
    `max_attempts` counts consecutive failures without progress, so a long backfill that keeps
    committing between faults is not cut short. The run ends ok, partial (some rows rejected) or failed (an error stopped it; batches
    committed before the error are kept). `stop_reason` is asked before each commit: once it
    returns a sentence, the run stops there and fails with it.
    """
    con = con.cursor()  # a cursor per run, so concurrent runs in threads never share state
    summary = RunSummary(_start_run(con, source.name), source.name, "running")
    failures = 0  # consecutive attempts without a committed batch
    try:
        while True:
            try:
                batches = source.fetch(watermarks(con, source.name))
                if getattr(source, "read_ahead", False):
                    batches = read_ahead(batches)
                try:
                    for batch in batches:
                        _raise_if_stopped(stop_reason)
                        read, ins, upd, rej = commit_batch(con, summary.run_id, source.name, batch)
                        failures = 0
                        summary.rows_read += read
                        summary.rows_inserted += ins
                        summary.rows_updated += upd
                        summary.rows_rejected += rej
                        if on_progress is not None:
                            on_progress(summary.run_id, summary.rows_read, batch.progress)
                finally:
                    # Close the fetch now, not when garbage collected: its connection (and a
                    # read-ahead thread) must not outlive a failed commit.
                    close = getattr(batches, "close", None)
                    if close is not None:
                        close()
                _raise_if_stopped(stop_reason)  # a run given up on never ends "ok"
                break
            except TRANSIENT as exc:
                failures += 1
                if failures >= max_attempts:
                    raise
                wait = _backoff_seconds(failures, backoff_s, getattr(exc, "retry_after_s", None))
                log.warning(
                    "%s: %s; retry %d of %d in %.1fs",
                    source.name,
                    _one_sentence(exc),
                    failures,
                    max_attempts - 1,
                    wait,
                )
                summary.attempts += 1
                sleep(wait)
        summary.status = "partial" if summary.rows_rejected else "ok"
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, none is silent
        summary.status = "failed"
        summary.error = _one_sentence(exc)
        if isinstance(exc, SourceConfigError | TransientSourceError | RunStopped):
            log.error("%s failed: %s", source.name, summary.error)
        else:
            log.exception("%s failed", source.name)
    finally:
        if summary.status == "running":  # interrupted by KeyboardInterrupt or SystemExit
            summary.status = "failed"
            summary.error = "interrupted"
        _finish_run(con, summary)
    return summary
