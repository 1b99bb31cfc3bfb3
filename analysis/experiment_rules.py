"""What an experiment may be: its statuses and the changes between them, its analysis methods
and its randomisation units. The Experiments page offers exactly these and the control store
enforces them, both from here.

A status is also what the agent's SDK acts on (collectors/instrumentation/experiments.py): only
`running` assigns variants; `draft`, `paused` and `stopped` give everyone control and record no
exposure.
"""

from __future__ import annotations

from typing import Literal

Status = Literal["draft", "running", "paused", "stopped"]
Method = Literal["fixed", "sequential", "bayesian"]
UnitType = Literal["call", "caller"]
# The hypothesis on treatment − control every method tests.
Alternative = Literal["two-sided", "greater", "less"]

STATUSES: tuple[Status, ...] = ("draft", "running", "paused", "stopped")
METHODS: tuple[Method, ...] = ("fixed", "sequential", "bayesian")
UNIT_TYPES: tuple[UnitType, ...] = ("call", "caller")

# Start, pause, resume, stop. Stopped is final: the experiment ran and its result is what it
# is. A draft cannot be stopped: it never ran, so there is nothing to end, and since stopped is
# final (and a key is never reused) stopping it would only retire its key for good.
_NEXT: dict[Status, tuple[Status, ...]] = {
    "draft": ("running",),
    "running": ("paused", "stopped"),
    "paused": ("running", "stopped"),
    "stopped": (),
}


def next_statuses(status: Status) -> tuple[Status, ...]:
    """The statuses an experiment in `status` may change to, in the order the page offers them."""
    return _NEXT[status]


def may_become(current: Status, new: Status) -> bool:
    """Whether an experiment in `current` may be set to `new` (setting it again is harmless)."""
    return new == current or new in _NEXT[current]
