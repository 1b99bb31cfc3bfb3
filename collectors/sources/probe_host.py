"""The collector host's CPU, memory, disk and network (psutil) into resource_samples.

CPU and network are rates over the interval since the previous run: the previous counters are
kept in the watermark, so a scheduled run every minute reports that minute, not the instant of
sampling. The first run measures CPU over a short blocking window and leaves network empty.
A probe_results row per run marks the host down when a threshold (the spec's cpu_usage,
memory_usage, disk_usage, in percent) is exceeded, with the usual pending-before-down.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from collectors.config_secrets import Secrets
from collectors.config_validator import Validator, lookup
from collectors.schedules import SCHEDULE_KEYS, Schedule
from collectors.sources.base import Batch
from collectors.sources.probes import CheckResult, next_state
from collectors.sources.registry import Built, SourceKind

FIRST_CPU_WINDOW_S = 0.2


def cpu_busy_total() -> tuple[float, float]:
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    total = sum(t)
    return total - idle, total


class HostSource:
    def __init__(
        self,
        *,
        name: str = "host",
        host: str | None = None,
        disk_path: str = "/",
        thresholds: Mapping[str, float] | None = None,
        retries: int = 0,
    ):
        self.name = name
        self.host = host or socket.gethostname()
        self.disk_path = disk_path
        self.thresholds = dict(thresholds or {})
        self.retries = retries

    def __repr__(self) -> str:
        return f"HostSource(name={self.name!r}, host={self.host!r})"

    def sample(self, previous: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        busy, total = cpu_busy_total()
        cpu_pct: float | None
        if "cpu" not in previous:
            psutil.cpu_percent(interval=None)
            cpu_pct = psutil.cpu_percent(interval=FIRST_CPU_WINDOW_S)
        else:
            d_busy, d_total = busy - previous["cpu"][0], total - previous["cpu"][1]
            cpu_pct = 100.0 * d_busy / d_total if d_total > 0 else None
        net = psutil.net_io_counters()
        net_in = net_out = None
        if "net" in previous and net.bytes_recv >= previous["net"][0]:
            net_in = net.bytes_recv - previous["net"][0]
            net_out = net.bytes_sent - previous["net"][1]
        row = {
            "host": self.host,
            "sampled_at": datetime.now(UTC),
            "cpu_pct": cpu_pct,
            "memory_pct": psutil.virtual_memory().percent,
            "disk_pct": psutil.disk_usage(self.disk_path).percent,
            "net_in_bytes": net_in,
            "net_out_bytes": net_out,
        }
        return row, {"cpu": [busy, total], "net": [net.bytes_recv, net.bytes_sent]}

    def verdict(self, row: Mapping[str, Any]) -> CheckResult:
        over = [
            f"{metric} {row[metric]:.0f}% > {limit:g}%"
            for metric, limit in self.thresholds.items()
            if row.get(metric) is not None and row[metric] > limit
        ]
        return CheckResult(not over, error="; ".join(over) or None)

    def fetch(self, watermarks: Mapping[str, str]) -> Iterator[Batch]:
        previous = _load(watermarks.get("counters"))
        row, counters = self.sample(previous)
        yield Batch("resource_samples", [row], stream="counters", watermark=json.dumps(counters),
                    progress={"done": 1, "total": 1})  # fmt: skip
        result = self.verdict(row)
        kept = _load(watermarks.get("state"))
        state, kept = next_state(kept, result, self.retries, False)
        yield Batch(
            "probe_results",
            [{"target": f"host:{self.host}", "checked_at": row["sampled_at"], "kind": "host",
              "status": state, "error": result.error}],
            stream="state",
            watermark=json.dumps(kept),
        )  # fmt: skip


def _load(value: str | None) -> dict[str, Any]:
    try:
        data = json.loads(value) if value else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# ---- configuration: [probes.host] ------------------------------------------------------------

THRESHOLDS = ("cpu_pct", "memory_pct", "disk_pct")


@dataclass(frozen=True)
class HostSettings:
    name: str
    schedule: Schedule
    retries: int = 0
    thresholds: dict[str, float] = field(default_factory=dict)
    disk_path: str = "/"


def host_settings(data: Mapping[str, Any], v: Validator, secrets: Secrets) -> HostSettings | None:
    host = lookup(data, "probes.host")
    if host is None:
        return None
    host = host if isinstance(host, dict) else {}
    allowed = {"thresholds", "disk_path", "name", "enabled", "retries", *SCHEDULE_KEYS}
    v.known(host, "probes.host", allowed)
    if not v.boolean(host, "probes.host", "enabled", True):
        return None
    thresholds = host.get("thresholds", {}) or {}
    if not isinstance(thresholds, dict):
        v.fail("probes.host.thresholds", f"must be a table of {', '.join(THRESHOLDS)} = percent")
        thresholds = {}
    for k in thresholds:
        if k not in THRESHOLDS:
            v.fail(f"probes.host.thresholds.{k}", f"is not one of {', '.join(THRESHOLDS)}")
    return HostSettings(
        name=host.get("name", "host"),
        schedule=v.schedule(host, "probes.host", 60),
        retries=v.integer(host, "probes.host", "retries", 0, low=0),
        thresholds={k: float(x) for k, x in thresholds.items() if isinstance(x, int | float)},
        disk_path=host.get("disk_path", "/"),
    )


def host_sources(settings: HostSettings, secrets: Secrets, data_dir: Path) -> Built:
    source = HostSource(
        name=f"probe:{settings.name}",
        thresholds=settings.thresholds,
        disk_path=settings.disk_path,
        retries=settings.retries,
    )
    return {source.name: (source, settings.schedule.as_dict())}


HOST_PROBE = SourceKind(
    name="probes.host", sections=("probes.host",), parse=host_settings, build=host_sources
)
