"""Alerting's tables in the control store (data/control.sqlite; schema version 5 in
collectors/control.py): rules written on the Alerts page, every alert's state and history, the
notification outbox and its deliveries, the notification log, silences and acknowledgements.

Why here and not in the warehouse: the app reads only the snapshot and the control store, and
both processes may write here (the app: rules, silences, acknowledgements; the service: states
and notifications). SQLite commits are durable, so a state change and the notification it
causes are written in one transaction: a SIGKILL loses neither, and the sender finds the
notification on its next start. The warehouse would also make every alert wait for the writer.

Notifications follow Alertmanager (dispatch/route.go, notify/dedup_stage.go):
- a state change that matters (an alert starts firing, or a firing one resolves) makes sure its
  group has a *waiting* notification, due after group_wait for a new group, and never sooner
  than group_interval after the group's last one;
- when it is due it is *frozen* (`flush`): the group's firing alerts that are neither silenced,
  in maintenance nor inhibited, and the ones resolved since the last notification, become its
  body, unless nothing changed since the group's last notification (the notification log) and
  repeat_interval has not passed, when it is skipped;
- a frozen notification gets one delivery per receiver, sent in order, retried with backoff.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from analysis.alerts.matchers import Matcher, matcher, matches_all
from analysis.alerts.model import Evidence, Labels, labels_of
from analysis.alerts.states import Change, Instance
from collectors.control import ControlStore, _recovering

Muted = Callable[[Labels, datetime], str | None]
# alert_meta keys of what a rule carries between evaluations (an anomaly rule's detector)
RULE_STATE = "rule_state:"


class AlertInputError(ValueError):
    """A silence, acknowledgement or rule a user must fix (one sentence)."""


def iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat(timespec="microseconds")


def parse_time(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    return datetime.fromisoformat(str(value))


def required_time(value: object) -> datetime:
    """A time from a NOT NULL column."""
    found = parse_time(value)
    if found is None:
        raise ValueError("a required time is empty in the alert store")
    return found


def group_labels(labels: Labels, group_by: Sequence[str]) -> Labels:
    """The labels a notification group is made of ("..." groups by every label)."""
    if "..." in group_by:
        return labels
    mapping = dict(labels)
    return labels_of({k: mapping.get(k, "") for k in group_by})


def group_key(labels: Labels) -> str:
    """Alertmanager's group key form: {}:{name="value",...}."""
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
    return "{}:{" + inner + "}"


def evidence_json(evidence: Evidence | None) -> str | None:
    if evidence is None:
        return None
    return json.dumps(
        {
            "page": evidence.page,
            "text": evidence.text,
            "start": iso(evidence.start),
            "end": iso(evidence.end),
            "focus": dict(evidence.focus),
        }
    )


def evidence_of(text: str | None) -> Evidence | None:
    if not text:
        return None
    d = json.loads(text)
    return Evidence(
        d["page"], d["text"], parse_time(d["start"]), parse_time(d["end"]), labels_of(d["focus"])
    )


@dataclass(frozen=True)
class Timers:
    """How notifications are grouped and paced (Alertmanager's route options)."""

    group_by: tuple[str, ...] = ("alertname",)
    group_wait_s: float = 30.0
    group_interval_s: float = 300.0
    repeat_interval_s: float = 4 * 3600.0
    send_resolved: bool = True


@dataclass(frozen=True)
class Silence:
    id: int
    matchers: tuple[Matcher, ...]
    author: str
    comment: str
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    expired_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at and (
            self.expired_at is None or now < self.expired_at
        )


@dataclass(frozen=True)
class Delivery:
    notification: int
    receiver: str
    attempts: int
    body: dict[str, Any]


def _instance(row: sqlite3.Row) -> Instance:
    return Instance(
        fingerprint=row["fingerprint"],
        rule=row["rule"],
        labels=labels_of(json.loads(row["labels"])),
        state=row["state"],
        episode=row["episode"],
        active_since=parse_time(row["active_since"]),
        fired_at=parse_time(row["fired_at"]),
        resolved_at=parse_time(row["resolved_at"]),
        clear_since=parse_time(row["clear_since"]),
        value=row["value"],
        summary=row["summary"],
        evidence=evidence_of(row["evidence"]),
        inhibited_by=row["inhibited_by"],
        evaluated_at=parse_time(row["evaluated_at"]),
    )


class AlertStore(ControlStore):
    """The control store, with alerting's tables."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)

    # ---- states, history and the outbox (the service) -------------------------------------

    @_recovering
    def load_alerts(self) -> dict[str, Instance]:
        with self._connect() as con:
            rows = con.execute("SELECT * FROM alert_instances").fetchall()
        return {r["fingerprint"]: _instance(r) for r in rows}

    @_recovering
    def commit(
        self,
        alerts: Iterable[Instance],
        changes: Sequence[Change],
        now: datetime,
        timers: Timers,
        replayed: bool = False,
        notify_firing: bool = False,
    ) -> int:
        """Save `alerts` and the history of `changes`, and make sure every group with a change
        that notifies (and every group due for a repeat) has a waiting notification, all in
        one transaction. Replayed history notifies nobody; `notify_firing` schedules the
        groups that are firing (the end of a replay: what still fires is news). Returns the
        notifications scheduled."""
        scheduled = 0
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                for a in alerts:
                    self._save_instance(con, a, timers)
                con.executemany(
                    "INSERT INTO alert_events (at, fingerprint, rule, labels, episode, "
                    "from_state, to_state, value, summary, evidence, inhibited_by, replayed) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            iso(c.at),
                            c.instance.fingerprint,
                            c.instance.rule,
                            json.dumps(dict(c.instance.labels)),
                            c.instance.episode,
                            c.previous,
                            c.instance.state,
                            c.instance.value,
                            c.instance.summary,
                            evidence_json(c.instance.evidence),
                            c.instance.inhibited_by,
                            int(replayed),
                        )
                        for c in changes
                    ],
                )
                groups: dict[str, tuple[Labels, str]] = {}
                if not replayed:
                    for c in changes:
                        if _notifies(c):
                            labels = group_labels(c.instance.labels, timers.group_by)
                            groups.setdefault(group_key(labels), (labels, _reason(c)))
                if notify_firing:
                    for a in alerts:
                        if a.state == "firing":
                            labels = group_labels(a.labels, timers.group_by)
                            groups.setdefault(group_key(labels), (labels, "firing at start"))
                for key, (labels, reason) in groups.items():
                    scheduled += self._schedule(con, key, labels, now, timers, reason)
                if not replayed:
                    scheduled += self._schedule_repeats(con, now, timers)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return scheduled

    @staticmethod
    def _save_instance(con: sqlite3.Connection, a: Instance, timers: Timers) -> None:
        key = group_key(group_labels(a.labels, timers.group_by))
        con.execute(
            "INSERT INTO alert_instances (fingerprint, rule, labels, group_key, state, episode, "
            "active_since, fired_at, resolved_at, clear_since, value, summary, evidence, "
            "inhibited_by, evaluated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (fingerprint) DO UPDATE SET group_key = excluded.group_key, "
            "state = excluded.state, episode = excluded.episode, "
            "active_since = excluded.active_since, fired_at = excluded.fired_at, "
            "resolved_at = excluded.resolved_at, clear_since = excluded.clear_since, "
            "value = excluded.value, summary = excluded.summary, evidence = excluded.evidence, "
            "inhibited_by = excluded.inhibited_by, evaluated_at = excluded.evaluated_at",
            [
                a.fingerprint,
                a.rule,
                json.dumps(dict(a.labels)),
                key,
                a.state,
                a.episode,
                iso(a.active_since),
                iso(a.fired_at),
                iso(a.resolved_at),
                iso(a.clear_since),
                a.value,
                a.summary,
                evidence_json(a.evidence),
                a.inhibited_by,
                iso(a.evaluated_at),
            ],
        )

    @staticmethod
    def _schedule(
        con: sqlite3.Connection,
        key: str,
        labels: Labels,
        now: datetime,
        timers: Timers,
        reason: str,
    ) -> int:
        """A waiting notification for the group, unless it has one: due after group_wait when
        the group has nothing firing notified, and never within group_interval of its last."""
        waiting = con.execute(
            "SELECT 1 FROM alert_outbox WHERE group_key = ? AND status = 'waiting'", [key]
        ).fetchone()
        if waiting is not None:
            return 0
        row = con.execute(
            "SELECT notified, last_sent_at FROM alert_groups WHERE group_key = ?", [key]
        ).fetchone()
        if row is None:
            con.execute(
                "INSERT INTO alert_groups (group_key, labels) VALUES (?, ?)",
                [key, json.dumps(dict(labels))],
            )
        notified = json.loads(row["notified"]) if row else []
        due = now + timedelta(seconds=0 if notified else timers.group_wait_s)
        last = parse_time(row["last_sent_at"]) if row else None
        if last is not None:
            due = max(due, last + timedelta(seconds=timers.group_interval_s))
        con.execute(
            "INSERT INTO alert_outbox (group_key, created_at, due_at, status, reason) "
            "VALUES (?, ?, ?, 'waiting', ?)",
            [key, iso(now), iso(due), reason],
        )
        return 1

    def _schedule_repeats(self, con: sqlite3.Connection, now: datetime, timers: Timers) -> int:
        """Groups still firing whose last notification is repeat_interval old."""
        cutoff = iso(now - timedelta(seconds=timers.repeat_interval_s))
        rows = con.execute(
            "SELECT group_key, labels FROM alert_groups WHERE notified != '[]' "
            "AND last_sent_at <= ? AND group_key NOT IN "
            "(SELECT group_key FROM alert_outbox WHERE status = 'waiting')",
            [cutoff],
        ).fetchall()
        return sum(
            self._schedule(
                con, r["group_key"], labels_of(json.loads(r["labels"])), now, timers, "repeat"
            )
            for r in rows
        )

    @_recovering
    def schedule_unnotified(self, now: datetime, timers: Timers, muted: Muted) -> int:
        """Schedule the groups with a firing alert that was never notified and is not muted
        (any more): a silence or maintenance window ended, or an inhibition did not apply.
        Muted ones wait, without a notification being written for them."""
        scheduled = 0
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                rows = con.execute(
                    "SELECT i.fingerprint, i.episode, i.labels, i.group_key, g.notified "
                    "FROM alert_instances i LEFT JOIN alert_groups g USING (group_key) "
                    "WHERE i.state = 'firing' AND i.inhibited_by IS NULL AND i.group_key NOT IN "
                    "(SELECT group_key FROM alert_outbox WHERE status = 'waiting')"
                ).fetchall()
                silences = self._active_silences(con, now)
                for r in rows:
                    if f"{r['fingerprint']}:{r['episode']}" in json.loads(r["notified"] or "[]"):
                        continue
                    labels = labels_of(json.loads(r["labels"]))
                    if muted(labels, now) or any(matches_all(s.matchers, labels) for s in silences):
                        continue
                    grouped = group_labels(labels, timers.group_by)
                    scheduled += self._schedule(
                        con, r["group_key"], grouped, now, timers, "no longer muted"
                    )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return scheduled

    # ---- freezing due notifications (the sender) ------------------------------------------

    @_recovering
    def flush(
        self,
        now: datetime,
        timers: Timers,
        receivers: Sequence[str],
        muted: Muted,
        describe: Callable[[dict[str, Any]], dict[str, Any]] = lambda body: body,
    ) -> list[int]:
        """Freeze every due waiting notification: its body (the group's alerts as
        `describe` completes them) and a delivery per receiver; or skip it when the group has
        nothing new (Alertmanager's dedup stage). Returns the ids made ready."""
        ready: list[int] = []
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                rows = con.execute(
                    "SELECT id, group_key, reason FROM alert_outbox WHERE status = 'waiting' "
                    "AND due_at <= ? ORDER BY due_at, id",
                    [iso(now)],
                ).fetchall()
                silences = self._active_silences(con, now)
                acked = {
                    (r["fingerprint"], r["episode"])
                    for r in con.execute("SELECT fingerprint, episode FROM alert_acks")
                }
                for row in rows:
                    body = self._freeze(con, row, now, timers, silences, muted, acked)
                    if body is None:
                        continue
                    body = describe(body)
                    con.execute(
                        "UPDATE alert_outbox SET status = 'ready', frozen_at = ?, body = ? "
                        "WHERE id = ?",
                        [iso(now), json.dumps(body), row["id"]],
                    )
                    con.executemany(
                        "INSERT INTO alert_deliveries (notification, receiver, status, "
                        "next_attempt_at) VALUES (?, ?, 'pending', ?)",
                        [(row["id"], r, iso(now)) for r in receivers],
                    )
                    ready.append(int(row["id"]))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return ready

    def _freeze(
        self,
        con: sqlite3.Connection,
        row: sqlite3.Row,
        now: datetime,
        timers: Timers,
        silences: Sequence[Silence],
        muted: Muted,
        acked: set[tuple[str, int]],
    ) -> dict[str, Any] | None:
        key = row["group_key"]
        group = con.execute("SELECT * FROM alert_groups WHERE group_key = ?", [key]).fetchone()
        last = parse_time(group["last_sent_at"]) if group else None
        interval = timedelta(seconds=timers.group_interval_s)
        if last is not None and now < last + interval:  # at most one per group per interval
            con.execute(
                "UPDATE alert_outbox SET due_at = ? WHERE id = ?", [iso(last + interval), row["id"]]
            )
            return None
        notified = set(json.loads(group["notified"])) if group else set()
        members = [
            _instance(r)
            for r in con.execute(
                "SELECT * FROM alert_instances WHERE group_key = ? ORDER BY fingerprint", [key]
            )
        ]
        firing, resolved = [], []
        for a in members:
            tag = f"{a.fingerprint}:{a.episode}"
            if a.state == "firing":
                quiet = a.inhibited_by or any(
                    s.active(now) and matches_all(s.matchers, a.labels) for s in silences
                )
                if not quiet and muted(a.labels, now) is None:
                    firing.append(a)
            elif tag in notified:  # its firing was notified, and it has ended since
                resolved.append(a)
            elif a.state in ("resolved", "inactive") and any(
                t.startswith(f"{a.fingerprint}:") for t in notified
            ):
                resolved.append(a)
        current = {f"{a.fingerprint}:{a.episode}" for a in firing}
        new = current - notified
        unacked = [a for a in firing if (a.fingerprint, a.episode) not in acked]
        repeat = bool(
            last is not None
            and unacked
            and now >= last + timedelta(seconds=timers.repeat_interval_s)
        )
        send = bool(new) or (bool(resolved) and timers.send_resolved) or repeat
        con.execute(
            "UPDATE alert_groups SET notified = ?, last_sent_at = coalesce(?, last_sent_at) "
            "WHERE group_key = ?",
            [json.dumps(sorted(current)), iso(now) if send else None, key],
        )
        if not send:
            con.execute(
                "UPDATE alert_outbox SET status = 'skipped', frozen_at = ? WHERE id = ?",
                [iso(now), row["id"]],
            )
            return None
        labels = json.loads(group["labels"]) if group else {}
        return {
            "id": int(row["id"]),
            "group_key": key,
            "group_labels": labels,
            "status": "firing" if firing else "resolved",
            "reason": "repeat" if repeat and not new and not resolved else row["reason"],
            "created_at": iso(now),
            "alerts": [_alert_body(a, "firing") for a in firing]
            + [_alert_body(a, "resolved") for a in resolved],
        }

    # ---- deliveries ----------------------------------------------------------------------

    @_recovering
    def due_deliveries(self, now: datetime) -> list[Delivery]:
        """For each receiver, its oldest unsent notification if its retry is due: a receiver
        gets its notifications in order, so a later one waits for an earlier one."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT d.notification, d.receiver, d.attempts, d.next_attempt_at, o.body "
                "FROM alert_deliveries d JOIN alert_outbox o ON o.id = d.notification "
                "WHERE d.status = 'pending' AND d.notification = ("
                "  SELECT min(notification) FROM alert_deliveries e "
                "  WHERE e.receiver = d.receiver AND e.status = 'pending') "
                "ORDER BY d.notification"
            ).fetchall()
        return [
            Delivery(r["notification"], r["receiver"], r["attempts"], json.loads(r["body"]))
            for r in rows
            if required_time(r["next_attempt_at"]) <= now
        ]

    @_recovering
    def next_attempt_at(self) -> datetime | None:
        """When the sender next has something to do (a waiting notification or a retry)."""
        with self._connect() as con:
            row = con.execute(
                "SELECT min(t) FROM (SELECT min(due_at) AS t FROM alert_outbox "
                "WHERE status = 'waiting' UNION ALL SELECT min(next_attempt_at) "
                "FROM alert_deliveries WHERE status = 'pending')"
            ).fetchone()
        return parse_time(row[0]) if row else None

    @_recovering
    def mark_sent(self, notification: int, receiver: str, now: datetime) -> None:
        with self._connect() as con:
            con.execute(
                "UPDATE alert_deliveries SET status = 'sent', sent_at = ?, "
                "attempts = attempts + 1, last_error = NULL "
                "WHERE notification = ? AND receiver = ?",
                [iso(now), notification, receiver],
            )

    @_recovering
    def mark_failed(self, notification: int, receiver: str, error: str, retry_at: datetime) -> None:
        with self._connect() as con:
            con.execute(
                "UPDATE alert_deliveries SET attempts = attempts + 1, last_error = ?, "
                "next_attempt_at = ? WHERE notification = ? AND receiver = ?",
                [error, iso(retry_at), notification, receiver],
            )

    # ---- silences, acknowledgements, rules (the app) --------------------------------------

    @staticmethod
    def _active_silences(con: sqlite3.Connection, now: datetime) -> list[Silence]:
        rows = con.execute(
            "SELECT * FROM alert_silences WHERE starts_at <= ? AND ends_at > ? "
            "AND (expired_at IS NULL OR expired_at > ?)",
            [iso(now), iso(now), iso(now)],
        ).fetchall()
        return [_silence(r) for r in rows]

    @_recovering
    def add_silence(
        self,
        matchers: Sequence[tuple[str, str, str]],
        author: str,
        comment: str,
        starts_at: datetime,
        ends_at: datetime,
        now: datetime,
    ) -> int:
        """A silence; AlertInputError says what to fix."""
        if not matchers:
            raise AlertInputError("A silence needs at least one matcher, e.g. alertname=...")
        checked = [matcher(*m) for m in matchers]  # MatcherError is an AlertInputError's kin
        if not author.strip():
            raise AlertInputError("Say who creates the silence (author).")
        if not comment.strip():
            raise AlertInputError("Say why in a comment: it tells the next person.")
        if ends_at <= starts_at or ends_at <= now:
            raise AlertInputError("A silence must end after it starts, and in the future.")
        with self._connect() as con:
            cur = con.execute(
                "INSERT INTO alert_silences (matchers, author, comment, starts_at, ends_at, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    json.dumps([[m.name, m.op, m.value] for m in checked]),
                    author.strip(),
                    comment.strip(),
                    iso(starts_at),
                    iso(ends_at),
                    iso(now),
                ],
            )
        return int(cur.lastrowid or 0)

    @_recovering
    def expire_silence(self, silence_id: int, now: datetime) -> None:
        with self._connect() as con:
            con.execute(
                "UPDATE alert_silences SET expired_at = ? WHERE id = ? AND expired_at IS NULL",
                [iso(now), silence_id],
            )

    @_recovering
    def silences(self) -> list[Silence]:
        with self._connect() as con:
            rows = con.execute("SELECT * FROM alert_silences ORDER BY id DESC").fetchall()
        return [_silence(r) for r in rows]

    @_recovering
    def acknowledge(
        self, fingerprint: str, episode: int, author: str, comment: str, now: datetime
    ) -> None:
        """Stop repeats of this alert's episode (a resolution is still notified)."""
        if not author.strip():
            raise AlertInputError("Say who acknowledges the alert.")
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO alert_acks VALUES (?, ?, ?, ?, ?)",
                [fingerprint, episode, author.strip(), comment.strip(), iso(now)],
            )

    @_recovering
    def save_rule(
        self, name: str, definition: Mapping[str, Any], author: str, revision: int, now: datetime
    ) -> int:
        """Store a rule written on the Alerts page (it replaces a default or file rule of the
        same name); `revision` is the one the editor read (0: none), so a stale save is refused."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            row = con.execute("SELECT revision FROM alert_rules WHERE name = ?", [name]).fetchone()
            current = row["revision"] if row else 0
            if revision != current:
                con.execute("ROLLBACK")
                raise AlertInputError(
                    f"Rule {name!r} was changed since you opened it; reload the page and edit "
                    "it again."
                )
            con.execute(
                "INSERT INTO alert_rules (name, definition, author, updated_at, revision, deleted) "
                "VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (name) DO UPDATE SET "
                "definition = excluded.definition, author = excluded.author, "
                "updated_at = excluded.updated_at, revision = excluded.revision, deleted = 0",
                [name, json.dumps(dict(definition)), author, iso(now), current + 1],
            )
            con.execute("COMMIT")
        return current + 1

    @_recovering
    def delete_rule(self, name: str, now: datetime) -> None:
        """Forget the page's version of a rule: a default or file rule of the name returns."""
        with self._connect() as con:
            con.execute(
                "UPDATE alert_rules SET deleted = 1, updated_at = ?, revision = revision + 1 "
                "WHERE name = ?",
                [iso(now), name],
            )

    @_recovering
    def page_rules(self) -> dict[str, tuple[dict[str, Any], int]]:
        """Rules written on the Alerts page: name -> (definition, revision)."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT name, definition, revision FROM alert_rules WHERE deleted = 0"
            ).fetchall()
        return {r["name"]: (json.loads(r["definition"]), r["revision"]) for r in rows}

    @_recovering
    def rule_revision(self, name: str) -> int:
        with self._connect() as con:
            row = con.execute("SELECT revision FROM alert_rules WHERE name = ?", [name]).fetchone()
        return int(row["revision"]) if row else 0

    # ---- meta ----------------------------------------------------------------------------

    @_recovering
    def meta(self, key: str) -> Any:
        with self._connect() as con:
            row = con.execute("SELECT value FROM alert_meta WHERE key = ?", [key]).fetchone()
        return json.loads(row["value"]) if row else None

    @_recovering
    def set_meta(self, /, **values: Any) -> None:
        with self._connect() as con:
            con.executemany(
                "INSERT INTO alert_meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                "SET value = excluded.value",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    # ---- what rule kinds carry between evaluations -----------------------------------------

    @_recovering
    def rule_states(self, names: Sequence[str]) -> dict[str, Any]:
        """The saved states of these rules (an anomaly rule's detector), by rule name."""
        keys = [RULE_STATE + name for name in names]
        if not keys:
            return {}
        marks = ", ".join("?" for _ in keys)
        with self._connect() as con:
            rows = con.execute(
                f"SELECT key, value FROM alert_meta WHERE key IN ({marks})",  # noqa: S608 - marks only
                keys,
            ).fetchall()
        return {r["key"].removeprefix(RULE_STATE): json.loads(r["value"]) for r in rows}

    def save_rule_states(self, states: Mapping[str, Any]) -> None:
        """Save the states of these rules (one transaction)."""
        if states:
            self.set_meta(**{RULE_STATE + name: value for name, value in states.items()})

    # ---- what the Alerts page shows ------------------------------------------------------

    @_recovering
    def active_alerts(self) -> pd.DataFrame:
        """Firing and pending alerts, most severe and oldest first."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT i.*, a.author AS acked_by, a.comment AS ack_comment "
                "FROM alert_instances i LEFT JOIN alert_acks a "
                "ON a.fingerprint = i.fingerprint AND a.episode = i.episode "
                "WHERE i.state IN ('firing', 'pending') ORDER BY i.state, i.active_since"
            ).fetchall()
        return _frame([dict(r) for r in rows])

    @_recovering
    def episodes(self, start: datetime, end: datetime) -> pd.DataFrame:
        """One row per alert episode that was pending or firing within [start, end): when it
        started, fired and resolved, whether it was replayed from history and inhibited."""
        with self._connect() as con:
            rows = con.execute(
                """
                SELECT fingerprint, episode, any_rule AS rule, labels, started, fired, ended,
                       summary, evidence, inhibited_by, replayed, last_state
                FROM (
                  SELECT fingerprint, episode, max(rule) AS any_rule, max(labels) AS labels,
                         min(at) AS started,
                         min(CASE WHEN to_state = 'firing' THEN at END) AS fired,
                         max(CASE WHEN to_state IN ('resolved', 'inactive') THEN at END) AS ended,
                         max(CASE WHEN to_state = 'firing' THEN summary END) AS summary,
                         max(CASE WHEN to_state = 'firing' THEN evidence END) AS evidence,
                         max(inhibited_by) AS inhibited_by, max(replayed) AS replayed,
                         (SELECT to_state FROM alert_events l WHERE l.fingerprint = e.fingerprint
                            AND l.episode = e.episode ORDER BY l.id DESC LIMIT 1) AS last_state
                  FROM alert_events e GROUP BY fingerprint, episode
                )
                WHERE started < ? AND (ended IS NULL OR ended >= ?)
                ORDER BY started
                """,
                [iso(end), iso(start)],
            ).fetchall()
        return _frame([dict(r) for r in rows])

    @_recovering
    def history(self, fingerprint: str) -> pd.DataFrame:
        with self._connect() as con:
            rows = con.execute(
                "SELECT at, episode, from_state, to_state, value, summary, replayed "
                "FROM alert_events WHERE fingerprint = ? ORDER BY id",
                [fingerprint],
            ).fetchall()
        return pd.DataFrame([dict(r) for r in rows])

    @_recovering
    def notifications(self, limit: int = 50) -> pd.DataFrame:
        """The latest notifications with each receiver's delivery (never the receiver's URL)."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT o.id, o.group_key, o.status, o.reason, o.created_at, o.due_at, "
                "o.frozen_at, d.receiver, d.status AS delivery, d.attempts, d.sent_at, "
                "d.last_error FROM alert_outbox o LEFT JOIN alert_deliveries d "
                "ON d.notification = o.id ORDER BY o.id DESC LIMIT ?",
                [limit],
            ).fetchall()
        return pd.DataFrame([dict(r) for r in rows])


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in ("labels",):
        if column in frame:
            frame[column] = frame[column].map(lambda text: json.loads(text) if text else {})
    return frame


def _silence(r: sqlite3.Row) -> Silence:
    return Silence(
        r["id"],
        tuple(matcher(*m) for m in json.loads(r["matchers"])),
        r["author"],
        r["comment"],
        required_time(r["starts_at"]),
        required_time(r["ends_at"]),
        required_time(r["created_at"]),
        parse_time(r["expired_at"]),
    )


def _notifies(change: Change) -> bool:
    to, before = change.instance.state, change.previous
    return (to == "firing" and before != "firing") or (before == "firing" and to != "firing")


def _reason(change: Change) -> str:
    verb = "started firing" if change.instance.state == "firing" else "resolved"
    return f"{change.instance.rule} {verb}"


def _alert_body(a: Instance, status: Literal["firing", "resolved"]) -> dict[str, Any]:
    return {
        "status": status,
        "fingerprint": a.fingerprint,
        "episode": a.episode,
        "rule": a.rule,
        "labels": dict(a.labels),
        "summary": a.summary,
        "value": a.value,
        "starts_at": iso(a.fired_at or a.active_since),
        "ends_at": iso(a.resolved_at) if status == "resolved" else None,
        "evidence": json.loads(evidence_json(a.evidence) or "null"),
    }
