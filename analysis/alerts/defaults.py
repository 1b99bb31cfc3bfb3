"""The rules a voice agent's workbench starts with, enabled, and how they silence each other.

They are written as a `[[alerts.rules]]` entry would be, and pass through the same validation
(collectors/alerts/settings.py). A rule of the same name in workbench.toml replaces one;
`enabled = false` there (or on the Alerts page) turns one off. docs/alerts.md explains each.
"""

from __future__ import annotations

from typing import Any

DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {
        "name": "dependency_down",
        "kind": "probe_down",
        "severity": "critical",
        # a flapping probe stays one incident
        "keep_firing_for": "3m",
        "description": "A dependency (the agent's API, Supabase, LiveKit, Railway) failed its "
        "health checks after their retries.",
    },
    {
        "name": "availability_burn",
        "kind": "slo_burn",
        "severity": "critical",
        "metric": "error_rate",
        "objective": 0.999,
        "windows": "page",
        # a burn confirmed for two minutes (Pyrra's rules hold theirs too); the fast and slow
        # pairs take turns, so one incident stays one alert
        "for": "2m",
        "keep_firing_for": "30m",
        "description": "5xx responses spend the 99.9 % availability budget fast enough to page "
        "(SRE workbook: 14.4x over 1 h and 5 min, or 6x over 6 h and 30 min).",
    },
    {
        "name": "turn_latency_high",
        "kind": "threshold",
        "severity": "warning",
        "metric": "p95_e2e_latency",
        "op": ">",
        # a ratio to the same half hour a week earlier: traffic (and so latency) follows the
        # day and the week, so a fixed number would page on busy Mondays and miss quiet Sundays
        "baseline": "7d",
        "threshold": 1.25,
        "recovery": 1.15,
        "window": "30m",
        "min_n": 300,
        "for": "10m",
        "description": "Callers wait 25 % longer than a week ago for one turn in twenty (p95 of "
        "end of speech to the agent's first audio over 30 minutes, against the same half hour "
        "a week earlier).",
    },
    {
        "name": "call_audio_poor",
        "kind": "threshold",
        "severity": "warning",
        "metric": "mos",
        "op": "<",
        "threshold": 3.5,
        "recovery": 3.7,
        "window": "30m",
        "min_n": 30,
        "for": "15m",
        "description": "Mean reported MOS of call audio below 3.5 (ITU-T P.800: 'fair' or worse).",
    },
    {
        "name": "new_error_group",
        "kind": "error_group",
        "severity": "warning",
        "for": "5m",
        "description": "A new error group, or one back after a quiet week, that keeps happening.",
    },
    {
        "name": "brute_force",
        "kind": "security",
        "detection": "brute_force",
        "severity": "critical",
        "description": "Repeated failed logins on one account (5 within 5 minutes).",
    },
    {
        "name": "credential_stuffing",
        "kind": "security",
        "detection": "credential_stuffing",
        "severity": "critical",
        "description": "One IP failing logins on 20 accounts within 10 minutes.",
    },
    {
        "name": "password_spraying",
        "kind": "security",
        "detection": "password_spraying",
        "severity": "warning",
        "description": "One IP trying many accounts a few times each, slowly.",
    },
    {
        "name": "api_abuse",
        "kind": "security",
        "detection": "api_abuse",
        "severity": "warning",
        "every": "5m",
        "description": "An API user far above their own daily history.",
    },
    {
        "name": "experiment_health",
        "kind": "experiment",
        "severity": "warning",
        "every": "1h",
        "description": "A running experiment with a sample-ratio mismatch, or a guardrail metric "
        "made worse by a treatment.",
    },
    {
        "name": "collector_failing",
        "kind": "collector",
        "severity": "warning",
        "for": "5m",
        "description": "A source whose runs fail, hang or stopped.",
    },
    {
        "name": "publish_failing",
        "kind": "publish",
        "severity": "critical",
        "for": "2m",
        "description": "The snapshot the pages read is not being published.",
    },
    {
        # Shipped disabled, as an example to enable (docs/alerts.md says why): hours are judged
        # once complete, so it confirms a fast incident after the rules above have paged it,
        # often after the probe alert that would inhibit it has resolved.
        "name": "turn_latency_anomaly",
        "kind": "anomaly",
        "severity": "warning",
        "metric": "p95_e2e_latency",
        "direction": "worse",
        "keep_firing_for": "1h",
        "enabled": False,
        "description": "The hourly p95 end-to-end turn latency is out of the band the anomaly "
        "detector expects for that hour of the day and week (the Anomalies page's verdicts).",
    },
)

# Alertmanager inhibit rules: while a dependency is down, the errors, budget burn and latency it
# causes are shown but not notified; a failing publish explains stale sources.
DEFAULT_INHIBIT: tuple[dict[str, Any], ...] = (
    {
        "source": ['alertname="dependency_down"'],
        "target": ['alertname=~"availability_burn|new_error_group|turn_latency_high"'],
    },
    {"source": ['alertname="publish_failing"'], "target": ['alertname="collector_failing"']},
)
