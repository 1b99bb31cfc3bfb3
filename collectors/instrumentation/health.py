"""Application health: endpoint checks, host resources against thresholds, start-up time."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from collectors.instrumentation.checks import Check, CheckResult, check_runner, http_check
from collectors.instrumentation.config import (
    MonitoringConfigError,
    flag,
    integer,
    number,
    text,
    url,
)
from collectors.instrumentation.config import headers as valid_headers
from collectors.instrumentation.config import method as valid_method
from collectors.instrumentation.redact import redact_url
from collectors.instrumentation.runtime import MonitorBase, state

THRESHOLDS = ("cpu_usage", "memory_usage", "disk_usage")


class HealthMonitor(MonitorBase):
    source = "health"

    def __init__(self) -> None:
        self.thresholds: dict[str, float] = {
            "cpu_usage": 80.0,
            "memory_usage": 80.0,
            "disk_usage": 80.0,
        }
        self.resource_interval = 60.0
        self.disk_path = "/"
        self.host = socket.gethostname()[:512]
        self.configured_at: float | None = None
        self.ready_at: float | None = None
        self.last_sample: dict[str, Any] = {}
        self._over: dict[str, bool] = {}
        self._ready_lock = threading.Lock()

    def configure(self, cfg: dict[str, Any]) -> None:
        for name, value in cfg["thresholds"].items():
            self.set_threshold(name, value)
        self.resource_interval = cfg["resource_interval"]
        self.disk_path = cfg["disk_path"]
        for ep in cfg["endpoints"]:
            self.add_health_check_endpoint(
                name=ep["name"],
                endpoint=ep["endpoint"],
                method=ep["method"],
                headers=ep["headers"],
                expected_status=ep["expected_status"],
                timeout=ep["timeout"],
                check_interval=ep["check_interval"],
                critical=ep["critical"],
            )

    def reset(self) -> None:
        type(self).__init__(self)  # back to the state of a new monitor

    # -- settings ---------------------------------------------------------------------------
    def add_health_check_endpoint(
        self,
        name: str,
        endpoint: str,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        expected_status: int = 200,
        timeout: float = 5.0,
        check_interval: float = 60,
        critical: bool = True,
    ) -> None:
        """Check `endpoint` every `check_interval` s; a critical check down makes the app down."""
        name = text("health.endpoints.name", name)
        key = f"health.endpoints[{name}]"
        url(f"{key}.url", endpoint)
        verb = valid_method(f"{key}.method", method)
        check_runner.add(
            Check(
                name,
                "http",
                http_check(
                    endpoint,
                    verb,
                    valid_headers(f"{key}.headers", headers),
                    integer(f"{key}.expected_status", expected_status, 100, 599),
                    number(f"{key}.timeout", timeout, positive=True),
                ),
                number(f"{key}.check_interval", check_interval, positive=True),
                flag(f"{key}.critical", critical),
                "health",
                describe={"endpoint": endpoint, "method": verb},
            )
        )

    def set_threshold(self, name: str, value: float) -> None:
        """Alert and report degraded when host `name` (cpu_usage, memory_usage, disk_usage) in
        percent goes over `value`."""
        if name not in THRESHOLDS:
            raise MonitoringConfigError(
                f"Monitoring config key 'health.thresholds.{name}' is unknown; use one of "
                f"{', '.join(THRESHOLDS)}."
            )
        self.thresholds[name] = number(f"health.thresholds.{name}", value, 0, 100)

    # -- host resources --------------------------------------------------------------------
    def start_resource_sampling(self) -> None:
        import psutil

        psutil.cpu_percent(interval=None)  # the first reading primes the counter
        check_runner.add(
            Check(
                "host",
                "host",
                self.sample_resources,
                self.resource_interval,
                False,
                "health",
                next_due=time.monotonic() + 1.0,
                describe={"host": self.host},
            )
        )

    def sample_resources(self) -> CheckResult:
        import psutil

        from collectors.instrumentation.performance import performance_monitor

        now = time.time()
        values: dict[str, float | None] = {
            "cpu_usage": psutil.cpu_percent(interval=None),
            "memory_usage": psutil.virtual_memory().percent,
        }
        try:
            values["disk_usage"] = psutil.disk_usage(self.disk_path).percent
        except OSError:
            values["disk_usage"] = None
        net = psutil.net_io_counters()
        self.last_sample = dict(values)
        self.emit(
            "resource_samples",
            {
                "host": self.host,
                "sampled_at": now,
                "cpu_pct": values["cpu_usage"],
                "memory_pct": values["memory_usage"],
                "disk_pct": values["disk_usage"],
                "net_in_bytes": getattr(net, "bytes_recv", None),
                "net_out_bytes": getattr(net, "bytes_sent", None),
            },
        )
        over = {
            k: v for k, v in values.items() if v is not None and v > self.thresholds.get(k, 101)
        }
        # performance warnings fire on crossing their own thresholds when those differ
        for name, limit in (
            ("cpu_usage", performance_monitor.cpu_warning_threshold),
            ("memory_usage", performance_monitor.memory_warning_threshold),
        ):
            v = values.get(name)
            is_over = v is not None and v > limit
            if is_over != self._over.get(name, False) and limit != self.thresholds.get(name):
                performance_monitor.alert(
                    f"{name} {'above' if is_over else 'back below'} {limit:g}%",
                    f"{name} is {v:.1f}% on {self.host}",
                    "warning" if is_over else "info",
                    key=f"perf:{name}",
                    rate_limited=False,
                )
            self._over[name] = is_over
        if over:
            return CheckResult(
                "degraded",
                None,
                None,
                ", ".join(f"{k} {v:.1f}% > {self.thresholds[k]:g}%" for k, v in over.items()),
                values,
                now,
            )
        return CheckResult("up", None, None, None, values, now)

    # -- start-up --------------------------------------------------------------------------
    def mark_configured(self) -> None:
        self.configured_at = time.time()

    def mark_ready(self) -> None:
        """Record start-up time (process start -> ready) and init time (configure -> ready)."""
        with self._ready_lock:  # the first request and the lifespan may race
            if self.ready_at is not None:
                return
            self.ready_at = time.time()
        started = self.ready_at
        try:
            import psutil

            started = psutil.Process(os.getpid()).create_time()
        except Exception:  # noqa: BLE001 - start time unknown: record init time only
            pass
        self.emit(
            "app_starts",
            {
                "host": self.host,
                "started_at": started,
                "startup_ms": max(0.0, (self.ready_at - started) * 1000),
                "init_ms": (self.ready_at - self.configured_at) * 1000
                if self.configured_at
                else None,
                "release": state.release,
            },
        )

    # -- report ----------------------------------------------------------------------------
    def overall(self) -> str:
        """healthy, degraded, or down (a critical check is down)."""
        overall = "healthy"
        for c in list(check_runner.checks.values()):
            status = c.last.status if c.last else "pending"
            if status == "down" and c.critical:
                return "down"
            if status in ("down", "degraded"):
                overall = "degraded"
        return overall

    def liveness(self) -> dict[str, str]:
        """What anyone may see: up or down, nothing else."""
        return {"status": "down" if self.overall() == "down" else "up"}

    def status(self) -> dict[str, Any]:
        """Every registered check and dependency with an overall status: URLs without
        credentials or query values, and no exception's text (only its type)."""
        checks = []
        for _key, c in sorted(check_runner.checks.items()):
            r = c.last
            described = {
                k: redact_url(v) if k == "endpoint" and isinstance(v, str) else v
                for k, v in c.describe.items()
            }
            checks.append(
                {
                    "name": c.name,
                    "group": c.group,
                    "kind": c.kind,
                    "status": r.status if r else "pending",
                    "critical": c.critical,
                    "latency_ms": None if not r or r.latency_ms is None else round(r.latency_ms, 1),
                    "status_code": r.status_code if r else None,
                    "error": r.reason if r else None,
                    "details": r.details if r else {},
                    "checked_at": r.checked_at if r else None,
                    **described,
                }
            )
        return {
            "status": self.overall(),
            "service": state.service,
            "release": state.release,
            "host": self.host,
            "uptime_s": round(time.time() - self.ready_at, 1) if self.ready_at else None,
            "checks": checks,
        }


health_monitor = HealthMonitor()
