"""Label matchers, as Alertmanager's silences and inhibition rules use them
(prometheus/alertmanager `pkg/labels/matcher.go`): `=`, `!=`, `=~` and `!~`, regular
expressions anchored at both ends. A label that is absent matches as the empty string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from analysis.alerts.model import Labels

Op = Literal["=", "!=", "=~", "!~"]
OPS: tuple[Op, ...] = ("=", "!=", "=~", "!~")
_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


class MatcherError(ValueError):
    """A matcher a user must fix (one sentence)."""


@dataclass(frozen=True)
class Matcher:
    name: str
    op: Op
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        have = labels.get(self.name, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        found = re.fullmatch(self.value, have) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


def matcher(name: str, op: str, value: str) -> Matcher:
    """A checked matcher; MatcherError says what is wrong."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
        raise MatcherError(f"{name!r} is not a label name (letters, digits and _).")
    if op not in ("=", "!=", "=~", "!~"):
        raise MatcherError(f"{op!r} is not a matcher operator; use one of {', '.join(OPS)}.")
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise MatcherError(f"{value!r} is not a regular expression ({exc}).") from None
    return Matcher(name, cast(Op, op), value)


def parse_matcher(text: str) -> Matcher:
    """'alertname="dependency_down"', 'target=~"supa.*"' (quotes optional)."""
    found = _MATCHER.match(text or "")
    if found is None:
        raise MatcherError(
            f"{text!r} is not a matcher; write name=value, name!=value, name=~regex or name!~regex."
        )
    return matcher(found.group(1), found.group(2), found.group(3))


def matches_all(matchers: Iterable[Matcher], labels: Labels | Mapping[str, str]) -> bool:
    mapping = dict(labels) if not isinstance(labels, Mapping) else labels
    return all(m.matches(mapping) for m in matchers)


@dataclass(frozen=True)
class InhibitRule:
    """While an alert matching `source` fires, alerts matching `target` that have the same
    values for `equal` are inhibited: shown, never notified (Alertmanager's inhibit_rule)."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()


def inhibitor(
    labels: Labels, firing: Mapping[str, Labels], rules: Sequence[InhibitRule]
) -> str | None:
    """The fingerprint of a firing alert that inhibits an alert with `labels`, or None. An
    alert never inhibits itself (Alertmanager: one matching both sides cannot)."""
    target = dict(labels)
    for rule in rules:
        if not matches_all(rule.target, target):
            continue
        for fingerprint, source_labels in sorted(firing.items()):
            source = dict(source_labels)
            if source == target or not matches_all(rule.source, source):
                continue
            if all(source.get(name, "") == target.get(name, "") for name in rule.equal):
                return fingerprint
    return None
