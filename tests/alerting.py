"""Helpers for alerting tests: a clock the test moves, a rule kind whose readings the test
scripts, a data folder with a published snapshot, and a real webhook on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from analysis.alerts.model import Context, Evidence, Reading, Rule, RuleKind, labels_of
from collectors.publish import publish
from collectors.warehouse import open_warehouse

T0 = datetime(2026, 3, 2, 12, 0)


class Clock:
    """Naive-UTC time that moves only when the test says so."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Script:
    """What the scripted kind reads now: label sets that breach."""

    breaching: list[dict[str, str]] = field(default_factory=list)

    def kind(self) -> RuleKind:
        def check(ctx: Context, rule: Rule) -> list[Reading]:
            return [
                Reading(
                    labels_of(labels),
                    "breach",
                    1.0,
                    f"scripted breach {labels}",
                    Evidence("overview", "scripted"),
                )
                for labels in self.breaching
            ]

        return RuleKind("scripted", "Scripted", "The test decides.", (), check)


def scripted_rule(name: str = "storm", **kw: Any) -> Rule:
    return Rule(name=name, kind="scripted", every_s=kw.pop("every_s", 0.001), **kw)


def data_dir(root: Path, rows: dict[str, Sequence[dict[str, Any]]] | None = None) -> Path:
    """A data folder with a published snapshot holding `rows` (table -> rows)."""
    con = open_warehouse(root / "warehouse.duckdb")
    try:
        for table, items in (rows or {}).items():
            for row in items:
                columns = ", ".join(row)
                marks = ", ".join("?" for _ in row)
                con.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))  # noqa: S608
            for day in {row[_time_column(table)].date() for row in items}:
                con.execute("INSERT OR IGNORE INTO dirty_partitions VALUES (?, ?)", [table, day])
        publish(con, root / "serving")
    finally:
        con.close()
    return root


def _time_column(table: str) -> str:
    from collectors.schema import TABLES

    return TABLES[table].time_column


class Webhook:
    """An HTTP server on 127.0.0.1 that records what it is sent; `down` answers 503."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.attempts = 0
        self.down = False
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                hook.attempts += 1
                if hook.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                hook.received.append(json.loads(body))
                hook.headers.append(dict(self.headers))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/alerts?token=s3cr3t-t0ken"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
