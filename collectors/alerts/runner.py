"""Alerting inside the collectors service: an evaluator thread (woken after each publish, and
at least every evaluation interval, so a stopped collector or a failing publish is still seen)
and a sender thread. Neither holds the warehouse: collection and publishing never wait for
them, and a slow webhook never waits for anything but itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from collectors.alerts.delivery import HandlerReceiver, LogReceiver, Receiver, WebhookReceiver
from collectors.alerts.engine import AlertEngine, Clock, Episode, utc_now
from collectors.alerts.sender import Sender
from collectors.alerts.settings import AlertSettings
from collectors.alerts.store import AlertStore
from collectors.config_secrets import Secrets

log = logging.getLogger(__name__)
# Evaluations closer together than this share one (publishes can come every few seconds).
MIN_EVALUATION_GAP_S = 10.0
SENDER_IDLE_S = 1.0


def receivers_from(settings: AlertSettings, secrets: Secrets) -> list[Receiver]:
    """The log always; the webhook when ALERT_WEBHOOK_URL is set; the custom handler."""
    out: list[Receiver] = [LogReceiver()]
    url = secrets.value("ALERT_WEBHOOK_URL")
    if url:
        out.append(WebhookReceiver(url, settings.webhook_format, settings.external_url))
    if settings.handler:
        out.append(HandlerReceiver(settings.handler))
    return out


class Alerting:
    def __init__(
        self,
        data_root: Path,
        settings: AlertSettings,
        receivers: Sequence[Receiver],
        custom_metrics: Sequence[Mapping[str, Any]] = (),
        clock: Clock = utc_now,
        on_episodes: Callable[[list[Episode]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = AlertStore(data_root / "control.sqlite")
        self.engine = AlertEngine(
            self.store, data_root / "serving", settings, custom_metrics, clock
        )
        self.sender = Sender(
            self.store,
            settings,
            self.engine.timers,
            receivers,
            clock,
            lambda: self.engine.descriptions,
        )
        self.receivers = list(receivers)
        self.on_episodes = on_episodes
        self._wake = threading.Event()
        self._send = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_failure = ""
        self.store.set_meta(receivers=[r.describe() for r in receivers])

    def start(self) -> None:
        for target, name in (
            (self._evaluate_loop, "alerts-evaluate"),
            (self._send_loop, "alerts-send"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """A new snapshot was published: evaluate soon."""
        self._wake.set()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        self._send.set()
        for thread in self._threads:
            thread.join(timeout)
        self.engine.close()

    def evaluate_once(self) -> None:
        """One evaluation (the evaluator thread's step; tests call it directly)."""
        _, episodes = self.engine.evaluate()
        if episodes and self.on_episodes is not None:
            self.on_episodes(episodes)
        self._send.set()

    def _evaluate_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.evaluation_interval_s)
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                self.evaluate_once()
                self._last_failure = ""
            except Exception as exc:  # noqa: BLE001 - the next evaluation tries again
                if str(exc) != self._last_failure:
                    log.exception("evaluating alert rules failed; retrying on the next publish")
                self._last_failure = str(exc)
            self._stop.wait(MIN_EVALUATION_GAP_S)

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            wait = SENDER_IDLE_S
            try:
                next_at = self.sender.run_once()
                if next_at is not None:
                    wait = max(0.05, min(wait, (next_at - self.sender.clock()).total_seconds()))
            except Exception:  # noqa: BLE001 - the outbox keeps everything; retry shortly
                log.exception("sending notifications failed; retrying")
            self._send.wait(wait)
            self._send.clear()
