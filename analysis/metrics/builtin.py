"""The metric catalogue: every metric the workbench knows, in one place.

Pages, release benchmarks, experiments and alert rules all read it. Adding a metric is one
entry of BUILTIN: its facts (the SQL every consumer can compute it from), its kind, unit and
direction, and, when an hourly rollup holds it, how to read it from there (`FromRollup`;
tests/unit/test_metric_catalogue.py checks that both readings agree). A new entry is offered
on every surface it can be computed for; `shown_on` narrows that. The Overview's KPIs and the
alert rules name the metrics they read.

User-defined metrics (`[[metrics]]`, validated by metric_from_config) join the built-ins and
may replace one of the same name; they are read from their facts SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from analysis.metrics.definition import (
    Facts,
    FromRollup,
    Metric,
    Surface,
    from_facts,
    metric_from_config,
)


def _outcome_rate(outcome: str, label: str, lower_is_better: bool, description: str) -> Metric:
    return from_facts(
        f"{outcome}_rate",
        # one fixed expression per outcome, never composed from input
        Facts(
            "calls",
            "started_at",
            {
                "resolved": "CASE WHEN outcome = 'resolved' THEN 1.0 ELSE 0.0 END",
                "escalated": "CASE WHEN outcome = 'escalated' THEN 1.0 ELSE 0.0 END",
                "abandoned": "CASE WHEN outcome = 'abandoned' THEN 1.0 ELSE 0.0 END",
            }[outcome],
            "outcome IS NOT NULL",  # a call still in progress has no outcome yet
        ),
        "proportion",
        "call",
        lower_is_better=lower_is_better,
        unit="%",
        label=label,
        description=description,
        rollup=FromRollup(
            "calls_hourly",
            n="sum(n) FILTER (WHERE outcome IS NOT NULL)",
            total={
                "resolved": "sum(n) FILTER (WHERE outcome = 'resolved')",
                "escalated": "sum(n) FILTER (WHERE outcome = 'escalated')",
                "abandoned": "sum(n) FILTER (WHERE outcome = 'abandoned')",
            }[outcome],
        ),
        shown_on=("experiments", "benchmarks") if outcome == "resolved" else ("experiments",),
    )


def _e2e_quantile(q: int) -> Metric:
    return from_facts(
        f"p{q}_e2e_latency",
        Facts("voice_turns", "started_at", "e2e_ms", "e2e_ms IS NOT NULL"),
        "quantile",
        "turn",
        lower_is_better=True,
        unit="ms",
        label=f"p{q} end-to-end turn latency",
        description=f"{q}th percentile of end of user speech to first agent audio",
        quantile=q / 100,
        rollup=FromRollup("turn_latency_hist", where="stage = 'e2e_ms'"),
        shown_on=("experiments", "anomalies") if q == 95 else ("experiments",),
    )


BUILTIN: tuple[Metric, ...] = (
    _outcome_rate("resolved", "Resolved rate", False, "Share of calls resolved"),
    _outcome_rate("escalated", "Escalated rate", True, "Share handed to a human"),
    _outcome_rate("abandoned", "Abandoned rate", True, "Share the caller left"),
    from_facts(
        "thumbs_down_rate",
        Facts(
            "feedback",
            "submitted_at",
            "CASE WHEN rating <= 2 THEN 1.0 ELSE 0.0 END",
            "rating IS NOT NULL AND call_id IS NOT NULL",
        ),
        "proportion",
        "feedback",
        lower_is_better=True,
        unit="%",
        label="Thumbs-down rate",
        description="Share of ratings that are 1 or 2 out of 5",
        shown_on=("experiments",),
    ),
    from_facts(
        "handle_time",
        Facts("calls", "started_at", "duration_s", "duration_s IS NOT NULL"),
        "mean",
        "call",
        lower_is_better=True,
        unit="s",
        label="Handle time",
        description="Mean call duration",
        shown_on=("experiments",),
    ),
    from_facts(
        "turns_per_call",
        Facts("calls", "started_at", "CAST(turns AS DOUBLE)", "turns IS NOT NULL"),
        "mean",
        "call",
        lower_is_better=True,
        unit="turns",
        label="Turns per call",
        description="Mean turns per call (fewer means the caller got there faster)",
        shown_on=("experiments",),
    ),
    # The experiments' CSAT is the mean rating; everywhere else CSAT is csat_share below.
    from_facts(
        "csat",
        Facts(
            "feedback",
            "submitted_at",
            "CAST(rating AS DOUBLE)",
            "rating IS NOT NULL AND call_id IS NOT NULL",
        ),
        "mean",
        "feedback",
        lower_is_better=False,
        unit="rating",
        label="CSAT",
        description="Mean rating, 1 to 5",
        shown_on=("experiments",),
    ),
    from_facts(
        "interruptions_per_turn",
        Facts(
            "calls",
            "started_at",
            "CAST(interruptions AS DOUBLE)",
            "turns > 0 AND interruptions IS NOT NULL",
            denominator="CAST(turns AS DOUBLE)",
        ),
        "ratio",
        "call",
        lower_is_better=True,
        unit="per turn",
        label="Interruptions per turn",
        description="Caller barge-ins per agent turn",
        shown_on=("experiments",),
    ),
    Metric(  # facts from two tables: no single table to slice by release
        "errors_per_request",
        "SELECT call_id, occurred_at AS ts, 1.0 AS numerator, 0.0 AS denominator "
        "FROM errors WHERE call_id IS NOT NULL "
        "UNION ALL SELECT call_id, started_at AS ts, 0.0, 1.0 "
        "FROM requests WHERE call_id IS NOT NULL",
        "ratio",
        "request",
        True,
        "per request",
        "Errors per request",
        "Captured errors per HTTP request made during the call",
        shown_on=frozenset({"experiments"}),
    ),
    from_facts(
        "llm_ttft",
        Facts("voice_turns", "started_at", "llm_ttft_ms", "llm_ttft_ms IS NOT NULL"),
        "mean",
        "turn",
        lower_is_better=True,
        unit="ms",
        label="LLM time to first token",
        description="Mean LLM time to first token per turn",
        rollup=FromRollup("turns_hourly", n="sum(n_llm_ttft_ms)", total="sum(sum_llm_ttft_ms)"),
        shown_on=("experiments",),
    ),
    *(_e2e_quantile(q) for q in (50, 95, 99)),
    from_facts(
        "p95_llm_ttft",
        Facts("voice_turns", "started_at", "llm_ttft_ms", "llm_ttft_ms IS NOT NULL"),
        "quantile",
        "turn",
        lower_is_better=True,
        unit="ms",
        label="p95 LLM time to first token",
        description="95th percentile of the LLM's time to its first token",
        quantile=0.95,
        rollup=FromRollup("turn_latency_hist", where="stage = 'llm_ttft_ms'"),
        shown_on=("anomalies",),
    ),
    from_facts(
        "error_rate",
        Facts("requests", "started_at", "CASE WHEN status_code >= 500 THEN 1.0 ELSE 0.0 END"),
        "proportion",
        "request",
        lower_is_better=True,
        unit="%",
        label="5xx error rate",
        description="Share of HTTP requests answered with a 5xx status",
        rollup=FromRollup("requests_hourly", total="sum(n_5xx)"),
        shown_on=("anomalies", "benchmarks"),
    ),
    from_facts(
        "calls",
        Facts("calls", "started_at", "1.0"),
        "count",
        "call",
        lower_is_better=False,
        unit="calls",
        label="Calls",
        description="Calls started",
        rollup=FromRollup("calls_hourly"),
        shown_on=("anomalies",),
    ),
    from_facts(
        "mos",
        Facts("voice_quality", "measured_at", "mos_reported", "mos_reported IS NOT NULL"),
        "mean",
        "sample",
        lower_is_better=False,
        unit="MOS",
        label="Mean MOS",
        description="Mean reported mean opinion score of the call audio, 1 to 5",
        rollup=FromRollup("quality_hourly", n="sum(n_mos)", total="sum(sum_mos)"),
        shown_on=("anomalies", "benchmarks"),
    ),
    from_facts(
        "p95_request_latency",
        Facts("requests", "started_at", "duration_ms", "duration_ms IS NOT NULL"),
        "quantile",
        "request",
        lower_is_better=True,
        unit="ms",
        label="p95 request latency",
        description="95th percentile of HTTP request duration",
        quantile=0.95,
        rollup=FromRollup("requests_latency_hist"),
        shown_on=("anomalies",),
    ),
    from_facts(
        "errors",
        # each kept event stands for 1 / sample_rate events (analysis.errors)
        Facts("errors", "occurred_at", "1.0 / coalesce(nullif(sample_rate, 0), 1.0)"),
        "count",
        "error",
        lower_is_better=True,
        unit="errors",
        label="Captured errors (sample-corrected)",
        description="Error events, each counted as 1 / its client sample rate",
        rollup=FromRollup("errors_hourly", total="sum(n_estimated)"),
        shown_on=("anomalies",),
    ),
    from_facts(
        "csat_share",
        Facts(
            "feedback",
            "submitted_at",
            "CASE WHEN rating >= 4 THEN 1.0 ELSE 0.0 END",
            "rating IS NOT NULL",
        ),
        "proportion",
        "feedback",
        lower_is_better=False,
        unit="%",
        label="CSAT (share of 4-5 ratings)",
        description="Share of ratings that are 4 or 5 out of 5",
        rollup=FromRollup("feedback_hourly", total="sum(n_positive)"),
        shown_on=("benchmarks",),
    ),
    from_facts(
        "uptime",
        # Uptime Kuma's rule: a pending check counts against uptime, maintenance is left out
        Facts(
            "probe_results",
            "checked_at",
            "CASE WHEN status = 'up' THEN 1.0 ELSE 0.0 END",
            "status IS DISTINCT FROM 'maintenance'",
            call_id="CAST(NULL AS VARCHAR)",
            groups=("target",),
        ),
        "proportion",
        "probe",
        lower_is_better=False,
        unit="%",
        label="Uptime",
        description="Share of dependency probe checks that were up (maintenance left out)",
        rollup=FromRollup(
            "probes_hourly", n="sum(n) - sum(n_maintenance)", total="sum(n_up)", groups=("target",)
        ),
        shown_on=(),
    ),
)


def builtin_metrics() -> dict[str, Metric]:
    """The built-in catalogue, by name."""
    return {m.name: m for m in BUILTIN}


def catalogue(custom: Iterable[Mapping[str, Any]] = ()) -> dict[str, Metric]:
    """Built-in metrics plus the user's; a user metric may replace a built-in of that name."""
    metrics = builtin_metrics()
    for config in custom:
        metric = metric_from_config(config)
        metrics[metric.name] = metric
    return metrics


def metrics_on(surface: Surface, custom: Iterable[Mapping[str, Any]] = ()) -> dict[str, Metric]:
    """The catalogue's metrics offered on `surface` (analysis.metrics.SURFACES), in order."""
    return {name: m for name, m in catalogue(custom).items() if m.on(surface)}


def metric_registry(custom: Iterable[Mapping[str, Any]] = ()) -> dict[str, Metric]:
    """The experiment registry: built-in metrics plus the user's, as experiments offer them."""
    return metrics_on("experiments", custom)
