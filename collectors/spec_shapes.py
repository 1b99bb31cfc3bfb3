"""The specification's configure_monitoring() shapes, as this file's own sections.

The spec (monitoring-system-readme.md) writes `[health] endpoints = [...]`, `[health.thresholds]`
(cpu_usage, memory_usage, disk_usage) and `[[infrastructure.dependencies]]` with a `type`; a
user may paste those into workbench.toml, and they mean `[[probes.http]]`, `[probes.host]`,
`[[probes.custom]]`, `[probes.supabase]`, `[probes.livekit]` and `[railway]`.
"""

from __future__ import annotations

from typing import Any

THRESHOLD_NAMES = {"cpu_usage": "cpu_pct", "memory_usage": "memory_pct", "disk_usage": "disk_pct"}


def in_our_shapes(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of `data` with the spec's sections moved into ours."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    probes = data.setdefault("probes", {})
    if not isinstance(probes, dict):
        return data  # reported as "probes must be a table"
    probes = data["probes"] = dict(probes)
    http = list(probes.get("http", []))
    custom = list(probes.get("custom", []))
    health = data.pop("health", None)
    if isinstance(health, dict):
        http += list(health.get("endpoints", []))
        thresholds = health.get("thresholds")
        if isinstance(thresholds, dict):
            host = dict(probes.get("host", {}))
            ours = {THRESHOLD_NAMES.get(k, k): v for k, v in thresholds.items()}
            host.setdefault("thresholds", ours)
            probes["host"] = host
    infra = data.pop("infrastructure", None)
    if isinstance(infra, dict):
        for dep in infra.get("dependencies", []):
            if not isinstance(dep, dict):
                continue
            kind = dep.get("type", "http")
            dep = {k: v for k, v in dep.items() if k != "type"}
            if kind == "http":
                http.append(dep)
            elif kind == "custom":
                custom.append(dep)
            elif kind in ("supabase", "livekit"):
                section = dict(probes.get(kind, {}))
                section.update({k: v for k, v in dep.items() if k not in ("endpoint", "api_key")})
                if dep.get("endpoint"):
                    data.setdefault(kind, {}).setdefault("url", dep["endpoint"])
                probes[kind] = section
            elif kind == "railway":
                railway = data.setdefault("railway", {})
                for k, v in dep.items():
                    if k != "api_key":
                        railway.setdefault(k, v)
    if http:
        probes["http"] = http
    if custom:
        probes["custom"] = custom
    return data
