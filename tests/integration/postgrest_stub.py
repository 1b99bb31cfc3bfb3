"""A small PostgREST-compatible server on 127.0.0.1, backed by a real PostgreSQL database.

It speaks the subset supabase-py sends for reads: `select` (with `alias:col`), column filters
(eq, neq, gt, gte, lt, lte, like, ilike, is, in, with `not.`), `or=(...)`/`and=(...)` with nested
groups and double-quoted values, `order`, `limit`/`offset` and `Range` headers, `Prefer:
count=exact|planned|estimated`, `Accept-Profile`, HEAD, `Content-Range`, and the server-side
"max rows" cap. Rows are rendered by PostgreSQL's json_agg, as PostgREST does, so timestamps
look exactly like Supabase's. `GET /auth/v1/health` answers like GoTrue.

Faults for tests: `stub.inject("status", code=503, headers={...})`, `inject("close")` (drop the
connection without answering), `inject("cut")` (send headers and half the body, then close),
`inject("delay", seconds=2)`. Each injected fault applies to one request, in order.

Writes: `POST /rest/v1/<table>` with a JSON array (or object) body, `on_conflict` and `columns`
parameters and `Prefer: resolution=ignore-duplicates|merge-duplicates, return=minimal`, as
supabase-py's `upsert` sends them. Like PostgREST, the rows are read with
json_populate_recordset into the table's row type (a missing key is NULL) and inserted in one
statement, `ON CONFLICT (...) DO NOTHING` or `DO UPDATE SET col = EXCLUDED.col` for the given
columns; the statement runs as `service_role`, so the table's triggers and policies apply.
`hold()` makes every write wait until `release()`: a Supabase that accepts and never answers.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import psycopg
from psycopg import sql

OPS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=",
       "like": "LIKE", "ilike": "ILIKE"}  # fmt: skip
RESERVED = {"select", "order", "limit", "offset", "or", "and", "on_conflict", "columns"}


class QueryError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def split_top(text: str) -> list[str]:
    """Split on commas outside parentheses and double quotes."""
    parts, depth, quoted, cur = [], 0, False, []
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if cur:
        parts.append("".join(cur))
    return parts


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


class Compiler:
    def __init__(self, columns: set[str]):
        self.columns = columns
        self.params: list[Any] = []

    def ident(self, name: str) -> sql.Identifier:
        if name not in self.columns:
            raise QueryError(400, "42703", f"column {name} does not exist")
        return sql.Identifier(name)

    def condition(self, column: str, expr: str) -> sql.Composable:
        negate = False
        if expr.startswith("not."):
            negate, expr = True, expr[4:]
        op, _, value = expr.partition(".")
        col = self.ident(column)
        if op in OPS:
            self.params.append(unquote(value).replace("*", "%") if "like" in op else unquote(value))
            cond = sql.SQL("{} {} %s").format(col, sql.SQL(OPS[op]))
        elif op == "is":
            word = {"null": "NULL", "true": "TRUE", "false": "FALSE"}.get(value.lower())
            if word is None:
                raise QueryError(400, "PGRST100", f"bad is value {value}")
            cond = sql.SQL("{} IS {}").format(col, sql.SQL(word))
        elif op == "in":
            items = [unquote(v) for v in split_top(value.strip("()"))]
            self.params.extend(items)
            cond = sql.SQL("{} IN ({})").format(
                col, sql.SQL(", ").join(sql.Placeholder() for _ in items)
            )
        else:
            raise QueryError(400, "PGRST100", f"unknown operator {op}")
        return sql.SQL("NOT ({})").format(cond) if negate else cond

    def logic(self, kind: str, body: str) -> sql.Composable:
        """`or=(a.gt.1,and(b.eq.2,c.lt.3))` -> SQL."""
        body = body.strip()
        if not (body.startswith("(") and body.endswith(")")):
            raise QueryError(400, "PGRST100", f"bad logic tree {body}")
        parts = []
        for item in split_top(body[1:-1]):
            m = re.match(r"^(not\.)?(and|or)(\(.*\))$", item, re.S)
            if m:
                inner = self.logic(m.group(2), m.group(3))
                parts.append(sql.SQL("NOT ({})").format(inner) if m.group(1) else inner)
            else:
                column, _, expr = item.partition(".")
                parts.append(self.condition(column, expr))
        joiner = sql.SQL(" OR ") if kind == "or" else sql.SQL(" AND ")
        return sql.SQL("({})").format(joiner.join(parts))


class PostgrestStub:
    def __init__(self, dsn: str, api_key: str, *, max_rows: int = 1000, schema: str = "public"):
        self.dsn, self.api_key, self.max_rows, self.schema = dsn, api_key, max_rows, schema
        self.faults: deque[dict[str, Any]] = deque()
        self.requests: list[str] = []
        self._local = threading.local()
        self._columns: dict[tuple[str, str], set[str]] = {}
        self.writes = 0
        self._released = threading.Event()
        self._released.set()
        stub = self

        class Handler(_Handler):
            owner = stub

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> PostgrestStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def inject(self, kind: str, **kw: Any) -> None:
        self.faults.append({"kind": kind, **kw})

    def hold(self) -> None:
        """Every write from now on waits, unanswered, until release()."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def write(self, schema: str, table: str, params: dict[str, str], prefer: str, body: Any):
        rows = body if isinstance(body, list) else [body]
        columns = self.columns(schema, table)
        wanted = params.get("columns")
        names = (
            [c.strip('"') for c in wanted.split(",")]
            if wanted
            else sorted({k for r in rows for k in r})
        )
        for name in names:
            if name not in columns:
                raise QueryError(
                    400, "PGRST204", f"Could not find the '{name}' column of '{table}'"
                )
        target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        cols = sql.SQL(", ").join(map(sql.Identifier, names))
        conflict = sql.SQL("")
        keys = [k for k in params.get("on_conflict", "").split(",") if k]
        if keys:
            key_sql = sql.SQL(", ").join(map(sql.Identifier, keys))
            if "resolution=merge-duplicates" in prefer:
                sets = sql.SQL(", ").join(
                    sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
                    for c in names
                    if c not in keys
                )
                conflict = sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(key_sql, sets)
            elif "resolution=ignore-duplicates" in prefer:
                conflict = sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(key_sql)
        query = sql.SQL(
            "INSERT INTO {} ({}) SELECT {} FROM json_populate_recordset(NULL::{}, %s::json){}"
        ).format(target, cols, cols, target, conflict)
        con = self.connection()
        with con.transaction():
            con.execute("SET LOCAL ROLE service_role")
            con.execute(query, [json.dumps(rows)])
            self.writes += 1

    def connection(self) -> psycopg.Connection:
        con = getattr(self._local, "con", None)
        if con is None or con.closed:
            con = psycopg.connect(self.dsn, autocommit=True)
            self._local.con = con
        return con

    def columns(self, schema: str, table: str) -> set[str]:
        key = (schema, table)
        if key not in self._columns:
            rows = (
                self.connection()
                .execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = %s AND table_name = %s",
                    [schema, table],
                )
                .fetchall()
            )
            if not rows:
                raise QueryError(
                    404,
                    "PGRST205",
                    f"Could not find the table '{schema}.{table}' in the schema cache",
                )
            self._columns[key] = {r[0] for r in rows}
        return self._columns[key]

    def read(self, schema: str, table: str, params: list[tuple[str, str]], headers: Any):
        comp = Compiler(self.columns(schema, table))
        select = sql.SQL("*")
        where: list[sql.Composable] = []
        order: list[sql.Composable] = []
        limit, offset = None, 0
        for key, value in params:
            if key == "select":
                items = []
                for item in split_top(value):
                    alias, _, col = item.rpartition(":")
                    if col == "*":
                        items.append(sql.SQL("*"))
                    elif alias:
                        items.append(
                            sql.SQL("{} AS {}").format(comp.ident(col), sql.Identifier(alias))
                        )
                    else:
                        items.append(comp.ident(col))
                select = sql.SQL(", ").join(items)
            elif key in ("or", "and"):
                where.append(comp.logic(key, value))
            elif key == "order":
                for item in value.split(","):
                    bits = item.split(".")
                    direction = sql.SQL("DESC" if "desc" in bits[1:] else "ASC")
                    nulls = sql.SQL(" NULLS FIRST" if "nullsfirst" in bits[1:] else "")
                    order.append(sql.SQL("{} {}{}").format(comp.ident(bits[0]), direction, nulls))
            elif key == "limit":
                limit = int(value)
            elif key == "offset":
                offset = int(value)
            elif key not in RESERVED:
                where.append(comp.condition(key, value))
        rng = headers.get("Range")
        if rng and "-" in rng:
            first, _, last = rng.partition("-")
            offset = int(first)
            if last:
                limit = int(last) - offset + 1
        limit = min(limit if limit is not None else self.max_rows, self.max_rows)
        where_sql = sql.SQL(" AND ").join(where) if where else sql.SQL("TRUE")
        order_sql = sql.SQL("ORDER BY ") + sql.SQL(", ").join(order) if order else sql.SQL("")
        query = sql.SQL(
            "SELECT coalesce(json_agg(t), '[]'::json)::text, count(*) FROM "
            "(SELECT {} FROM {}.{} WHERE {} {} LIMIT {} OFFSET {}) t"
        ).format(select, sql.Identifier(schema), sql.Identifier(table), where_sql, order_sql,
                 sql.Literal(limit), sql.Literal(offset))  # fmt: skip
        con = self.connection()
        body, n = con.execute(query, comp.params).fetchone()
        total = "*"
        prefer = headers.get("Prefer", "")
        if "count=" in prefer:
            count_q = sql.SQL("SELECT count(*) FROM {}.{} WHERE {}").format(
                sql.Identifier(schema), sql.Identifier(table), where_sql
            )
            total = str(con.execute(count_q, comp.params).fetchone()[0])
        content_range = f"{offset}-{offset + n - 1}/{total}" if n else f"*/{total}"
        return body, content_range


class _Handler(BaseHTTPRequestHandler):
    owner: PostgrestStub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def finish(self) -> None:
        super().finish()
        # One handler thread per client connection: its database connection ends with it
        # (a collector that opens a client per run would otherwise exhaust max_connections).
        con = getattr(self.owner._local, "con", None)
        if con is not None:
            con.close()
            self.owner._local.con = None

    def _send(self, status: int, body: str | bytes, headers: dict[str, str] | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _fault(self) -> bool:
        """Apply the next injected fault; True when the request was answered (or dropped)."""
        try:
            fault = self.owner.faults.popleft()
        except IndexError:
            return False
        kind = fault["kind"]
        if kind == "delay":
            time.sleep(fault["seconds"])
            return False
        if kind == "close":
            self.close_connection = True
            self.connection.close()
            return True
        if kind == "status":
            body = json.dumps({"code": str(fault.get("code_text", "")), "message": "injected"})
            self._send(fault["code"], body, fault.get("headers"))
            return True
        if kind == "cut":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b'[{"id": 1, "created_at": "2026-')
            self.wfile.flush()
            self.close_connection = True
            self.connection.close()
            return True
        raise AssertionError(kind)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        owner = self.owner
        parts = urlsplit(self.path)
        owner.requests.append(f"POST {self.path}")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self._fault():
            return
        owner._released.wait()
        if self.headers.get("apikey") != owner.api_key:
            self._send(401, json.dumps({"message": "Invalid API key"}))
            return
        m = re.match(r"^/rest/v1/([A-Za-z0-9_]+)$", parts.path)
        if not m:
            self._send(404, json.dumps({"message": "no route"}))
            return
        schema = self.headers.get("Content-Profile") or owner.schema
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            owner.write(
                schema, m.group(1), params, self.headers.get("Prefer", ""), json.loads(body)
            )
        except QueryError as exc:
            self._send(exc.status, json.dumps({"code": exc.code, "message": exc.message,
                                               "details": None, "hint": None}))  # fmt: skip
            return
        except psycopg.Error as exc:
            code = getattr(exc, "sqlstate", None) or "XX000"
            # PostgREST: 23505 -> 409, other integrity and data errors -> 400, the rest -> 500
            status = 409 if code == "23505" else 400 if code.startswith(("22", "23", "42")) else 500
            self._send(status, json.dumps({"code": code, "message": str(exc).splitlines()[0],
                                           "details": None, "hint": None}))  # fmt: skip
            return
        self._send(201, b"")

    def do_GET(self) -> None:
        owner = self.owner
        parts = urlsplit(self.path)
        owner.requests.append(self.path)
        if self._fault():
            return
        if parts.path == "/auth/v1/health":
            body = {"version": "v2.170.0", "name": "GoTrue", "description": "GoTrue is a user registration and authentication API"}  # fmt: skip
            self._send(200, json.dumps(body))
            return
        if self.headers.get("apikey") != owner.api_key:
            self._send(401, json.dumps({"message": "Invalid API key", "hint": "Double check your Supabase `anon` or `service_role` API key."}))  # fmt: skip
            return
        m = re.match(r"^/rest/v1/([A-Za-z0-9_]+)$", parts.path)
        if not m:
            self._send(404, json.dumps({"message": "no route"}))
            return
        schema = self.headers.get("Accept-Profile") or owner.schema
        params = parse_qsl(parts.query, keep_blank_values=True)
        try:
            body, content_range = owner.read(schema, m.group(1), params, self.headers)
        except QueryError as exc:
            self._send(exc.status, json.dumps({"code": exc.code, "message": exc.message,
                                               "details": None, "hint": None}))  # fmt: skip
            return
        except psycopg.Error as exc:
            code = getattr(exc, "sqlstate", None) or "XX000"
            status = 400 if code.startswith(("22", "42")) else 500
            self._send(status, json.dumps({"code": code, "message": str(exc).splitlines()[0],
                                           "details": None, "hint": None}))  # fmt: skip
            return
        self._send(200, body, {"Content-Range": content_range, "Range-Unit": "items"})
