"""Periodic checks (health endpoints and dependencies) on one background thread.

Each check returns a CheckResult; every result becomes a `probe_results` row, and an alert is
raised only when a check's status changes (up -> down, down -> up, ...), never on every run.
A result's `error` (rows, alerts) has its secrets scrubbed; its `reason` (the health report)
never holds an exception's text, only its type or the SDK's own words.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collectors.instrumentation.alerts import Alert, alert_manager
from collectors.instrumentation.redact import exception_text, scrub, scrub_value
from collectors.instrumentation.runtime import state

log = logging.getLogger("collectors.instrumentation")

STATUSES = ("up", "degraded", "down", "pending")


@dataclass
class CheckResult:
    status: str  # up|degraded|down|pending
    latency_ms: float | None = None
    status_code: int | None = None
    error: str | None = None  # scrubbed text, for probe rows and alerts
    details: dict[str, Any] = field(default_factory=dict)
    checked_at: float = field(default_factory=time.time)
    reason: str | None = None  # for the health report: no exception text

    def __post_init__(self) -> None:
        if self.error is not None:
            self.error = scrub(str(self.error))
            if self.reason is None:
                self.reason = self.error
        self.details = scrub_value(self.details) if isinstance(self.details, dict) else {}


def failed(exc: BaseException, t0: float) -> CheckResult:
    """A check that raised: down, with the exception's type as the public reason."""
    return CheckResult(
        "down",
        (time.perf_counter() - t0) * 1000,
        None,
        exception_text(exc),
        reason=type(exc).__name__,
    )


@dataclass
class Check:
    name: str
    kind: str  # http|supabase|livekit|railway|custom|host
    run: Callable[[], CheckResult]
    interval: float
    critical: bool
    group: str  # "health" or "infrastructure"
    last: CheckResult | None = None
    next_due: float = 0.0
    describe: dict[str, Any] = field(default_factory=dict)


def http_check(
    endpoint: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    expected_status: int | tuple[int, ...] = 200,
    timeout: float = 5.0,
    body_check: Callable[[Any], str] | None = None,
) -> Callable[[], CheckResult]:
    """A check that calls `endpoint` and compares the status code (and optionally the body)."""
    expected = (expected_status,) if isinstance(expected_status, int) else expected_status

    def run() -> CheckResult:
        import httpx  # lazy: checks run on a background thread

        t0 = time.perf_counter()
        try:
            r = httpx.request(
                method, endpoint, headers=headers or {}, timeout=timeout, follow_redirects=False
            )
        except Exception as exc:  # noqa: BLE001 - any failure to connect is "down"
            return failed(exc, t0)
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code not in expected:
            return CheckResult(
                "down",
                ms,
                r.status_code,
                f"expected HTTP {'/'.join(map(str, expected))}, got {r.status_code}",
            )
        if body_check is not None:
            problem = body_check(r)
            if problem:
                return CheckResult("degraded", ms, r.status_code, problem)
        return CheckResult("up", ms, r.status_code)

    return run


def custom_check(func: Callable[[], Any]) -> Callable[[], CheckResult]:
    """Wrap a user function returning {"status": ..., "details": {...}} (or a bool)."""

    def run() -> CheckResult:
        t0 = time.perf_counter()
        try:
            out = func()
        except Exception as exc:  # noqa: BLE001 - a failing user check is "down", not a crash
            return failed(exc, t0)
        ms = (time.perf_counter() - t0) * 1000
        if isinstance(out, CheckResult):
            return out
        if isinstance(out, bool):
            return CheckResult("up" if out else "down", ms)
        if isinstance(out, dict):
            raw = str(out.get("status", "up")).lower()
            status = {
                "healthy": "up",
                "ok": "up",
                "up": "up",
                "degraded": "degraded",
                "warning": "degraded",
                "unhealthy": "down",
                "down": "down",
                "error": "down",
                "pending": "pending",
            }.get(raw, "degraded")
            given = out.get("details")
            details: dict[str, Any] = given if isinstance(given, dict) else {}
            error = out.get("error")
            return CheckResult(
                status, ms, None, None if error is None else str(error)[:2048] or None, details
            )
        return CheckResult(
            "degraded", ms, None, f"check returned {type(out).__name__}, expected a dict or bool"
        )

    return run


class CheckRunner:
    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, check: Check) -> None:
        with self._lock:
            self.checks[f"{check.group}:{check.name}"] = check
        self._wake.set()

    def run_once(self, check: Check) -> CheckResult:
        t0 = time.perf_counter()
        try:
            result = check.run()
        except Exception as exc:  # noqa: BLE001
            result = failed(exc, t0)
        previous = check.last.status if check.last else None
        check.last = result
        state.pipeline.emit(
            "probe_results",
            {
                "target": check.name,
                "checked_at": result.checked_at,
                "kind": check.kind,
                "status": result.status,
                "latency_ms": result.latency_ms,
                "status_code": result.status_code,
                "error": result.error,
            },
        )
        if previous is not None and previous != result.status:
            self._state_change_alert(check, previous, result)
        elif previous is None and result.status == "down":
            self._state_change_alert(check, "unknown", result)
        return result

    @staticmethod
    def _state_change_alert(check: Check, previous: str, result: CheckResult) -> None:
        recovered = result.status == "up"
        severity = "info" if recovered else ("critical" if check.critical else "error")
        if result.status == "degraded":
            severity = "warning"
        alert_manager.raise_alert(
            Alert(
                f"{check.name} is {result.status}" if not recovered else f"{check.name} recovered",
                f"{check.kind} check {check.name!r} went from {previous} to {result.status}"
                + (f": {result.error}" if result.error else ""),
                severity,
                check.group,
                f"check:{check.group}:{check.name}",
                {
                    "check": check.name,
                    "kind": check.kind,
                    "previous": previous,
                    "status": result.status,
                    "latency_ms": result.latency_ms,
                    "status_code": result.status_code,
                },
            ),
            rate_limited=False,
        )

    def run_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [c for c in self.checks.values() if c.next_due <= now]
        for c in due:
            c.next_due = now + c.interval
            self.run_once(c)

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.run_due()
            with self._lock:
                nxt = min((c.next_due for c in self.checks.values()), default=None)
            wait = 5.0 if nxt is None else max(0.05, min(5.0, nxt - time.monotonic()))
            self._wake.wait(wait)
            self._wake.clear()

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop = threading.Event()  # a thread left running by stop() keeps its own
        self._thread = threading.Thread(
            target=self._loop, args=(self._stop,), name="monitoring-checks", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread; a check still running (a hanging endpoint) is left to finish."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(0.0, timeout))
        self._thread = None

    def reset(self) -> None:
        self.stop(timeout=1.0)
        with self._lock:
            self.checks.clear()


check_runner = CheckRunner()
