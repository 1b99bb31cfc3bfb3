"""Process-wide state shared by the six monitors: the pipeline, the effective config, counters.

Before configure_monitoring runs, events wait in the bounded queue (nothing is written
anywhere); configure_monitoring attaches a sink and starts the workers, which then ship them.
"""

from __future__ import annotations

import functools
import logging
import math
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from collectors.instrumentation.alerts import Alert, alert_manager
from collectors.instrumentation.config import DEFAULTS, MonitoringConfigError
from collectors.instrumentation.pipeline import Pipeline
from collectors.instrumentation.sinks import NullSink

log = logging.getLogger("collectors.instrumentation")


class _State:
    def __init__(self) -> None:
        self.pipeline = Pipeline(NullSink())
        self.config: dict[str, Any] = DEFAULTS
        self.release: str | None = None
        self.service: str | None = None
        self.configured = False
        self.invalid_calls: Counter[str] = Counter()


state = _State()


class InvalidCall(ValueError):
    """A track_*/record_*/log_* argument of the wrong type or value (dropped, counted)."""


def invalid_calls_total() -> int:
    return sum(state.invalid_calls.values())


def never_raises(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a recording method: bad input or an internal fault is counted and logged, never
    raised into the host's code."""
    name = method.__qualname__

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the SDK must never break the host
            state.invalid_calls[name] += 1
            n = state.invalid_calls[name]
            if n <= 10 or n % 1000 == 0:
                log.warning("monitoring: dropped %s call (%d so far): %s", name, n, exc)
            return None

    return wrapper


T = TypeVar("T")


def req_str(name: str, value: Any, max_len: int = 512) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidCall(f"{name} must be a non-empty string, got {value!r}")
    return value[:max_len]


def opt_str(name: str, value: Any, max_len: int = 512) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)[:max_len]
    if not isinstance(value, str):
        raise InvalidCall(f"{name} must be a string, got {type(value).__name__}")
    return value[:max_len]


def opt_num(
    name: str, value: Any, lo: float | None = None, hi: float | None = None, required: bool = False
) -> float | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidCall(f"{name} must be a finite number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InvalidCall(f"{name} must be between {lo} and {hi}, got {value!r}")
    return float(value)


def opt_int(
    name: str, value: Any, lo: int | None = None, hi: int | None = None, required: bool = False
) -> int | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidCall(f"{name} must be an integer, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InvalidCall(f"{name} must be between {lo} and {hi}, got {value!r}")
    return value


def opt_bool(name: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise InvalidCall(f"{name} must be true or false, got {value!r}")


def setting(name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Validate a setter argument; raises MonitoringConfigError (setters are configuration)."""
    return fn(name, *args, **kwargs)


class MonitorBase:
    """What every monitor shares: alert handlers and the pipeline."""

    source = "monitoring"

    def add_alert_handler(self, handler: Callable[[Alert], Any]) -> None:
        """Call `handler(alert)` for every alert of every monitor (from a background thread)."""
        if not callable(handler):
            raise MonitoringConfigError(
                f"add_alert_handler needs a callable, got {type(handler).__name__}."
            )
        alert_manager.add_handler(handler)

    def alert(
        self,
        title: str,
        message: str,
        severity: str = "warning",
        key: str = "",
        details: dict[str, Any] | None = None,
        rate_limited: bool = True,
    ) -> bool:
        return alert_manager.raise_alert(
            Alert(title, message, severity, self.source, key, details or {}),
            rate_limited=rate_limited,
        )

    @staticmethod
    def emit(table: str, row: dict[str, Any]) -> None:
        state.pipeline.emit(table, row)
