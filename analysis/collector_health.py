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
