"""The warehouse's canonical tables: columns, natural keys and the time column of each.

Every timestamp is stored as a naive TIMESTAMP holding UTC (measured: DuckDB groups naive
timestamps about 2.5 times faster than TIMESTAMPTZ; see reference/perf_anchors.md). The run
engine only accepts time zone-aware input and converts it to UTC before storing it.
Units are part of column names (`_ms`, `_pct`, `_s`), and a unit bounds its values: `_ms`
and `_s` are never negative, `_pct` lies within 0..100. A value outside its column's allowed set
or range is a broken value: the engine rejects its row with a reason, it never clamps.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # a DuckDB type: VARCHAR, BIGINT, INTEGER, DOUBLE, BOOLEAN, TIMESTAMP
    required: bool = False
    max_length: int | None = None  # for VARCHAR; longer values are rejected, never truncated
    # Checked by both validation paths (collectors/validate.py); rows outside are rejected.
    allowed: tuple[str, ...] | None = None  # for VARCHAR: the only values (case-sensitive)
    low: float | None = None  # for numbers: inclusive bounds
    high: float | None = None


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    time_column: str
    description: str = ""
    # Written more than once as it becomes known (a call's start, then its end): a later part
    # fills in values and never blanks a known one, whatever order the parts arrive in.
    arrives_in_parts: bool = False
    column_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "column_names", tuple(c.name for c in self.columns))

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


NUMBER_TYPES = ("INTEGER", "BIGINT", "DOUBLE")

# Closed vocabularies. OUTCOMES is analysis.vocabulary.OUTCOMES (a test keeps them equal; the
# SDK's install does not bring `analysis`). Probe states are Uptime Kuma's four plus the SDK's
# own checks' `degraded` (up but over a threshold; collectors/instrumentation/checks.py).
OUTCOMES = ("resolved", "escalated", "abandoned", "failed")
ERROR_SEVERITIES = ("debug", "info", "warning", "error", "critical")
PROBE_STATUSES = ("up", "pending", "down", "maintenance", "degraded")


def _unit_bounds(name: str) -> tuple[float | None, float | None]:
    if name.endswith("_pct"):
        return 0.0, 100.0
    if name.endswith(("_ms", "_s")):
        return 0.0, None  # a duration or latency
    return None, None


def _c(
    name: str,
    type_: str = "VARCHAR",
    required: bool = False,
    max_length: int | None = None,
    *,
    allowed: tuple[str, ...] | None = None,
    low: float | None = None,
    high: float | None = None,
) -> Column:
    if type_ == "VARCHAR" and max_length is None:
        max_length = 512
    if type_ in NUMBER_TYPES and low is None and high is None:
        low, high = _unit_bounds(name)
    return Column(name, type_, required, max_length, allowed, low, high)


def _text(name: str, max_length: int = 8192, required: bool = False) -> Column:
    return Column(name, "VARCHAR", required, max_length)


TS = "TIMESTAMP"

TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        Table(
            "requests",
            (
                _c("request_id", required=True),
                _c("started_at", TS, required=True),
                _c("route", required=True),  # the route template, never the raw URL
                _c("method", required=True),
                _c("status_code", "INTEGER", required=True, low=100, high=599),
                _c("duration_ms", "DOUBLE", required=True),
                _c("release"),
                _c("service"),
                _c("user_id"),
                _c("ip"),
                _c("call_id"),
            ),
            key=("request_id",),
            time_column="started_at",
            description="HTTP requests to the agent, per route template",
        ),
        Table(
            "errors",
            (
                _c("error_id", required=True),
                _c("occurred_at", TS, required=True),
                _c("error_type", required=True),
                _text("message", 4096),
                _text("stack_trace", 65536),
                _c("fingerprint"),
                _c("severity", allowed=ERROR_SEVERITIES),
                _c("route"),
                _c("method"),
                _c("release"),
                _c("request_id"),
                _c("call_id"),
                _c("user_id"),
                _c("sample_rate", "DOUBLE"),  # share of errors kept at capture, for correction
            ),
            key=("error_id",),
            time_column="occurred_at",
            description="Captured exceptions and error events",
        ),
        Table(
            "db_queries",
            (
                _c("query_id", required=True),
                _c("observed_at", TS, required=True),
                _text("statement", 8192, required=True),  # normalised statement
                _c("calls", "BIGINT"),
                _c("total_ms", "DOUBLE"),
                _c("mean_ms", "DOUBLE"),
                _c("rows", "BIGINT"),
                _c("database"),
                _c("release"),
            ),
            key=("query_id",),
            time_column="observed_at",
            description="Database statement timings (single queries or pg_stat_statements deltas)",
        ),
        Table(
            "voice_turns",
            (
                _c("turn_id", required=True),
                _c("call_id", required=True),
                _c("turn_index", "INTEGER"),
                _c("started_at", TS, required=True),
                _c("eou_delay_ms", "DOUBLE"),  # end of utterance delay
                _c("stt_ms", "DOUBLE"),  # transcription delay
                _c("llm_ttft_ms", "DOUBLE"),  # LLM time to first token
                _c("tts_ttfb_ms", "DOUBLE"),  # TTS time to first byte
                _c("e2e_ms", "DOUBLE"),  # end of user speech to first agent audio
                _c("interrupted", "BOOLEAN"),
                _c("llm_prompt_tokens", "INTEGER"),
                _c("llm_completion_tokens", "INTEGER"),
                _c("tts_characters", "INTEGER"),
                _c("release"),
                _c("variant"),
            ),
            key=("turn_id",),
            time_column="started_at",
            description="Per-turn voice pipeline latency parts (they overlap: never sum them)",
        ),
        Table(
            "calls",
            (
                _c("call_id", required=True),
                _c("caller_id"),
                _c("started_at", TS, required=True),
                _c("ended_at", TS),
                _c("duration_s", "DOUBLE"),
                _c("outcome", allowed=OUTCOMES),
                _c("turns", "INTEGER"),
                _c("interruptions", "INTEGER"),
                _c("release"),
                _c("experiment_key"),
                _c("variant"),
                _c("region"),
                _c("network"),
            ),
            key=("call_id",),
            time_column="started_at",
            description="Voice sessions",
            arrives_in_parts=True,
        ),
        Table(
            "voice_quality",
            (
                _c("sample_id", required=True),
                _c("call_id"),
                _c("measured_at", TS, required=True),
                _c("latency_ms", "DOUBLE"),  # one-way mouth-to-ear delay
                _c("jitter_ms", "DOUBLE"),
                _c("packet_loss_pct", "DOUBLE"),
                _c("audio_level", "DOUBLE"),
                _c("noise_level", "DOUBLE"),
                _c("mos_reported", "DOUBLE", low=1, high=5),  # MOS is on a 1..5 scale
                _c("codec"),
                _c("region"),
                _c("network"),
                _c("release"),
            ),
            key=("sample_id",),
            time_column="measured_at",
            description="Network and audio quality per call",
        ),
        Table(
            "feedback",
            (
                _c("feedback_id", required=True),
                _c("submitted_at", TS, required=True),
                _c("rating", "INTEGER", low=1, high=5),
                _c("category"),
                _text("comment", 4096),
                _c("user_id"),
                _c("session_id"),
                _c("call_id"),
                _c("release"),
            ),
            key=("feedback_id",),
            time_column="submitted_at",
            description="User ratings and comments",
        ),
        Table(
            "feature_usage",
            (
                _c("usage_id", required=True),
                _c("used_at", TS, required=True),
                _c("feature_name", required=True),
                _c("user_id"),
                _c("session_id"),
                _c("call_id"),
                _c("duration_s", "DOUBLE"),
            ),
            key=("usage_id",),
            time_column="used_at",
            description="Feature usage events",
        ),
        Table(
            "auth_events",
            (
                _c("event_id", required=True),
                _c("occurred_at", TS, required=True),
                _c("event_type", required=True),  # login|logout|password_reset|...
                _c("success", "BOOLEAN"),
                _c("user_id"),
                _c("ip"),
                _text("user_agent", 1024),
                _c("path"),
            ),
            key=("event_id",),
            time_column="occurred_at",
            description="Authentication attempts",
        ),
        Table(
            "security_events",
            (
                _c("event_id", required=True),
                _c("occurred_at", TS, required=True),
                _c("event_type", required=True),
                _c("severity"),
                _c("user_id"),
                _c("ip"),
                _c("path"),
                _text("details", 8192),  # JSON text
            ),
            key=("event_id",),
            time_column="occurred_at",
            description="Security events reported by the SDK (rate limits, blocked IPs, ...)",
        ),
        Table(
            "resource_samples",
            (
                _c("host", required=True),
                _c("sampled_at", TS, required=True),
                _c("cpu_pct", "DOUBLE"),
                _c("memory_pct", "DOUBLE"),
                _c("disk_pct", "DOUBLE"),
                _c("net_in_bytes", "BIGINT"),
                _c("net_out_bytes", "BIGINT"),
                _c("db_connections", "INTEGER"),
                _c("cache_hit_pct", "DOUBLE"),
                _c("db_size_bytes", "BIGINT"),
            ),
            key=("host", "sampled_at"),
            time_column="sampled_at",
            description="Host and database resource samples",
        ),
        Table(
            "probe_results",
            (
                _c("target", required=True),
                _c("checked_at", TS, required=True),
                _c("kind"),  # http|supabase|livekit|railway|host|custom
                _c("status", required=True, allowed=PROBE_STATUSES),
                _c("latency_ms", "DOUBLE"),
                _c("status_code", "INTEGER"),
                _text("error", 2048),
            ),
            key=("target", "checked_at"),
            time_column="checked_at",
            description="Live probe results",
        ),
        Table(
            "deployments",
            (
                _c("deployment_id", required=True),
                _c("created_at", TS, required=True),
                _c("finished_at", TS),
                _c("service"),
                _c("environment"),
                _c("release"),
                _c("status"),  # as reported, no allowed set: a status new to us is kept
                _c("is_rollback", "BOOLEAN"),
                _c("commit_sha"),
                _text("message", 2048),
            ),
            key=("deployment_id",),
            time_column="created_at",
            description="Deployments (markers on every time chart)",
        ),
        Table(
            "experiment_exposures",
            (
                _c("experiment_key", required=True),
                _c("unit_id", required=True),
                _c("unit_type"),  # call|caller
                _c("variant", required=True),
                _c("exposed_at", TS, required=True),
            ),
            key=("experiment_key", "unit_id"),
            time_column="exposed_at",
            description="First exposure of each unit to an experiment",
        ),
        Table(
            "app_starts",
            (
                _c("host", required=True),
                _c("started_at", TS, required=True),
                _c("startup_ms", "DOUBLE"),
                _c("init_ms", "DOUBLE"),
                _c("release"),
            ),
            key=("host", "started_at"),
            time_column="started_at",
            description="Application start-up and initialisation times",
        ),
    ]
}


def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown warehouse table {name!r}; known: {', '.join(TABLES)}") from None
