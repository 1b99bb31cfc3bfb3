"""Pure-ASGI middleware: time every request, queue one tuple, let the worker do the rest.

The request path reads `perf_counter` twice, wraps `send` to see the status, and appends
(start, end, scope, status, exception, blocked) to a deque. The route template
(`scope["route"].path`, set by the router during the call), client IP, login detection,
rate limits, slow-request alerts and error fingerprints are all worked out on the worker.
It also answers GET /monitoring/health and GET /monitoring/dashboard itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import Any

from collectors.instrumentation.errors import _type_names, error_monitor
from collectors.instrumentation.health import health_monitor
from collectors.instrumentation.performance import performance_monitor
from collectors.instrumentation.pipeline import iso_utc, new_id
from collectors.instrumentation.runtime import state
from collectors.instrumentation.security import client_ip, security_monitor

log = logging.getLogger("collectors.instrumentation")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HEALTH_PATH = "/monitoring/health"
DASHBOARD_PATH = "/monitoring/dashboard"
UNMATCHED = "<unmatched>"  # requests no route matched: never store the raw URL
BLOCKED = "<blocked>"  # requests refused (403) before routing


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class MonitoringMiddleware:
    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                return await self.app(scope, receive, self._lifespan_send(send))
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path[:12] == "/monitoring/" and (path == HEALTH_PATH or path == DASHBOARD_PATH):
            return await self._own_route(path, send)
        start = perf_counter()
        if security_monitor.enforce:
            verdict = security_monitor.verdict(
                path,
                client_ip(scope, security_monitor.trust_forwarded_for),
                state.pipeline.clock.wall(start),
            )
            if verdict:
                await _plain(
                    send, verdict, b"Forbidden" if verdict == 403 else b"Too Many Requests"
                )
                state.pipeline.submit(("http", start, perf_counter(), scope, verdict, None, True))
                return
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except BaseException as exc:
            state.pipeline.submit(("http", start, perf_counter(), scope, status[0], exc, False))
            raise
        state.pipeline.submit(("http", start, perf_counter(), scope, status[0], None, False))

    def _lifespan_send(self, send: Send) -> Send:
        async def lifespan_send(message: Message) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                from collectors.instrumentation.integration import on_startup

                on_startup()
            elif message["type"] == "lifespan.shutdown.complete":
                from collectors.instrumentation.integration import on_shutdown

                on_shutdown()

        return lifespan_send

    async def _own_route(self, path: str, send: Send) -> None:
        if path == HEALTH_PATH:
            report = health_monitor.status()
            code = 503 if report["status"] == "down" else 200
            body = json.dumps(report, default=str).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": code,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"cache-control", b"no-store"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        target = state.config.get("dashboard_url")
        if not target:
            await _plain(
                send,
                404,
                b"The monitoring dashboard is the workbench: set "
                b"WORKBENCH_URL to its address to be redirected there.",
            )
            return
        await send(
            {
                "type": "http.response.start",
                "status": 307,
                "headers": [(b"location", target.encode()), (b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": b""})


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- worker side -----------------------------------------------------------------------------
def _user_agent(scope: Scope) -> str | None:
    for k, v in scope.get("headers") or ():
        if k == b"user-agent":
            return v.decode("latin-1")[:1024]
    return None


def process_http(
    start: float, end: float, scope: Scope, status: int, exc: BaseException | None, blocked: bool
) -> None:
    """Turn one queued request into a `requests` row, maybe an `errors` row, and detections."""
    route = route_template(scope)
    if blocked:  # never routed: name it by the configured rate-limit path, or as blocked
        route = scope.get("path", BLOCKED) if status == 429 else BLOCKED
    method = scope.get("method", "GET")
    at = state.pipeline.clock.wall(start)
    duration_s = end - start
    ip = client_ip(scope, security_monitor.trust_forwarded_for)
    request_id = new_id()
    state.pipeline.output(
        "requests",
        {
            "request_id": request_id,
            "started_at": iso_utc(at),
            "route": route[:512],
            "method": method,
            "status_code": status,
            "duration_ms": duration_s * 1000.0,
            "release": state.release,
            "service": state.service,
            "user_id": None,
            "ip": ip,
            "call_id": None,
        },
    )
    if exc is not None and isinstance(exc, Exception):
        error_monitor.process(
            type(exc).__name__,
            _type_names(exc),
            str(exc),
            None,
            exc.__traceback__,
            route,
            method,
            "error",
            None,
            None,
            request_id,
            at,
        )
    performance_monitor.observe(route, method, status, duration_s)
    security_monitor.observe(
        route, scope.get("path", ""), method, status, ip, _user_agent(scope), at, blocked
    )
    if health_monitor.ready_at is None:
        health_monitor.mark_ready()  # no lifespan events: the first request means ready


def process_request_row(row: dict[str, Any]) -> None:
    """A request recorded by track_request/track_api_usage."""
    at = row["started_at"]
    row["started_at"] = iso_utc(at)
    state.pipeline.output("requests", row)
    performance_monitor.observe(
        row["route"], row["method"], row["status_code"], row["duration_ms"] / 1000.0
    )
    security_monitor.observe(
        row["route"], row["route"], row["method"], row["status_code"], row["ip"], None, at, False
    )


state.pipeline.processors["http"] = process_http
state.pipeline.processors["request_row"] = process_request_row
