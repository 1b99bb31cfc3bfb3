"""The simulated agent's web app: a plain ASGI app with a small router, and an in-process client.

No web framework (the workbench install has none): the router matches route templates such as
`/v1/calls/{call_id}` and sets `scope["route"]` to an object with `.path`, the way Starlette's
router does, which is where the monitoring middleware reads the route template from. Each
request carries the id of its plan (what status to answer, how long to take, what to raise) in
a header, as a test client would.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from collectors.instrumentation import error_monitor
from collectors.simulated_agent.workload import RAISE, TRACK, Request

Scope = MutableMapping[str, Any]
ASGIApp = Callable[..., Awaitable[None]]
PLAN_HEADER = b"x-simulated-plan"
LOGIN_ROUTE = "/api/auth/login"
_PARAM = re.compile(r"\{([a-zA-Z_]\w*)\}")
_exception_types: dict[str, type[Exception]] = {}


def exception_type(name: str) -> type[Exception]:
    """An exception class named like `name`'s last dotted part, which is what the SDK records
    as the type of a raised exception. Always our own class: str() of a built-in such as
    KeyError would quote the message."""
    short = name.rsplit(".", 1)[-1]
    if short not in _exception_types:
        _exception_types[short] = type(short, (Exception,), {"__module__": __name__})
    return _exception_types[short]


@dataclass(frozen=True)
class Route:
    """What Starlette's router puts in `scope["route"]`: the template is `.path`."""

    path: str
    methods: frozenset[str]
    pattern: re.Pattern[str]


def compile_route(template: str, methods: Iterable[str]) -> Route:
    """`/v1/calls/{call_id}` matches `/v1/calls/<anything but a slash>`."""
    parts = _PARAM.split(template)  # literal, name, literal, name, ..., literal
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
    return Route(template, frozenset(methods), re.compile(f"^{regex}$"))


class AgentApp:
    """The agent's API. `plans` maps a plan id (sent in a header) to the request's plan."""

    def __init__(self, routes: Iterable[tuple[str, str]] = (), *, sleep_scale: float = 0.0) -> None:
        self.routes: list[Route] = []
        self.plans: dict[int, Request] = {}
        self.sleep_scale = sleep_scale  # real seconds slept per planned second (0: none)
        self.add_routes(routes)

    def add_routes(self, routes: Iterable[tuple[str, str]]) -> None:
        """Serve more (method, template) pairs; literal templates are tried before ones with
        parameters, as an app declares `/v1/calls/export` before `/v1/calls/{call_id}`."""
        known = {(m, r.path) for r in self.routes for m in r.methods}
        wanted = known | set(routes)
        if wanted == known:
            return
        by_template: dict[str, set[str]] = {}
        for method, template in wanted:
            by_template.setdefault(template, set()).add(method)
        self.routes = [
            compile_route(t, m)
            for t, m in sorted(by_template.items(), key=lambda kv: ("{" in kv[0], kv[0]))
        ]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        path, method = scope["path"], scope["method"]
        for route in self.routes:
            if route.pattern.match(path):
                if method not in route.methods:
                    await _answer(send, 405)
                    return
                scope["route"] = route
                await self._handle(scope, send)
                return
        await _answer(send, 404)

    async def _handle(self, scope: Scope, send: Any) -> None:
        plan = self.plans.pop(_plan_id(scope), None)
        if plan is None:
            await _answer(send, 200)
            return
        if self.sleep_scale > 0 and plan.duration_ms > 0:
            await asyncio.sleep(plan.duration_ms / 1000.0 * self.sleep_scale)
        f = plan.failure
        if f is not None and f.how == RAISE:
            raise exception_type(f.error_type)(f.message)
        if f is not None and f.how == TRACK:
            # An exception handler that reports the error and answers the planned status.
            error_monitor.track_error(
                f.error_type,
                f.message,
                stack_trace=f.stack_trace,
                request_path=plan.route,
                request_method=plan.method,
                severity=f.severity,
                call_id=f.call_id or plan.call_id,
            )
        await _answer(send, plan.status)


def _plan_id(scope: Scope) -> int:
    for k, v in scope.get("headers") or ():
        if k == PLAN_HEADER:
            return int(v)
    return -1


async def _answer(send: Any, status: int) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b"{}"})


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def request(
    app: ASGIApp,
    method: str,
    path: str,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
    plan_id: int | None = None,
) -> int:
    """Send one request to `app` in process; the status it answered (500 if it raised, as a
    server would)."""
    headers = [(b"host", b"agent.local")]
    if user_agent:
        headers.append((b"user-agent", user_agent.encode("latin-1", "replace")))
    if plan_id is not None:
        headers.append((PLAN_HEADER, str(plan_id).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": (ip, 50000) if ip else None,
        "server": ("agent.local", 80),
    }
    status = [500]
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)  # a client that never disconnects
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]

    try:
        await app(scope, receive, send)
    except Exception:  # noqa: BLE001 - an unhandled error is a 500, as the server answers
        return 500
    return status[0]


class Lifespan:
    """Drives the app's lifespan (startup, shutdown) as a server does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        self.task = asyncio.ensure_future(
            self.app(
                {"type": "lifespan", "asgi": {"version": "3.0"}}, self.inbox.get, self.outbox.put
            )
        )
        await self.inbox.put({"type": "lifespan.startup"})
        await self.outbox.get()

    async def shutdown(self) -> None:
        if self.task is None:
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.outbox.get()
        await self.task
        self.task = None
