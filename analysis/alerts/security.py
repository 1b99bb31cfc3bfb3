"""Security rules: the Security page's detections (analysis.security), alerting while an attack
goes on and resolving `quiet` after its last attempt.

- brute_force: failed logins per account (fail2ban's rule: `attempts` within `window`),
  labelled by account, or per IP with by = "ip" (an IP that fails on many accounts is
  credential stuffing or spraying, reported by those rules instead).
- credential_stuffing: one IP failing on at least `accounts` accounts within `window`.
- password_spraying: one IP, many accounts, few attempts each, below the stuffing rate.
- api_abuse: an API user (or IP) far above its own daily history (robust z-score); it holds
  from the busy hours' start until `quiet` after they end.

A replay of the past finds each detection once over the whole span, then checks around it at
every step, exactly as the service would have (each check sees only what was there by then).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from analysis import security
from analysis.alerts.model import (
    Context,
    Evidence,
    Param,
    Reading,
    Rule,
    RuleKind,
    Timeline,
    labels_of,
    steps,
)

DETECTIONS = ("brute_force", "credential_stuffing", "password_spraying", "api_abuse")
# How far back each check looks: enough for the detector's own windows (api_abuse reads the
# day so far against the days before it).
LOOKBACK = {
    "brute_force": timedelta(hours=1),
    "credential_stuffing": timedelta(hours=1),
    "password_spraying": timedelta(hours=2),
}

PARAMS = (
    Param("detection", "choice", "What to detect.", required=True, choices=DETECTIONS),
    Param(
        "quiet",
        "duration",
        "The attack is over this long after its last attempt.",
        "5m",
        low=60,
    ),
    Param("by", "choice", "Count per account or per IP.", choices=("account", "ip")),
    Param(
        "attempts",
        "integer",
        "brute_force: failed logins within the window (the Security page's default: 5).",
        low=2,
    ),
    Param(
        "accounts",
        "integer",
        "credential_stuffing / password_spraying: distinct accounts (default 20 / 10).",
        low=2,
    ),
    Param(
        "window",
        "duration",
        "The detector's sliding window (default: the Security page's).",
        low=60,
    ),
)


def _window_s(rule: Rule) -> float | None:
    value = rule.param("window")
    return None if value is None else float(value)


def _detect(ctx: Context, rule: Rule, start: datetime, end: datetime) -> list[security.Detection]:
    detection = str(rule.param("detection"))
    window = _window_s(rule)
    if detection == "brute_force":
        by = "ip" if rule.param("by") == "ip" else "user_id"
        found = security.failed_login_bursts(
            ctx.con,
            start,
            end,
            by=by,
            max_failed_logins=int(rule.param("attempts", 5)),
            failed_login_window_s=window or 300,
        ).items
        if by == "ip":  # many accounts from one IP is stuffing, its own rule's alert
            stuffing = security.credential_stuffing(ctx.con, start, end).items
            found = [d for d in found if not any(_overlap(d, s) for s in stuffing)]
        return found
    if detection == "credential_stuffing":
        return security.credential_stuffing(
            ctx.con, start, end, int(rule.param("accounts", 20)), window or 600
        ).items
    if detection == "password_spraying":
        return security.password_spraying(
            ctx.con, start, end, int(rule.param("accounts", 10)), window_s=window or 3600
        ).items
    by = "ip" if rule.param("by") == "ip" else "user_id"
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    return security.api_usage_anomalies(ctx.con, day, end, by=by).items


def _overlap(a: security.Detection, b: security.Detection) -> bool:
    return a.entity == b.entity and a.start <= b.end and b.start <= a.end


def _summary(detection: str, d: security.Detection) -> str:
    who = {
        "brute_force": "Brute force on",
        "credential_stuffing": "Credential stuffing from",
        "password_spraying": "Password spraying from",
        "api_abuse": "API use far above its own history by",
    }[detection]
    return f"{who} {d.entity}: {d.detail} (from {d.start:%Y-%m-%d %H:%M} to {d.end:%H:%M} UTC)."


def _label_name(rule: Rule) -> str:
    detection = str(rule.param("detection"))
    if detection in ("credential_stuffing", "password_spraying"):
        return "ip"
    if detection == "api_abuse":
        return "ip" if rule.param("by") == "ip" else "user"
    return "ip" if rule.param("by") == "ip" else "account"


def check(ctx: Context, rule: Rule) -> list[Reading]:
    detection = str(rule.param("detection"))
    quiet = timedelta(seconds=float(rule.param("quiet", 300)))
    lookback = LOOKBACK.get(detection, timedelta(0))
    out = []
    for d in _detect(ctx, rule, ctx.now - lookback, ctx.now):
        # an episode's end is its last flagged attempt; api_abuse's, its last busy hour's end
        if not (d.start <= ctx.now < d.end + quiet):
            continue
        out.append(
            Reading(
                labels_of({_label_name(rule): d.entity}),
                "breach",
                float(d.count),
                _summary(detection, d),
                Evidence(
                    "security",
                    f"The {len(d.evidence):,} rows behind the {detection.replace('_', ' ')} "
                    f"detection for {d.entity}.",
                    d.start,
                    d.end,
                ),
            )
        )
    return out


def history(ctx: Context, rule: Rule, start: datetime, end: datetime) -> Timeline:
    step = timedelta(seconds=rule.every_s)
    detection = str(rule.param("detection"))
    quiet = timedelta(seconds=float(rule.param("quiet", 300)))
    margin = step if detection != "api_abuse" else timedelta(hours=1)
    moments: set[datetime] = set()
    for d in _detect(ctx, rule, start, end):
        moments.update(steps(max(start, d.start - margin), min(end, d.end + quiet + margin), step))
    out: dict[datetime, list[Reading]] = {}
    for at in sorted(moments):
        found = check(ctx.at(at), rule)
        if found:
            out[at] = found
    return Timeline(step, out)


def problems(params: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[str]:
    detection = params.get("detection")
    if params.get("by") == "ip" and detection in ("credential_stuffing", "password_spraying"):
        return [f"by is always the IP for {detection}; remove it"]
    if params.get("attempts") is not None and detection != "brute_force":
        return ["attempts only applies to detection = 'brute_force'"]
    return []


def lookback(rule: Rule) -> timedelta | None:
    """api_abuse compares with four weeks of history; the others look back an hour or two."""
    return LOOKBACK.get(str(rule.param("detection")))


SECURITY = RuleKind(
    "security",
    "Security detection",
    "Brute force, credential stuffing, password spraying or API abuse, while it goes on.",
    PARAMS,
    check,
    history,
    problems,
    lookback=lookback,
)
