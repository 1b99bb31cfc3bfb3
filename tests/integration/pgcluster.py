"""A throwaway PostgreSQL 15 cluster for integration tests (initdb + pg_ctl in a temp dir).

initdb refuses to run as root, so as root the cluster is created and run by the `postgres` OS
user (runuser). It listens on 127.0.0.1 only, on a free port, with pg_stat_statements preloaded.
One cluster per test process (`shared_cluster()`), stopped at exit; each test takes a fresh
database from it (`fresh_database()`), so tests never see each other's rows.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from collectors.schema import TABLES
from collectors.sources.supabase_rest import SDK_TABLES

BIN_DIRS = ["/usr/lib/postgresql/15/bin"]
REPO = Path(__file__).resolve().parents[2]
PG_TYPES = {
    "VARCHAR": "text",
    "TIMESTAMP": "timestamptz",
    "DOUBLE": "double precision",
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "BOOLEAN": "boolean",
}


def pg_bin(name: str) -> str | None:
    for d in BIN_DIRS:
        candidate = Path(d) / name
        if candidate.exists():
            return str(candidate)
    return shutil.which(name)


def require_postgres() -> None:
    """Skip (fail under CI) when the PostgreSQL binaries are missing."""
    if pg_bin("initdb") and pg_bin("pg_ctl"):
        return
    from tests.conftest import missing

    missing("PostgreSQL server binaries (initdb, pg_ctl; Debian: postgresql-15)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="wb-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self.log = self.root / "server.log"

    def _run(self, *cmd: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        subprocess.run(prefix + list(cmd), check=True, capture_output=True, cwd=self.root)

    def start(self) -> PgCluster:
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run(
            pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c shared_preload_libraries=pg_stat_statements -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.log),
                  "-w", "start")  # fmt: skip
        return self

    def stop(self) -> None:
        if self.data.exists():
            try:
                self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def create_database(self, name: str | None = None) -> str:
        name = name or f"t_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.dsn(), autocommit=True) as con:
            con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name


_SHARED: PgCluster | None = None


def shared_cluster() -> PgCluster:
    global _SHARED
    require_postgres()
    if _SHARED is None:
        _SHARED = PgCluster().start()
        atexit.register(_SHARED.stop)
    return _SHARED


def sdk_schema_sql() -> list[str]:
    """The SDK's Supabase tables: supabase/migrations/*.sql when present, else equivalents."""
    files = sorted((REPO / "supabase" / "migrations").glob("*.sql"))
    if files:
        return [f.read_text() for f in files]
    statements = []
    for name in SDK_TABLES:
        spec = TABLES[name]
        cols = ", ".join(f"{c.name} {PG_TYPES[c.type]}" for c in spec.columns)
        statements.append(
            f"CREATE TABLE IF NOT EXISTS public.{name} (id bigint GENERATED ALWAYS AS IDENTITY "
            f"PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(), {cols})"
        )
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {name}_created_id ON {name} (created_at, id)"
        )
    return statements


def fresh_database(with_sdk_tables: bool = True) -> str:
    """A new empty database on the shared cluster; returns its DSN."""
    cluster = shared_cluster()
    dsn = cluster.dsn(cluster.create_database())
    if with_sdk_tables:
        with psycopg.connect(dsn, autocommit=True) as con:
            for stmt in sdk_schema_sql():
                con.execute(stmt)
    return dsn


def insert_requests(dsn: str, n: int, *, start: str = "2026-01-01", step: str = "1 second") -> None:
    """n generated rows in `requests` (generate_series), created_at = updated_at in id order,
    as if written over time."""
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(
            """
            INSERT INTO requests (id, created_at, updated_at, request_id, started_at, route, method, status_code,
                                  duration_ms, release, service, user_id, ip, call_id)
            OVERRIDING SYSTEM VALUE
            SELECT g, ts, ts, 'r' || g, ts - interval '5 ms',
                   (ARRAY['/v1/agent/turn','/v1/stt/stream','/v1/tts/synthesize','/healthz'])[1 + g %% 4],
                   CASE WHEN g %% 7 = 0 THEN 'POST' ELSE 'GET' END,
                   CASE WHEN g %% 100 = 0 THEN 500 WHEN g %% 29 = 0 THEN 404 ELSE 200 END,
                   exp(3 + (g %% 97) / 30.0), 'v' || (g %% 6), 'agent', 'u' || (g %% 20000),
                   '10.0.' || (g %% 250) || '.' || (g %% 200), 'c' || (g / 12)
            FROM (SELECT g, %s::timestamptz + (g - 1) * %s::interval AS ts
                  FROM generate_series(
                      (SELECT coalesce(max(id), 0) + 1 FROM requests),
                      (SELECT coalesce(max(id), 0) FROM requests) + %s) g) s
            """,
            [start, step, n],
        )
        con.execute(
            "SELECT setval(pg_get_serial_sequence('requests', 'id'), "
            "(SELECT max(id) FROM requests))"
        )
        con.execute("ANALYZE requests")
