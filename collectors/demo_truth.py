"""Ground truth of the demo source: what was planted in the simulated voice agent, and when.

The demo source (collectors/sources/demo.py) reads its whole timeline from here, so the
facts below are exactly the ones in the data. Every absolute time is computed from the anchor
(the minute the demo was first started, stored in the source's watermark) and is an aware UTC
datetime. Tests of other modules call `demo_truth(seed, anchor)` and check that their
detectors find what is written here.

Conventions of the data: the greeting (turn_index 0) has no eou_delay_ms, stt_ms or e2e_ms
(nothing preceded it, as in LiveKit); voice_quality has one sample per call at its end, with
audio_level and noise_level in dBFS and codec "opus" (WebRTC) or "G.711" (network "pstn");
feedback.session_id is the call_id and user_id the caller; API users are user_0001..user_0040;
rows of a call are emitted when it ends, feedback up to 25 minutes later.

Episodes sit in the last 14 days before the anchor; with `history_days < 15` some of them fall
before the generated history and are simply absent from the data.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from collectors.instrumentation.experiments import Experiment as SdkExperiment

SERVICE = "voice-agent"
ENVIRONMENT = "production"
AGENT_HOSTS = ("agent-1", "agent-2")
DB_HOST = "supabase-db"
PROBE_TARGETS = ("agent", "supabase", "livekit", "railway")
# Each target is checked once a minute, this many seconds after the minute.
PROBE_OFFSET_S = {"agent": 0, "supabase": 7, "livekit": 14, "railway": 21}
EXPERIMENT_KEY = "prompt-v2"
VARIANTS = ("control", "treatment")

# Calls per hour averaged over a week (about 3,000 calls a day); the hourly rate follows
# `traffic_multiplier`, a daily cycle (peak mid-afternoon UTC) times a weekly one.
MEAN_CALLS_PER_HOUR = 125.0
# Callers: a fixed population with lognormal call propensities, so most callers call again
# (about 15 calls each over 30 days) and experiments have a pre-period per caller.
N_CALLERS = 6000
N_OPERATORS = 40  # dashboard/API users (user_0001 ...)


@dataclass(frozen=True)
class LatencyStage:
    """Lognormal stage latency: median_ms * exp(sigma * N(0, 1)), median scaled by load."""

    median_ms: float
    sigma: float
    load_slope: float  # median multiplier = 1 + load_slope * (load - 1); load = rate / mean rate


# e2e = eou + max(0, stt - eou) + llm_ttft + tts_ttfb + transport: transcription overlaps the
# end-of-utterance wait, so e2e is never the sum of the stage columns (reference section 1.3).
LATENCY_STAGES: dict[str, LatencyStage] = {
    "eou_delay_ms": LatencyStage(320.0, 0.35, 0.05),
    "stt_ms": LatencyStage(260.0, 0.45, 0.15),
    "llm_ttft_ms": LatencyStage(430.0, 0.55, 0.35),
    "tts_ttfb_ms": LatencyStage(170.0, 0.40, 0.15),
    "transport_ms": LatencyStage(45.0, 0.30, 0.0),
}
TOOL_CALL_SHARE = 0.12  # turns that call a tool add a lognormal ~550 ms to LLM TTFT


@dataclass(frozen=True)
class CodecProfile:
    """E-model equipment impairment (ITU-T G.107 section 7.6; values from G.113 Appendix I)."""

    name: str
    ie: float  # equipment impairment factor
    bpl: float  # packet-loss robustness factor
    source: str


CODECS: dict[str, CodecProfile] = {
    "G.711": CodecProfile("G.711", 0.0, 25.1, "G.113 Appendix I, G.711 with Appendix I PLC"),
    # G.113 has no Opus entry: these two numbers are the demo's own assumption.
    "opus": CodecProfile("opus", 6.0, 20.0, "demo assumption (no G.113 entry for Opus)"),
}
MOS_NOISE_SD = 0.08  # mos_reported = clip(emodel_mos(...) + N(0, 0.08), 1, 4.5)


def emodel_r(
    latency_ms: npt.ArrayLike, jitter_ms: npt.ArrayLike, loss_pct: npt.ArrayLike, codec: str
) -> npt.NDArray[np.float64]:
    """R factor, ITU-T G.107: R = Ro - Is - Id - Ie,eff + A with defaults (Ro - Is = 93.2, A = 0).

    Ta = latency_ms + 2 * jitter_ms (the jitter buffer adds delay); Id = Idd (echo terms at their
    defaults are negligible); Idd = 25 {(1+X^6)^(1/6) - 3 (1+(X/3)^6)^(1/6) + 2} for Ta > 100 ms,
    X = log2(Ta / 100); Ie,eff = Ie + (95 - Ie) Ppl / (Ppl + Bpl) (random loss, BurstR = 1).
    Works on scalars and numpy arrays.
    """
    profile = CODECS[codec]
    ta = np.asarray(latency_ms, dtype=float) + 2.0 * np.asarray(jitter_ms, dtype=float)
    x = np.log2(np.maximum(ta, 100.0) / 100.0)
    idd = 25.0 * ((1 + x**6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2)
    idd = np.where(ta > 100.0, idd, 0.0)
    ppl = np.asarray(loss_pct, dtype=float)
    ie_eff = profile.ie + (95.0 - profile.ie) * ppl / (ppl + profile.bpl)
    return 93.2 - idd - ie_eff


def emodel_mos(
    latency_ms: npt.ArrayLike, jitter_ms: npt.ArrayLike, loss_pct: npt.ArrayLike, codec: str
) -> npt.NDArray[np.float64]:
    """MOS from R (G.107 Annex B): 1 + 0.035 R + 7e-6 R (R - 60)(100 - R), clamped to [1, 4.5]."""
    r = emodel_r(latency_ms, jitter_ms, loss_pct, codec)
    mos = 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)
    return np.clip(np.where(r >= 100, 4.5, mos), 1.0, 4.5)


@dataclass(frozen=True)
class FeedbackModel:
    """logit P(rating <= 2) = intercept + per_e2e_s * (mean_e2e_s - 1) + per_interruption * n.

    mean_e2e_s is the call's mean e2e_ms over turns that have one, in seconds; n is
    calls.interruptions. Ratings 1-2 are drawn given negative, 3-5 otherwise; whether a caller
    leaves feedback (RESPONSE_RATE) does not depend on the rating, so a logistic regression on
    the feedback rows recovers these coefficients.
    """

    intercept: float = -2.2
    per_e2e_s: float = 1.4
    per_interruption: float = 0.45
    response_rate: float = 0.18

    def negative_probability(
        self, mean_e2e_ms: npt.ArrayLike, interruptions: npt.ArrayLike
    ) -> npt.NDArray[np.float64]:
        z = (
            self.intercept
            + self.per_e2e_s * (np.asarray(mean_e2e_ms, dtype=float) / 1000.0 - 1.0)
            + self.per_interruption * np.asarray(interruptions, dtype=float)
        )
        return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class OutcomeModel:
    """Call outcome: multinomial logit over (resolved, escalated, abandoned, failed).

    escalated is the reference (logit 0); x = mean_e2e_s - 1, n = interruptions, d = the
    caller's latent difficulty ~ N(0, caller_difficulty_sd) (fixed per caller, so a caller's
    earlier calls predict later ones: CUPED has something to work with).
      resolved:  resolved_intercept - d + resolved_per_e2e_s * x + resolved_per_interruption * n
      abandoned: abandoned_intercept + abandoned_per_e2e_s * x + abandoned_per_interruption * n
      failed:    failed_intercept + failed_bad_release * [bad release] + failed_outage * [outage]
    ([outage]: the call started from 10 minutes before the outage's start to its end.) The
    experiment's treatment then adds `Experiment.resolved_rate_effect` to P(resolved).
    """

    resolved_intercept: float = 1.45
    resolved_per_e2e_s: float = -0.7
    resolved_per_interruption: float = -0.25
    caller_difficulty_sd: float = 0.7
    abandoned_intercept: float = -1.0
    abandoned_per_e2e_s: float = 0.9
    abandoned_per_interruption: float = 0.35
    failed_intercept: float = -1.9
    failed_bad_release: float = 1.0
    failed_outage: float = 3.0


@dataclass(frozen=True)
class Deployment:
    deployment_id: str
    created_at: datetime
    finished_at: datetime
    release: str
    status: str  # SUCCESS | FAILED (Railway DeploymentStatus)
    is_rollback: bool
    commit_sha: str
    message: str


@dataclass(frozen=True)
class Experiment:
    """Call-level 50/50 A/B test of two prompt variants.

    The variant is the SDK's 50/50 assignment of the call (see `experiment_variant`), for
    every call started at or after `start`, live included.
    True effects: +0.03 on each call's probability of outcome 'resolved' (taken proportionally
    from the other outcomes), none on any latency.
    """

    key: str
    start: datetime
    variants: tuple[str, str]
    unit_type: str = "call"
    resolved_rate_effect: float = 0.03
    latency_effect_ms: float = 0.0


@dataclass(frozen=True)
class BadRelease:
    """A release that slowed the LLM and raised errors until a rollback restored the previous one."""

    release: str
    previous_release: str
    deployed_at: datetime  # finished_at of its deployment: active from here
    rolled_back_at: datetime  # finished_at of the rollback deployment
    llm_ttft_multiplier: float
    turn_error_rate: float  # share of POST /v1/agent/turn answered 500 (baseline below)
    baseline_turn_error_rate: float
    error_type: str  # a fingerprint that only exists in this release


@dataclass(frozen=True)
class Outage:
    """A dependency down, as Uptime Kuma reports it: `pending_checks` pending beats, then down."""

    target: str
    start: datetime  # first non-up check (pending): these are probe_results.checked_at values
    down_from: datetime  # first 'down' check
    end: datetime  # first 'up' check again; outage lasts end - start
    pending_checks: int


@dataclass(frozen=True)
class BruteForce:
    ip: str
    user_id: str
    start: datetime
    end: datetime
    attempts: int  # all failed logins


@dataclass(frozen=True)
class CredentialStuffing:
    ip: str
    start: datetime
    end: datetime
    accounts: int
    attempts_per_account: int
    successful_accounts: tuple[str, ...]


@dataclass(frozen=True)
class ApiSpike:
    user_id: str
    start: datetime
    end: datetime
    requests_per_hour: int  # during the spike; usually a few per working hour
    route: str


@dataclass(frozen=True)
class DemoTruth:
    seed: int
    anchor: datetime
    history_start: datetime
    deployments: tuple[Deployment, ...]  # the whole schedule, past and future of the anchor
    experiment: Experiment
    bad_release: BadRelease
    outage: Outage
    brute_force: BruteForce
    credential_stuffing: CredentialStuffing
    api_spike: ApiSpike
    feedback: FeedbackModel
    outcomes: OutcomeModel
    latency_stages: dict[str, LatencyStage]
    codecs: dict[str, CodecProfile]

    def release_at(self, t: datetime) -> str:
        """The release serving at t: the last successful deployment finished at or before t."""
        current = self.deployments[0].release
        for d in self.deployments:
            if d.status == "SUCCESS" and d.finished_at <= t:
                current = d.release
        return current

    def deployments_between(self, start: datetime, end: datetime) -> list[Deployment]:
        return [d for d in self.deployments if start <= d.created_at < end]


def experiment_variant(call_id: str, key: str = EXPERIMENT_KEY) -> str:
    """The variant the SDK assigns `call_id` in a 50/50 experiment (GrowthBook's hash), so that
    the history the demo plants and the live calls its simulated agents make through the SDK
    put each call in the same arm."""
    return _demo_experiment(key).variant_for(call_id)[0]


@lru_cache(maxsize=4)
def _demo_experiment(key: str) -> SdkExperiment:
    # the SDK's experiment, imported only when asked
    from collectors.instrumentation.experiments import Experiment as SdkExperiment

    # as the demo's agents define it (collectors/sources/demo_live.py): the seed is the key
    return SdkExperiment.from_mapping(key, {"variants": list(VARIANTS), "weights": [0.5, 0.5]})


def traffic_multiplier(t_hours_utc: np.ndarray) -> np.ndarray:
    """Calls-per-hour multiplier (weekly mean about 1) for hours since the Unix epoch."""
    t = np.asarray(t_hours_utc, dtype=float)
    hour_of_day = np.mod(t, 24.0)
    day_of_week = np.mod(np.floor(t / 24.0) + 3, 7)  # 1970-01-01 was a Thursday; 0 = Monday
    daily = 0.30 + 1.55 * np.exp(-(((hour_of_day - 15.0) / 4.5) ** 2))
    weekly = np.where(day_of_week < 5, 1.08, np.where(day_of_week == 5, 0.85, 0.70))
    return np.asarray(daily * weekly / _MEAN_SHAPE, dtype=float)


def _mean_shape() -> float:
    hours = np.arange(24 * 7) + 0.5
    hod = np.mod(hours, 24.0)
    dow = np.floor(hours / 24.0)
    daily = 0.30 + 1.55 * np.exp(-(((hod - 15.0) / 4.5) ** 2))
    weekly = np.where(dow < 5, 1.08, np.where(dow == 5, 0.85, 0.70))
    return float(np.mean(daily * weekly))


_MEAN_SHAPE = _mean_shape()


def _floor_day(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def _deployment_id(seed: int, i: int) -> str:
    return str(uuid.UUID(bytes=hashlib.sha1(f"demo-deploy:{seed}:{i}".encode()).digest()[:16]))


def _commit_sha(seed: int, release: str) -> str:
    return hashlib.sha1(f"demo-commit:{seed}:{release}".encode()).hexdigest()


_MESSAGES = (
    "feat: shorter confirmation prompts",
    "fix: retry TTS on websocket reset",
    "feat: add order status tool",
    "chore: bump livekit-agents",
    "perf: cache caller profile lookups",
    "fix: handle empty transcripts",
    "feat: SMS follow-up after resolved calls",
    "chore: tune VAD silence threshold",
    "fix: timezone in appointment booking",
    "perf: stream LLM tokens to TTS earlier",
)


def _bump(version: tuple[int, int, int], minor: bool) -> tuple[int, int, int]:
    major, mi, pa = version
    return (major, mi + 1, 0) if minor else (major, mi, pa + 1)


def _fmt(version: tuple[int, int, int]) -> str:
    return "v{}.{}.{}".format(*version)


def _schedule(seed: int, anchor: datetime) -> tuple[tuple[Deployment, ...], BadRelease]:
    """Deployments every 2.5-4 days in working hours from anchor-120 d to anchor+400 d."""
    rng = np.random.default_rng([seed, 0xDE9107])
    day0 = _floor_day(anchor)
    bad_day = day0 - timedelta(days=9)
    failed_day = day0 - timedelta(days=19)
    # (created_at, kind) with kind in normal|bad|rollback|fix|failed|retry
    plan: list[tuple[datetime, str]] = []
    t = day0 - timedelta(days=120)
    while t < day0 + timedelta(days=400):
        t = _floor_day(t) + timedelta(days=float(rng.uniform(2.5, 4.0)))
        slot = _floor_day(t) + timedelta(minutes=int(rng.integers(9 * 60, 17 * 60)))
        while slot.weekday() >= 5:
            slot += timedelta(days=1)
        t = slot
        if abs((slot - bad_day).days) <= 2 or abs((slot - failed_day).days) <= 1:
            continue
        plan.append((slot, "normal"))
    plan += [
        (bad_day + timedelta(hours=14, minutes=5), "bad"),
        (bad_day + timedelta(hours=18, minutes=20), "rollback"),
        (bad_day + timedelta(days=2, hours=11, minutes=30), "fix"),
        (failed_day + timedelta(hours=10, minutes=30), "failed"),
        (failed_day + timedelta(hours=11, minutes=15), "retry"),
    ]
    plan.sort()
    version = (1, 4, 0)
    current = _fmt(version)
    deployments: list[Deployment] = []
    bad = previous_of_bad = None
    bad_finished = rollback_finished = None
    for i, (created, kind) in enumerate(plan):
        finished = created + timedelta(seconds=int(rng.integers(100, 320)))
        status, is_rollback = "SUCCESS", False
        message = _MESSAGES[int(rng.integers(len(_MESSAGES)))]
        if kind == "rollback":
            assert previous_of_bad is not None  # the plan is sorted: the bad release came first
            release, is_rollback = previous_of_bad, True
            message = f"Rollback to {previous_of_bad}"
            rollback_finished = finished
        elif kind == "fix":
            version = _bump(version, minor=False)
            release = _fmt(version)
            message = "fix: validate tool arguments before booking"
        else:
            version = _bump(version, minor=(kind in ("bad", "failed") or rng.random() < 0.6))
            release = _fmt(version)
            if kind == "bad":
                bad, previous_of_bad, bad_finished = release, current, finished
                message = "feat: new booking tool and longer system prompt"
            elif kind == "failed":
                status, message = "FAILED", "feat: streaming barge-in detection (build failed)"
        if status == "SUCCESS":
            current = release
        sha = _commit_sha(seed, release)
        deployments.append(
            Deployment(
                _deployment_id(seed, i),
                created,
                finished,
                release,
                status,
                is_rollback,
                sha,
                message,
            )
        )
    assert bad and previous_of_bad and bad_finished and rollback_finished
    bad_release = BadRelease(
        release=bad,
        previous_release=previous_of_bad,
        deployed_at=bad_finished,
        rolled_back_at=rollback_finished,
        llm_ttft_multiplier=1.7,
        # clearly past the page-worthy burn (14.4x a 99.9 % objective over 5 min and 1 h): at
        # 3 % the overall 5xx rate sat near 1.4 %, and a five-minute dip split one bad release
        # into two alerts
        turn_error_rate=0.05,
        baseline_turn_error_rate=0.002,
        error_type="pydantic_core.ValidationError",
    )
    return tuple(deployments), bad_release


@lru_cache(maxsize=32)
def demo_truth(seed: int = 7, anchor: datetime | None = None, history_days: int = 30) -> DemoTruth:
    """Everything planted in the demo data for (seed, anchor); anchor is an aware UTC minute."""
    if anchor is None:
        raise ValueError("demo_truth needs the anchor (the demo watermark's 'anchor')")
    anchor = anchor.astimezone(UTC)
    day0 = _floor_day(anchor)
    deployments, bad_release = _schedule(seed, anchor)
    outage_start = (
        day0
        - timedelta(days=5)
        + timedelta(hours=10, minutes=17, seconds=PROBE_OFFSET_S["supabase"])
    )
    rng = np.random.default_rng([seed, 0x57AFF])
    stuffed = tuple(f"acct_{int(x):06d}" for x in rng.choice(150, size=2, replace=False) + 900000)
    return DemoTruth(
        seed=seed,
        anchor=anchor,
        history_start=anchor - timedelta(days=history_days),
        deployments=deployments,
        experiment=Experiment(EXPERIMENT_KEY, day0 - timedelta(days=14), VARIANTS),
        bad_release=bad_release,
        outage=Outage(
            target="supabase",
            start=outage_start,
            down_from=outage_start + timedelta(minutes=2),
            end=outage_start + timedelta(minutes=25),
            pending_checks=2,
        ),
        brute_force=BruteForce(
            ip="185.220.101.47",
            user_id="user_0003",
            start=day0 - timedelta(days=7) + timedelta(hours=2, minutes=13),
            end=day0 - timedelta(days=7) + timedelta(hours=2, minutes=19),
            attempts=72,
        ),
        credential_stuffing=CredentialStuffing(
            ip="45.146.164.110",
            start=day0 - timedelta(days=12) + timedelta(hours=3, minutes=40),
            end=day0 - timedelta(days=12) + timedelta(hours=4, minutes=5),
            accounts=150,
            attempts_per_account=2,
            successful_accounts=stuffed,
        ),
        api_spike=ApiSpike(
            user_id="user_0017",
            start=day0 - timedelta(days=3) + timedelta(hours=20),
            end=day0 - timedelta(days=3) + timedelta(hours=22),
            requests_per_hour=2400,
            route="/v1/transcripts/{call_id}",
        ),
        feedback=FeedbackModel(),
        outcomes=OutcomeModel(),
        latency_stages=LATENCY_STAGES,
        codecs=CODECS,
    )
