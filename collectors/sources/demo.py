"""The demo source: a seeded simulator of a production voice agent (the embedded default).

First run: history from anchor - history_days to the anchor (now floored to the minute), one
chunk per three simulated days. Later runs: from the watermark's "until" to now floored to the minute.
The watermark (stream "demo") is JSON {"anchor": ..., "until": ...}.

Why generation is split-invariant: each hour of simulated time has its own numpy Generator
seeded by (seed, family, hour since the Unix epoch), every id is derived from (hour, index),
and a row is emitted in the window that holds its emission time (a call with its turns,
quality sample, exposure and feature usage when it ends; feedback a little later; everything
else at its own timestamp). No row is emitted more than LOOKBACK_HOURS after the start of the
hour that generated it, so a window [a, b) needs hours floor(a) - 1 .. floor(b). The union of
any split of a time range into windows is therefore the single-window dataset.

What is planted (outage, bad release, attacks, experiment...) is in collectors/demo_truth.py.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from collectors import demo_truth as truth_mod
from collectors.demo_truth import DemoTruth, demo_truth, emodel_mos, traffic_multiplier
from collectors.schema import TABLES
from collectors.sources.base import Batch

US = 1_000_000
MINUTE_US = 60 * US
HOUR_US = 3600 * US
DAY_US = 24 * HOUR_US
LOOKBACK_HOURS = 1
STREAM = "demo"

# Column kinds: "time" (int64 us since epoch), "float" (NaN = null), "int" (int64, or float with
# NaN = null), "bool", "text" (object array, None = null), ("cat", name) (int codes into a
# category list, -1 = null), ("id", prefix) (prefix + decimal int64, -1 = null).
SPECS: dict[str, dict[str, object]] = {
    "calls": {
        "call_id": ("id", "call_"),
        "caller_id": ("cat", "callers"),
        "started_at": "time",
        "ended_at": "time",
        "duration_s": "float",
        "outcome": ("cat", "outcomes"),
        "turns": "int",
        "interruptions": "int",
        "release": ("cat", "releases"),
        "experiment_key": ("cat", "experiments"),
        "variant": ("cat", "variants"),
        "region": ("cat", "regions"),
        "network": ("cat", "networks"),
    },
    "voice_turns": {
        "turn_id": ("id", "turn_"),
        "call_id": ("id", "call_"),
        "turn_index": "int",
        "started_at": "time",
        "eou_delay_ms": "float",
        "stt_ms": "float",
        "llm_ttft_ms": "float",
        "tts_ttfb_ms": "float",
        "e2e_ms": "float",
        "interrupted": "bool",
        "llm_prompt_tokens": "int",
        "llm_completion_tokens": "int",
        "tts_characters": "int",
        "release": ("cat", "releases"),
        "variant": ("cat", "variants"),
    },
    "voice_quality": {
        "sample_id": ("id", "vq_"),
        "call_id": ("id", "call_"),
        "measured_at": "time",
        "latency_ms": "float",
        "jitter_ms": "float",
        "packet_loss_pct": "float",
        "audio_level": "float",
        "noise_level": "float",
        "mos_reported": "float",
        "codec": ("cat", "codecs"),
        "region": ("cat", "regions"),
        "network": ("cat", "networks"),
        "release": ("cat", "releases"),
    },
    "feedback": {
        "feedback_id": ("id", "fb_"),
        "submitted_at": "time",
        "rating": "int",
        "category": ("cat", "fb_categories"),
        "comment": "text",
        "user_id": ("cat", "callers"),
        "session_id": ("id", "call_"),
        "call_id": ("id", "call_"),
        "release": ("cat", "releases"),
    },
    "feature_usage": {
        "usage_id": ("id", "fu_"),
        "used_at": "time",
        "feature_name": ("cat", "features"),
        "user_id": ("cat", "callers"),
        "session_id": ("id", "call_"),
        "call_id": ("id", "call_"),
        "duration_s": "float",
    },
    "experiment_exposures": {
        "experiment_key": ("cat", "experiments"),
        "unit_id": ("id", "call_"),
        "unit_type": ("cat", "unit_types"),
        "variant": ("cat", "variants"),
        "exposed_at": "time",
    },
    "requests": {
        "request_id": ("id", "req_"),
        "started_at": "time",
        "route": ("cat", "routes"),
        "method": ("cat", "methods"),
        "status_code": "int",
        "duration_ms": "float",
        "release": ("cat", "releases"),
        "service": ("cat", "services"),
        "user_id": ("cat", "users"),
        "ip": ("cat", "ips"),
        "call_id": ("id", "call_"),
    },
    "errors": {
        "error_id": ("id", "err_"),
        "occurred_at": "time",
        "error_type": "text",
        "message": "text",
        "stack_trace": "text",
        "fingerprint": "text",
        "severity": ("cat", "severities"),
        "route": ("cat", "routes"),
        "method": ("cat", "methods"),
        "release": ("cat", "releases"),
        "request_id": ("id", "req_"),
        "call_id": ("id", "call_"),
        "user_id": ("cat", "users"),
        "sample_rate": "float",
    },
    "db_queries": {
        "query_id": ("id", "q_"),
        "observed_at": "time",
        "statement": ("cat", "statements"),
        "calls": "int",
        "total_ms": "float",
        "mean_ms": "float",
        "rows": "int",
        "database": ("cat", "databases"),
        "release": ("cat", "releases"),
    },
    "resource_samples": {
        "host": ("cat", "hosts"),
        "sampled_at": "time",
        "cpu_pct": "float",
        "memory_pct": "float",
        "disk_pct": "float",
        "net_in_bytes": "int",
        "net_out_bytes": "int",
        "db_connections": "int",
        "cache_hit_pct": "float",
        "db_size_bytes": "int",
    },
    "probe_results": {
        "target": ("cat", "targets"),
        "checked_at": "time",
        "kind": ("cat", "probe_kinds"),
        "status": ("cat", "probe_statuses"),
        "latency_ms": "float",
        "status_code": "int",
        "error": "text",
    },
    "auth_events": {
        "event_id": ("id", "auth_"),
        "occurred_at": "time",
        "event_type": ("cat", "auth_types"),
        "success": "bool",
        "user_id": "text",
        "ip": "text",
        "user_agent": ("cat", "user_agents"),
        "path": ("cat", "auth_paths"),
    },
    "security_events": {
        "event_id": ("id", "sec_"),
        "occurred_at": "time",
        "event_type": ("cat", "security_types"),
        "severity": ("cat", "severities"),
        "user_id": ("cat", "users"),
        "ip": "text",
        "path": "text",
        "details": "text",
    },
    "deployments": {
        "deployment_id": "text",
        "created_at": "time",
        "finished_at": "time",
        "service": ("cat", "services"),
        "environment": ("cat", "environments"),
        "release": ("cat", "releases"),
        "status": ("cat", "deploy_statuses"),
        "is_rollback": "bool",
        "commit_sha": "text",
        "message": "text",
    },
    "app_starts": {
        "host": ("cat", "hosts"),
        "started_at": "time",
        "startup_ms": "float",
        "init_ms": "float",
        "release": ("cat", "releases"),
    },
}

OUTCOMES = ("resolved", "escalated", "abandoned", "failed")
REGIONS = ("eu-west", "us-east", "us-west", "ap-south", "sa-east")
REGION_WEIGHTS = np.array([0.34, 0.30, 0.16, 0.12, 0.08])
REGION_LATENCY_MS = np.array([38.0, 45.0, 62.0, 120.0, 105.0])  # one-way, to the media server
NETWORKS = ("wifi", "5g", "4g", "3g", "ethernet", "pstn")
NETWORK_WEIGHTS = np.array([0.42, 0.14, 0.26, 0.04, 0.06, 0.08])
NETWORK_LATENCY_MS = np.array([18.0, 22.0, 42.0, 110.0, 8.0, 55.0])
NETWORK_JITTER_MS = np.array([5.0, 7.0, 12.0, 28.0, 2.5, 3.5])
NETWORK_LOSS_PCT = np.array([0.35, 0.45, 0.8, 2.2, 0.12, 0.25])
CODEC_NAMES = ("opus", "G.711")  # pstn calls come in over a SIP trunk as G.711
FEATURES = (
    "knowledge_base_lookup",
    "order_status",
    "calendar_booking",
    "sms_followup",
    "transfer_to_human",
    "language_switch",
)
FB_NEG = ("latency", "understanding", "interruptions", "audio_quality", "other")
FB_POS = ("praise", "other", "understanding")
FB_CATEGORIES = ("latency", "understanding", "interruptions", "audio_quality", "other", "praise")
SEVERITIES = ("debug", "info", "warning", "error", "critical", "low", "medium", "high")
METHODS = ("GET", "POST", "PUT", "DELETE")
# (route, method, median ms, is a database route)
CALL_ROUTES = (
    ("/v1/calls", "POST", 45.0, True),
    ("/v1/webhooks/livekit", "POST", 12.0, False),  # room_started
    ("/v1/webhooks/livekit", "POST", 12.0, False),  # room_finished
    ("/v1/callers/{caller_id}/history", "GET", 60.0, True),
    ("/v1/calls/{call_id}/end", "POST", 38.0, True),
    ("/v1/calls/{call_id}", "GET", 25.0, True),
)
TURN_ROUTE = "/v1/agent/turn"
OPERATOR_ROUTES = (
    ("/v1/calls", "GET", 80.0, 0.34),
    ("/v1/calls/{call_id}", "GET", 25.0, 0.22),
    ("/v1/transcripts/{call_id}", "GET", 55.0, 0.18),
    ("/v1/metrics/summary", "GET", 140.0, 0.16),
    ("/v1/agent/config", "PUT", 70.0, 0.04),
    ("/v1/callers/{caller_id}/history", "GET", 60.0, 0.06),
)
ROUTES = tuple(
    dict.fromkeys(
        [r[0] for r in CALL_ROUTES]
        + [TURN_ROUTE, "/healthz", "/metrics"]
        + [r[0] for r in OPERATOR_ROUTES]
        + ["/worker/transcripts", "/worker/summaries", "/worker/prompt"]
    )
)
INTERNAL_IPS = ("100.64.0.2", "100.64.0.7", "34.120.44.10")  # railway health, prometheus, livekit
STATEMENTS = (
    # (normalised statement, calls per minute at mean load, median ms, rows per call)
    ("SELECT id, phone_hash, locale, last_call_at FROM callers WHERE phone_hash = $1", 2.1, 1.4, 1),
    (
        "INSERT INTO calls (call_id, caller_id, started_at, release, variant) "
        "VALUES ($1, $2, $3, $4, $5)",
        2.1,
        2.2,
        1,
    ),
    ("UPDATE calls SET ended_at = $1, outcome = $2, turns = $3 WHERE call_id = $4", 2.1, 1.9, 1),
    (
        "INSERT INTO voice_turns (turn_id, call_id, turn_index, payload) VALUES ($1, $2, $3, $4)",
        17.0,
        1.6,
        1,
    ),
    (
        "SELECT chunk_id, content FROM knowledge_chunks ORDER BY embedding <=> $1 LIMIT $2",
        9.0,
        34.0,
        5,
    ),
    (
        "SELECT * FROM orders WHERE customer_id = $1 AND status = ANY($2) "
        "ORDER BY created_at DESC LIMIT $3",
        4.0,
        6.5,
        3,
    ),
    (
        "INSERT INTO feedback (call_id, rating, category, comment) VALUES ($1, $2, $3, $4)",
        0.4,
        2.0,
        1,
    ),
    (
        "SELECT outcome, count(*), avg(duration_s) FROM calls WHERE started_at >= $1 "
        "GROUP BY outcome",
        1.5,
        120.0,
        4,
    ),
)
HOSTS = (*truth_mod.AGENT_HOSTS, truth_mod.DB_HOST)
TARGETS = truth_mod.PROBE_TARGETS
PROBE_KINDS = ("http", "supabase", "livekit", "railway")  # kind of each target, same order
PROBE_OFFSET_S = tuple(truth_mod.PROBE_OFFSET_S[t] for t in truth_mod.PROBE_TARGETS)
PROBE_MEDIAN_MS = (85.0, 60.0, 45.0, 180.0)
PROBE_STATUSES = ("up", "pending", "down", "maintenance")
AUTH_TYPES = ("login", "logout", "token_refreshed", "password_reset")
AUTH_PATHS = (
    "/auth/v1/token?grant_type=password",
    "/auth/v1/logout",
    "/auth/v1/token?grant_type=refresh_token",
    "/auth/v1/recover",
)
USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
)
SECURITY_TYPES = ("rate_limit_exceeded", "blocked_ip", "invalid_webhook_signature")
SCAN_PATHS = ("/.env", "/wp-login.php", "/.git/config", "/admin/config.php", "/actuator/env")

# An error to emit: (time in us, error key, route index, method index, release index, request
# key (negative: not a request's), call key).
ErrorRow = tuple[int, str, int, int, int, int, int]

# Families of per-hour generation; each has its own Generator stream.
F_CALLS, F_BACKGROUND, F_MINUTELY, F_DEPLOYS, F_EPISODES = 1, 2, 3, 4, 5


def _lognormal(
    rng: np.random.Generator, median: npt.ArrayLike, sigma: float, size: int
) -> np.ndarray:
    return np.asarray(median) * np.exp(sigma * rng.standard_normal(size))


def _floor_minute(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(second=0, microsecond=0)


def _us(t: datetime) -> int:
    return int(round(t.timestamp() * US))


# --------------------------------------------------------------------------- error catalogue

_SITE = "/usr/local/lib/python3.12/site-packages"
# key -> (error_type, severity, app frames [(file, function, line, code)], library frames)
_ERRORS: dict[str, tuple[str, str, list[tuple[str, str, int, str]], list[tuple[str, str, int]]]] = {
    "llm_timeout": (
        "openai.APITimeoutError",
        "error",
        [
            ("/app/agent/pipeline.py", "handle_turn", 142, "reply = await self.llm.stream(ctx)"),
            ("/app/agent/llm.py", "stream", 58, "async for chunk in await client.create(**kw):"),
        ],
        [
            (f"{_SITE}/openai/_base_client.py", "_request", 1584),
            (f"{_SITE}/httpx/_client.py", "send", 1629),
            (f"{_SITE}/httpx/_transports/default.py", "handle_async_request", 393),
        ],
    ),
    "db_connect": (
        "httpx.ConnectError",
        "error",
        [
            ("/app/api/routes/calls.py", "create_call", 88, "caller = await db.caller(phone)"),
            ("/app/agent/db.py", "caller", 41, "res = await q.eq('phone_hash', h).execute()"),
        ],
        [
            (f"{_SITE}/postgrest/_async/request_builder.py", "execute", 58),
            (f"{_SITE}/httpx/_client.py", "send", 1629),
            (f"{_SITE}/httpx/_transports/default.py", "map_httpcore_exceptions", 118),
        ],
    ),
    "db_schema_cache": (
        "postgrest.exceptions.APIError",
        "error",
        [
            ("/app/api/routes/calls.py", "end_call", 131, "await db.update_call(call_id, **r)"),
            ("/app/agent/db.py", "update_call", 77, "await q.update(values).execute()"),
        ],
        [(f"{_SITE}/postgrest/_async/request_builder.py", "execute", 78)],
    ),
    "tool_validation": (
        "pydantic_core.ValidationError",
        "error",
        [
            ("/app/agent/pipeline.py", "run_tool", 203, "result = await tool(**args)"),
            ("/app/agent/tools/booking.py", "book_appointment", 36, "a = BookingArgs(**kw)"),
        ],
        [(f"{_SITE}/pydantic/main.py", "__init__", 214)],
    ),
    "session_key": (
        "KeyError",
        "error",
        [
            ("/app/api/routes/calls.py", "get_call", 64, "profile = session['caller_profile']"),
            ("/app/agent/session.py", "load", 29, "return self._cache[call_id]"),
        ],
        [
            (f"{_SITE}/starlette/routing.py", "app", 73),
            (f"{_SITE}/fastapi/routing.py", "run_endpoint_function", 212),
        ],
    ),
    "livekit_connect": (
        "livekit.rtc.ConnectError",
        "error",
        [
            ("/app/agent/worker.py", "entrypoint", 52, "await ctx.connect(auto_subscribe=AUDIO)"),
        ],
        [
            (f"{_SITE}/livekit/agents/job.py", "connect", 245),
            (f"{_SITE}/livekit/rtc/room.py", "connect", 402),
        ],
    ),
    "slow_llm": ("SlowLLMResponse", "warning", [], []),
    "unicode": (
        "UnicodeDecodeError",
        "error",
        [
            ("/app/workers/transcripts.py", "export", 118, "text = raw.decode('utf-8')"),
        ],
        [],
    ),
    "zero_division": (
        "ZeroDivisionError",
        "error",
        [
            ("/app/workers/summaries.py", "daily", 44, "aht = total_s / len(resolved)"),
            ("/app/analytics/summary.py", "average_handle_time", 17, "return s / n"),
        ],
        [],
    ),
    "recursion": (
        "RecursionError",
        "critical",
        [
            ("/app/agent/prompt.py", "render_context", 91, "return render_context(node.parent)"),
        ],
        [],
    ),
}
_ROUTE_OF_RARE = {
    "unicode": "/worker/transcripts",
    "zero_division": "/worker/summaries",
    "recursion": "/worker/prompt",
}


def _fingerprint(key: str) -> str:
    etype, _, app, _ = _ERRORS[key]
    frames = "|".join(f"{f}:{fn}" for f, fn, _, _ in app)
    return hashlib.sha1(f"{etype}|{key}|{frames}".encode()).hexdigest()[:16]


def _stack_trace(key: str, message: str, release_idx: int) -> str | None:
    etype, _, app, lib = _ERRORS[key]
    if not app:
        return None
    lines = ["Traceback (most recent call last):"]
    shift = (release_idx % 7) * 3  # line numbers move between releases; fingerprints must not
    for path, fn, line, code in app:
        lines.append(f'  File "{path}", line {line + shift}, in {fn}')
        lines.append(f"    {code}")
    for path, fn, line in lib:
        lines.append(f'  File "{path}", line {line}, in {fn}')
    lines.append(f"{etype}: {message}")
    return "\n".join(lines)


def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _ip(rng: np.random.Generator, private: bool = False) -> str:
    a = rng.integers(1, 255, size=3)
    head = "10" if private else str(int(rng.choice([34, 52, 54, 18, 3])))
    return f"{head}.{a[0]}.{a[1]}.{a[2]}"


def _error_message(key: str, rng: np.random.Generator, call_key: int, turn: int) -> str:
    if key == "llm_timeout":
        return f"Request timed out after {int(rng.integers(8000, 30001))} ms (model=gpt-4o-mini, attempt {int(rng.integers(1, 4))}/3)"
    if key == "db_connect":
        return f"[Errno 111] Connect call failed ('{_ip(rng, private=True)}', 5432)"
    if key == "db_schema_cache":
        return (
            "{'code': 'PGRST002', 'message': 'Could not query the database for the schema "
            f"cache. Retrying.', 'details': 'request {_uuid(rng)}'}}"
        )
    if key == "tool_validation":
        bad = rng.choice(["next tuesday", "tomorrow 3pm", "2025-13-01", "half past"])
        return (
            f"1 validation error for BookingArgs slot_start: Input should be a valid datetime, "
            f"input_value='{bad}' (call {_uuid(rng)})"
        )
    if key == "session_key":
        return f"'caller_profile' (session {_uuid(rng)})"
    if key == "livekit_connect":
        return (
            f"failed to connect to room room_{rng.bytes(6).hex()} via "
            f"{_ip(rng)}:7881 after {int(rng.integers(2, 6))} retries"
        )
    if key == "slow_llm":
        return f"LLM time to first token {int(rng.integers(2500, 9000))} ms exceeded the 2500 ms budget (call call_{call_key}, turn {turn})"
    if key == "unicode":
        return f"'utf-8' codec can't decode byte 0x{int(rng.integers(128, 256)):x} in position {int(rng.integers(10, 90000))}: invalid start byte"
    if key == "zero_division":
        return "division by zero"
    return "maximum recursion depth exceeded while calling a Python object"


_FB_COMMENTS = {
    "latency": (
        "It took forever to answer, like {n} seconds every time",
        "Long pauses before the agent replied",
        "Too slow, I thought the line was dead",
        "the bot kept going quiet for {n} sec",
    ),
    "understanding": (
        "It didn't understand my order number {num}",
        "Had to repeat myself {n} times",
        "Wrong answer about my appointment",
    ),
    "interruptions": (
        "It kept talking over me",
        "Agent cut me off mid sentence",
    ),
    "audio_quality": ("Voice was choppy and robotic", "Could barely hear it, lots of static"),
    "other": ("ok", "Fine I guess", '=HYPERLINK("http://example.com","click")', "meh"),
    "praise": (
        "Quick and helpful, thanks!",
        "Sorted my booking in a minute",
        "Great, much better than waiting on hold",
        "<b>Loved it</b> <script>alert(1)</script>",
    ),
}


# --------------------------------------------------------------------------- the simulator


class DemoSimulator:
    """Generates the demo tables for any window [start, end) given (seed, anchor)."""

    def __init__(self, seed: int, anchor: datetime, history_days: int = 30):
        self.seed = seed
        self.anchor = anchor
        self.truth: DemoTruth = demo_truth(seed, anchor, history_days)
        t = self.truth
        self.anchor_us = _us(anchor)
        deps = t.deployments
        releases = list(dict.fromkeys(d.release for d in deps))
        self.release_index = {r: i for i, r in enumerate(releases)}
        ok = [d for d in deps if d.status == "SUCCESS"]
        self._ok_finish = np.array([_us(d.finished_at) for d in ok], dtype=np.int64)
        self._ok_release = np.array([self.release_index[d.release] for d in ok], dtype=np.int64)
        self.bad_release = self.release_index[t.bad_release.release]
        self.exp_start_us = _us(t.experiment.start)
        o = t.outage
        self.outage = (_us(o.start), _us(o.down_from), _us(o.end))

        rng = np.random.default_rng([seed, 0xCA11E5])
        n = truth_mod.N_CALLERS
        w = rng.lognormal(0.0, 1.0, n)
        self.caller_p = w / w.sum()
        self.caller_region = rng.choice(len(REGIONS), n, p=REGION_WEIGHTS)
        self.caller_network = rng.choice(len(NETWORKS), n, p=NETWORK_WEIGHTS)
        self.caller_difficulty = rng.normal(0.0, self.truth.outcomes.caller_difficulty_sd, n)
        ops = truth_mod.N_OPERATORS
        ow = rng.lognormal(0.0, 0.8, ops)
        self.operator_p = ow / ow.sum()
        self.operator_ip = [_ip(rng) for _ in range(ops)]
        self.operator_ua = rng.integers(0, 4, ops)
        self.operators = [f"user_{i + 1:04d}" for i in range(ops)]
        spike_user = self.operators.index(t.api_spike.user_id)
        self.operator_p[spike_user] = 0.004  # a light user normally, so the spike stands out
        self.operator_p /= self.operator_p.sum()
        self.spike_user = spike_user

        self.cats: dict[str, tuple[str, ...]] = {
            "callers": tuple(f"caller_{i:05d}" for i in range(n)),
            "outcomes": OUTCOMES,
            "releases": tuple(releases),
            "experiments": (truth_mod.EXPERIMENT_KEY,),
            "variants": truth_mod.VARIANTS,
            "regions": REGIONS,
            "networks": NETWORKS,
            "codecs": CODEC_NAMES,
            "fb_categories": FB_CATEGORIES,
            "features": FEATURES,
            "unit_types": ("call",),
            "routes": ROUTES,
            "methods": METHODS,
            "services": (truth_mod.SERVICE,),
            "users": tuple(self.operators),
            "ips": (*INTERNAL_IPS, *self.operator_ip),
            "severities": SEVERITIES,
            "statements": tuple(s[0] for s in STATEMENTS),
            "databases": ("postgres",),
            "hosts": HOSTS,
            "targets": TARGETS,
            "probe_kinds": PROBE_KINDS,
            "probe_statuses": PROBE_STATUSES,
            "auth_types": AUTH_TYPES,
            "user_agents": USER_AGENTS,
            "auth_paths": AUTH_PATHS,
            "security_types": SECURITY_TYPES,
            "environments": (truth_mod.ENVIRONMENT,),
            "deploy_statuses": ("SUCCESS", "FAILED"),
        }
        self._route = {r: i for i, r in enumerate(ROUTES)}
        self._cache: OrderedDict[int, dict[str, list[dict[str, np.ndarray]]]] = OrderedDict()

    # ---------------------------------------------------------------- helpers
    def _rng(self, family: int, hour: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, family, hour])

    def releases_at(self, t_us: np.ndarray) -> np.ndarray:
        i = np.searchsorted(self._ok_finish, t_us, side="right") - 1
        return self._ok_release[np.maximum(i, 0)]

    def _last_start_us(self, t_us: np.ndarray) -> np.ndarray:
        i = np.searchsorted(self._ok_finish, t_us, side="right") - 1
        return np.where(i >= 0, self._ok_finish[np.maximum(i, 0)], t_us - 3 * DAY_US)

    def _in_outage(self, t_us: np.ndarray, pad_us: int = 0) -> np.ndarray:
        return (t_us >= self.outage[0] - pad_us) & (t_us < self.outage[2])

    def _load(self, hour: int) -> float:
        """Traffic relative to its weekly mean, with slow growth (+0.3 % a day)."""
        growth = 1.0 + 0.003 * (hour * HOUR_US - self.anchor_us) / DAY_US
        return float(traffic_multiplier(np.array([hour + 0.5]))[0] * max(growth, 0.7))

    # ---------------------------------------------------------------- one hour
    def hour(self, h: int) -> dict[str, list[dict[str, np.ndarray]]]:
        if h in self._cache:
            self._cache.move_to_end(h)
            return self._cache[h]
        out: dict[str, list[dict[str, np.ndarray]]] = {}
        for part in (
            self._calls_hour(h),
            self._background_hour(h),
            self._minutely_hour(h),
            self._deploys_hour(h),
            self._episodes_hour(h),
        ):
            for table, frame in part.items():
                out.setdefault(table, []).append(frame)
        self._cache[h] = out
        while len(self._cache) > 4:
            self._cache.popitem(last=False)
        return out

    def _calls_hour(self, h: int) -> dict[str, dict[str, np.ndarray]]:
        rng = self._rng(F_CALLS, h)
        t = self.truth
        load = self._load(h)
        n = int(rng.poisson(truth_mod.MEAN_CALLS_PER_HOUR * load))
        start = h * HOUR_US + np.sort(rng.integers(0, HOUR_US, n))
        ckey = h * 10_000 + np.arange(n, dtype=np.int64)
        caller = rng.choice(truth_mod.N_CALLERS, n, p=self.caller_p)
        region = self.caller_region[caller]
        network = np.where(
            rng.random(n) < 0.8,
            self.caller_network[caller],
            rng.choice(len(NETWORKS), n, p=NETWORK_WEIGHTS),
        )
        codec = (network == NETWORKS.index("pstn")).astype(np.int64)
        release = self.releases_at(start)
        bad = release == self.bad_release
        outage = self._in_outage(start, pad_us=10 * MINUTE_US)
        n_turns = np.clip(2 + rng.poisson(6.0, n), 2, 30)

        # turns
        T = int(n_turns.sum())
        call_of = np.repeat(np.arange(n), n_turns)
        first = np.cumsum(n_turns) - n_turns
        tix = np.arange(T) - np.repeat(first, n_turns)
        st = t.latency_stages

        def stage(name: str) -> np.ndarray:
            s = st[name]
            return _lognormal(rng, s.median_ms * (1 + s.load_slope * (load - 1)), s.sigma, T)

        eou, stt, llm, tts, transport = (
            stage(k)
            for k in ("eou_delay_ms", "stt_ms", "llm_ttft_ms", "tts_ttfb_ms", "transport_ms")
        )
        llm = llm * np.where(bad[call_of], t.bad_release.llm_ttft_multiplier, 1.0)
        tool = rng.random(T) < truth_mod.TOOL_CALL_SHARE
        llm = llm + np.where(tool, _lognormal(rng, 550.0, 0.4, T), 0.0)
        e2e = eou + np.maximum(0.0, stt - eou) + llm + tts + transport
        greeting = tix == 0
        e2e_v = np.where(greeting, np.nan, e2e)
        z = -3.1 + 1.1 * (e2e / 1000.0 - 1.0)
        p_int = np.where(greeting, 0.02, 1.0 / (1.0 + np.exp(-z)))
        interrupted = rng.random(T) < p_int
        user_s = rng.uniform(1.2, 6.0, T)
        agent_s = rng.uniform(1.5, 9.0, T) * np.where(interrupted, 0.4, 1.0)
        reply_s = np.where(greeting, (llm + tts) / 1000.0, e2e / 1000.0)
        turn_s = np.where(greeting, 0.4, user_s) + reply_s + agent_s
        cs = np.cumsum(turn_s)
        excl = cs - turn_s
        offset_s = excl - np.repeat(excl[first], n_turns)
        turn_start = np.repeat(start, n_turns) + (offset_s * US).astype(np.int64)
        total_s = np.bincount(call_of, weights=turn_s, minlength=n) + 1.0
        end = start + (total_s * US).astype(np.int64)
        prompt_tok = (900 + 160 * tix + rng.integers(0, 120, T)) * np.where(bad[call_of], 1.6, 1.0)
        compl_tok = rng.integers(12, 90, T)
        tts_chars = compl_tok * 4 + rng.integers(0, 20, T)

        n_e2e = np.bincount(call_of, weights=~greeting, minlength=n)
        mean_e2e = np.bincount(call_of, weights=np.where(greeting, 0.0, e2e), minlength=n) / (
            np.maximum(n_e2e, 1)
        )
        interruptions = np.bincount(call_of, weights=interrupted, minlength=n).astype(np.int64)

        # experiment: call-level 50/50 by hash of (key, call_id)
        in_exp = start >= self.exp_start_us
        variant = np.full(n, -1, dtype=np.int64)
        for i in np.flatnonzero(in_exp):
            v = truth_mod.experiment_variant(f"call_{ckey[i]}", t.experiment.key)
            variant[i] = truth_mod.VARIANTS.index(v)

        # outcome: multinomial logit, then the treatment's +3 pp on P(resolved)
        x = mean_e2e / 1000.0 - 1.0
        om = t.outcomes
        logits = np.stack(
            [
                om.resolved_intercept
                - self.caller_difficulty[caller]
                + om.resolved_per_e2e_s * x
                + om.resolved_per_interruption * interruptions,
                np.zeros(n),
                om.abandoned_intercept
                + om.abandoned_per_e2e_s * x
                + om.abandoned_per_interruption * interruptions,
                om.failed_intercept + om.failed_bad_release * bad + om.failed_outage * outage,
            ],
            axis=1,
        )
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        treated = variant == 1
        lift = np.where(treated, np.minimum(t.experiment.resolved_rate_effect, 1 - p[:, 0]), 0.0)
        rest = np.maximum(1 - p[:, 0], 1e-12)
        p[:, 1:] *= ((rest - lift) / rest)[:, None]
        p[:, 0] += lift
        u = rng.random(n)
        outcome = np.minimum((u[:, None] > np.cumsum(p, axis=1)).sum(axis=1), 3)

        frames: dict[str, dict[str, np.ndarray]] = {}
        frames["calls"] = {
            "_emit": end,
            "call_id": ckey,
            "caller_id": caller,
            "started_at": start,
            "ended_at": end,
            "duration_s": (end - start) / US,
            "outcome": outcome,
            "turns": n_turns,
            "interruptions": interruptions,
            "release": release,
            "experiment_key": np.where(in_exp, 0, -1),
            "variant": variant,
            "region": region,
            "network": network,
        }
        frames["voice_turns"] = {
            "_emit": end[call_of],
            "turn_id": ckey[call_of] * 100 + tix,
            "call_id": ckey[call_of],
            "turn_index": tix,
            "started_at": turn_start,
            "eou_delay_ms": np.where(greeting, np.nan, eou),
            "stt_ms": np.where(greeting, np.nan, stt),
            "llm_ttft_ms": llm,
            "tts_ttfb_ms": tts,
            "e2e_ms": e2e_v,
            "interrupted": interrupted,
            "llm_prompt_tokens": prompt_tok.astype(np.int64),
            "llm_completion_tokens": compl_tok,
            "tts_characters": tts_chars,
            "release": release[call_of],
            "variant": variant[call_of],
        }

        # voice quality: one sample per call, MOS from the E-model of its codec plus noise
        lat = (
            REGION_LATENCY_MS[region] + NETWORK_LATENCY_MS[network] + _lognormal(rng, 25.0, 0.3, n)
        )
        jit = NETWORK_JITTER_MS[network] * np.exp(0.5 * rng.standard_normal(n))
        loss = np.minimum(NETWORK_LOSS_PCT[network] * np.exp(0.9 * rng.standard_normal(n)), 20.0)
        mos = np.where(
            codec == 1, emodel_mos(lat, jit, loss, "G.711"), emodel_mos(lat, jit, loss, "opus")
        )
        mos = np.clip(mos + rng.normal(0, truth_mod.MOS_NOISE_SD, n), 1.0, 4.5)
        frames["voice_quality"] = {
            "_emit": end,
            "sample_id": ckey,
            "call_id": ckey,
            "measured_at": end,
            "latency_ms": np.round(lat, 1),
            "jitter_ms": np.round(jit, 2),
            "packet_loss_pct": np.round(loss, 3),
            "audio_level": np.round(rng.normal(-21.0, 4.0, n), 1),  # dBFS
            "noise_level": np.round(
                rng.normal(-58.0, 6.0, n) + np.where(codec == 1, 8.0, 0.0), 1
            ),  # dBFS
            "mos_reported": np.round(mos, 2),
            "codec": codec,
            "region": region,
            "network": network,
            "release": release,
        }

        # feedback: leaves one with P = response_rate; negative with the logistic of truth
        fm = t.feedback
        gives = rng.random(n) < fm.response_rate
        neg = rng.random(n) < fm.negative_probability(mean_e2e, interruptions)
        rating = np.where(
            neg, np.where(rng.random(n) < 0.55, 1, 2), rng.choice([3, 4, 5], n, p=[0.2, 0.35, 0.45])
        )
        cat_neg = rng.choice(len(FB_NEG), n, p=[0.4, 0.25, 0.15, 0.1, 0.1])
        cat_pos = rng.choice(len(FB_POS), n, p=[0.6, 0.3, 0.1])
        category = np.where(
            neg,
            np.array([FB_CATEGORIES.index(c) for c in FB_NEG])[cat_neg],
            np.array([FB_CATEGORIES.index(c) for c in FB_POS])[cat_pos],
        )
        submitted = end + rng.integers(20 * US, 25 * MINUTE_US, n)
        has_comment = rng.random(n) < 0.6
        pick = rng.integers(0, 1000, n)
        nums = rng.integers(2, 9, n)
        idx = np.flatnonzero(gives)
        comments = np.empty(len(idx), dtype=object)
        for j, i in enumerate(idx):
            if has_comment[i]:
                options = _FB_COMMENTS[FB_CATEGORIES[category[i]]]
                text = options[pick[i] % len(options)]
                comments[j] = text.format(n=nums[i], num=int(ckey[i]) % 100000)
            else:
                comments[j] = None
        frames["feedback"] = {
            "_emit": submitted[idx],
            "feedback_id": ckey[idx],
            "submitted_at": submitted[idx],
            "rating": rating[idx],
            "category": category[idx],
            "comment": comments,
            "user_id": caller[idx],
            "session_id": ckey[idx],
            "call_id": ckey[idx],
            "release": release[idx],
        }

        # feature usage
        probs = np.array([0.55, 0.25, 0.2, 0.0, 0.0, 0.04])
        used = rng.random((n, len(FEATURES))) < probs
        used[:, 3] = (outcome == 0) & (rng.random(n) < 0.3)
        used[:, 4] = outcome == 1
        ci, fi = np.nonzero(used)
        frac = rng.uniform(0.1, 0.95, len(ci))
        used_at = start[ci] + (frac * (end[ci] - start[ci])).astype(np.int64)
        frames["feature_usage"] = {
            "_emit": end[ci],
            "usage_id": ckey[ci] * 10 + fi,
            "used_at": used_at,
            "feature_name": fi,
            "user_id": caller[ci],
            "session_id": ckey[ci],
            "call_id": ckey[ci],
            "duration_s": np.round(_lognormal(rng, 4.0, 0.6, len(ci)), 2),
        }

        ex = np.flatnonzero(in_exp)
        frames["experiment_exposures"] = {
            "_emit": end[ex],
            "experiment_key": np.zeros(len(ex), dtype=np.int64),
            "unit_id": ckey[ex],
            "unit_type": np.zeros(len(ex), dtype=np.int64),
            "variant": variant[ex],
            "exposed_at": start[ex],
        }

        # requests made by the call: 6 lifecycle requests plus one POST /v1/agent/turn per turn
        k = len(CALL_ROUTES)
        r_call = np.repeat(np.arange(n), k)
        r_j = np.tile(np.arange(k), n)
        s_r, e_r = start[r_call], end[r_call]
        when = np.select(
            [r_j == 0, r_j == 1, r_j == 2, r_j == 3, r_j == 4],
            [s_r, s_r + 200_000, e_r + 300_000, s_r + 500_000, e_r],
            e_r + rng.integers(1 * US, 60 * US, n * k),
        )
        med = np.array([r[2] for r in CALL_ROUTES])[r_j] * (1 + 0.2 * (load - 1))
        is_db = np.array([r[3] for r in CALL_ROUTES])[r_j]
        dur = _lognormal(rng, med, 0.5, n * k)
        out_r = self._in_outage(when) & is_db
        dur = np.where(out_r, _lognormal(rng, 3000.0, 0.4, n * k), dur)
        u = rng.random(n * k)
        status = np.where(r_j == 0, 201, 200)
        status = np.where(is_db & (u < 0.001), 500, status)
        status = np.where((r_j == 5) & (u > 0.99), 404, status)
        status = np.where(((r_j == 1) | (r_j == 2)) & (u > 0.998), 401, status)
        status = np.where(out_r & (u < 0.9), 503, status)
        route_code = np.array([self._route[r[0]] for r in CALL_ROUTES])[r_j]
        method_code = np.array([METHODS.index(r[1]) for r in CALL_ROUTES])[r_j]
        ip = np.where((r_j == 1) | (r_j == 2), 2, -1)  # LiveKit's webhook sender

        # per-turn requests: sent at the end of the user's speech; served in e2e - eou
        t_when = turn_start + (np.where(greeting, 0.0, user_s + eou / 1000.0) * US).astype(np.int64)
        t_dur = np.where(greeting, llm + tts, e2e - eou)
        out_t = self._in_outage(t_when)
        p_err = np.where(
            bad[call_of], t.bad_release.turn_error_rate, t.bad_release.baseline_turn_error_rate
        )
        p_err = np.where(out_t, 0.12, p_err)
        t_fail = rng.random(T) < p_err
        t_status = np.where(t_fail, np.where(out_t, 503, 500), 200)
        req = {
            "_emit": np.concatenate([when, t_when]),
            "request_id": np.concatenate(
                [ckey[r_call] * 100 + r_j, ckey[call_of] * 100 + 50 + tix]
            ),
            "started_at": np.concatenate([when, t_when]),
            "route": np.concatenate([route_code, np.full(T, self._route[TURN_ROUTE])]),
            "method": np.concatenate([method_code, np.full(T, METHODS.index("POST"))]),
            "status_code": np.concatenate([status, t_status]),
            "duration_ms": np.round(np.concatenate([dur, t_dur]), 2),
            "release": np.concatenate([release[r_call], release[call_of]]),
            "service": np.zeros(n * k + T, dtype=np.int64),
            "user_id": np.full(n * k + T, -1),
            "ip": np.concatenate([ip, np.full(T, -1)]),
            "call_id": np.concatenate([ckey[r_call], ckey[call_of]]),
        }
        frames["requests"] = req

        # errors: one per 5xx request, slow-LLM warnings, and LiveKit failures of failed calls
        rows: list[ErrorRow] = []
        # (time, key, route, method, release, request key, call key) ; turn index via request key
        for i in np.flatnonzero(status >= 500):
            c = r_call[i]
            key = "db_connect" if status[i] == 503 and (u[i] < 0.6) else "db_schema_cache"
            if status[i] == 500:
                key = "session_key"
            rows.append(
                (
                    int(when[i] + dur[i] * 1000),
                    key,
                    route_code[i],
                    method_code[i],
                    release[c],
                    ckey[c] * 100 + r_j[i],
                    ckey[c],
                )
            )
        for i in np.flatnonzero(t_fail):
            c = call_of[i]
            if out_t[i]:
                key = "db_connect"
            elif bad[c] and rng.random() < 0.85:
                key = "tool_validation"
            else:
                key = "llm_timeout"
            rows.append(
                (
                    int(t_when[i] + t_dur[i] * 1000),
                    key,
                    self._route[TURN_ROUTE],
                    1,
                    release[c],
                    ckey[c] * 100 + 50 + tix[i],
                    ckey[c],
                )
            )
        for i in np.flatnonzero(llm > 2500.0):
            c = call_of[i]
            rows.append(
                (
                    int(t_when[i] + llm[i] * 1000),
                    "slow_llm",
                    self._route[TURN_ROUTE],
                    1,
                    release[c],
                    -(ckey[c] * 100 + 50 + tix[i]),
                    ckey[c],
                )
            )
        for c in np.flatnonzero((outcome == 3) & ~outage):
            if rng.random() < 0.5:
                rows.append(
                    (
                        int(end[c]),
                        "livekit_connect",
                        -1,
                        -1,
                        release[c],
                        -(ckey[c] * 100 + 99),
                        ckey[c],
                    )
                )
        frames["errors"] = self._error_frame(rows, rng)
        return frames

    def _error_frame(self, rows: list[ErrorRow], rng: np.random.Generator) -> dict[str, np.ndarray]:
        m = len(rows)
        msg = np.empty(m, dtype=object)
        stack = np.empty(m, dtype=object)
        etype = np.empty(m, dtype=object)
        fp = np.empty(m, dtype=object)
        sev = np.zeros(m, dtype=np.int64)
        ids = np.zeros(m, dtype=np.int64)
        req = np.zeros(m, dtype=np.int64)
        for j, (_, key, _, _, rel, rkey, ckey) in enumerate(rows):
            m_text = _error_message(key, rng, ckey, int(abs(rkey) % 100) - 50)
            msg[j] = m_text
            stack[j] = _stack_trace(key, m_text, rel)
            etype[j] = _ERRORS[key][0]
            fp[j] = _fingerprint(key)
            sev[j] = SEVERITIES.index(_ERRORS[key][1])
            # error ids: the request key for request errors, else a distinct negative space
            ids[j] = rkey * 10 if rkey >= 0 else -rkey * 10 + 1
            req[j] = rkey if rkey >= 0 else -1
        col = np.array([r[0] for r in rows], dtype=np.int64)
        return {
            "_emit": col,
            "error_id": ids,
            "occurred_at": col,
            "error_type": etype,
            "message": msg,
            "stack_trace": stack,
            "fingerprint": fp,
            "severity": sev,
            "route": np.array([r[2] for r in rows], dtype=np.int64),
            "method": np.array([r[3] for r in rows], dtype=np.int64),
            "release": np.array([r[4] for r in rows], dtype=np.int64),
            "request_id": req,
            "call_id": np.array([r[6] for r in rows], dtype=np.int64),
            "user_id": np.full(m, -1, dtype=np.int64),
            "sample_rate": np.ones(m),
        }

    def _background_hour(self, h: int) -> dict[str, dict[str, np.ndarray]]:
        """Health checks, metrics scrapes, operators' API use, auth and security events."""
        rng = self._rng(F_BACKGROUND, h)
        t0 = h * HOUR_US
        load = self._load(h)
        hod, dow = h % 24, (h // 24 + 3) % 7
        work = 1.0 if (8 <= hod < 18 and dow < 5) else 0.08
        parts: list[dict[str, np.ndarray]] = []
        # /healthz every 30 s (Railway), /metrics every 30 s (Prometheus)
        for route, step_s, ip in (("/healthz", 30, 0), ("/metrics", 30, 1)):
            k = 3600 // step_s
            ts = t0 + np.arange(k, dtype=np.int64) * step_s * US + rng.integers(0, 200_000, k)
            parts.append(
                {
                    "route": np.full(k, self._route[route]),
                    "method": np.zeros(k, dtype=np.int64),
                    "started_at": ts,
                    "status_code": np.full(k, 200),
                    "duration_ms": np.round(_lognormal(rng, 2.0 if ip == 0 else 9.0, 0.3, k), 2),
                    "user_id": np.full(k, -1),
                    "ip": np.full(k, ip),
                    "call_id": np.full(k, -1),
                }
            )
        # operators using the API (dashboards), working hours mostly
        k = int(rng.poisson(190.0 * work))
        user = rng.choice(truth_mod.N_OPERATORS, k, p=self.operator_p)
        rw = np.array([r[3] for r in OPERATOR_ROUTES])
        ri = rng.choice(len(OPERATOR_ROUTES), k, p=rw / rw.sum())
        spike = self.truth.api_spike
        s0, s1 = max(_us(spike.start), t0), min(_us(spike.end), t0 + HOUR_US)
        ks = int(spike.requests_per_hour * (s1 - s0) / HOUR_US) if s1 > s0 else 0
        ts = np.concatenate(
            [t0 + rng.integers(0, HOUR_US, k), s0 + rng.integers(0, max(s1 - s0, 1), ks)]
        )
        user = np.concatenate([user, np.full(ks, self.spike_user)])
        ri = np.concatenate([ri, np.full(ks, 2)])
        med = np.array([r[2] for r in OPERATOR_ROUTES])[ri] * (1 + 0.2 * (load - 1))
        u = rng.random(k + ks)
        status = np.where(u < 0.004, 401, np.where(u > 0.998, 429, 200))
        status = np.where((np.arange(k + ks) >= k) & (u > 0.92), 429, status)
        out = self._in_outage(ts)
        status = np.where(out & (u > 0.2), 503, status)
        parts.append(
            {
                "route": np.array([self._route[r[0]] for r in OPERATOR_ROUTES])[ri],
                "method": np.array([METHODS.index(r[1]) for r in OPERATOR_ROUTES])[ri],
                "started_at": ts,
                "status_code": status,
                "duration_ms": np.round(_lognormal(rng, med, 0.6, k + ks), 2),
                "user_id": user,
                "ip": len(INTERNAL_IPS) + user,
                "call_id": np.full(k + ks, -1),
            }
        )
        req = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
        m = len(req["started_at"])
        req["request_id"] = h * 100_000 + np.arange(m, dtype=np.int64) + 10**15  # own id space
        req["release"] = self.releases_at(req["started_at"])
        req["service"] = np.zeros(m, dtype=np.int64)
        req["_emit"] = req["started_at"]
        frames: dict[str, dict[str, np.ndarray]] = {"requests": req}

        # security: one rate-limit event per 429, scanners hitting well-known paths
        lim = np.flatnonzero(req["status_code"] == 429)
        n_scan = int(rng.poisson(0.15))
        scan_ts = t0 + rng.integers(0, HOUR_US, n_scan)
        sec_ts = np.concatenate([req["started_at"][lim], scan_ts])
        details = np.empty(len(lim) + n_scan, dtype=object)
        ips = np.empty(len(lim) + n_scan, dtype=object)
        paths = np.empty(len(lim) + n_scan, dtype=object)
        for j, i in enumerate(lim):
            route = ROUTES[req["route"][i]]
            details[j] = json.dumps({"limit": 600, "window_s": 60, "route": route})
            ips[j] = self.cats["ips"][req["ip"][i]]
            paths[j] = route
        for j in range(n_scan):
            ips[len(lim) + j] = _ip(rng)
            paths[len(lim) + j] = SCAN_PATHS[int(rng.integers(len(SCAN_PATHS)))]
            details[len(lim) + j] = json.dumps({"reason": "known scanner path", "blocked": True})
        frames["security_events"] = {
            "_emit": sec_ts,
            "event_id": h * 10_000 + np.arange(len(sec_ts), dtype=np.int64),
            "occurred_at": sec_ts,
            "event_type": np.concatenate(
                [np.zeros(len(lim), dtype=np.int64), np.ones(n_scan, dtype=np.int64)]
            ),
            "severity": np.concatenate(  # the SDK's severities: live rows group with these
                [
                    np.full(len(lim), SEVERITIES.index("warning")),
                    np.full(n_scan, SEVERITIES.index("info")),
                ]
            ),
            "user_id": np.concatenate([req["user_id"][lim], np.full(n_scan, -1)]),
            "ip": ips,
            "path": paths,
            "details": details,
        }

        # auth: operators log in, refresh tokens, log out; 3 % of logins mistype the password
        n_login = int(rng.poisson(9.0 * work))
        n_refresh = int(rng.poisson(30.0 * work))
        n_logout = int(rng.poisson(4.0 * work))
        n_reset = int(rng.poisson(0.03))
        kinds = np.concatenate(
            [np.full(n_login, 0), np.full(n_logout, 1), np.full(n_refresh, 2), np.full(n_reset, 3)]
        )
        a = len(kinds)
        who = rng.choice(truth_mod.N_OPERATORS, a, p=self.operator_p)
        ats = t0 + rng.integers(0, HOUR_US, a)
        success = ~((kinds == 0) & (rng.random(a) < 0.03))
        frames["auth_events"] = {
            "_emit": ats,
            "event_id": h * 10_000 + np.arange(a, dtype=np.int64),
            "occurred_at": ats,
            "event_type": kinds,
            "success": success,
            "user_id": np.array([self.operators[i] for i in who], dtype=object),
            "ip": np.array([self.operator_ip[i] for i in who], dtype=object),
            "user_agent": self.operator_ua[who],
            "path": kinds,
        }

        # rare background errors (each a fingerprint seen a handful of times in a month)
        rows: list[ErrorRow] = []
        for key, rate in (("unicode", 0.008), ("zero_division", 0.005), ("recursion", 0.003)):
            for _ in range(int(rng.poisson(rate))):
                when = int(t0 + rng.integers(0, HOUR_US))
                rel = int(self.releases_at(np.array([when]))[0])
                rkey = -(h * 1000 + 900 + len(rows) + 10**13)
                rows.append((when, key, self._route[_ROUTE_OF_RARE[key]], 1, rel, rkey, -1))
        frames["errors"] = self._error_frame(rows, rng)
        return frames

    def _episodes_hour(self, h: int) -> dict[str, dict[str, np.ndarray]]:
        """The brute-force and credential-stuffing episodes, cut to this hour."""
        t = self.truth
        t0, t1 = h * HOUR_US, (h + 1) * HOUR_US
        bf, cs = t.brute_force, t.credential_stuffing
        if not (_us(bf.start) < t1 and _us(bf.end) >= t0) and not (
            _us(cs.start) < t1 and _us(cs.end) >= t0
        ):
            return {}
        rng = np.random.default_rng([self.seed, F_EPISODES])
        bf_ts = np.sort(rng.integers(_us(bf.start), _us(bf.end), bf.attempts))
        accounts = [f"acct_{900000 + i:06d}" for i in range(cs.accounts)]
        cs_user = np.repeat(np.arange(cs.accounts), cs.attempts_per_account)
        cs_ts = np.sort(rng.integers(_us(cs.start), _us(cs.end), len(cs_user)))
        rng.shuffle(cs_user)
        cs_ok = np.array([accounts[i] in cs.successful_accounts for i in cs_user])
        # a compromised account succeeds on its first try only
        seen: set[int] = set()
        for j, i in enumerate(cs_user):
            if cs_ok[j] and i in seen:
                cs_ok[j] = False
            seen.add(int(i))
        ts = np.concatenate([bf_ts, cs_ts])
        n_bf = len(bf_ts)
        frame = {
            "_emit": ts,
            "event_id": 9 * 10**14 + np.arange(len(ts), dtype=np.int64),
            "occurred_at": ts,
            "event_type": np.zeros(len(ts), dtype=np.int64),
            "success": np.concatenate([np.zeros(n_bf, dtype=bool), cs_ok]),
            "user_id": np.array([bf.user_id] * n_bf + [accounts[i] for i in cs_user], dtype=object),
            "ip": np.array([bf.ip] * n_bf + [cs.ip] * len(cs_ts), dtype=object),
            "user_agent": np.concatenate(
                [
                    np.full(n_bf, USER_AGENTS.index("python-requests/2.31.0")),
                    np.full(len(cs_ts), USER_AGENTS.index("Go-http-client/1.1")),
                ]
            ),
            "path": np.zeros(len(ts), dtype=np.int64),
        }
        keep = (ts >= t0) & (ts < t1)
        return {"auth_events": {c: v[keep] for c, v in frame.items()}}

    def _minutely_hour(self, h: int) -> dict[str, dict[str, np.ndarray]]:
        """Resource samples, probe results and pg_stat_statements deltas, every minute."""
        rng = self._rng(F_MINUTELY, h)
        minutes = h * HOUR_US + np.arange(60, dtype=np.int64) * MINUTE_US
        load = traffic_multiplier((minutes + 30 * US) / HOUR_US) * (
            self._load(h) / float(traffic_multiplier(np.array([h + 0.5]))[0])
        )
        release = self.releases_at(minutes)
        bad = release == self.bad_release
        in_out = self._in_outage(minutes)
        frames: dict[str, dict[str, np.ndarray]] = {}

        # resources: two agent replicas (memory leaks until the next deploy restarts them)
        hours_up = (minutes - self._last_start_us(minutes)) / HOUR_US
        days = (minutes - self.anchor_us) / DAY_US
        cols: dict[str, list[np.ndarray]] = {}
        for hi, host in enumerate(HOSTS):
            is_db = host == truth_mod.DB_HOST
            keep = ~in_out if is_db else np.ones(60, dtype=bool)
            noise = rng.standard_normal((6, 60))
            if is_db:
                cpu = 8 + 20 * load + 2 * noise[0]
                mem = 62 + 1.5 * noise[1]
                conns = np.round(18 + 25 * load + 2 * noise[2])
                hit = np.minimum(99.9, 99.3 - 0.3 * np.abs(noise[3]))
                size = (1.8e9 + 2.2e7 * (days + 30)).astype(np.int64)
            else:
                cpu = 12 + 28 * load + 9 * bad + 3 * noise[0]
                mem = np.minimum(38 + 1.1 * hours_up, 88) + 1.2 * noise[1]
                conns = np.full(60, np.nan)
                hit = np.full(60, np.nan)
                size = np.full(60, -1, dtype=np.int64)
            net_in = np.maximum(0, 2.2e6 * load * (1 + 0.1 * noise[4])).astype(np.int64)
            net_out = np.maximum(0, 3.1e6 * load * (1 + 0.1 * noise[5])).astype(np.int64)
            vals = {
                "host": np.full(60, hi),
                "sampled_at": minutes,
                "cpu_pct": np.round(np.clip(cpu, 0.5, 100), 1),
                "memory_pct": np.round(np.clip(mem, 1, 100), 1),
                "disk_pct": np.round(41 + 0.02 * (days + 30) + 0.05 * noise[2] * (not is_db), 2),
                "net_in_bytes": net_in,
                "net_out_bytes": net_out,
                "db_connections": conns,
                "cache_hit_pct": np.round(hit, 2),
                "db_size_bytes": size,
            }
            for c, v in vals.items():
                cols.setdefault(c, []).append(np.asarray(v)[keep])
        res = {c: np.concatenate(v) for c, v in cols.items()}
        res["_emit"] = res["sampled_at"]
        frames["resource_samples"] = res

        # probes: up, with rare one-off 'pending' blips; the outage of the truth
        n_t = len(TARGETS)
        checked = np.repeat(minutes, n_t) + np.tile(np.array(PROBE_OFFSET_S) * US, 60)
        target = np.tile(np.arange(n_t), 60)
        lat = _lognormal(rng, np.array(PROBE_MEDIAN_MS)[target], 0.35, 60 * n_t)
        status = np.where(rng.random(60 * n_t) < 0.0007, 1, 0)
        code = np.where(status == 1, np.nan, 200.0)
        o_start, o_down, o_end = self.outage
        o_target = TARGETS.index(self.truth.outage.target)
        is_o = (target == o_target) & (checked >= o_start) & (checked < o_end)
        status = np.where(is_o, np.where(checked < o_down, 1, 2), status)
        code = np.where(is_o, np.where(rng.random(60 * n_t) < 0.4, 503.0, np.nan), code)
        lat = np.where(status > 0, np.where(np.isnan(code), 48000.0, lat * 20), lat)
        errors = np.empty(60 * n_t, dtype=object)
        for i in np.flatnonzero(status > 0):
            errors[i] = (
                "Request failed with status code 503"
                if code[i] == 503
                else "timeout of 48000ms exceeded"
            )
        frames["probe_results"] = {
            "_emit": checked,
            "target": target,
            "checked_at": checked,
            "kind": target,
            "status": status,
            "latency_ms": np.round(lat, 1),
            "status_code": code,
            "error": errors,
        }

        # db_queries: per-minute deltas per normalised statement (none while the DB is down)
        n_s = len(STATEMENTS)
        rate = np.array([s[1] for s in STATEMENTS])
        med = np.array([s[2] for s in STATEMENTS])
        rows_per = np.array([s[3] for s in STATEMENTS])
        lam = np.outer(load, rate)
        lam[:, 4] *= np.where(bad, 2.0, 1.0)
        calls = rng.poisson(lam)
        mean = (
            med[None, :]
            * (1 + 0.3 * (load[:, None] - 1))
            * np.exp(0.25 * rng.standard_normal((60, n_s)))
        )
        keep = (calls > 0) & ~in_out[:, None]
        mi, si = np.nonzero(keep)
        obs = minutes[mi] + 30 * US
        frames["db_queries"] = {
            "_emit": obs,
            "query_id": (h * 60 + mi) * 100 + si,
            "observed_at": obs,
            "statement": si,
            "calls": calls[mi, si],
            "total_ms": np.round(calls[mi, si] * mean[mi, si], 3),
            "mean_ms": np.round(mean[mi, si], 3),
            "rows": calls[mi, si] * rows_per[si],
            "database": np.zeros(len(mi), dtype=np.int64),
            "release": release[mi],
        }
        return frames

    def _deploys_hour(self, h: int) -> dict[str, dict[str, np.ndarray]]:
        t0, t1 = h * HOUR_US, (h + 1) * HOUR_US
        deps = [d for d in self.truth.deployments if t0 <= _us(d.finished_at) < t1]
        if not deps:
            return {}
        rng = self._rng(F_DEPLOYS, h)
        fin = np.array([_us(d.finished_at) for d in deps], dtype=np.int64)
        frames = {
            "deployments": {
                "_emit": fin,
                "deployment_id": np.array([d.deployment_id for d in deps], dtype=object),
                "created_at": np.array([_us(d.created_at) for d in deps], dtype=np.int64),
                "finished_at": fin,
                "service": np.zeros(len(deps), dtype=np.int64),
                "environment": np.zeros(len(deps), dtype=np.int64),
                "release": np.array([self.release_index[d.release] for d in deps]),
                "status": np.array([0 if d.status == "SUCCESS" else 1 for d in deps]),
                "is_rollback": np.array([d.is_rollback for d in deps]),
                "commit_sha": np.array([d.commit_sha for d in deps], dtype=object),
                "message": np.array([d.message for d in deps], dtype=object),
            }
        }
        ok = [d for d in deps if d.status == "SUCCESS"]
        if ok:
            starts, hosts, rels = [], [], []
            for d in ok:
                for hi, _ in enumerate(truth_mod.AGENT_HOSTS):
                    starts.append(
                        _us(d.finished_at) + (8 + 12 * hi) * US + int(rng.integers(0, US))
                    )
                    hosts.append(hi)
                    rels.append(self.release_index[d.release])
            s = np.array(starts, dtype=np.int64)
            rel = np.array(rels)
            frames["app_starts"] = {
                "_emit": s,
                "host": np.array(hosts),
                "started_at": s,
                "startup_ms": np.round(_lognormal(rng, 2600.0, 0.2, len(s)), 1),
                "init_ms": np.round(
                    _lognormal(rng, 900.0, 0.25, len(s))
                    * np.where(rel == self.bad_release, 1.5, 1.0),
                    1,
                ),
                "release": rel,
            }
        return frames

    # ---------------------------------------------------------------- windows
    def window(self, start_us: int, end_us: int) -> dict[str, pa.Table]:
        """Every row emitted in [start_us, end_us), per table (all tables, maybe empty)."""
        parts: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in SPECS}
        if end_us > start_us:
            for h in range(start_us // HOUR_US - LOOKBACK_HOURS, (end_us - 1) // HOUR_US + 1):
                for table, frames in self.hour(h).items():
                    for f in frames:
                        e = f["_emit"]
                        keep = (e >= start_us) & (e < end_us)
                        if keep.any():
                            parts[table].append({c: v[keep] for c, v in f.items()})
        return {name: self._arrow(name, frames) for name, frames in parts.items()}

    def _arrow(self, name: str, frames: list[dict[str, np.ndarray]]) -> pa.Table:
        spec = SPECS[name]
        schema = TABLES[name]
        arrays, names = [], []
        for col, kind in spec.items():
            values = (
                np.concatenate([f[col] for f in frames]) if frames else np.array([], dtype=np.int64)
            )
            arrays.append(self._array(kind, values, schema.column(col).type))
            names.append(col)
        return pa.Table.from_arrays(arrays, names=names)

    def _array(self, kind: object, v: np.ndarray, db_type: str) -> pa.Array:
        if kind == "time":
            return pa.array(v.astype(np.int64), type=pa.timestamp("us", tz="UTC"))
        if kind == "float":
            return pa.array(v.astype(np.float64), from_pandas=True)
        if kind == "int":
            target = pa.int32() if db_type == "INTEGER" else pa.int64()
            if v.dtype.kind == "f":
                return pa.array(v, from_pandas=True).cast(target)
            return pa.array(v.astype(np.int64), mask=v < 0 if db_type == "BIGINT" else None).cast(
                target
            )
        if kind == "bool":
            return pa.array(v.astype(bool))
        if kind == "text":
            return pa.array(list(v) if v.dtype == object else [None] * len(v), type=pa.string())
        assert isinstance(kind, tuple)
        if kind[0] == "cat":
            codes = v.astype(np.int64)
            idx = pa.array(codes, mask=codes < 0).cast(pa.int32())
            dictionary = pa.array(self.cats[kind[1]], type=pa.string())
            return pa.DictionaryArray.from_arrays(idx, dictionary).cast(pa.string())
        ids = v.astype(np.int64)
        text = pa.array(ids, mask=ids < 0).cast(pa.string())
        return pc.binary_join_element_wise(kind[1], text, "")


class DemoSource:
    """The embedded default source: 30 days of simulated history, then each minute's traffic."""

    name = "demo"

    def __init__(
        self,
        seed: int = 7,
        history_days: int = 30,
        now: Callable[[], datetime] | None = None,
    ):
        self.seed = seed
        self.history_days = history_days
        self.now = now or (lambda: datetime.now(UTC))

    # Backfill chunks of 3 days: the largest tables' batches then exceed one DuckDB row group
    # (122,880 rows), which DuckDB writes straight to the file instead of the WAL (~3x faster).
    chunk_days = 3

    def fetch(self, watermarks: Mapping[str, str]) -> Iterator[Batch]:
        end = _floor_minute(self.now())
        state = watermarks.get(STREAM)
        if state:
            mark = json.loads(state)
            anchor = datetime.fromisoformat(mark["anchor"])
            start = datetime.fromisoformat(mark["until"])
        else:
            anchor = end
            start = anchor - timedelta(days=self.history_days)
        if end <= start:
            return
        sim = DemoSimulator(self.seed, anchor, self.history_days)
        chunks = []
        t = start
        while t < end:
            chunks.append((t, min(t + timedelta(days=self.chunk_days), end)))
            t = chunks[-1][1]
        for done, (a, b) in enumerate(chunks, start=1):
            tables = sim.window(_us(a), _us(b))
            mark = json.dumps({"anchor": anchor.isoformat(), "until": b.isoformat()})
            batches = [(n, tb) for n, tb in tables.items() if tb.num_rows]
            if not batches:  # still move the watermark
                batches = [("probe_results", tables["probe_results"])]
            for i, (name, tb) in enumerate(batches):
                last = i == len(batches) - 1
                yield Batch(
                    table=name,
                    rows=tb,
                    stream=STREAM,
                    watermark=mark if last else None,
                    progress={"done": done, "total": len(chunks)},
                )
