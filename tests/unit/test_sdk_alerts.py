"""Alert handlers: logging always, a webhook with timeout and retries on its own thread,
custom handlers, and a failing handler that never stops the others."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from collectors.instrumentation import (
    configure_monitoring,
    error_monitor,
    flush_monitoring,
    monitoring_stats,
    reset_monitoring,
    security_monitor,
)
from collectors.instrumentation.alerts import Alert, alert_manager
from collectors.instrumentation.sinks import MemorySink


class Webhook:
    """Answers with the queued statuses (or sleeps), then 200; records JSON bodies."""

    def __init__(self, script=()):
        self.script = list(script)
        self.bodies: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                step = hook.script.pop(0) if hook.script else 200
                if step == "sleep":
                    time.sleep(1.0)
                    step = 200
                if step == 200:
                    hook.bodies.append(body)
                self.send_response(step)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def fresh_sdk(monkeypatch):
    monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)
    reset_monitoring()
    yield
    reset_monitoring()


def test_a_failing_handler_never_stops_the_others(caplog):
    configure_monitoring(None, sink=MemorySink())
    got = []

    def broken(alert):
        raise RuntimeError("handler bug")

    error_monitor.add_alert_handler(broken)
    security_monitor.add_alert_handler(got.append)
    with caplog.at_level(logging.WARNING, logger="collectors.instrumentation.alerts"):
        error_monitor.track_error("PaymentError", "declined", severity="critical")
        flush_monitoring()
    assert [a.title for a in got] == ["Critical error: PaymentError"]
    assert monitoring_stats()["alert_handler_failures"] == 1
    assert any("ALERT [CRITICAL]" in r.getMessage() for r in caplog.records)  # logging always


def test_webhook_retries_5xx_and_posts_the_alert_from_a_background_thread(monkeypatch):
    hook = Webhook([503, 500])
    try:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", hook.url)
        configure_monitoring(None, {"alerts": {"webhook_retries": 3}}, sink=MemorySink())
        alert_manager.webhook.backoff = 0.01
        t0 = time.perf_counter()
        error_monitor.track_error("DbDown", "pool exhausted", severity="critical")
        assert time.perf_counter() - t0 < 0.01  # the caller never waits for the webhook
        flush_monitoring()
        assert [b["title"] for b in hook.bodies] == ["Critical error: DbDown"]
        assert hook.bodies[0]["severity"] == "critical" and "text" in hook.bodies[0]
        assert alert_manager.webhook.sent == 1
    finally:
        hook.close()


def test_webhook_timeout_gives_up_after_its_retries_without_blocking_handlers():
    hook = Webhook(["sleep", "sleep"])
    try:
        configure_monitoring(
            None,
            {"alerts": {"webhook_url": hook.url, "webhook_timeout": 0.2, "webhook_retries": 1}},
            sink=MemorySink(),
        )
        alert_manager.webhook.backoff = 0.01
        got = []
        error_monitor.add_alert_handler(got.append)
        t0 = time.perf_counter()
        alert_manager.raise_alert(Alert("t", "m", "error"))
        alert_manager._q.join()  # custom handlers ran
        assert got and time.perf_counter() - t0 < 0.15  # before the webhook's first timeout
        alert_manager.webhook.join(5)
        assert (alert_manager.webhook.sent, alert_manager.webhook.failed) == (0, 1)
    finally:
        hook.close()


def test_repeated_alerts_are_rate_limited_by_key():
    configure_monitoring(None, {"alerts": {"cooldown": 60}}, sink=MemorySink())
    got = []
    error_monitor.add_alert_handler(got.append)
    for _ in range(5):
        alert_manager.raise_alert(Alert("same", "m", key="k"))
    alert_manager.raise_alert(Alert("other", "m", key="k2"))
    flush_monitoring()
    assert [a.title for a in got] == ["same", "other"]
    assert monitoring_stats()["alerts_suppressed"] == 4
