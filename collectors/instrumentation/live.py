"""The agent's recent traffic, in memory, for /monitoring/dashboard.

Per minute over the last WINDOW_MINUTES: requests, server errors and a latency histogram per
route, a histogram per voice stage, and errors recorded; plus the most recent error groups.
Histograms are log-spaced buckets (DDSketch's mapping, 2 % relative error), so a percentile
over any span of minutes merges a few small dictionaries.

Only the processor thread writes; readers copy each dictionary with one C-level call
(`list(d.items())`, `dict(d)`), which runs without releasing the GIL, so no lock is taken on
the hot path. Memory is bounded: at most MAX_ROUTES routes per minute (the rest are merged)
and MAX_ERROR_GROUPS error groups.
"""

from __future__ import annotations

import math
import time
from typing import Any

WINDOW_MINUTES = 15
MAX_ROUTES = 100
MAX_ERROR_GROUPS = 50
OTHER_ROUTES = ("*", "<other routes>")
STAGES = ("eou_delay_ms", "stt_ms", "llm_ttft_ms", "tts_ttfb_ms", "e2e_ms")
_GAMMA = 1.04  # bucket width: values within 2 % of a bucket's centre share it
_INV_LOG_GAMMA = 1.0 / math.log(_GAMMA)
_FLOOR_BUCKET = math.ceil(math.log(0.001) * _INV_LOG_GAMMA)  # below 1 µs
_log, _ceil = math.log, math.ceil


def bucket_of(ms: float) -> int:
    return math.ceil(math.log(ms) * _INV_LOG_GAMMA) if ms > 0.001 else _FLOOR_BUCKET


def bucket_value(bucket: int) -> float:
    """The value a bucket stands for (its centre in DDSketch's sense)."""
    return 2.0 * _GAMMA**bucket / (_GAMMA + 1.0)


def quantile(hist: dict[int, int], q: float) -> float | None:
    """The q-quantile of a histogram (nearest rank), or None when it is empty."""
    total = sum(hist.values())
    if total == 0:
        return None
    rank = q * (total - 1)
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen > rank:
            return bucket_value(bucket)
    return bucket_value(max(hist))


def merged(hists: list[dict[int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for h in hists:
        for b, n in h.items():
            out[b] = out.get(b, 0) + n
    return out


class Minute:
    """One minute of traffic. routes: (method, route) -> [requests, server errors, hist];
    stages: stage -> hist."""

    __slots__ = ("minute", "routes", "stages", "errors")

    def __init__(self, minute: int) -> None:
        self.minute = minute
        self.routes: dict[tuple[str, str], list[Any]] = {}
        self.stages: dict[str, dict[int, int]] = {}
        self.errors = 0


class LiveStats:
    def __init__(self) -> None:
        self.minutes: dict[int, Minute] = {}
        self.error_groups: dict[str, list[Any]] = {}  # fingerprint -> [n, last, type, msg, route]
        self._current = Minute(-1)

    def _minute(self, at: float) -> Minute | None:
        minute = int(at // 60)
        m = self._current
        if m.minute == minute:
            return m
        found = self.minutes.get(minute)
        if found is not None:
            return found
        newest = max(self.minutes, default=minute)
        if minute <= newest - WINDOW_MINUTES:
            return None  # older than the window
        found = Minute(minute)
        self.minutes[minute] = found
        for old in [k for k in self.minutes if k <= max(newest, minute) - WINDOW_MINUTES]:
            del self.minutes[old]
        if minute >= newest:
            self._current = found
        return found

    # -- writers (processor thread) ----------------------------------------------------------
    def request(self, method: str, route: str, status: int, ms: float, at: float) -> None:
        m = self._current
        if m.minute != int(at // 60):
            found = self._minute(at)
            if found is None:
                return
            m = found
        key = (method, route)
        r = m.routes.get(key)
        if r is None:
            if len(m.routes) >= MAX_ROUTES:
                key = OTHER_ROUTES
                r = m.routes.get(key)
            if r is None:
                r = m.routes[key] = [0, 0, {}]
        r[0] += 1
        if status >= 500:
            r[1] += 1
        b = _ceil(_log(ms) * _INV_LOG_GAMMA) if ms > 0.001 else _FLOOR_BUCKET
        h = r[2]
        h[b] = h.get(b, 0) + 1

    def voice_turn(self, row: dict[str, Any]) -> None:
        at = row.get("started_at")
        m = self._minute(at if isinstance(at, float) else time.time())
        if m is None:
            return
        for stage in STAGES:
            v = row.get(stage)
            if v is not None:
                h = m.stages.get(stage)
                if h is None:
                    h = m.stages[stage] = {}
                b = bucket_of(v)
                h[b] = h.get(b, 0) + 1

    def error(self, fingerprint: str, error_type: str, message: str, route: Any, at: float) -> None:
        m = self._minute(at)
        if m is not None:
            m.errors += 1
        groups = self.error_groups
        g = groups.pop(fingerprint, None)
        if g is None:
            g = [0, at, error_type[:200], message[:300], route]
            if len(groups) >= MAX_ERROR_GROUPS:
                del groups[next(iter(groups))]  # the least recently seen
        g[0] += 1
        g[1] = at
        g[3] = message[:300]
        g[4] = route
        groups[fingerprint] = g  # re-inserted: the dict's order is recency

    # -- reader (any thread) -----------------------------------------------------------------
    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """Rates, error rates and percentiles over the window, from copies of the counters."""
        now = time.time() if now is None else now
        this_minute = int(now // 60)
        minutes = [
            m for m in list(self.minutes.values()) if m.minute > this_minute - WINDOW_MINUTES
        ]
        per_minute = {m.minute: 0 for m in minutes}
        routes: dict[tuple[str, str], list[Any]] = {}
        stages: dict[str, list[dict[int, int]]] = {}
        errors_recorded = 0
        for m in minutes:
            errors_recorded += m.errors
            for key, (n, server_errors, hist) in list(m.routes.items()):
                per_minute[m.minute] += n
                acc = routes.setdefault(key, [0, 0, []])
                acc[0] += n
                acc[1] += server_errors
                acc[2].append(dict(hist))
            for stage, hist in list(m.stages.items()):
                stages.setdefault(stage, []).append(dict(hist))
        first = min(per_minute, default=this_minute)
        span_s = max(60.0, now - first * 60.0)
        total = sum(acc[0] for acc in routes.values())
        server_errors = sum(acc[1] for acc in routes.values())
        route_rows = []
        for (method, route), (n, errs, hists) in sorted(routes.items(), key=lambda kv: -kv[1][0]):
            h = merged(hists)
            route_rows.append(
                {
                    "method": method,
                    "route": route,
                    "requests": n,
                    "rate_per_s": n / span_s,
                    "error_rate": errs / n if n else 0.0,
                    "p50_ms": quantile(h, 0.50),
                    "p95_ms": quantile(h, 0.95),
                    "p99_ms": quantile(h, 0.99),
                }
            )
        stage_rows = []
        for stage in STAGES:
            if stage in stages:
                h = merged(stages[stage])
                stage_rows.append(
                    {
                        "stage": stage,
                        "turns": sum(h.values()),
                        "p50_ms": quantile(h, 0.50),
                        "p95_ms": quantile(h, 0.95),
                        "p99_ms": quantile(h, 0.99),
                    }
                )
        last_minute = per_minute.get(this_minute - 1, 0)
        groups = [
            {
                "fingerprint": fp,
                "count": g[0],
                "last_seen": g[1],
                "error_type": g[2],
                "message": g[3],
                "route": g[4],
            }
            for fp, g in reversed(list(self.error_groups.items()))
        ]
        return {
            "window_minutes": WINDOW_MINUTES,
            "requests": total,
            "rate_per_s": total / span_s,
            "rate_last_minute_per_s": last_minute / 60.0,
            "server_error_rate": server_errors / total if total else 0.0,
            "errors_recorded": errors_recorded,
            "per_minute": [
                (minute * 60, per_minute.get(minute, 0))
                for minute in range(this_minute - WINDOW_MINUTES + 1, this_minute + 1)
            ],
            "routes": route_rows,
            "stages": stage_rows,
            "error_groups": groups,
        }

    def clear(self) -> None:
        self.minutes = {}
        self.error_groups = {}
        self._current = Minute(-1)


live = LiveStats()
