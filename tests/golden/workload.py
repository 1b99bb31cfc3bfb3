"""A seeded golden workload for the simulated agent, and the truth it implies.

`golden_workload(seed, calls)` plans a day of a voice agent's traffic: overlapping calls with
per-turn stage latencies, interruptions and outcomes (the treatment of an A/B test resolves
more), requests (some failing), errors on every path the SDK has (raised in a handler,
tracked with a stack trace, captured, LiveKit error events), ratings with comments, feature
usage, voice quality, API users, a path scanner, ordinary logins and two brute-force attacks
(many failures from one IP over HTTP; many failures on one account from rotating IPs).

`truth_of(workload)` says what the workbench must show for it, following the SDK's documented
behaviour (docs/sdk.md): the route template of a request, `<unmatched>` when no route matched,
a raised exception's class name as its error type, a brute-force event per IP and per account
reaching `max_failed_logins` failures, a scanning event per IP reaching 30 404s a minute.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from collectors.simulated_agent import (
    CAPTURE,
    RAISE,
    TRACK,
    VOICE,
    Call,
    Failure,
    FeatureUse,
    Feedback,
    Login,
    Quality,
    Request,
    SecurityEvent,
    Turn,
    Workload,
)

EXPERIMENT = "greeting-v2"
VARIANTS = ("control", "treatment")
OUTCOMES = ("resolved", "escalated", "abandoned", "failed")
STAGES = ("eou_delay_ms", "stt_ms", "llm_ttft_ms", "tts_ttfb_ms", "e2e_ms")
FEATURES = ("knowledge_base_lookup", "order_status", "calendar_booking", "sms_followup", "transfer")
CATEGORIES = ("latency", "understanding", "audio_quality", "praise", "other")
REGIONS = ("eu-west", "us-east", "ap-south")
NETWORKS = ("wifi", "4g", "pstn")
UNMATCHED = "<unmatched>"
MAX_FAILED_LOGINS = 5  # the SDK's default (the spec's max_failed_logins)
SCAN_404_LIMIT = 30  # the SDK's path-scanning rule: 30 404s a minute from one IP
ATTACKER_IP = "203.0.113.66"
VICTIM_ACCOUNT = "acct_victim"
SCANNER_IP = "198.51.100.7"
TURN_ROUTE = "/v1/agent/turn"
LLM_TRACE = (
    "Traceback (most recent call last):\n"
    '  File "/app/agent/pipeline.py", line 142, in handle_turn\n'
    "    reply = await self.llm.stream(ctx)\n"
    '  File "/app/agent/llm.py", line 58, in stream\n'
    "    async for chunk in await client.create(**kw):\n"
    '  File "/usr/local/lib/python3.12/site-packages/httpx/_client.py", line 1629, in send\n'
    "LLMTimeoutError: request timed out\n"
)


def _fnv1a32(text: str) -> int:
    h = 0x811C9DC5
    for ch in text:
        h = ((h ^ ord(ch)) * 0x01000193) & 0xFFFFFFFF
    return h


def growthbook_variant(seed: str, unit: str, weights: tuple[float, ...] = (0.5, 0.5)) -> int:
    """GrowthBook's hash version 2 and bucket ranges (its SDK's `hash` and
    `chooseVariation`), written from the spec independently of the SDK's copy."""
    n = (_fnv1a32(str(_fnv1a32(seed + unit))) % 10000) / 10000
    start = 0.0
    for i, w in enumerate(weights):
        if start <= n < start + w:
            return i
        start += w
    return -1


def _ms(rng: np.random.Generator, median: float, sigma: float) -> float:
    return round(float(median * np.exp(sigma * rng.standard_normal())), 3)


def _turns(rng: np.random.Generator, start: float, n: int) -> tuple[Turn, ...]:
    turns = [
        Turn(
            start + 1.0,
            llm_ttft_ms=_ms(rng, 380.0, 0.5),
            tts_ttfb_ms=_ms(rng, 160.0, 0.4),
            interrupted=bool(rng.random() < 0.02),
        )
    ]
    for i in range(1, n):
        eou, stt = _ms(rng, 320.0, 0.35), _ms(rng, 260.0, 0.45)
        llm, tts = _ms(rng, 430.0, 0.55), _ms(rng, 170.0, 0.4)
        e2e = round(eou + max(0.0, stt - eou) + llm + tts + _ms(rng, 45.0, 0.3), 3)
        turns.append(
            Turn(
                start + 1.0 + 6.0 * i,
                llm_ttft_ms=llm,
                tts_ttfb_ms=tts,
                eou_delay_ms=eou,
                stt_ms=stt,
                e2e_ms=e2e,
                interrupted=bool(rng.random() < 0.04 + 0.1 * (e2e > 1500)),
                prompt_tokens=900 + 150 * i,
                completion_tokens=int(rng.integers(12, 90)),
                tts_characters=int(rng.integers(40, 400)),
            )
        )
    return tuple(turns)


def _call(rng: np.random.Generator, i: int, start: float) -> Call:
    call_id = f"golden-call-{i:05d}"
    caller = f"caller-{int(rng.integers(0, 600)):04d}"
    turns = _turns(rng, start, int(min(12, 2 + rng.poisson(4))))
    end = turns[-1].at_s + 3.0
    in_exp = rng.random() < 0.8
    variant = VARIANTS[growthbook_variant(EXPERIMENT, call_id)] if in_exp else None
    p = [0.58, 0.16, 0.16, 0.10] if variant != "treatment" else [0.68, 0.12, 0.12, 0.08]
    outcome = OUTCOMES[int(rng.choice(4, p=p))]
    by_hook = i % 3 == 0  # the LiveKit hook opens and closes these sessions itself
    requests = [Request(start + 0.1, "POST", "/v1/calls", "/v1/calls", 201)]
    failures: list[Failure] = []
    for t in turns[1:]:
        failing = rng.random() < 0.01
        requests.append(
            Request(
                t.at_s - 0.5,
                "POST",
                TURN_ROUTE,
                TURN_ROUTE,
                500 if failing else 200,
                call_id=call_id,
                failure=Failure(
                    "TurnHandlerError", f"tool {int(rng.integers(1, 99))} failed", RAISE
                )
                if failing
                else None,
            )
        )
    found = rng.random() >= 0.03
    requests.append(
        Request(
            start + 2.0, "GET", "/v1/calls/{call_id}", f"/v1/calls/{call_id}", 200 if found else 404
        )
    )
    requests.append(
        Request(end, "POST", "/v1/calls/{call_id}/end", f"/v1/calls/{call_id}/end", 200)
    )
    if rng.random() < 0.03:  # an LLM timeout in a turn, reported by an exception handler
        t = turns[int(rng.integers(0, len(turns)))]
        requests.append(
            Request(
                t.at_s - 0.4,
                "POST",
                "/v1/agent/llm",
                "/v1/agent/llm",
                504,
                failure=Failure(
                    "LLMTimeoutError",
                    f"request timed out after {int(rng.integers(8000, 30000))} ms",
                    TRACK,
                    stack_trace=LLM_TRACE,
                    call_id=call_id,
                ),
            )
        )
    if rng.random() < 0.02:  # a recoverable LLM error event of the voice session
        failures.append(
            Failure(
                "llm_error",
                f"rate limited, retry in {int(rng.integers(1, 9))} s",
                VOICE,
                at_s=turns[-1].at_s - 0.2,
            )  # fmt: skip
        )
    if rng.random() < 0.005:  # an unrecoverable TTS failure: critical
        failures.append(
            Failure("tts_error", "voice stream closed", VOICE, "critical", at_s=end - 0.5)
        )
    if rng.random() < 0.01:  # the booking tool's conflict, caught and captured
        failures.append(
            Failure(
                "CalendarConflict",
                f"slot {int(rng.integers(1, 500))} taken",
                CAPTURE,
                "warning",
                at_s=start + 3.0,
            )  # fmt: skip
        )
    used = rng.random(len(FEATURES)) < np.array([0.5, 0.25, 0.2, 0.1, 0.05])
    features = tuple(
        FeatureUse(
            float(rng.uniform(start + 1, end)), FEATURES[k], round(float(rng.uniform(0.5, 9)), 2)
        )
        for k in np.flatnonzero(used)
    )
    feedback: tuple[Feedback, ...] = ()
    if rng.random() < 0.35:
        rating = int(rng.choice([1, 2, 3, 4, 5], p=[0.12, 0.1, 0.18, 0.3, 0.3]))
        comment = (
            f"call {i}: it was {'great' if rating > 3 else 'slow'}" if rng.random() < 0.5 else None
        )
        feedback = (
            Feedback(
                end + float(rng.uniform(5, 300)),
                rating,
                CATEGORIES[int(rng.integers(0, 5))],
                comment,
            ),
        )
        if rng.random() < 0.05:  # rated again later
            feedback += (Feedback(feedback[0].at_s + 60, int(rng.integers(1, 6)), "other"),)
    quality = None
    if rng.random() < 0.9:
        quality = Quality(
            latency_ms=round(float(rng.uniform(40, 250)), 1),
            jitter_ms=round(float(rng.uniform(1, 30)), 2),
            packet_loss_pct=round(float(rng.uniform(0, 3)), 3),
            mos=round(float(rng.uniform(2.5, 4.5)), 2),
            audio_level=-21.0,
            noise_level=-58.0,
            codec="opus",
        )
    return Call(
        call_id,
        start,
        end,
        outcome,
        turns,
        caller_id=caller,
        experiment_key=EXPERIMENT if in_exp else None,
        variant=variant,
        region=None if by_hook else REGIONS[int(rng.integers(0, 3))],
        network=None if by_hook else NETWORKS[int(rng.integers(0, 3))],
        quality=quality,
        feedback=feedback,
        features=features,
        requests=tuple(requests),
        failures=tuple(failures),
        hook_records_call=by_hook,
    )


def _logins(rng: np.random.Generator, span: float) -> tuple[Login, ...]:
    logins: list[Login] = []
    failures_by_ip: Counter[str] = Counter()
    for _ in range(300):  # people logging in to the agent's web app, now and then mistyping
        ip = f"192.0.2.{int(rng.integers(1, 121))}"
        fail = rng.random() < 0.08 and failures_by_ip[ip] < 2
        failures_by_ip[ip] += fail
        logins.append(Login(float(rng.uniform(0, span)), ip, not fail, user_agent="Mozilla/5.0"))
    t0 = span * 0.4  # brute force: one IP, many passwords, one minute
    logins += [
        Login(t0 + 4.0 * k, ATTACKER_IP, False, user_agent="python-requests/2.31")
        for k in range(12)
    ]
    fails_by_user: Counter[str] = Counter()
    for _ in range(200):  # operators through the agent's own auth layer
        user = f"user_{int(rng.integers(1, 21)):04d}"
        fail = rng.random() < 0.05 and fails_by_user[user] < 2
        fails_by_user[user] += fail
        ip = f"100.70.0.{int(user[-2:])}"
        logins.append(
            Login(
                float(rng.uniform(0, span)),
                ip,
                not fail,
                via_http=False,
                user_id=user,
                path="/auth/v1/token?grant_type=password",
            )  # fmt: skip
        )
    t1 = span * 0.7  # one account attacked from rotating IPs
    logins += [
        Login(
            t1 + 10.0 * k,
            f"198.18.0.{k + 1}",
            False,
            via_http=False,
            user_id=VICTIM_ACCOUNT,
            path="/auth/v1/token?grant_type=password",
        )  # fmt: skip
        for k in range(8)
    ]
    return tuple(logins)


def golden_workload(seed: int = 7, calls: int = 2000) -> Workload:
    """About `calls` / 1,800 hours of traffic (a call every 2 s on average, each 20-75 s
    long, so tens overlap at any time)."""
    rng = np.random.default_rng(seed)
    starts = np.cumsum(rng.exponential(2.0, calls))
    planned = tuple(_call(rng, i, float(s)) for i, s in enumerate(starts))
    span = float(starts[-1])
    requests = [
        Request(float(t), "GET", "/healthz", "/healthz", 200, ip="100.64.0.2")
        for t in np.arange(0.0, span, 30.0)
    ]
    for t in np.sort(rng.uniform(0, span, 400)):  # API users, authenticated by the API layer
        status = int(rng.choice([200, 401, 429], p=[0.94, 0.03, 0.03]))
        user = f"user_{int(rng.integers(1, 21)):04d}"
        requests.append(
            Request(
                float(t),
                "GET",
                "/v1/metrics/summary",
                "/v1/metrics/summary",
                status,
                duration_ms=round(float(rng.uniform(20, 300)), 2),
                ip="100.70.1.1",
                user_id=user,
            )  # fmt: skip
        )
    t_scan = span * 0.55  # a scanner probing well-known paths: 35 404s in 17 s
    for k in range(35):
        path = ("/.env", "/wp-login.php", "/.git/config", "/admin/config.php", "/actuator/env")[
            k % 5
        ]
        requests.append(Request(t_scan + 0.5 * k, "GET", UNMATCHED, path, 404, ip=SCANNER_IP))
    security = tuple(
        SecurityEvent(
            float(t),
            "invalid_webhook_signature",
            "warning",
            ip="34.120.44.10",
            path="/v1/webhooks/livekit",
            details={"attempt": k},
        )  # fmt: skip
        for k, t in enumerate(np.sort(rng.uniform(0, span, 5)))
    )
    background = tuple(
        Failure(
            "ExportError",
            f"export {k} of transcripts failed: disk quota",
            TRACK,
            "error",
            at_s=float(t),
            route="/worker/export",
            method="POST",
        )  # fmt: skip
        for k, t in enumerate(np.sort(rng.uniform(0, span, 10)))
    )
    return Workload(
        calls=planned,
        requests=tuple(requests),
        logins=_logins(rng, span),
        security_events=security,
        failures=background,
        experiments={EXPERIMENT: {"variants": list(VARIANTS), "weights": [0.5, 0.5]}},
    )


# ------------------------------------------------------------------------------ the truth


@dataclass
class Truth:
    calls: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    turns: int = 0
    interruptions: int = 0
    calls_by_variant: Counter[str] = field(default_factory=Counter)
    resolved_by_variant: Counter[str] = field(default_factory=Counter)
    calls_by_region: Counter[str] = field(default_factory=Counter)
    variants: dict[str, str] = field(default_factory=dict)  # call_id -> expected variant
    stage_values: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # (call_id, turn_index) -> (*STAGES, interrupted, prompt tokens, completion tokens, chars)
    turn_rows: dict[tuple[str, int], tuple] = field(default_factory=dict)
    # call_id -> (latency_ms, jitter_ms, packet_loss_pct, mos)
    quality_rows: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (route, method)
    requests_5xx: Counter[tuple[str, str]] = field(default_factory=Counter)
    requests_4xx: Counter[tuple[str, str]] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)  # what the app answers
    errors: Counter[str] = field(default_factory=Counter)  # error_type -> events
    critical_errors: int = 0
    ratings: Counter[int] = field(default_factory=Counter)
    ratings_by_category: dict[str, Counter[int]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    features: dict[str, dict[str, object]] = field(default_factory=dict)
    quality_n: int = 0
    mos_sum: float = 0.0
    login_attempts: int = 0
    login_failures: int = 0
    failed_login_bursts_by_ip: dict[str, int] = field(default_factory=dict)
    failed_login_bursts_by_user: dict[str, int] = field(default_factory=dict)
    security_events: Counter[str] = field(default_factory=Counter)  # event_type -> count

    @property
    def requests_total(self) -> int:
        return sum(self.requests.values())


def _failed_bursts(failures: list[tuple[float, str]]) -> dict[str, int]:
    """Entities with at least MAX_FAILED_LOGINS failures (all within a few minutes here)."""
    counts = Counter(entity for _, entity in failures)
    return {e: n for e, n in counts.items() if n >= MAX_FAILED_LOGINS}


def truth_of(workload: Workload) -> Truth:
    t = Truth()
    for call in workload.calls:
        t.calls += 1
        t.outcomes[call.outcome] += 1
        t.turns += len(call.turns)
        t.interruptions += call.interruptions
        t.calls_by_region[call.region or "(none)"] += 1
        if call.variant is not None:
            t.variants[call.call_id] = call.variant
            t.calls_by_variant[call.variant] += 1
            t.resolved_by_variant[call.variant] += call.outcome == "resolved"
        for i, turn in enumerate(call.turns):
            for stage in STAGES:
                value = getattr(turn, stage)
                if value is not None:
                    t.stage_values[stage].append(value)
            usage = (turn.prompt_tokens, turn.completion_tokens, turn.tts_characters)
            t.turn_rows[(call.call_id, i)] = (
                *(getattr(turn, s) for s in STAGES),
                turn.interrupted,
                *(u or None for u in usage),  # the hook records no usage as NULL
            )
        for fb in call.feedback:
            t.ratings[fb.rating] += 1
            t.ratings_by_category[fb.category][fb.rating] += 1
        for use in call.features:
            f = t.features.setdefault(use.name, {"uses": 0, "users": set(), "sessions": set()})
            f["uses"] += 1
            f["users"].add(call.caller_id)
            f["sessions"].add(call.call_id)
        q = call.quality
        if q is not None:
            t.quality_n += 1
            t.mos_sum += q.mos
            t.quality_rows[call.call_id] = (q.latency_ms, q.jitter_ms, q.packet_loss_pct, q.mos)
        for f in call.failures:
            t.errors[f.error_type] += 1
            t.critical_errors += f.severity == "critical"
    requests = [*workload.requests, *(r for c in workload.calls for r in c.requests)]
    requests += [
        Request(x.at_s, "POST", "/api/auth/login", "/api/auth/login", 200 if x.success else 401)
        for x in workload.logins
        if x.via_http
    ]
    for r in requests:
        key = (r.route, r.method)
        t.requests[key] += 1
        t.requests_5xx[key] += r.status >= 500
        t.requests_4xx[key] += 400 <= r.status < 500
        t.statuses[r.status] += 1
        if r.failure is not None:
            # a raised exception is recorded under its class name
            t.errors[r.failure.error_type.rsplit(".", 1)[-1]] += 1
    for f in workload.failures:
        t.errors[f.error_type] += 1
    logins = [x for x in workload.logins if x.event_type == "login"]
    t.login_attempts = len(logins)
    t.login_failures = sum(not x.success for x in logins)
    failed = sorted((x.at_s, x) for x in logins if not x.success)
    t.failed_login_bursts_by_ip = _failed_bursts([(a, x.ip) for a, x in failed if x.ip])
    t.failed_login_bursts_by_user = _failed_bursts([(a, x.user_id) for a, x in failed if x.user_id])
    # The SDK's own detections: one event per IP and per account reaching the limit, one per
    # scanning IP; plus the events the agent reports itself.
    t.security_events["brute_force_suspected"] = len(t.failed_login_bursts_by_ip) + len(
        t.failed_login_bursts_by_user
    )
    scans = Counter(r.ip for r in requests if r.status == 404 and r.ip)
    t.security_events["scanning_suspected"] = sum(n >= SCAN_404_LIMIT for n in scans.values())
    for e in workload.security_events:
        t.security_events[e.event_type] += 1
    return t
