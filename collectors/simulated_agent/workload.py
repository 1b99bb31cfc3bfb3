"""What a simulated voice agent is asked to do: plain dataclasses with the planned truth.

Times (`at_s`, `start_s`, `end_s`) are seconds on the workload's own clock. Played in real time
they are Unix seconds; played as fast as possible only their order matters (the SDK stamps
wall-clock times itself, as it does in production). Latencies are milliseconds, as the
warehouse stores them; the agent hands them to the SDK the way LiveKit reports them (seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# How an error reaches the SDK.
RAISE = "raise"  # raised in an HTTP handler: the middleware captures it with the request
TRACK = "track"  # error_monitor.track_error(...) with a text stack trace
CAPTURE = "capture"  # a caught exception passed to error_monitor.capture_exception
VOICE = "voice"  # an `error` event of the LiveKit session (needs the call to be open)
ERROR_PATHS = (RAISE, TRACK, CAPTURE, VOICE)


@dataclass(frozen=True)
class Failure:
    """One error the agent reports. `severity` "critical" on a voice error means the LiveKit
    error was not recoverable."""

    error_type: str
    message: str
    how: str = TRACK
    severity: str = "error"
    stack_trace: str | None = None  # for TRACK: the trace as text
    at_s: float = 0.0  # when, for a failure that is not part of a request
    route: str | None = None
    method: str | None = None
    call_id: str | None = None


@dataclass(frozen=True)
class Request:
    """One HTTP request to the agent's API. With `user_id` set it is reported through
    `security_monitor.track_api_usage` (an authenticated API user), otherwise it goes
    through the ASGI app and the monitoring middleware."""

    at_s: float
    method: str
    route: str  # the route template the app matches, e.g. /v1/calls/{call_id}
    path: str  # the concrete path requested
    status: int
    duration_ms: float = 0.0  # how long the handler takes (slept only in real time)
    ip: str | None = None
    user_agent: str | None = None
    user_id: str | None = None
    call_id: str | None = None
    failure: Failure | None = None  # reported while serving (RAISE or TRACK)


@dataclass(frozen=True)
class Turn:
    """One agent reply. The greeting (the agent speaks first) has no EOU, STT or e2e."""

    at_s: float
    llm_ttft_ms: float
    tts_ttfb_ms: float
    eou_delay_ms: float | None = None
    stt_ms: float | None = None
    e2e_ms: float | None = None
    interrupted: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tts_characters: int = 0


@dataclass(frozen=True)
class Feedback:
    """A rating; inside a Call it is about that call, on its own it names the call."""

    at_s: float
    rating: int
    category: str | None = None
    comment: str | None = None
    call_id: str | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class FeatureUse:
    at_s: float
    name: str
    duration_s: float | None = None


@dataclass(frozen=True)
class Quality:
    """The call's network and audio quality, recorded when it ends."""

    latency_ms: float
    jitter_ms: float
    packet_loss_pct: float
    mos: float
    audio_level: float | None = None
    noise_level: float | None = None
    codec: str | None = None


@dataclass(frozen=True)
class Call:
    """One call (a session) with everything that happens during and after it.

    `hook_records_call`: the LiveKit hook opens and closes the session itself (as
    attach_livekit_session does by default) instead of the agent calling start_session and
    end_session; the hook cannot carry region or network, so leave those None then.
    `variant` is the variant the SDK is expected to assign (None: not in an experiment)."""

    call_id: str
    start_s: float
    end_s: float
    outcome: str | None
    turns: tuple[Turn, ...] = ()
    caller_id: str | None = None
    experiment_key: str | None = None
    variant: str | None = None
    region: str | None = None
    network: str | None = None
    quality: Quality | None = None
    feedback: tuple[Feedback, ...] = ()
    features: tuple[FeatureUse, ...] = ()
    requests: tuple[Request, ...] = ()
    failures: tuple[Failure, ...] = ()
    hook_records_call: bool = False

    @property
    def interruptions(self) -> int:
        return sum(t.interrupted for t in self.turns)


@dataclass(frozen=True)
class Login:
    """An authentication attempt: a POST to the app's login route (`via_http`, detected by
    the middleware from the status) or a `security_monitor.log_auth_event` call."""

    at_s: float
    ip: str | None
    success: bool
    via_http: bool = True
    user_id: str | None = None
    user_agent: str | None = None
    event_type: str = "login"
    path: str | None = None


@dataclass(frozen=True)
class SecurityEvent:
    """A security event the agent reports itself (`log_security_event`)."""

    at_s: float
    event_type: str
    severity: str = "info"
    ip: str | None = None
    path: str | None = None
    user_id: str | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class Workload:
    calls: tuple[Call, ...] = ()
    requests: tuple[Request, ...] = ()  # not part of a call: health checks, API users, scans
    logins: tuple[Login, ...] = ()
    security_events: tuple[SecurityEvent, ...] = ()
    failures: tuple[Failure, ...] = ()  # not part of a request or a call's voice session
    feedback: tuple[Feedback, ...] = ()  # given after the call, about the call it names
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)  # SDK definitions

    def routes(self) -> set[tuple[str, str]]:
        """(method, route template) of every request, for the app's router. A request whose
        route is not a path (the SDK's "<unmatched>") is one the app has no route for."""
        reqs = [*self.requests, *(r for c in self.calls for r in c.requests)]
        return {(r.method, r.route) for r in reqs if r.route.startswith("/")}
