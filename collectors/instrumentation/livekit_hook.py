"""Voice pipeline hook: per-turn latency parts from a LiveKit Agents AgentSession.

Subscribes to the session's events (names and fields from livekit-agents 1.x, see
reference/voice_observability.md section 1.1) without importing livekit: event objects are
read by attribute name, so stand-ins with the same attributes work.

- `metrics_collected` (ev.metrics): EOUMetrics (`end_of_utterance_delay`, `transcription_delay`)
  opens a user turn; LLMMetrics (`ttft`, -1 when no token; `prompt_tokens`,
  `completion_tokens`), TTSMetrics (`ttfb`, `characters_count`) and STTMetrics (`duration`, 0
  for streaming STT) fill it in.
- `conversation_item_added` (ev.item, a ChatMessage): an assistant message closes the turn and
  carries `interrupted` and `metrics["e2e_latency"]` (preferred over our own estimate).
- `user_state_changed` / `agent_state_changed` (old_state, new_state, created_at): the user's
  end of speech to the agent's first speech gives e2e when no ChatMessage metrics exist; the
  user starting to speak while the agent speaks is an interruption.
- `error` and `close`.

Python fields are seconds; Node's newer fields end in `Ms` (milliseconds). Both become ms.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from collectors.instrumentation.errors import error_monitor
from collectors.instrumentation.performance import performance_monitor
from collectors.instrumentation.user_experience import user_experience_monitor

log = logging.getLogger("collectors.instrumentation")

_CAMEL = {
    "end_of_utterance_delay": "endOfUtteranceDelayMs",
    "transcription_delay": "transcriptionDelayMs",
    "ttft": "ttftMs",
    "ttfb": "ttfbMs",
    "duration": "durationMs",
    "e2e_latency": "e2eLatencyMs",
}


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def ms(obj: Any, name: str) -> float | None:
    """`name` in milliseconds: a `...Ms` field as is, a seconds field times 1000; negative
    values (LiveKit's -1 for "no token"), NaN and missing ones give None (not measured), so
    one unmeasured part never costs the turn its other parts."""
    camel = _CAMEL.get(name)
    v = _get(obj, camel) if camel else None
    factor = 1.0
    if v is None:
        v = _get(obj, name)
        factor = 1000.0
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        return None
    return float(v) * factor


def _kind(metrics: Any) -> str:
    t = _get(metrics, "type")
    if isinstance(t, str):
        return t
    name = type(metrics).__name__
    return {
        "EOUMetrics": "eou_metrics",
        "STTMetrics": "stt_metrics",
        "LLMMetrics": "llm_metrics",
        "TTSMetrics": "tts_metrics",
        "RealtimeModelMetrics": "realtime_model_metrics",
        "VADMetrics": "vad_metrics",
    }.get(name, name)


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


class VoiceSessionRecorder:
    """Builds `voice_turns` rows (and the `calls` row) from one AgentSession's events."""

    def __init__(
        self,
        call_id: str,
        *,
        user_id: str | None = None,
        variant: str | None = None,
        experiment_key: str | None = None,
        record_call: bool = True,
    ) -> None:
        self.call_id = call_id
        self.variant = variant
        self.turn_index = 0
        self.turns_recorded = 0
        self.interruptions = 0
        self.turn: dict[str, Any] | None = None
        self.user_speaking = False
        self.agent_speaking = False
        self.user_stopped_at: float | None = None
        self.outcome: str | None = None
        self.closed = False
        self.record_call = record_call
        if record_call:
            user_experience_monitor.start_session(
                call_id, user_id, variant=variant, experiment_key=experiment_key
            )

    # -- wiring ----------------------------------------------------------------------------
    def attach(self, session: Any) -> VoiceSessionRecorder:
        """Subscribe to `session` (anything with `.on(event, callback)`)."""
        for event, handler in (
            ("metrics_collected", self.on_metrics_collected),
            ("conversation_item_added", self.on_conversation_item_added),
            ("user_state_changed", self.on_user_state_changed),
            ("agent_state_changed", self.on_agent_state_changed),
            ("error", self.on_error),
            ("close", self.on_close),
        ):
            session.on(event, _guarded(handler))
        return self

    # -- turns -----------------------------------------------------------------------------
    def _current(self, at: float | None = None) -> dict[str, Any]:
        if self.turn is None:
            self.turn = {
                "started_at": self.user_stopped_at or at or time.time(),
                "interrupted": False,
                "llm_prompt_tokens": 0,
                "llm_completion_tokens": 0,
                "tts_characters": 0,
            }
        return self.turn

    def finish_turn(self) -> None:
        t = self.turn
        self.turn = None
        if t is None:
            return
        performance_monitor.record_voice_turn(
            self.call_id,
            turn_id=f"{self.call_id}:{self.turn_index}",
            turn_index=self.turn_index,
            started_at=t["started_at"],
            eou_delay_ms=t.get("eou_delay_ms"),
            stt_ms=t.get("stt_ms"),
            llm_ttft_ms=t.get("llm_ttft_ms"),
            tts_ttfb_ms=t.get("tts_ttfb_ms"),
            e2e_ms=t.get("e2e_ms"),
            interrupted=t["interrupted"],
            llm_prompt_tokens=t["llm_prompt_tokens"] or None,
            llm_completion_tokens=t["llm_completion_tokens"] or None,
            tts_characters=t["tts_characters"] or None,
            variant=self.variant,
        )
        self.turn_index += 1
        self.turns_recorded += 1

    # -- event handlers --------------------------------------------------------------------
    def on_metrics_collected(self, ev: Any) -> None:
        m = _get(ev, "metrics", ev)
        kind = _kind(m)
        at = _get(m, "timestamp")
        at = at if isinstance(at, int | float) and not isinstance(at, bool) else None
        if kind == "eou_metrics":
            if self.turn is not None and (
                "llm_ttft_ms" in self.turn
                or "tts_ttfb_ms" in self.turn
                or "eou_delay_ms" in self.turn
            ):
                self.finish_turn()  # no assistant message closed the previous turn
            t = self._current(at)
            t["eou_delay_ms"] = ms(m, "end_of_utterance_delay")
            t["stt_ms"] = ms(m, "transcription_delay")
        elif kind == "stt_metrics":
            d = ms(m, "duration")
            if d:  # 0.0 for streaming STT: the transcription delay comes from EOU metrics
                self._current(at).setdefault("stt_ms", d)
        elif kind in ("llm_metrics", "realtime_model_metrics"):
            t = self._current(at)
            ttft = ms(m, "ttft")
            if ttft is not None and t.get("llm_ttft_ms") is None:
                t["llm_ttft_ms"] = ttft
            t["llm_prompt_tokens"] += _int(_get(m, "prompt_tokens")) or _int(
                _get(m, "input_tokens")
            )
            t["llm_completion_tokens"] += _int(_get(m, "completion_tokens")) or _int(
                _get(m, "output_tokens")
            )
        elif kind == "tts_metrics":
            t = self._current(at)
            ttfb = ms(m, "ttfb")
            if ttfb is not None and t.get("tts_ttfb_ms") is None:
                t["tts_ttfb_ms"] = ttfb
            t["tts_characters"] += _int(_get(m, "characters_count"))

    def on_conversation_item_added(self, ev: Any) -> None:
        item = _get(ev, "item", ev)
        role = _get(item, "role")
        if role != "assistant":
            return
        t = self._current(_get(ev, "created_at"))
        if _get(item, "interrupted") is True and not t["interrupted"]:
            t["interrupted"] = True
            self.interruptions += 1
        report = _get(item, "metrics") or {}
        e2e = ms(report, "e2e_latency")
        if e2e is not None:
            t["e2e_ms"] = e2e
        for key, name in (("llm_ttft_ms", "llm_node_ttft"), ("tts_ttfb_ms", "tts_node_ttfb")):
            v = ms(report, name)
            if v is not None and t.get(key) is None:
                t[key] = v
        self.finish_turn()

    def on_user_state_changed(self, ev: Any) -> None:
        new, old = _get(ev, "new_state"), _get(ev, "old_state")
        at = _get(ev, "created_at") or time.time()
        if new == "speaking":
            self.user_speaking = True
            if self.agent_speaking and self.turn is not None and not self.turn["interrupted"]:
                self.turn["interrupted"] = True
                self.interruptions += 1
        elif old == "speaking":
            self.user_speaking = False
            self.user_stopped_at = at
            if self.turn is not None and self.turn.get("e2e_ms") is None:
                self.turn["started_at"] = at

    def on_agent_state_changed(self, ev: Any) -> None:
        new, old = _get(ev, "new_state"), _get(ev, "old_state")
        at = _get(ev, "created_at") or time.time()
        if new == "speaking":
            self.agent_speaking = True
            if self.user_stopped_at is not None:
                t = self._current(at)
                if t.get("e2e_ms") is None:
                    t["e2e_ms"] = max(0.0, (at - self.user_stopped_at) * 1000)
                self.user_stopped_at = None
        elif old == "speaking":
            self.agent_speaking = False

    def on_error(self, ev: Any) -> None:
        err = _get(ev, "error", ev)
        recoverable = _get(err, "recoverable", _get(ev, "recoverable", True))
        error_monitor.track_error(
            error_type=type(err).__name__
            if isinstance(err, BaseException)
            else str(_get(err, "type", "VoicePipelineError")),
            message=str(_get(err, "error", err))[:4096],
            severity="error" if recoverable is not False else "critical",
            call_id=self.call_id,
        )

    def on_close(self, ev: Any = None) -> None:
        if self.closed:
            return
        self.closed = True
        self.finish_turn()
        if self.record_call:
            failed = _get(ev, "error") is not None if ev is not None else False
            user_experience_monitor.end_session(
                self.call_id,
                outcome=self.outcome or ("failed" if failed else None),
                turns=self.turns_recorded,
                interruptions=self.interruptions,
            )


def _guarded(handler: Any) -> Any:
    """Event callbacks must never raise into the agent's event loop."""

    def run(*args: Any) -> None:
        try:
            handler(*args)
        except Exception:  # noqa: BLE001
            log.exception("monitoring: voice hook %s failed", handler.__name__)

    return run


def attach_livekit_session(session: Any, call_id: str, **kwargs: Any) -> VoiceSessionRecorder:
    """Record `session`'s turns and call under `call_id`. Call before `session.start()`."""
    return VoiceSessionRecorder(call_id, **kwargs).attach(session)
