"""The configuration's validator: each problem is one sentence naming the setting and where it
came from (the file, or the environment variable that set it). Problems are collected, not
raised, so a user sees every one of them at once."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from collectors.schedules import MIN_INTERVAL_S, Schedule, cron_problem

# Keys that hold secrets: an error in the file, whatever section they are in.
SECRET_KEYS_IN_FILE = frozenset(
    {
        "key",
        "api_key",
        "api_secret",
        "secret",
        "token",
        "password",
        "db_url",
        "database_url",
        "service_role_key",
        "webhook_url",
    }
)
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def lookup(data: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted key ("probes.http"), or None when it or a parent is absent or a
    parent is not a table."""
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


class Validator:
    def __init__(self, origins: Mapping[str, str], where: str) -> None:
        self.origins = origins
        self.where = where  # the config file, for settings no one set
        self.problems: list[str] = []

    def origin(self, key: str) -> str:
        return self.origins.get(key, self.where)

    def fail(self, key: str, text: str) -> None:
        """'<key> in <origin> <text>.'"""
        self.problems.append(f"{key} in {self.origin(key)} {text}.")

    def problem(self, sentence: str) -> None:
        """A sentence of its own, for what no single key explains (a missing secret)."""
        self.problems.append(sentence)

    def table(self, data: Mapping[str, Any], dotted: str) -> dict[str, Any] | None:
        """The table at `dotted`; None when absent, or (with a problem) when not a table."""
        value = lookup(data, dotted)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(dotted, "must be a table")
            return None
        return value

    def tables(self, data: Mapping[str, Any], dotted: str) -> list[tuple[str, dict[str, Any]]]:
        """(prefix, table) for each entry of an array of tables ([[probes.http]])."""
        value = lookup(data, dotted)
        if not value:
            return []
        if not isinstance(value, list):
            self.fail(dotted, f"must be an array of tables ([[{dotted}]])")
            return []
        out = []
        for i, item in enumerate(value):
            prefix = f"{dotted}[{i}]"
            if isinstance(item, dict):
                out.append((prefix, item))
            else:
                self.fail(prefix, "must be a table")
        return out

    def known(self, t: Mapping[str, Any], prefix: str, allowed: Collection[str]) -> None:
        for k in t:
            if k not in allowed and k.lower() not in SECRET_KEYS_IN_FILE:
                known = ", ".join(sorted(allowed))
                self.fail(f"{prefix}.{k}", f"is not a known setting (known: {known})")

    def string(
        self,
        t: Mapping[str, Any],
        prefix: str,
        key: str,
        default: str | None = None,
        *,
        choices: tuple[str, ...] | None = None,
    ) -> str | None:
        value = t.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{prefix}.{key}", "must be a non-empty string")
            return default
        if choices and value not in choices:
            self.fail(f"{prefix}.{key}", f"must be one of {', '.join(choices)} (got {value!r})")
            return default
        return value.strip()

    def number(
        self,
        t: Mapping[str, Any],
        prefix: str,
        key: str,
        default: float,
        *,
        low: float | None = None,
        high: float | None = None,
    ) -> float:
        value = self._number(t, prefix, key, low, high)
        return default if value is None else value

    def integer(
        self,
        t: Mapping[str, Any],
        prefix: str,
        key: str,
        default: int,
        *,
        low: float | None = None,
        high: float | None = None,
    ) -> int:
        value = self._number(t, prefix, key, low, high)
        return default if value is None else int(value)

    def _number(
        self, t: Mapping[str, Any], prefix: str, key: str, low: float | None, high: float | None
    ) -> float | None:
        """The value as a float; None when absent or wrong (with a problem)."""
        value = t.get(key)
        if value is None:
            return None
        if isinstance(value, str):  # from an environment variable
            try:
                value = float(value)
            except ValueError:
                self.fail(f"{prefix}.{key}", f"must be a number (got {value!r})")
                return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"{prefix}.{key}", f"must be a number (got {value!r})")
            return None
        if (low is not None and value < low) or (high is not None and value > high):
            if high is None:
                bounds = f"at least {low:g}"
            elif low is None:
                bounds = f"at most {high:g}"
            else:
                bounds = f"between {low:g} and {high:g}"
            self.fail(f"{prefix}.{key}", f"must be {bounds} (got {value:g})")
            return None
        return float(value)

    def boolean(self, t: object, prefix: str, key: str, default: bool) -> bool:
        if not isinstance(t, Mapping):
            return default
        value = t.get(key, default)
        if not isinstance(value, bool):
            self.fail(f"{prefix}.{key}", "must be true or false")
            return default
        return value

    def url(
        self,
        t: Mapping[str, Any],
        prefix: str,
        key: str,
        schemes: tuple[str, ...] = ("http", "https"),
    ) -> str | None:
        value = self.string(t, prefix, key)
        if value is None:
            return None
        if not re.match(rf"^({'|'.join(schemes)})://[^\s/]+", value):
            starts = " or ".join(s + "://" for s in schemes)
            self.fail(f"{prefix}.{key}", f"must be a URL starting with {starts} (got {value!r})")
            return None
        return value.rstrip("/")

    def schedule(self, t: Mapping[str, Any], prefix: str, default_s: float) -> Schedule:
        """`schedule` (cron) or `interval` (or the spec's `check_interval`) in seconds, and an
        optional `run_timeout` in seconds."""
        timeout = None
        if "run_timeout" in t:
            timeout = self.integer(t, prefix, "run_timeout", 0, low=1) or None
        if "schedule" in t:
            expr = t["schedule"]
            problem = cron_problem(expr)
            if problem is not None:
                self.fail(
                    f"{prefix}.schedule",
                    f"must be a cron expression like '*/5 * * * *' (got {expr!r}: {problem})",
                )
                return Schedule("interval", default_s, timeout_s=timeout)
            return Schedule("cron", expr=str(expr), timeout_s=timeout)
        key = "interval" if "interval" in t else "check_interval"
        seconds = self.number(t, prefix, key, default_s, low=MIN_INTERVAL_S)
        return Schedule("interval", seconds, timeout_s=timeout)

    def windows(self, t: Mapping[str, Any], prefix: str) -> list[tuple[datetime, datetime]]:
        out = []
        for i, w in enumerate(t.get("maintenance", []) or []):
            key = f"{prefix}.maintenance[{i}]"
            try:
                start = datetime.fromisoformat(str(w["start"]))
                end = datetime.fromisoformat(str(w["end"]))
                if start.tzinfo is None or end.tzinfo is None or end <= start:
                    raise ValueError
                out.append((start, end))
            except (KeyError, TypeError, ValueError):
                self.fail(key, "must be {start = <ISO time with offset>, end = <later ISO time>}")
        return out
