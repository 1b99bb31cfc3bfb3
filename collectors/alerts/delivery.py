"""Where notifications go: the specification's three alert handlers.

- log: every alert is logged (Python logging, at its severity), always on.
- webhook: ALERT_WEBHOOK_URL (a secret), as Alertmanager's webhook body (version 4,
  prometheus.io/docs/alerting/latest/configuration/#webhook_config) or a Slack incoming-webhook
  message (`webhook_format`; "auto" picks Slack for hooks.slack.com).
- handler: a custom handler, "package.module:function", called once per alert with an object
  shaped like the SDK's Alert (title, message, severity, source, key, details, timestamp), so a
  handler written for `health_monitor.add_alert_handler` works here too.

A receiver raises DeliveryError with a sentence that never holds the webhook URL (it may carry
a token): the sentence is stored, shown on the Alerts page and logged.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from analysis.untrusted import visible

log = logging.getLogger("collectors.alerts")
ALERTMANAGER_ZERO_TIME = "0001-01-01T00:00:00Z"  # what Alertmanager sends for an unknown end
LEVELS = {
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class DeliveryError(Exception):
    """A delivery that failed; its message is safe to store, show and log."""


class Receiver(Protocol):
    name: str

    def describe(self) -> str: ...

    def send(self, notification: Mapping[str, Any]) -> None: ...


def rfc3339(value: str | None) -> str:
    """A stored naive-UTC time as RFC 3339 with Z; Alertmanager's zero time for none."""
    if not value:
        return ALERTMANAGER_ZERO_TIME
    t = datetime.fromisoformat(value).replace(tzinfo=UTC)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _common(items: list[dict[str, str]]) -> dict[str, str]:
    """The pairs every mapping shares (Alertmanager's commonLabels / commonAnnotations)."""
    if not items:
        return {}
    first = items[0]
    return {k: v for k, v in first.items() if all(i.get(k) == v for i in items[1:])}


def alert_annotations(alert: Mapping[str, Any]) -> dict[str, str]:
    out = {"summary": str(alert.get("summary") or "")}
    if alert.get("description"):
        out["description"] = str(alert["description"])
    evidence = alert.get("evidence") or {}
    if evidence.get("text"):
        out["evidence"] = str(evidence["text"])
    if alert.get("value") is not None:
        out["value"] = f"{alert['value']:g}"
    return out


def alertmanager_body(
    notification: Mapping[str, Any], receiver: str, external_url: str
) -> dict[str, Any]:
    """Alertmanager's webhook body, version 4, field by field as documented."""
    alerts = [
        {
            "status": a["status"],
            "labels": dict(a["labels"]),
            "annotations": alert_annotations(a),
            "startsAt": rfc3339(a.get("starts_at")),
            "endsAt": rfc3339(a.get("ends_at")),
            "generatorURL": str(a.get("url") or external_url),
            "fingerprint": a["fingerprint"],
        }
        for a in notification["alerts"]
    ]
    return {
        "version": "4",
        "groupKey": notification["group_key"],
        "truncatedAlerts": 0,
        "status": notification["status"],
        "receiver": receiver,
        "groupLabels": dict(notification["group_labels"]),
        "commonLabels": _common([a["labels"] for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": external_url,
        "alerts": alerts,
    }


def slack_escape(text: object) -> str:
    """Slack's mrkdwn escaping: &, < and > only (api.slack.com "Formatting text"), which also
    disarms <!channel> mentions and <url|links> written into alert text."""
    return visible(text, 1500).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(notification: Mapping[str, Any], external_url: str) -> dict[str, Any]:
    """A Slack incoming-webhook message: a fallback `text` and one section block per alert."""
    status = str(notification["status"]).upper()
    alerts = notification["alerts"]
    names = sorted({a["labels"].get("alertname", "") for a in alerts})
    title = f"[{status}] {', '.join(names)} ({len(alerts)} alert{'s' if len(alerts) != 1 else ''})"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": visible(title, 150)}}
    ]
    for a in alerts[:40]:  # Slack accepts at most 50 blocks
        icon = ":white_check_mark:" if a["status"] == "resolved" else ":rotating_light:"
        severity = a["labels"].get("severity", "")
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"{icon} *{slack_escape(a['labels'].get('alertname', ''))}* "
                    f"({slack_escape(severity)}, {a['status']})\n{slack_escape(a.get('summary'))}",
                },
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"<{external_url}/alerts|Open the Alerts page>"}
            ],
        }
    )
    return {"text": slack_escape(title), "blocks": blocks}


class LogReceiver:
    name = "log"

    def describe(self) -> str:
        return "the workbench's log"

    def send(self, notification: Mapping[str, Any]) -> None:
        for a in notification["alerts"]:
            level = LEVELS.get(a["labels"].get("severity", ""), logging.WARNING)
            if a["status"] == "resolved":
                level = logging.INFO
            # visible(): an error message quoted in a summary cannot forge log lines
            log.log(
                level,
                "ALERT [%s] %s %s: %s",
                a["labels"].get("severity", "").upper(),
                visible(a["labels"].get("alertname", ""), 100),
                a["status"],
                visible(a.get("summary"), 1000).replace("\n", " "),
            )


class WebhookReceiver:
    """POSTs each notification to ALERT_WEBHOOK_URL. `transport` is the tests' seam."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        fmt: str = "auto",
        external_url: str = "http://localhost:8501",
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._url = url
        host = urlsplit(url).hostname or ""
        self.format = (
            fmt if fmt != "auto" else ("slack" if host == "hooks.slack.com" else "alertmanager")
        )
        self.external_url = external_url
        self._client = httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False)

    def __repr__(self) -> str:
        return f"WebhookReceiver(ALERT_WEBHOOK_URL, {self.format})"

    def describe(self) -> str:
        return f"the webhook in ALERT_WEBHOOK_URL ({self.format} format)"

    def body(self, notification: Mapping[str, Any]) -> dict[str, Any]:
        if self.format == "slack":
            return slack_body(notification, self.external_url)
        return alertmanager_body(notification, "workbench", self.external_url)

    def send(self, notification: Mapping[str, Any]) -> None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "voice-workbench-alerts",
            # the same notification retried after a crash carries the same key
            "Idempotency-Key": f"workbench-notification-{notification['id']}",
        }
        try:
            response = self._client.post(
                self._url, content=json.dumps(self.body(notification)), headers=headers
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"the webhook could not be reached ({type(exc).__name__})"
            ) from None
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"the webhook answered HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()


@dataclass
class HandlerAlert:
    """The SDK's Alert shape (collectors/instrumentation/alerts.py), for custom handlers."""

    title: str
    message: str
    severity: str = "warning"
    source: str = "workbench"
    key: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    timestamp: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"[{self.severity.upper()}] {self.source}: {self.title} - {self.message}"


def handler_alerts(notification: Mapping[str, Any]) -> list[HandlerAlert]:
    out = []
    for a in notification["alerts"]:
        labels = dict(a["labels"])
        when = a.get("ends_at") if a["status"] == "resolved" else a.get("starts_at")
        stamp = datetime.fromisoformat(when).replace(tzinfo=UTC).timestamp() if when else 0.0
        title = labels.get("alertname", "")
        out.append(
            HandlerAlert(
                title=f"{title} resolved" if a["status"] == "resolved" else title,
                message=str(a.get("summary") or ""),
                severity=labels.get("severity", "warning"),
                source="workbench",
                key=a["fingerprint"],
                details={
                    "status": a["status"],
                    "labels": labels,
                    "annotations": alert_annotations(a),
                    "starts_at": a.get("starts_at"),
                    "ends_at": a.get("ends_at"),
                    "episode": a.get("episode"),
                    "group_key": notification["group_key"],
                    "notification": notification["id"],
                    "url": a.get("url"),
                },
                timestamp=stamp,
            )
        )
    return out


class HandlerReceiver:
    """A custom handler, imported when first used."""

    name = "handler"

    def __init__(self, entry: str, function: Callable[[HandlerAlert], Any] | None = None) -> None:
        self.entry = entry
        self._function = function

    def describe(self) -> str:
        return f"the handler {self.entry}"

    def _resolve(self) -> Callable[[HandlerAlert], Any]:
        if self._function is None:
            module, _, name = self.entry.partition(":")
            try:
                self._function = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError) as exc:
                raise DeliveryError(
                    f"the handler {self.entry} could not be imported ({exc})"
                ) from None
        return self._function

    def send(self, notification: Mapping[str, Any]) -> None:
        function = self._resolve()
        for alert in handler_alerts(notification):
            try:
                function(alert)
            except Exception as exc:  # noqa: BLE001 - the handler's own failure, retried later
                raise DeliveryError(
                    f"the handler {self.entry} raised {type(exc).__name__}"
                ) from None
