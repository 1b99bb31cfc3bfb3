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
    """Answers with the queued statuses (or sleeps), then 200; records JSON bodies. While `gate`
    is clear, every request is held unanswered (for at most 10 s), so a test can look at what
    happened before the webhook answered."""

    def __init__(self, script=()):
        self.script = list(script)
        self.bodies: list[dict] = []
        self.gate = threading.Event()
        self.gate.set()
        self.held = threading.Event()  # a request arrived while the gate was clear
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not hook.gate.is_set():
                    hook.held.set()
                    hook.gate.wait(10)
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
        self.gate.set()  # a request held by a failed test is answered, not left to its 10 s
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
        hook.gate.clear()  # the webhook answers nothing until the caller has returned
        error_monitor.track_error("DbDown", "pool exhausted", severity="critical")
        # the caller never waits for the webhook: it returned with the post still unanswered
        assert hook.held.wait(5) and not hook.bodies
        assert (alert_manager.webhook.sent, alert_manager.webhook.failed) == (0, 0)
        hook.gate.set()
        flush_monitoring()
        assert [b["title"] for b in hook.bodies] == ["Critical error: DbDown"]
        assert hook.bodies[0]["severity"] == "critical" and "text" in hook.bodies[0]
        assert alert_manager.webhook.sent == 1
    finally:
        hook.close()


def test_webhook_timeout_gives_up_after_its_retries():
    hook = Webhook(["sleep", "sleep"])
    try:
        configure_monitoring(
            None,
            {"alerts": {"webhook_url": hook.url, "webhook_timeout": 0.2, "webhook_retries": 1}},
            sink=MemorySink(),
        )
        alert_manager.webhook.backoff = 0.01
        alert_manager.raise_alert(Alert("t", "m", "error"))
        flush_monitoring()
        alert_manager.webhook.join(5)
        assert (alert_manager.webhook.sent, alert_manager.webhook.failed) == (0, 1)
        assert not hook.bodies
    finally:
        hook.close()


def test_a_hanging_webhook_does_not_hold_up_the_other_handlers():
    hook = Webhook()
    try:
        configure_monitoring(
            None, {"alerts": {"webhook_url": hook.url, "webhook_timeout": 30}}, sink=MemorySink()
        )
        got = []
        error_monitor.add_alert_handler(got.append)
        hook.gate.clear()  # the webhook hangs until the handlers have been seen to run
        alert_manager.raise_alert(Alert("t", "m", "error"))
        alert_manager._q.join()  # custom handlers ran
        assert [a.title for a in got] == ["t"]
        assert hook.held.wait(5) and not hook.bodies  # while the webhook's post hung
        assert (alert_manager.webhook.sent, alert_manager.webhook.failed) == (0, 0)
        hook.gate.set()
        alert_manager.webhook.join(5)
        assert alert_manager.webhook.sent == 1 and [b["title"] for b in hook.bodies] == ["t"]
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
