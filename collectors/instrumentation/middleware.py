"""Pure-ASGI middleware: time every request, queue one tuple, let the worker do the rest.

The request path reads `perf_counter` twice, wraps `send` to see the status, and appends a
tuple of plain values (times, the route template `scope["route"].path` that the router set
during the call, method, path, client, status, exception) to a deque. The row, client IP,
login detection, rate limits, slow-request alerts, error fingerprints and the dashboard's
counters are all worked out on the worker.

It also answers GET and HEAD on two paths, unless the app has a route of its own there
(`routes.override_app_routes` says otherwise) or `routes.enabled` is false:

- /monitoring/health: `{"status": "up"|"down"}` (200 or 503) for anyone; the detailed report
  (every check, URLs without credentials or query values, no exception text) to a request
  carrying the monitoring token (`Authorization: Bearer <token>`, or Basic with any user name
  and the token as password).
- /monitoring/dashboard: a redirect to the workbench when WORKBENCH_URL is set; otherwise the
  SDK's own page, behind the same token (a browser asks for it: Basic authentication).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import Any
from urllib.parse import parse_qs

from collectors.instrumentation import dashboard
from collectors.instrumentation.errors import _type_names, error_monitor, exception_message
from collectors.instrumentation.health import health_monitor
from collectors.instrumentation.live import live
from collectors.instrumentation.performance import performance_monitor
from collectors.instrumentation.pipeline import iso_utc, new_id
from collectors.instrumentation.runtime import MAX, state
from collectors.instrumentation.security import client_ip, security_monitor

log = logging.getLogger("collectors.instrumentation")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEALTH_PATH = "/monitoring/health"
DASHBOARD_PATH = "/monitoring/dashboard"
UNMATCHED = "<unmatched>"  # requests no route matched: never store the raw URL
BLOCKED = "<blocked>"  # requests refused (403) before routing
_SAFE_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


def app_declares(host: Any, path: str) -> bool:
    """Whether the app (a Starlette/FastAPI app) has a route of its own at `path`: a route
    with that exact path, or a mount below the root that holds it. Catch-all routes
    (`/{path:path}`) and a mount at `/` do not count: they would hide every path."""
    router = getattr(host, "router", None)
    for route in list(getattr(router, "routes", None) or ()):
        p = getattr(route, "path", None)
        if not isinstance(p, str):
            continue
        if p == path:
            return True
        is_mount = not hasattr(route, "endpoint")
        if is_mount and p not in ("", "/") and path.startswith(p.rstrip("/") + "/"):
            return True
    return False


def token_given(scope: Scope) -> bool:
    """Whether the request carries the monitoring token (Bearer, or Basic's password)."""
    token = state.config["routes"]["token"]
    if not token:
        return False
    for k, v in scope.get("headers") or ():
        if k != b"authorization":
            continue
        scheme, _, credentials = v.decode("latin-1").strip().partition(" ")
        given = ""
        if scheme.lower() == "bearer":
            given = credentials.strip()
        elif scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            given = decoded.partition(":")[2]
        return hmac.compare_digest(given.encode(), token.encode())
    return False


class MonitoringMiddleware:
    def __init__(self, app: ASGIApp, host_app: Any = None) -> None:
        self.app = app
        self.host_app = host_app  # the Starlette/FastAPI app whose routes win over ours

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                return await self.app(scope, receive, self._lifespan_send(send))
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path[:12] == "/monitoring/" and (path == HEALTH_PATH or path == DASHBOARD_PATH):
            if self._serves(path):
                return await self._own_route(scope, path, send)
        start = perf_counter()
        if security_monitor.enforce:
            verdict = security_monitor.verdict(
                path,
                client_ip(scope, security_monitor.trust_forwarded_for),
                state.pipeline.clock.wall(start),
            )
            if verdict:
                await _respond(
                    send, verdict, b"Forbidden" if verdict == 403 else b"Too Many Requests"
                )
                _queue(scope, start, None, verdict, None, True)
                return
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except BaseException as exc:
            _queue(scope, start, scope.get("route"), status[0], exc, False)
            raise
        _queue(scope, start, scope.get("route"), status[0], None, False)

    def _serves(self, path: str) -> bool:
        routes = state.config["routes"]
        if not routes["enabled"]:
            return False
        return routes["override_app_routes"] or not app_declares(self.host_app, path)

    def _lifespan_send(self, send: Send) -> Send:
        async def lifespan_send(message: Message) -> None:
            kind = message["type"]
            if kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                from collectors.instrumentation.integration import on_shutdown

                # Shipping what is queued may take seconds (a slow sink): never on the loop.
                await asyncio.to_thread(on_shutdown)
            await send(message)
            if kind == "lifespan.startup.complete":
                from collectors.instrumentation.integration import on_startup

                on_startup()

        return lifespan_send

    async def _own_route(self, scope: Scope, path: str, send: Send) -> None:
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            await _respond(send, 405, b"Method Not Allowed", [(b"allow", b"GET, HEAD")], head=False)
            return
        head = method == "HEAD"
        if path == HEALTH_PATH:
            if token_given(scope):
                report = health_monitor.status()
                code = 503 if report["status"] == "down" else 200
            else:
                report = health_monitor.liveness()
                code = 503 if report["status"] == "down" else 200
            body = json.dumps(report, default=str).encode()
            extra = [(b"vary", b"authorization")]
            await _respond(send, code, body, extra, "application/json", head)
            return
        target = state.config.get("dashboard_url")
        if target:
            await _respond(send, 307, b"", [(b"location", target.encode())], head=head)
            return
        if not state.config["routes"]["token"]:
            await _respond(
                send,
                403,
                b"The monitoring dashboard is off: set MONITORING_TOKEN (or the config key "
                b"routes.token) to a secret of at least 16 characters, then open this page "
                b"with any user name and that secret as the password.",
                head=head,
            )
            return
        if not token_given(scope):
            await _respond(
                send,
                401,
                b"The monitoring dashboard needs the monitoring token as the password.",
                [(b"www-authenticate", b'Basic realm="monitoring", charset="UTF-8"')],
                head=head,
            )
            return
        as_json = "json" in parse_qs(scope.get("query_string", b"").decode("latin-1")).get(
            "format", []
        )
        # Reading the counters may wait briefly for a worker's lock: off the event loop.
        data = await asyncio.to_thread(_dashboard_data)
        if as_json:
            body = json.dumps(data, default=str).encode()
            await _respond(send, 200, body, [], "application/json", head)
            return
        page = dashboard.render(data).encode()
        csp = [(b"content-security-policy", dashboard.CONTENT_SECURITY_POLICY.encode())]
        await _respond(send, 200, page, csp, "text/html; charset=utf-8", head)


def _dashboard_data() -> dict[str, Any]:
    from collectors.instrumentation.integration import monitoring_stats

    return dashboard.dashboard_data(monitoring_stats())


def _queue(
    scope: Scope, start: float, route: Any, status: int, exc: BaseException | None, blocked: bool
) -> None:
    """Queue what the worker needs, never the scope itself: a tuple of plain values that the
    garbage collector stops tracking at once, where a scope (with the app, its router and
    state) would be promoted through the generations while it waits and make full
    collections, paid by the agent, more frequent. Headers only for a POST (login
    detection) or when the client IP comes from X-Forwarded-For."""
    method = scope.get("method")
    headers = (
        scope.get("headers") if method == "POST" or security_monitor.trust_forwarded_for else None
    )
    state.pipeline.submit(
        (
            "http",
            start,
            perf_counter(),
            getattr(route, "path", None),
            method,
            scope.get("path"),
            scope.get("client"),
            headers,
            status,
            exc,
            blocked,
        )
    )


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
    content_type: str = "text/plain; charset=utf-8",
    head: bool = False,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *_SAFE_HEADERS,
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


# -- worker side -----------------------------------------------------------------------------
def process_http(item: tuple[Any, ...]) -> None:
    """Turn one queued request ("http", start, end, route, method, path, client, headers,
    status, exception, blocked) into a `requests` row, maybe an `errors` row, detections and
    the dashboard's counters. The busiest code of the SDK's threads: every lookup it can skip,
    it skips."""
    _, start, end, route, method, path, client, headers, status, exc, blocked = item
    if route.__class__ is not str:
        route = UNMATCHED
    elif len(route) > 512:
        route = route[:512]
    if path.__class__ is not str:
        path = ""
    if blocked:  # never routed: name it by the configured rate-limit path, or as blocked
        route = path[: MAX["name"]] if status == 429 else BLOCKED
    if method.__class__ is not str or not method:
        method = "GET"
    elif len(method) > 16:
        method = method[:16]
    pipeline = state.pipeline
    clock = pipeline.clock
    at = clock.wall0 + (start - clock.perf0)
    duration_s = end - start
    duration_ms = duration_s * 1000.0
    security = security_monitor
    if security.trust_forwarded_for:
        ip = client_ip({"headers": headers, "client": client}, True)
    else:
        ip = client[0] if client else None
    request_id = new_id()
    row = {
        "request_id": request_id,
        "started_at": iso_utc(at),
        "route": route,
        "method": method,
        "status_code": status,
        "duration_ms": duration_ms,
        "release": state.release,
        "service": state.service,
        "user_id": None,
        "ip": ip,
        "call_id": None,
    }
    pipeline.rows_built += 1  # pipeline.output(), inlined
    outbox = pipeline.outbox
    if len(outbox) < pipeline.max_outbox or pipeline._make_room():
        outbox.append(("requests", row))
    else:
        pipeline.dropped_outbox += 1
    if exc is not None and isinstance(exc, Exception):
        error_monitor.process(
            type(exc).__name__,
            _type_names(exc),
            exception_message(exc),
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
    if duration_s > performance_monitor.slow_request_threshold:
        performance_monitor.observe(route, method, status, duration_s)
    if blocked or status == 404 or method == "POST" or security.rate_limits or security.blacklist:
        security.observe(route, path, method, status, ip, headers, at, blocked)
    live.request(method, route, status, duration_ms, at)
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
    live.request(row["method"], row["route"], row["status_code"], row["duration_ms"], at)


state.pipeline.http_processor = process_http
state.pipeline.processors["request_row"] = process_request_row
