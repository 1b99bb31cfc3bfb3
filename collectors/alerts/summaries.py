"""What the Alerts page and the Overview show, read from the control store, and the page's
writes (rules, silences, acknowledgements) put into the store's terms. The page file only lays
these out."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from analysis.alerts.evaluation import check_rule
from analysis.alerts.kinds import KINDS
from analysis.alerts.matchers import Matcher, MatcherError, matches_all, parse_matcher
from analysis.alerts.model import Reading, Rule, describe_duration
from analysis.metrics import Metric
from collectors.alerts.engine import context
from collectors.alerts.settings import rule_from_definition
from collectors.alerts.store import AlertInputError, AlertStore, Silence, parse_time

SEVERITY_ORDER = {"critical": 0, "error": 1, "warning": 2, "info": 3}
SEVERITY_COLOURS = {
    "critical": "#d62728",
    "error": "#ff7f0e",
    "warning": "#bcbd22",
    "info": "#1f77b4",
}
HIDDEN_LABELS = ("alertname", "severity")


def label_text(labels: Mapping[str, str]) -> str:
    """The labels that tell alerts of one rule apart, as name=value pairs."""
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in HIDDEN_LABELS)


@dataclass(frozen=True)
class FiringStrip:
    """The Overview's line: how many alerts fire, and the first few."""

    firing: int
    pending: int
    critical: int
    lines: tuple[str, ...]


def firing_strip(store: AlertStore, limit: int = 3) -> FiringStrip:
    active = store.active_alerts()
    if active.empty:
        return FiringStrip(0, 0, 0, ())
    firing = active[active["state"] == "firing"].copy()
    firing["order"] = firing["labels"].map(
        lambda labels: SEVERITY_ORDER.get(labels.get("severity", ""), 9)
    )
    firing = firing.sort_values(["order", "fired_at"])
    lines = tuple(
        f"{r['rule']} ({label_text(r['labels']) or r['labels'].get('severity', '')})"
        + (" — inhibited" if isinstance(r["inhibited_by"], str) else "")
        for r in firing.head(limit).to_dict("records")
    )
    critical = int((firing["order"] == 0).sum())
    return FiringStrip(len(firing), int((active["state"] == "pending").sum()), critical, lines)


def muted_by(labels: Mapping[str, str], silences: Sequence[Silence], now: datetime) -> str | None:
    for s in silences:
        if s.active(now) and matches_all(s.matchers, labels):
            return f"silence {s.id} by {s.author}"
    return None


def active_table(store: AlertStore, now: datetime) -> pd.DataFrame:
    """Firing and pending alerts with why each is or is not notified."""
    active = store.active_alerts()
    if active.empty:
        return active
    silences = store.silences()
    rows = []
    for r in active.to_dict("records"):
        if isinstance(r["inhibited_by"], str):
            quiet = "inhibited"
        else:
            quiet = muted_by(r["labels"], silences, now) or ""
        acked = f"acknowledged by {r['acked_by']}" if isinstance(r["acked_by"], str) else ""
        rows.append(
            {
                "severity": r["labels"].get("severity", ""),
                "state": r["state"],
                "alert": r["rule"],
                "labels": label_text(r["labels"]),
                "since": parse_time(r["fired_at"] if r["state"] == "firing" else r["active_since"]),
                "value": r["value"],
                "summary": r["summary"],
                "muted": quiet,
                "acknowledged": acked,
                "fingerprint": r["fingerprint"],
                "episode": r["episode"],
                "evidence": json.loads(r["evidence"]) if isinstance(r["evidence"], str) else None,
            }
        )
    frame = pd.DataFrame(rows)
    frame["order"] = frame["severity"].map(lambda s: SEVERITY_ORDER.get(s, 9))
    return (
        frame.sort_values(["state", "order", "since"]).drop(columns="order").reset_index(drop=True)
    )


def episodes_table(store: AlertStore, start: datetime, end: datetime) -> pd.DataFrame:
    """Alert episodes in [start, end), newest first, each with whether it was notified."""
    frame = store.episodes(start, end)
    if frame.empty:
        return frame
    frame["severity"] = frame["labels"].map(lambda labels: labels.get("severity", ""))
    frame["labels_text"] = frame["labels"].map(label_text)
    for column in ("started", "fired", "ended"):
        frame[column] = pd.to_datetime(frame[column])
    frame["notified"] = frame.apply(_notified_text, axis=1)
    frame["evidence"] = frame["evidence"].map(
        lambda e: json.loads(e) if isinstance(e, str) else None
    )
    return frame.sort_values("started", ascending=False).reset_index(drop=True)


def _notified_text(row: pd.Series) -> str:
    if pd.isna(row["fired"]):
        return "no (never fired)"
    if row["replayed"]:
        return "no (replayed from history)"
    if isinstance(row["inhibited_by"], str):
        return "no (inhibited)"
    return "yes"


def timeline_figure(episodes: pd.DataFrame, start: datetime, end: datetime) -> go.Figure:
    """One row per alert, a bar per episode: thin while pending, thick while firing."""
    fig = go.Figure()
    if episodes.empty:
        return fig
    rows = episodes.assign(
        row=episodes["rule"] + episodes["labels_text"].map(lambda t: f" ({t})" if t else "")
    )
    for r in rows.to_dict("records"):
        colour = SEVERITY_COLOURS.get(r["severity"], "#7f7f7f")
        until = r["ended"] if not pd.isna(r["ended"]) else pd.Timestamp(end)
        fired = r["fired"] if not pd.isna(r["fired"]) else until
        hover = f"{r['rule']}: {r['labels_text']}<br>{r['notified']}"
        if fired > r["started"]:
            fig.add_trace(
                go.Scatter(
                    x=[r["started"], fired], y=[r["row"], r["row"]], mode="lines",
                    line={"color": colour, "width": 3, "dash": "dot"},
                    hovertext=hover, hoverinfo="text", showlegend=False,
                )
            )  # fmt: skip
        if not pd.isna(r["fired"]):
            fig.add_trace(
                go.Scatter(
                    x=[fired, until], y=[r["row"], r["row"]], mode="lines+markers",
                    line={"color": colour, "width": 10},
                    opacity=0.45 if r["notified"] != "yes" else 1.0,
                    hovertext=hover, hoverinfo="text", showlegend=False,
                )
            )  # fmt: skip
    fig.update_layout(
        title="Alerts over time (thin: pending; faded: not notified)",
        height=max(260, 60 + 28 * rows["row"].nunique()),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        xaxis={"range": [start, end]},
        yaxis={"autorange": "reversed"},
    )
    return fig


# ---- rules ---------------------------------------------------------------------------------


def rules_table(store: AlertStore) -> pd.DataFrame:
    """The rules the service has in effect, as it last announced them."""
    rules = store.meta("rules") or []
    problems = store.meta("rule_errors") or {}
    rows = [
        {
            "name": r["name"],
            "kind": r["kind"],
            "severity": r.get("severity", ""),
            "enabled": bool(r.get("enabled", True)),
            "from": {
                "default": "built-in default",
                "file": "workbench.toml",
                "app": "this page",
            }.get(r.get("origin", ""), r.get("origin", "")),
            "for": describe_duration(float(r.get("for", 0))),
            "every": describe_duration(float(r.get("every", 60))),
            "description": r.get("description", ""),
            "error": problems.get(r["name"], ""),
        }
        for r in rules
    ]
    return pd.DataFrame(rows)


def rule_text(definition: Mapping[str, Any]) -> str:
    """A rule as TOML (the [[alerts.rules]] body), for the page's editor."""
    lines = []
    for key, value in definition.items():
        if key == "origin":
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def rule_template(kind: str) -> str:
    """A new rule of `kind` with its parameters at their defaults (required ones to fill)."""
    lines = [f'name = "my_{kind}_rule"', f'kind = "{kind}"', 'severity = "warning"', 'for = "5m"']
    for param in KINDS[kind].params:
        if param.default is not None:
            lines.append(f"{param.name} = {_toml_value(param.default)}  # {param.help}")
        elif param.required:
            lines.append(f"# {param.name} = ...  (required) {param.help}")
        else:
            lines.append(f"# {param.name} = ...  {param.help}")
    return "\n".join(lines)


def parse_rule_text(
    text: str, metrics: Mapping[str, Metric]
) -> tuple[Rule | None, dict[str, Any], list[str]]:
    """The editor's TOML as a rule: (rule, definition, problems), one sentence per problem."""
    try:
        definition = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, {}, [f"The rule is not valid TOML: {exc}."]
    rule, problems = rule_from_definition(definition, metrics)
    return rule, definition, problems


def save_rule(store: AlertStore, definition: Mapping[str, Any], author: str, now: datetime) -> int:
    name = str(definition.get("name", ""))
    return store.save_rule(name, definition, author, store.rule_revision(name), now)


def rule_check_now(
    store: AlertStore, con: Any, rule: Rule, metrics: Mapping[str, Metric], now: datetime
) -> pd.DataFrame:
    """Would `rule` fire now, and on what: its readings on the app's snapshot."""
    readings: list[Reading] = check_rule(context(store, con, now, metrics), rule)
    return pd.DataFrame(
        [
            {
                "labels": ", ".join(f"{k}={v}" for k, v in r.labels) or "(none)",
                "level": "breach" if r.level == "breach" else "holds a firing alert",
                "value": r.value,
                "summary": r.summary,
            }
            for r in readings
        ],
        columns=["labels", "level", "value", "summary"],
    )


# ---- silences ------------------------------------------------------------------------------


def parse_matchers(text: str) -> list[Matcher]:
    """One matcher per line or comma; AlertInputError names the bad one."""
    out = []
    for part in text.replace(",", "\n").splitlines():
        if part.strip():
            try:
                out.append(parse_matcher(part.strip()))
            except MatcherError as exc:
                raise AlertInputError(str(exc)) from None
    return out


def matchers_for(labels: Mapping[str, str]) -> str:
    """The matchers that silence exactly one alert (its rule and its own labels)."""
    keep = {k: v for k, v in labels.items() if k != "severity"}
    return "\n".join(f'{k}="{v}"' for k, v in sorted(keep.items()))


def create_silence(
    store: AlertStore,
    matchers_text: str,
    author: str,
    comment: str,
    hours: float,
    now: datetime,
    starts_in_hours: float = 0.0,
) -> int:
    matchers = parse_matchers(matchers_text)
    starts = now + timedelta(hours=starts_in_hours)
    return store.add_silence(
        [(m.name, m.op, m.value) for m in matchers],
        author,
        comment,
        starts,
        starts + timedelta(hours=hours),
        now,
    )


def silences_table(store: AlertStore, now: datetime) -> pd.DataFrame:
    rows = [
        {
            "id": s.id,
            "matchers": ", ".join(str(m) for m in s.matchers),
            "author": s.author,
            "comment": s.comment,
            "starts": s.starts_at,
            "ends": s.expired_at if s.expired_at and s.expired_at < s.ends_at else s.ends_at,
            "state": "active" if s.active(now) else ("pending" if s.starts_at > now else "expired"),
        }
        for s in store.silences()
    ]
    return pd.DataFrame(
        rows, columns=["id", "matchers", "author", "comment", "starts", "ends", "state"]
    )
