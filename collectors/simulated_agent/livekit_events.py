"""A stand-in for a LiveKit Agents `AgentSession`: the events it emits, with livekit-agents 1.x
names and units (seconds, `type` tags, `ChatMessage.metrics`), so the SDK's hook
(`attach_livekit_session`) sees what it sees in production.

One turn, as LiveKit orders it: the user speaks and stops; end-of-utterance, STT, LLM and TTS
metrics arrive; the agent starts speaking (a caller barging in now interrupts it); the assistant
message is added (with `interrupted` and its e2e latency); the agent stops speaking. The
greeting has no user speech before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collectors.simulated_agent.workload import Turn


class AgentSessionStandIn:
    """Like AgentSession's event emitter: `.on(event, callback)`, and `emit` to play events."""

    def __init__(self) -> None:
        self.handlers: dict[str, list[Callable[[Any], None]]] = {}

    def on(self, event: str, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        self.handlers.setdefault(event, []).append(callback)
        return callback

    def emit(self, event: str, ev: Any) -> None:
        for callback in self.handlers.get(event, []):
            callback(ev)


@dataclass(frozen=True)
class EOUMetrics:
    end_of_utterance_delay: float | None
    transcription_delay: float | None
    timestamp: float
    on_user_turn_completed_delay: float = 0.0
    type: str = "eou_metrics"


@dataclass(frozen=True)
class STTMetrics:
    timestamp: float
    duration: float = 0.0  # streaming STT reports 0; its delay is the EOU transcription delay
    audio_duration: float = 0.0
    streamed: bool = True
    type: str = "stt_metrics"


@dataclass(frozen=True)
class LLMMetrics:
    ttft: float | None
    timestamp: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    type: str = "llm_metrics"


@dataclass(frozen=True)
class TTSMetrics:
    ttfb: float | None
    timestamp: float
    characters_count: int = 0
    type: str = "tts_metrics"


@dataclass(frozen=True)
class MetricsCollectedEvent:
    metrics: Any
    type: str = "metrics_collected"


@dataclass(frozen=True)
class ChatMessage:
    role: str
    interrupted: bool = False
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ConversationItemAddedEvent:
    item: ChatMessage
    created_at: float
    type: str = "conversation_item_added"


@dataclass(frozen=True)
class UserStateChangedEvent:
    old_state: str
    new_state: str
    created_at: float
    type: str = "user_state_changed"


@dataclass(frozen=True)
class AgentStateChangedEvent:
    old_state: str
    new_state: str
    created_at: float
    type: str = "agent_state_changed"


@dataclass(frozen=True)
class ModelError:
    """Like LiveKit's LLMError/STTError/TTSError: a `type` tag, the underlying error and
    whether the session can go on."""

    type: str
    error: str
    recoverable: bool
    timestamp: float


@dataclass(frozen=True)
class ErrorEvent:
    error: Any
    type: str = "error"


@dataclass(frozen=True)
class CloseEvent:
    error: Any = None
    reason: str = "user_initiated"
    type: str = "close"


def _s(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000.0


def play_turn(session: AgentSessionStandIn, turn: Turn, greeting: bool) -> None:
    """Emit one turn's events, in LiveKit's order, stamped now."""
    now = time.time()
    if not greeting:
        session.emit("user_state_changed", UserStateChangedEvent("listening", "speaking", now))
        session.emit("user_state_changed", UserStateChangedEvent("speaking", "listening", now))
        session.emit(
            "metrics_collected",
            MetricsCollectedEvent(EOUMetrics(_s(turn.eou_delay_ms), _s(turn.stt_ms), now)),
        )
        session.emit("metrics_collected", MetricsCollectedEvent(STTMetrics(now)))
    session.emit(
        "metrics_collected",
        MetricsCollectedEvent(
            LLMMetrics(_s(turn.llm_ttft_ms), now, turn.prompt_tokens, turn.completion_tokens)
        ),
    )
    session.emit(
        "metrics_collected",
        MetricsCollectedEvent(TTSMetrics(_s(turn.tts_ttfb_ms), now, turn.tts_characters)),
    )
    # Without an e2e value the hook would time the reply from these state changes itself.
    speaks = greeting or turn.e2e_ms is not None
    if speaks:
        session.emit("agent_state_changed", AgentStateChangedEvent("thinking", "speaking", now))
        if turn.interrupted:  # the caller barges in while the agent speaks
            session.emit("user_state_changed", UserStateChangedEvent("listening", "speaking", now))
    report = {} if turn.e2e_ms is None else {"e2e_latency": turn.e2e_ms / 1000.0}
    session.emit(
        "conversation_item_added",
        ConversationItemAddedEvent(ChatMessage("assistant", turn.interrupted, report), now),
    )
    if speaks:
        session.emit("agent_state_changed", AgentStateChangedEvent("speaking", "listening", now))
