"""User experience: sessions (calls), feedback, voice quality and feature usage."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from collectors.instrumentation.pipeline import new_id
from collectors.instrumentation.runtime import (
    MAX,
    InvalidCall,
    MonitorBase,
    choice,
    count_invalid,
    never_raises,
    opt_id,
    opt_int,
    opt_num,
    opt_str,
    req_id,
    req_str,
    state,
)

OUTCOMES = ("resolved", "escalated", "abandoned", "failed")
MAX_OPEN_SESSIONS = 100_000


@dataclass
class Session:
    """A user session (a call). `end()` records its end; the row is an upsert by session_id."""

    session_id: str
    user_id: str | None = None
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    outcome: str | None = None
    turns: int = 0
    interruptions: int = 0
    experiment_key: str | None = None
    variant: str | None = None
    region: str | None = None
    network: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    recorded: bool = True  # False: start_session was given bad arguments; end() does nothing

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else max(0.0, self.ended_at - self.started_at)

    def end(self, outcome: str | None = None) -> Session:
        if not self.recorded:
            return self
        return user_experience_monitor.end_session(self.session_id, outcome=outcome) or self

    def row(self) -> dict[str, Any]:
        # An open session's turns and interruptions are not known yet: NULL, so that its start
        # row, arriving after its end row (another batch, a retry), never blanks the counts.
        ended = self.ended_at is not None
        return {
            "call_id": self.session_id,
            "caller_id": self.user_id,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_s": self.duration_s,
            "outcome": self.outcome,
            "turns": self.turns if ended else None,
            "interruptions": self.interruptions if ended else None,
            "release": state.release,
            "experiment_key": self.experiment_key,
            "variant": self.variant,
            "region": self.region,
            "network": self.network,
        }


class UserExperienceMonitor(MonitorBase):
    source = "user_experience"

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        type(self).__init__(self)  # back to the state of a new monitor

    def start_session(
        self,
        session_id: str,
        user_id: str | None = None,
        *,
        experiment_key: str | None = None,
        variant: str | None = None,
        region: str | None = None,
        network: str | None = None,
        **metadata: Any,
    ) -> Session:
        """Open a session (a call) and record its start; returns the Session. Given bad
        arguments it records nothing and returns a session whose end() does nothing, so the
        caller's code runs on."""
        try:
            s = Session(
                req_id("session_id", session_id),
                opt_id("user_id", user_id),
                experiment_key=opt_id("experiment_key", experiment_key),
                variant=opt_str("variant", variant),
                region=opt_str("region", region),
                network=opt_str("network", network),
                metadata=metadata,
            )
            with self._lock:
                if len(self.sessions) >= MAX_OPEN_SESSIONS:  # never ended: forget the oldest
                    self.sessions.pop(next(iter(self.sessions)))
                self.sessions[s.session_id] = s
            self.emit("calls", s.row())
            return s
        except Exception as exc:  # noqa: BLE001 - the SDK must never break the host
            count_invalid("UserExperienceMonitor.start_session", exc)
            return Session(
                session_id[:512] if isinstance(session_id, str) else "<invalid>", recorded=False
            )

    @never_raises
    def end_session(
        self,
        session_id: str,
        outcome: str | None = None,
        turns: int | None = None,
        interruptions: int | None = None,
    ) -> Session | None:
        """Close a session: records end time, duration and outcome."""
        session_id = req_id("session_id", session_id)
        if outcome is not None:
            outcome = choice("outcome", outcome, OUTCOMES)
        turns = opt_int("turns", turns, 0)
        interruptions = opt_int("interruptions", interruptions, 0)
        with self._lock:
            s = self.sessions.pop(session_id, None)
        if s is None:
            raise InvalidCall(f"no open session {session_id[:80]!r}")
        s.ended_at = time.time()
        s.outcome = outcome
        if turns is not None:
            s.turns = turns
        if interruptions is not None:
            s.interruptions = interruptions
        self.emit("calls", s.row())
        return s

    def get_session(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    @never_raises
    def record_feedback(
        self,
        rating: int,
        category: str | None = None,
        comment: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        call_id: str | None = None,
    ) -> None:
        """Record a 1..5 rating with an optional category and comment."""
        self.emit(
            "feedback",
            {
                "feedback_id": new_id(),
                "submitted_at": time.time(),
                "rating": opt_int("rating", rating, 1, 5, required=True),
                "category": opt_str("category", category),
                "comment": opt_str("comment", comment, MAX["message"]),
                "user_id": opt_id("user_id", user_id),
                "session_id": opt_id("session_id", session_id),
                "call_id": opt_id("call_id", call_id) or opt_id("session_id", session_id),
                "release": state.release,
            },
        )

    @never_raises
    def record_voice_quality(
        self,
        conversation_id: str,
        latency_ms: float | None = None,
        packet_loss: float | None = None,
        jitter_ms: float | None = None,
        audio_level: float | None = None,
        noise_level: float | None = None,
        mos_score: float | None = None,
        codec: str | None = None,
        region: str | None = None,
        network: str | None = None,
    ) -> None:
        """Record network/audio quality of a conversation. `packet_loss` is in percent."""
        self.emit(
            "voice_quality",
            {
                "sample_id": new_id(),
                "call_id": req_id("conversation_id", conversation_id),
                "measured_at": time.time(),
                "latency_ms": opt_num("latency_ms", latency_ms, 0, 86_400_000),
                "jitter_ms": opt_num("jitter_ms", jitter_ms, 0, 86_400_000),
                "packet_loss_pct": opt_num("packet_loss", packet_loss, 0, 100),
                "audio_level": opt_num("audio_level", audio_level),
                "noise_level": opt_num("noise_level", noise_level),
                "mos_reported": opt_num("mos_score", mos_score, 1, 5),
                "codec": opt_str("codec", codec),
                "region": opt_str("region", region),
                "network": opt_str("network", network),
                "release": state.release,
            },
        )

    @never_raises
    def track_feature_usage(
        self,
        feature_name: str,
        user_id: str | None = None,
        session_id: str | None = None,
        duration: float | None = None,
        call_id: str | None = None,
    ) -> None:
        """Record one use of a feature; `duration` in seconds."""
        self.emit(
            "feature_usage",
            {
                "usage_id": new_id(),
                "used_at": time.time(),
                "feature_name": req_str("feature_name", feature_name),
                "user_id": opt_id("user_id", user_id),
                "session_id": opt_id("session_id", session_id),
                "call_id": opt_id("call_id", call_id) or opt_id("session_id", session_id),
                "duration_s": opt_num("duration", duration, 0, 86400 * 365),
            },
        )


user_experience_monitor = UserExperienceMonitor()
