"""Supabase (Postgres) performance: pg_stat_statements deltas and database resource samples.

Each run takes one snapshot. pg_stat_statements counters are cumulative since the last stats
reset, so a row in `db_queries` is the difference between this snapshot and the previous one
(kept in the watermark): calls, total and mean execution time and rows over that interval. The
first run only records the baseline. After a reset (pg_stat_statements_info.stats_reset moved,
or a statement's calls went down because its entry was evicted and re-created) the current
counters are the delta, since they restarted from zero.

Connections, cache hit ratio and database size go to `resource_samples` under one host name
(default 'supabase-db'), so the infrastructure page plots them beside the app's hosts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg

from collectors.sources.base import Batch, SourceConfigError, TransientSourceError
from collectors.sources.supabase_pg import connect, masked

log = logging.getLogger(__name__)

STATEMENT_MAX = 8000  # the warehouse keeps up to 8192 characters; longer SQL is cut, marked
ENABLE_HINT = (
    "run `create extension pg_stat_statements;` in that database (on Supabase: Database > "
    "Extensions), and on self-hosted Postgres also add pg_stat_statements to "
    "shared_preload_libraries in postgresql.conf and restart"
)

RESOURCE_SQL = """
SELECT now(),
       current_database(),
       (SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND backend_type = 'client backend'),
       (SELECT CASE WHEN blks_hit + blks_read > 0
                    THEN 100.0 * blks_hit / (blks_hit + blks_read) END
          FROM pg_stat_database WHERE datname = current_database()),
       pg_database_size(current_database())
"""

STATEMENTS_SQL = """
SELECT s.userid::text || ':' || s.queryid::text, s.query, s.calls, s.{total}, s.rows
  FROM pg_stat_statements s
 WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND s.queryid IS NOT NULL
"""


def statement_deltas(
    previous: Mapping[str, list[float]] | None,
    current: Mapping[str, list[float]],
    reset: bool,
) -> dict[str, tuple[float, float, float]]:
    """key -> (calls, total_ms, rows) over the interval, for statements that ran in it."""
    out: dict[str, tuple[float, float, float]] = {}
    if previous is None:
        return out  # baseline only
    for key, (calls, total_ms, rows) in current.items():
        before = None if reset else previous.get(key)
        if before is None or calls < before[0]:
            # New entry or counters restarted (reset, or the entry was evicted and re-created).
            d = (calls, total_ms, rows)
        else:
            d = (calls - before[0], total_ms - before[1], rows - before[2])
        if d[0] > 0:
            out[key] = d
    return out


class PgStatsSource:
    """Snapshots of pg_stat_statements and database resources over a direct connection."""

    def __init__(
        self,
        dsn: str,
        *,
        name: str = "supabase-perf",
        host: str = "supabase-db",
        top_n: int = 500,
        setting: str = "SUPABASE_DB_URL",
    ):
        self.name = name
        self._dsn = dsn
        self.host = host
        self.top_n = top_n
        self.setting = setting

    def __repr__(self) -> str:
        return f"PgStatsSource(name={self.name!r}, dsn={masked(self._dsn)!r})"

    def fetch(self, watermarks: Mapping[str, str]) -> Iterator[Batch]:
        con = connect(self._dsn, setting=self.setting)
        con.autocommit = True
        try:
            row = con.execute(RESOURCE_SQL).fetchone()
            assert row is not None  # a SELECT without FROM returns its one row
            now, database, conns, hit_pct, size = row
            yield Batch(
                table="resource_samples",
                stream="resources",
                rows=[
                    {
                        "host": self.host,
                        "sampled_at": now,
                        "db_connections": conns,
                        "cache_hit_pct": float(hit_pct) if hit_pct is not None else None,
                        "db_size_bytes": size,
                    }
                ],
            )
            yield self.statements(con, database, now, watermarks.get("statements"))
        except psycopg.OperationalError as exc:
            raise TransientSourceError(f"database connection lost: {exc}") from exc
        finally:
            con.close()

    def statements(
        self, con: psycopg.Connection, database: str, now: datetime, mark: str | None
    ) -> Batch:
        ext = con.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'"
        ).fetchone()
        if ext is None:
            raise SourceConfigError(
                f"pg_stat_statements is not enabled in database {database}: {ENABLE_HINT}."
            )
        total_col = "total_exec_time" if _version(ext[0]) >= (1, 8) else "total_time"
        try:
            rows = con.execute(STATEMENTS_SQL.replace("{total}", total_col)).fetchall()
        except psycopg.errors.ObjectNotInPrerequisiteState:
            raise SourceConfigError(
                "pg_stat_statements is installed but not loaded: add it to "
                "shared_preload_libraries in postgresql.conf and restart Postgres."
            ) from None
        stats_reset = None
        if _version(ext[0]) >= (1, 9):
            r = con.execute("SELECT stats_reset FROM pg_stat_statements_info").fetchone()
            stats_reset = r[0].astimezone(UTC).isoformat() if r and r[0] else None
        current = {key: [float(c), float(t), float(n)] for key, _, c, t, n in rows}
        text = {key: q for key, q, *_ in rows}
        previous = _load(mark)
        reset = previous is not None and previous.get("reset") != stats_reset
        deltas = statement_deltas(previous["q"] if previous else None, current, reset)
        top = sorted(deltas.items(), key=lambda kv: kv[1][1], reverse=True)[: self.top_n]
        at = now.astimezone(UTC)
        out = [
            {
                "query_id": f"pgss:{database}:{key}:{at.isoformat()}",
                "observed_at": at,
                "statement": _cut(text[key]),
                "calls": int(calls),
                "total_ms": total_ms,
                "mean_ms": total_ms / calls,
                "rows": int(nrows),
                "database": database,
            }
            for key, (calls, total_ms, nrows) in top
        ]
        watermark = json.dumps(
            {"reset": stats_reset, "at": at.isoformat(), "q": current}, separators=(",", ":")
        )
        return Batch(
            table="db_queries",
            stream="statements",
            rows=out,
            watermark=watermark,
            progress={"done": len(out), "total": len(out), "baseline": previous is None},
        )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def _cut(statement: str) -> str:
    return statement if len(statement) <= STATEMENT_MAX else statement[:STATEMENT_MAX] + "…"


def _load(mark: str | None) -> dict[str, Any] | None:
    if not mark:
        return None
    try:
        data = json.loads(mark)
        return data if isinstance(data.get("q"), dict) else None
    except ValueError:
        return None
