"""A voice agent built only on the monitoring SDK's public API, driven by a Workload.

It does what a production agent does: `configure_monitoring(app, config)` wraps its ASGI app,
HTTP requests go through the middleware, each call has a LiveKit session whose events reach
the SDK's hook, and the agent records sessions, experiment exposures, feedback, voice quality,
feature usage, logins, security events and errors with the monitors' own methods.

Two ways to play a workload:
- as fast as possible (`real_time=False`): actions run in the order of their times, and the
  SDK is flushed every `flush_every` actions and always between a call's start and its end, so
  calls overlap and a session's start and end rows leave in different batches;
- in real time (`real_time=True`): each action runs when the agent's clock reaches its time
  and handlers take their planned durations. The clock is the wall clock (workload times are
  Unix seconds), or with `speed` > 1 one that runs `speed` times faster from `origin`.

The SDK keeps process-wide state, so one process runs at most one SimulatedAgent at a time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collectors.instrumentation import (
    assign,
    attach_livekit_session,
    configure_monitoring,
    error_monitor,
    experiments,
    flush_monitoring,
    monitoring_stats,
    reset_monitoring,
    security_monitor,
    shutdown_monitoring,
    user_experience_monitor,
)
from collectors.instrumentation.livekit_hook import VoiceSessionRecorder
from collectors.simulated_agent.asgi_app import (
    LOGIN_ROUTE,
    AgentApp,
    Lifespan,
    exception_type,
    request,
)
from collectors.simulated_agent.livekit_events import (
    AgentSessionStandIn,
    CloseEvent,
    ErrorEvent,
    ModelError,
    play_turn,
)
from collectors.simulated_agent.workload import (
    CAPTURE,
    RAISE,
    VOICE,
    Call,
    Failure,
    Feedback,
    Login,
    Request,
    SecurityEvent,
    Workload,
)


@dataclass
class AgentReport:
    """What the agent saw: the variants the SDK assigned, the statuses the app answered and
    the SDK's own counters at the end (queued, dropped, invalid calls...)."""

    assigned: dict[str, str] = field(default_factory=dict)  # call_id -> variant
    statuses: Counter[int] = field(default_factory=Counter)
    actions: int = 0
    flushes: int = 0
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class _OpenCall:
    call: Call
    session: AgentSessionStandIn
    recorder: VoiceSessionRecorder


class SimulatedAgent:
    def __init__(
        self,
        config: dict[str, Any] | None = None,
        *,
        sink: Any = None,
        real_time: bool = False,
        speed: float = 1.0,
        origin: float | None = None,
        flush_every: int = 500,
    ) -> None:
        self.config = config
        self.sink = sink
        self.real_time = real_time
        self.speed = speed
        self._real0 = time.time()
        self._origin = self._real0 if origin is None else origin
        self.flush_every = flush_every
        self.app = AgentApp([("POST", LOGIN_ROUTE)], sleep_scale=1.0 / speed if real_time else 0.0)
        self.asgi: Any = None
        self.report = AgentReport()
        self._lifespan: Lifespan | None = None
        self._heap: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._plan_ids = itertools.count()
        self._open: dict[str, _OpenCall] = {}
        self._started_since_flush: set[str] = set()
        self._since_flush = 0
        self._tasks: dict[asyncio.Task[None], float] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Configure the SDK around the app and run the app's startup, as a server would."""
        self.asgi = configure_monitoring(self.app, self.config, sink=self.sink)
        self._lifespan = Lifespan(self.asgi)
        await self._lifespan.startup()

    async def stop(self, reset: bool = True) -> AgentReport:
        """Finish requests in flight, run the app's shutdown (the SDK flushes and seals its
        spool files), stop the SDK's workers and return the report."""
        if self._tasks:
            await asyncio.gather(*self._tasks)
        if self._lifespan is not None:
            await self._lifespan.shutdown()
        shutdown_monitoring(flush=True)
        self.report.stats = monitoring_stats()
        if reset:
            reset_monitoring()
        return self.report

    def flush(self) -> None:
        flush_monitoring()
        self.report.flushes += 1
        self._started_since_flush.clear()
        self._since_flush = 0

    # -- scheduling --------------------------------------------------------------------------
    def schedule(self, workload: Workload) -> None:
        """Add a workload's actions to the timeline (may be called while playing)."""
        self.app.add_routes(workload.routes())
        for key, definition in workload.experiments.items():
            experiments.set_definition(key, **definition)
        for call in workload.calls:
            self._push(call.start_s, self._start_call, call)
            for i, turn in enumerate(call.turns):
                self._push(turn.at_s, self._turn, call, i)
            for use in call.features:
                self._push(use.at_s, self._feature, call, use)
            for f in call.failures:
                self._push(f.at_s, self._failure, f, call)
            self._push(call.end_s, self._end_call, call)
            for fb in call.feedback:
                self._push(fb.at_s, self._feedback, call, fb)
            for r in call.requests:
                self._push(r.at_s, self._request, r)
        for r in workload.requests:
            self._push(r.at_s, self._request, r)
        for login in workload.logins:
            self._push(login.at_s, self._login, login)
        for event in workload.security_events:
            self._push(event.at_s, self._security_event, event)
        for fb in workload.feedback:
            self._push(fb.at_s, self._feedback, None, fb)
        for f in workload.failures:
            self._push(f.at_s, self._failure, f, None)

    def _push(self, at: float, action: Callable[..., Any], *args: Any) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), action, args))

    def now(self) -> float:
        """The agent's clock, on which workload times are read when playing in real time."""
        return self._origin + (time.time() - self._real0) * self.speed

    def next_at(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def in_flight_since(self) -> float | None:
        """The time of the oldest request still being served (real time only)."""
        return min(self._tasks.values(), default=None)

    @property
    def open_calls(self) -> int:
        return len(self._open)

    # -- playing -----------------------------------------------------------------------------
    async def run_until(self, until: float = math.inf) -> None:
        """Run every scheduled action due before `until`, in time order."""
        while self._heap and self._heap[0][0] < until:
            at = self._heap[0][0]
            if self.real_time:
                wait = (at - self.now()) / self.speed
                if wait > 0:
                    await asyncio.sleep(min(wait, 1.0))
                    continue
            _, _, action, args = heapq.heappop(self._heap)
            result = action(*args)
            if asyncio.iscoroutine(result):
                if self.real_time:
                    task = asyncio.ensure_future(result)
                    self._tasks[task] = at
                    task.add_done_callback(self._tasks.pop)
                else:
                    await result
            self.report.actions += 1
            if not self.real_time:
                self._since_flush += 1
                if self._since_flush >= self.flush_every:
                    self.flush()

    # -- actions -----------------------------------------------------------------------------
    def _start_call(self, call: Call) -> None:
        variant = None
        if call.experiment_key:
            variant = assign(call.experiment_key, call.call_id)
            self.report.assigned[call.call_id] = variant
        session = AgentSessionStandIn()
        if call.hook_records_call:
            recorder = attach_livekit_session(
                session,
                call.call_id,
                user_id=call.caller_id,
                variant=variant,
                experiment_key=call.experiment_key,
            )
        else:
            user_experience_monitor.start_session(
                call.call_id,
                call.caller_id,
                experiment_key=call.experiment_key,
                variant=variant,
                region=call.region,
                network=call.network,
            )
            recorder = attach_livekit_session(
                session, call.call_id, variant=variant, record_call=False
            )
        self._open[call.call_id] = _OpenCall(call, session, recorder)
        self._started_since_flush.add(call.call_id)

    def _turn(self, call: Call, i: int) -> None:
        open_call = self._open.get(call.call_id)
        if open_call is None:
            return
        turn = call.turns[i]
        play_turn(open_call.session, turn, greeting=i == 0 and turn.eou_delay_ms is None)

    def _end_call(self, call: Call) -> None:
        if not self.real_time and call.call_id in self._started_since_flush:
            self.flush()  # the start row leaves before the end row is made
        open_call = self._open.pop(call.call_id, None)
        if open_call is None:
            return
        session, recorder = open_call.session, open_call.recorder
        if call.hook_records_call:
            if call.outcome == "failed":  # a session closed by an error ends as failed
                error = ModelError("llm_error", "connection lost", False, time.time())
                session.emit("close", CloseEvent(error=error, reason="error"))
            else:
                recorder.outcome = call.outcome
                session.emit("close", CloseEvent())
        else:
            session.emit("close", CloseEvent())  # the hook closes a turn left open
            user_experience_monitor.end_session(
                call.call_id,
                outcome=call.outcome,
                turns=recorder.turns_recorded,
                interruptions=recorder.interruptions,
            )
        q = call.quality
        if q is not None:
            user_experience_monitor.record_voice_quality(
                call.call_id,
                latency_ms=q.latency_ms,
                packet_loss=q.packet_loss_pct,
                jitter_ms=q.jitter_ms,
                audio_level=q.audio_level,
                noise_level=q.noise_level,
                mos_score=q.mos,
                codec=q.codec,
                region=call.region,
                network=call.network,
            )

    def _feature(self, call: Call, use: Any) -> None:
        user_experience_monitor.track_feature_usage(
            use.name, user_id=call.caller_id, session_id=call.call_id, duration=use.duration_s
        )

    def _feedback(self, call: Call | None, fb: Feedback) -> None:
        user_experience_monitor.record_feedback(
            rating=fb.rating,
            category=fb.category,
            comment=fb.comment,
            user_id=call.caller_id if call else fb.user_id,
            session_id=call.call_id if call else fb.call_id,
        )

    def _failure(self, f: Failure, call: Call | None) -> None:
        call_id = f.call_id or (call.call_id if call else None)
        open_call = self._open.get(call_id) if call_id else None
        if f.how == VOICE and open_call is not None:
            error = ModelError(f.error_type, f.message, f.severity != "critical", time.time())
            open_call.session.emit("error", ErrorEvent(error))
        elif f.how in (CAPTURE, RAISE):
            try:
                raise exception_type(f.error_type)(f.message)
            except Exception as exc:  # noqa: BLE001 - caught, as the agent's code would
                error_monitor.capture_exception(
                    exc, route=f.route, method=f.method, severity=f.severity, call_id=call_id
                )
        else:
            error_monitor.track_error(
                f.error_type,
                f.message,
                stack_trace=f.stack_trace,
                request_path=f.route,
                request_method=f.method,
                severity=f.severity,
                call_id=call_id,
            )

    def _request(self, r: Request) -> Any:
        if r.user_id is not None:  # an authenticated API user, reported by the API layer
            security_monitor.track_api_usage(
                r.route, r.method, r.status, r.duration_ms / 1000.0, r.user_id, r.ip
            )
            self.report.statuses[r.status] += 1
            return None
        return self._send(r)

    async def _send(self, r: Request) -> None:
        plan_id = next(self._plan_ids)
        self.app.plans[plan_id] = r
        status = await request(
            self.asgi, r.method, r.path, ip=r.ip, user_agent=r.user_agent, plan_id=plan_id
        )
        self.app.plans.pop(plan_id, None)  # unrouted requests never reach their plan
        self.report.statuses[status] += 1

    def _login(self, login: Login) -> Any:
        if login.via_http:
            return self._send(
                Request(
                    login.at_s,
                    "POST",
                    LOGIN_ROUTE,
                    LOGIN_ROUTE,
                    200 if login.success else 401,
                    ip=login.ip,
                    user_agent=login.user_agent,
                )
            )
        security_monitor.log_auth_event(
            login.event_type,
            login.success,
            user_id=login.user_id,
            ip_address=login.ip,
            user_agent=login.user_agent,
            path=login.path,
        )
        return None

    def _security_event(self, e: SecurityEvent) -> None:
        security_monitor.log_security_event(
            e.event_type,
            severity=e.severity,
            user_id=e.user_id,
            ip_address=e.ip,
            path=e.path,
            details=e.details,
        )


def play(
    workload: Workload,
    config: dict[str, Any] | None = None,
    *,
    sink: Any = None,
    flush_every: int = 500,
) -> AgentReport:
    """Play `workload` as fast as possible through a freshly configured SDK, then shut the SDK
    down (its spool files sealed) and forget its state. Returns the agent's report."""

    async def run() -> AgentReport:
        agent = SimulatedAgent(config, sink=sink, flush_every=flush_every)
        await agent.start()
        try:
            agent.schedule(workload)
            await agent.run_until()
        finally:
            report = await agent.stop()
        return report

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    # Called from inside a running event loop (a notebook, or Playwright's in a test): run
    # the agent on a thread of its own, with its own loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()
