"""The sender: freezes due notifications and delivers them, on a thread of its own, so a slow
or failing receiver never holds up evaluation, collection or publishing.

Each receiver gets its notifications in the order they were frozen; a failed delivery is
retried after 1, 2, 4 ... seconds (at most BACKOFF_MAX_S apart) and the ones after it wait, so
a webhook that was down receives everything once it is back, in order. A delivery is marked
sent after the receiver accepted it: a crash in between sends it again on restart (with the
same Idempotency-Key), a crash before sends it then; none is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from analysis.alerts.model import Labels
from collectors.alerts.delivery import DeliveryError, Receiver
from collectors.alerts.settings import AlertSettings, in_maintenance
from collectors.alerts.store import AlertStore, Timers

log = logging.getLogger(__name__)
BACKOFF_S = 1.0
BACKOFF_MAX_S = 300.0
# Deliveries a receiver may take in one pass before the others get a turn.
BATCH = 50


def backoff(attempts: int) -> timedelta:
    """The wait before retrying a delivery that has failed `attempts` times (>= 1)."""
    return timedelta(seconds=min(BACKOFF_MAX_S, BACKOFF_S * 2 ** max(0, attempts - 1)))


class Sender:
    def __init__(
        self,
        store: AlertStore,
        settings: AlertSettings,
        timers: Timers,
        receivers: Sequence[Receiver],
        clock: Callable[[], datetime],
        descriptions: Callable[[], Mapping[str, str]] = dict,
    ) -> None:
        self.store = store
        self.settings = settings
        self.timers = timers
        self.receivers = {r.name: r for r in receivers}
        self.clock = clock
        self.descriptions = descriptions
        self._last_error: dict[str, str] = {}

    def _muted(self, labels: Labels, now: datetime) -> str | None:
        return in_maintenance(self.settings.maintenance, labels, now)

    def _describe(self, body: dict[str, Any]) -> dict[str, Any]:
        """Complete each alert of a notification with its rule's description and its link."""
        described = self.descriptions()
        base = self.settings.external_url.rstrip("/")
        for alert in body["alerts"]:
            alert["description"] = described.get(alert["rule"], "")
            alert["url"] = f"{base}/alerts?alert={alert['fingerprint']}"
        return body

    def run_once(self) -> datetime | None:
        """Freeze what is due, deliver what can be; when there is something to do next."""
        now = self.clock()
        self.store.schedule_unnotified(now, self.timers, self._muted)
        self.store.flush(now, self.timers, sorted(self.receivers), self._muted, self._describe)
        for _ in range(BATCH):
            due = self.store.due_deliveries(self.clock())
            if not due:
                break
            delivered = False
            for delivery in due:
                delivered |= self._deliver(
                    delivery.notification, delivery.receiver, delivery.attempts, delivery.body
                )
            if not delivered:
                break
        return self.store.next_attempt_at()

    def _deliver(self, notification: int, name: str, attempts: int, body: dict[str, Any]) -> bool:
        receiver = self.receivers.get(name)
        try:
            if receiver is None:
                raise DeliveryError(f"the receiver {name!r} is no longer configured")
            receiver.send(body)
        except DeliveryError as exc:
            retry = backoff(attempts + 1)
            self.store.mark_failed(notification, name, str(exc), self.clock() + retry)
            if self._last_error.get(name) != str(exc):  # one line per distinct failure
                log.warning(
                    "notification %d to %s failed: %s; retrying with backoff",
                    notification,
                    name,
                    exc,
                )
            self._last_error[name] = str(exc)
            return False
        self.store.mark_sent(notification, name, self.clock())
        if self._last_error.pop(name, None) is not None:
            log.info("notifications to %s are delivered again", name)
        return True
