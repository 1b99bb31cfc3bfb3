"""Alerts: always logged, optionally posted to a webhook, and passed to custom handlers.

Raising an alert only queues it. A dispatcher thread calls the handlers one by one; a handler
that raises is logged and the others still run. The webhook has its own thread, a timeout and
retries with backoff, so a slow webhook delays nobody.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger("collectors.instrumentation.alerts")

SEVERITIES = ("info", "warning", "error", "critical")


@dataclass
class Alert:
    title: str
    message: str
    severity: str = "warning"  # info|warning|error|critical
    source: str = "monitoring"  # health|performance|errors|security|infrastructure|...
    key: str = ""  # alerts with the same key are rate-limited together
    details: dict[str, Any] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"[{self.severity.upper()}] {self.source}: {self.title} - {self.message}"


AlertHandler = Callable[[Alert], Any]


def logging_handler(alert: Alert) -> None:
    level = {
        "info": logging.INFO,
        "warning": logging.WARNING,
        "error": logging.ERROR,
        "critical": logging.CRITICAL,
    }.get(alert.severity, logging.WARNING)
    log.log(level, "ALERT %s", alert)


class WebhookSender:
    """Posts alerts as JSON to a URL from its own thread, with timeout and retries."""

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_pending: int = 1000,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._q: queue.Queue[Alert | None] = queue.Queue(maxsize=max_pending)
        self._thread = threading.Thread(target=self._run, name="monitoring-webhook", daemon=True)
        self._thread.start()

    def __call__(self, alert: Alert) -> None:
        try:
            self._q.put_nowait(alert)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        import httpx  # lazy: only when a webhook is configured

        with httpx.Client(timeout=self.timeout) as client:
            while True:
                alert = self._q.get()
                if alert is None:
                    return
                self._post(client, alert)
                self._q.task_done()

    def _post(self, client: Any, alert: Alert) -> None:
        body = alert.to_dict()
        body["text"] = str(alert)  # Slack-style incoming webhooks show `text`
        for attempt in range(self.retries + 1):
            try:
                r = client.post(self.url, json=body)
                if r.status_code < 500 and r.status_code != 429:
                    if r.status_code >= 400:
                        self.failed += 1
                        log.warning("alert webhook refused the alert: HTTP %s", r.status_code)
                    else:
                        self.sent += 1
                    return
            except Exception as exc:  # noqa: BLE001 - timeouts and network faults are retried
                log.debug("alert webhook attempt %d failed: %s", attempt + 1, exc)
            time.sleep(self.backoff * (2**attempt))
        self.failed += 1
        log.warning("alert webhook %s failed after %d attempts", self.url, self.retries + 1)

    def join(self, timeout: float = 10.0) -> None:
        """Wait until queued alerts are posted (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._q.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        try:
            self._q.put_nowait(None)
        except queue.Full:
            pass


class AlertManager:
    """Shared by every monitor: `add_alert_handler` on any of them adds here."""

    def __init__(self) -> None:
        self.handlers: list[AlertHandler] = []
        self.webhook: WebhookSender | None = None
        self.cooldown = 300.0
        self.raised = 0
        self.suppressed = 0
        self.handler_failures = 0
        self._last: dict[str, float] = {}
        self._q: queue.Queue[Alert | None] = queue.Queue(maxsize=10_000)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def configure(
        self, webhook_url: str | None, timeout: float, retries: int, cooldown: float
    ) -> None:
        self.cooldown = cooldown
        if self.webhook is not None:
            self.webhook.close()
            self.webhook = None
        if webhook_url:
            self.webhook = WebhookSender(webhook_url, timeout, retries)

    def add_handler(self, handler: AlertHandler) -> None:
        if not callable(handler):
            raise TypeError(f"an alert handler must be callable, got {type(handler).__name__}")
        if handler not in self.handlers:
            self.handlers.append(handler)

    def raise_alert(self, alert: Alert, *, rate_limited: bool = True) -> bool:
        """Queue an alert for the handlers; False if suppressed by the cooldown."""
        key = alert.key or f"{alert.source}:{alert.title}"
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if rate_limited and last is not None and now - last < self.cooldown:
                self.suppressed += 1
                return False
            if len(self._last) >= 100_000:  # keys of long-gone alerts: keep memory bounded
                self._last.clear()
            self._last[key] = now
            self.raised += 1
        self._ensure_thread()
        try:
            self._q.put_nowait(alert)
        except queue.Full:
            with self._lock:
                self.suppressed += 1
            return False
        return True

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="monitoring-alerts", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            alert = self._q.get()
            if alert is None:
                self._q.task_done()
                return
            self.dispatch(alert)
            self._q.task_done()

    def dispatch(self, alert: Alert) -> None:
        """Call every handler; one failing handler never stops the others."""
        handlers: list[AlertHandler] = [logging_handler]
        if self.webhook is not None:
            handlers.append(self.webhook)
        handlers.extend(self.handlers)
        for handler in handlers:
            try:
                handler(alert)
            except Exception:  # noqa: BLE001 - a custom handler's bug must not stop the others
                with self._lock:
                    self.handler_failures += 1
                log.exception("alert handler %r failed", handler)

    def join(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self._q.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.webhook is not None:
            self.webhook.join(max(0.0, deadline - time.monotonic()))

    def reset(self) -> None:
        self.handlers.clear()
        self._last.clear()
        self.raised = self.suppressed = self.handler_failures = 0
        if self.webhook is not None:
            self.webhook.close()
            self.webhook = None


alert_manager = AlertManager()
