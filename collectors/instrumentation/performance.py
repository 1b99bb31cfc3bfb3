"""Performance: request timings, slow-request alerts, database and voice-turn timings."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from collectors.instrumentation.config import number
from collectors.instrumentation.live import live
from collectors.instrumentation.pipeline import new_id
from collectors.instrumentation.runtime import (
    MAX,
    MonitorBase,
    epoch_s,
    http_method,
    never_raises,
    opt_bool,
    opt_id,
    opt_int,
    opt_num,
    opt_str,
    req_id,
    req_str,
    state,
)

DAY_MS = 86_400_000.0  # a latency part longer than a day is a unit mistake


class PerformanceMonitor(MonitorBase):
    source = "performance"

    def __init__(self) -> None:
        self.slow_request_threshold = 1.0  # seconds
        self.memory_warning_threshold = 80.0
        self.cpu_warning_threshold = 80.0
        self.slow_requests: Counter[str] = Counter()  # route -> count

    def configure(self, cfg: dict[str, Any]) -> None:
        self.set_slow_request_threshold(cfg["slow_request_threshold"])
        self.set_memory_warning_threshold(cfg["memory_warning_threshold"])
        self.set_cpu_warning_threshold(cfg["cpu_warning_threshold"])

    def reset(self) -> None:
        type(self).__init__(self)  # back to the state of a new monitor

    def set_slow_request_threshold(self, seconds: float) -> None:
        self.slow_request_threshold = number(
            "performance.slow_request_threshold", seconds, positive=True
        )

    def set_memory_warning_threshold(self, percent: float) -> None:
        self.memory_warning_threshold = number(
            "performance.memory_warning_threshold", percent, 0, 100
        )

    def set_cpu_warning_threshold(self, percent: float) -> None:
        self.cpu_warning_threshold = number("performance.cpu_warning_threshold", percent, 0, 100)

    # -- recording -------------------------------------------------------------------------
    @never_raises
    def track_request(
        self,
        endpoint: str,
        method: str,
        response_time: float,
        status_code: int,
        user_id: str | None = None,
        ip_address: str | None = None,
        request_id: str | None = None,
        call_id: str | None = None,
    ) -> None:
        """Record one request; `endpoint` should be the route template, `response_time` in s."""
        seconds = opt_num("response_time", response_time, 0, 86400, required=True)
        assert seconds is not None
        row = {
            "request_id": opt_id("request_id", request_id) or new_id(),
            "started_at": time.time() - seconds,
            "route": req_str("endpoint", endpoint),
            "method": http_method("method", method),
            "status_code": opt_int("status_code", status_code, 100, 599, required=True),
            "duration_ms": seconds * 1000.0,
            "release": state.release,
            "service": state.service,
            "user_id": opt_id("user_id", user_id),
            "ip": opt_str("ip_address", ip_address, MAX["ip"]),
            "call_id": opt_id("call_id", call_id),
        }
        state.pipeline.submit(("request_row", row))

    @never_raises
    def track_db_query(
        self, query: str, duration: float, rows: int | None = None, database: str | None = None
    ) -> None:
        """Record one database statement taking `duration` seconds."""
        seconds = opt_num("duration", duration, 0, 86400, required=True)
        assert seconds is not None
        ms = seconds * 1000.0
        self.emit(
            "db_queries",
            {
                "query_id": new_id(),
                "observed_at": time.time(),
                "statement": req_str("query", query, MAX["statement"]),
                "calls": 1,
                "total_ms": ms,
                "mean_ms": ms,
                "rows": opt_int("rows", rows, 0, 2**63 - 1),
                "database": opt_str("database", database),
                "release": state.release,
            },
        )

    @never_raises
    def record_voice_turn(
        self,
        call_id: str,
        *,
        turn_id: str | None = None,
        turn_index: int | None = None,
        started_at: float | None = None,
        eou_delay_ms: float | None = None,
        stt_ms: float | None = None,
        llm_ttft_ms: float | None = None,
        tts_ttfb_ms: float | None = None,
        e2e_ms: float | None = None,
        interrupted: bool | None = None,
        llm_prompt_tokens: int | None = None,
        llm_completion_tokens: int | None = None,
        tts_characters: int | None = None,
        variant: str | None = None,
    ) -> None:
        """Record one voice turn's latency parts in milliseconds (they overlap; never sum)."""
        self.emit(
            "voice_turns",
            {
                "turn_id": opt_id("turn_id", turn_id) or new_id(),
                "call_id": req_id("call_id", call_id),
                "turn_index": opt_int("turn_index", turn_index, 0),
                "started_at": epoch_s("started_at", started_at) or time.time(),
                "eou_delay_ms": opt_num("eou_delay_ms", eou_delay_ms, 0, DAY_MS),
                "stt_ms": opt_num("stt_ms", stt_ms, 0, DAY_MS),
                "llm_ttft_ms": opt_num("llm_ttft_ms", llm_ttft_ms, 0, DAY_MS),
                "tts_ttfb_ms": opt_num("tts_ttfb_ms", tts_ttfb_ms, 0, DAY_MS),
                "e2e_ms": opt_num("e2e_ms", e2e_ms, 0, DAY_MS),
                "interrupted": opt_bool("interrupted", interrupted),
                "llm_prompt_tokens": opt_int("llm_prompt_tokens", llm_prompt_tokens, 0),
                "llm_completion_tokens": opt_int("llm_completion_tokens", llm_completion_tokens, 0),
                "tts_characters": opt_int("tts_characters", tts_characters, 0),
                "release": state.release,
                "variant": opt_str("variant", variant),
            },
        )

    # -- worker side -----------------------------------------------------------------------
    def observe(self, route: str, method: str, status: int, duration_s: float) -> None:
        if duration_s > self.slow_request_threshold:
            self.slow_requests[route] += 1
            self.alert(
                f"Slow request on {method} {route}",
                f"{method} {route} took {duration_s * 1000:.0f} ms (threshold "
                f"{self.slow_request_threshold * 1000:.0f} ms); "
                f"{self.slow_requests[route]} slow requests on this route so far",
                "warning",
                key=f"slow:{method}:{route}",
                details={
                    "route": route,
                    "method": method,
                    "status_code": status,
                    "duration_ms": round(duration_s * 1000, 3),
                },
            )


performance_monitor = PerformanceMonitor()
state.pipeline.row_observers["voice_turns"] = live.voice_turn
