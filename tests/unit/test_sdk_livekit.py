"""The LiveKit Agents hook with stand-in event objects carrying livekit-agents 1.x attribute
names (seconds, `type` tags, ChatMessage.metrics): per-turn stages in ms, interruptions, usage,
and the call row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from collectors.instrumentation import (
    attach_livekit_session,
    configure_monitoring,
    flush_monitoring,
    reset_monitoring,
)
from collectors.instrumentation.livekit_hook import ms
from collectors.instrumentation.sinks import MemorySink


class FakeSession:
    """Like AgentSession's EventEmitter: .on(name, callback) and emit."""

    def __init__(self):
        self.handlers: dict[str, list] = {}

    def on(self, event, callback=None):
        self.handlers.setdefault(event, []).append(callback)
        return callback

    def emit(self, event, ev):
        for cb in self.handlers.get(event, []):
            cb(ev)


@dataclass
class EOUMetrics:
    end_of_utterance_delay: float
    transcription_delay: float
    on_user_turn_completed_delay: float = 0.0
    speech_id: str = "s1"
    timestamp: float = 1_700_000_000.0
    type: str = "eou_metrics"


@dataclass
class STTMetrics:
    duration: float = 0.0
    audio_duration: float = 1.2
    streamed: bool = True
    type: str = "stt_metrics"


@dataclass
class LLMMetrics:
    ttft: float
    duration: float = 0.9
    prompt_tokens: int = 0
    completion_tokens: int = 0
    speech_id: str = "s1"
    type: str = "llm_metrics"


@dataclass
class TTSMetrics:
    ttfb: float
    characters_count: int = 0
    speech_id: str = "s1"
    type: str = "tts_metrics"


@dataclass
class MetricsCollectedEvent:
    metrics: Any
    type: str = "metrics_collected"


@dataclass
class ChatMessage:
    role: str
    interrupted: bool = False
    metrics: dict = field(default_factory=dict)


@dataclass
class ConversationItemAddedEvent:
    item: ChatMessage
    created_at: float = 1_700_000_001.0


@dataclass
class StateChanged:
    old_state: str
    new_state: str
    created_at: float


@dataclass
class CloseEvent:
    error: Any = None
    reason: str = "user_initiated"


@pytest.fixture(autouse=True)
def fresh_sdk():
    reset_monitoring()
    yield
    reset_monitoring()


def test_turn_stages_are_recorded_in_ms_with_usage_and_interruptions():
    sink = MemorySink()
    configure_monitoring(None, sink=sink)
    session = FakeSession()
    attach_livekit_session(session, "call-42", user_id="caller-7", variant="short")

    def metric(m):
        session.emit("metrics_collected", MetricsCollectedEvent(m))

    # turn 0: user speaks, agent answers; e2e from ChatMessage.metrics
    session.emit("user_state_changed", StateChanged("speaking", "listening", 100.0))
    metric(EOUMetrics(end_of_utterance_delay=0.42, transcription_delay=0.12))
    metric(STTMetrics())
    metric(LLMMetrics(ttft=0.35, prompt_tokens=900, completion_tokens=40))
    metric(LLMMetrics(ttft=0.5, prompt_tokens=950, completion_tokens=10))  # tool call follow-up
    metric(TTSMetrics(ttfb=0.18, characters_count=120))
    session.emit("agent_state_changed", StateChanged("thinking", "speaking", 101.2))
    session.emit(
        "conversation_item_added",
        ConversationItemAddedEvent(
            ChatMessage("assistant", metrics={"e2e_latency": 1.15, "llm_node_ttft": 0.35})
        ),
    )
    session.emit("agent_state_changed", StateChanged("speaking", "listening", 104.0))

    # turn 1: no ChatMessage metrics; e2e from state changes; the user barges in
    session.emit("user_state_changed", StateChanged("speaking", "listening", 110.0))
    metric(EOUMetrics(end_of_utterance_delay=0.5, transcription_delay=0.1, speech_id="s2"))
    metric(LLMMetrics(ttft=-1, speech_id="s2"))  # -1: no token
    metric(TTSMetrics(ttfb=0.2, speech_id="s2"))
    session.emit("agent_state_changed", StateChanged("thinking", "speaking", 111.5))
    session.emit("user_state_changed", StateChanged("listening", "speaking", 112.0))
    session.emit(
        "conversation_item_added",
        ConversationItemAddedEvent(ChatMessage("assistant", interrupted=True)),
    )
    session.emit("close", CloseEvent())
    flush_monitoring()

    turns = sorted(sink.table("voice_turns"), key=lambda t: t["turn_index"])
    assert len(turns) == 2
    t0, t1 = turns
    assert t0["turn_id"] == "call-42:0" and t0["call_id"] == "call-42"
    assert (t0["eou_delay_ms"], t0["stt_ms"], t0["llm_ttft_ms"], t0["tts_ttfb_ms"]) == (
        pytest.approx(420),
        pytest.approx(120),
        pytest.approx(350),
        pytest.approx(180),
    )
    assert t0["e2e_ms"] == pytest.approx(1150)  # as LiveKit measured it, not our estimate
    assert (t0["llm_prompt_tokens"], t0["llm_completion_tokens"], t0["tts_characters"]) == (
        1850,
        50,
        120,
    )
    assert t0["interrupted"] is False and t0["variant"] == "short"
    assert t1["llm_ttft_ms"] is None and t1["e2e_ms"] == pytest.approx(1500)
    assert t1["interrupted"] is True
    calls = sink.table("calls")
    final = calls[-1]
    assert (final["call_id"], final["caller_id"], final["turns"], final["interruptions"]) == (
        "call-42",
        "caller-7",
        2,
        1,
    )
    assert final["ended_at"] is not None


def test_node_millisecond_fields_are_taken_as_is():
    assert ms({"ttftMs": 350.0}, "ttft") == 350.0
    assert ms({"ttft": 0.35}, "ttft") == pytest.approx(350.0)
    assert ms({"ttft": -1}, "ttft") is None


def test_a_broken_event_never_raises_into_the_agent():
    configure_monitoring(None, sink=MemorySink())
    session = FakeSession()
    attach_livekit_session(session, "call-1")
    session.emit("metrics_collected", object())
    session.emit("conversation_item_added", None)
    session.emit("agent_state_changed", 42)
