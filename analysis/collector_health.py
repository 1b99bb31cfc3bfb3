"""Collector health for the Operations page: last runs, status, lag and rejects per source."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd


def source_status(
    con: duckdb.DuckDBPyConnection, now: datetime, configured: list[str] | None = None
) -> pd.DataFrame:
    """One row per source (every configured one, run or not): last run, its status and error,
    last success and lag in minutes."""
    return con.execute(
        """
        WITH runs AS (
        SELECT source,
               max(started_at) AS last_run,
               arg_max(status, run_id) AS last_status,
               arg_max(error, run_id) AS last_error,
               max(ended_at) FILTER (WHERE status IN ('ok', 'partial')) AS last_success,
               date_diff('second', max(ended_at) FILTER (WHERE status IN ('ok', 'partial')), ?)
                   / 60.0 AS lag_minutes,
               count(*) FILTER (WHERE status = 'failed') AS failed_runs,
               sum(rows_inserted) AS rows_inserted,
               sum(rows_rejected) AS rows_rejected
        FROM collector_runs GROUP BY source
        ),
        configured AS (SELECT unnest(?::VARCHAR[]) AS source)
        SELECT coalesce(r.source, c.source) AS source, r.* EXCLUDE (source),
               c.source IS NOT NULL AS configured
        FROM runs r FULL JOIN configured c USING (source)
        ORDER BY source
        """,
        [now, list(configured or [])],
    ).df()


def recent_runs(con: duckdb.DuckDBPyConnection, limit: int = 50) -> pd.DataFrame:
    return con.execute(
        "SELECT run_id, source, started_at, ended_at, "
        "date_diff('millisecond', started_at, ended_at) / 1000.0 AS seconds, status, "
        "rows_read, rows_inserted, rows_updated, rows_rejected, attempts, error "
        "FROM collector_runs ORDER BY run_id DESC LIMIT ?",
        [limit],
    ).df()


def recent_rejects(con: duckdb.DuckDBPyConnection, limit: int = 100) -> pd.DataFrame:
    return con.execute(
        "SELECT rejected_at, source, table_name, reason, row_json FROM rejects "
        "ORDER BY reject_id DESC LIMIT ?",
        [limit],
    ).df()


def run_by_id(con: duckdb.DuckDBPyConnection, run_id: int) -> dict[str, object] | None:
    """One run's record (collector_runs), or None until it is published."""
    row = con.execute(
        "SELECT run_id, source, status, rows_read, rows_inserted, rows_updated, rows_rejected, "
        "date_diff('millisecond', started_at, ended_at) / 1000.0 AS seconds, error "
        "FROM collector_runs WHERE run_id = ?",
        [run_id],
    ).fetchone()
    if row is None:
        return None
    keys = ("run_id", "source", "status", "rows_read", "rows_inserted", "rows_updated",
            "rows_rejected", "seconds", "error")  # fmt: skip
    return dict(zip(keys, row, strict=True))


def _count(value: object) -> int:
    return int(value) if isinstance(value, int | float) else 0


def run_now_status(
    job: str,
    request: dict[str, object],
    progress: dict[str, object] | None,
    run: dict[str, object] | None,
) -> tuple[str, str, float | None]:
    """What the Collectors page says about a run someone asked for: (state, sentence, share
    done or None). The progress line counts only once the requested run has started (the
    progress record still holds the previous run's until then); the result gives the run's
    row counts and, when it failed, the reason."""
    status = str(request.get("status") or "")
    if status == "pending":
        return "waiting", f"{job}: queued, waiting for the collectors service to start it.", None
    if status == "running":
        p = progress or {}
        claimed = str(request.get("claimed_at") or "")
        started = str(p.get("started_at") or "")
        if p.get("state") != "running" or (claimed and started and started < claimed):
            return "starting", f"{job}: starting…", None
        rows = _count(p.get("rows_read"))
        done, total = _count(p.get("done")), _count(p.get("total"))
        share = min(1.0, done / total) if total else None
        part = f" ({share:.0%})" if share is not None else ""
        return "running", f"{job}: running{part}, {rows:,} rows read so far.", share
    reason = str(request.get("message") or "")
    if run is None:
        ended = f"{job}: the run finished {status}" + (f": {reason}" if reason else ".")
        return status or "done", ended, None
    counts = (
        f"{_count(run['rows_read']):,} rows read, {_count(run['rows_inserted']):,} new, "
        f"{_count(run['rows_updated']):,} updated, {_count(run['rows_rejected']):,} rejected"
    )
    took = run.get("seconds")
    lasted = f" in {took:.1f} s" if isinstance(took, int | float) else ""
    if status == "failed":
        why = reason or str(run.get("error") or "no reason recorded")
        return "failed", f"{job}: the run failed{lasted}: {why}. Before it failed: {counts}.", None
    partial = " Some rows were rejected; see Rejected rows below." if status == "partial" else ""
    return status, f"{job}: the run finished {status}{lasted}: {counts}.{partial}", None
