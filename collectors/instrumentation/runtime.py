"""Process-wide state shared by the six monitors, and the checks every recording call applies.

Before configure_monitoring runs, events wait in the bounded queue (nothing is written
anywhere); configure_monitoring attaches a sink and starts the workers, which then ship them.

Recording calls (`track_*`, `record_*`, `log_*`, `capture_*`, `assign`) never raise into the
agent: a wrong type or value drops the call, counts it and logs one short line. Text longer
than its column's maximum (`MAX`, documented in docs/sdk.md) is cut, except identifiers, which
are refused (cutting two ids could make them one).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from collectors.instrumentation.alerts import Alert, alert_manager
from collectors.instrumentation.config import DEFAULTS, MonitoringConfigError, short
from collectors.instrumentation.pipeline import Pipeline
from collectors.instrumentation.sinks import NullSink

log = logging.getLogger("collectors.instrumentation")

# Maximum characters per kind of text (the warehouse columns' limits, collectors/schema.py).
MAX = {
    "id": 512,  # request_id, call_id, session_id, user_id, turn_id, unit_id, experiment_key
    "name": 512,  # route, path, error_type, category, feature_name, event_type, variant, ...
    "method": 16,
    "ip": 64,
    "message": 4096,  # error messages, feedback comments
    "stack_trace": 65536,  # the end is kept: that is where the exception is
    "statement": 8192,
    "user_agent": 1024,
    "details": 8192,  # JSON text of a security event's details
}
LATEST_EPOCH_S = 4_102_444_800.0  # 2100-01-01: later timestamps are mistakes (ms for s)
_METHOD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ-_")


class _State:
    def __init__(self) -> None:
        self.pipeline = Pipeline(NullSink())
        self.config: dict[str, Any] = DEFAULTS
        self.release: str | None = None
        self.service: str | None = None
        self.configured = False
        self.invalid_calls: Counter[str] = Counter()
        self.invalid_lock = threading.Lock()


state = _State()


class InvalidCall(ValueError):
    """A track_*/record_*/log_* argument of the wrong type or value (dropped, counted)."""


def invalid_calls_total() -> int:
    with state.invalid_lock:
        return sum(state.invalid_calls.values())


def safe_text(value: object, limit: int = 300) -> str:
    """str(value) cut to `limit`, or a placeholder when str() itself fails."""
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # noqa: BLE001 - an object whose __str__ raises
        return f"<unprintable {type(value).__name__}>"
    if not isinstance(text, str):
        return f"<unprintable {type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


_last_warning = 0.0


def count_invalid(name: str, exc: BaseException) -> None:
    """Count a dropped call and log it: the first ten, then at most one line a minute."""
    global _last_warning
    with state.invalid_lock:
        state.invalid_calls[name] += 1
        n = state.invalid_calls[name]
        now = time.monotonic()
        loud = n <= 10 or now - _last_warning >= 60.0
        if loud:
            _last_warning = now
    if loud:
        log.warning("monitoring: dropped a %s call (%d so far): %s", name, n, safe_text(exc))


F = TypeVar("F", bound=Callable[..., Any])


def never_raises(method: F) -> F:
    """Wrap a recording method: bad input or an internal fault is counted and logged, never
    raised into the host's code."""
    name = method.__qualname__

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the SDK must never break the host
            count_invalid(name, exc)
            return None

    return cast(F, wrapper)  # the same signature: it returns what `method` does, or None


T = TypeVar("T")


# -- argument checks (raise InvalidCall; never call str() on an unknown object) ---------------
def _as_text(name: str, value: Any) -> str:
    """A string, or an integer as its digits (ids and labels are often numbers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(int(value))
    raise InvalidCall(f"{name} must be a string, got {short(value)}")


def req_str(name: str, value: Any, max_len: int = MAX["name"]) -> str:
    """A required text value, cut to `max_len`."""
    if not isinstance(value, str):
        raise InvalidCall(f"{name} must be a string, got {short(value)}")
    text = value
    if not text:
        raise InvalidCall(f"{name} must be a non-empty string, got ''")
    return text[:max_len]


def opt_str(name: str, value: Any, max_len: int = MAX["name"]) -> str | None:
    """An optional text value, cut to `max_len`."""
    if value is None:
        return None
    return _as_text(name, value)[:max_len] or None


def req_id(name: str, value: Any) -> str:
    """A required identifier; longer than MAX["id"] is refused."""
    text = _as_text(name, value)
    if not text or len(text) > MAX["id"]:
        raise InvalidCall(f"{name} must be 1 to {MAX['id']} characters, got {short(value)}")
    return text[:]


def opt_id(name: str, value: Any) -> str | None:
    return None if value is None else req_id(name, value)


def tail_str(name: str, value: Any, max_len: int) -> str | None:
    """Optional text keeping its last `max_len` characters (stack traces)."""
    if value is None:
        return None
    return _as_text(name, value)[-max_len:] or None


def http_method(name: str, value: Any) -> str:
    """An HTTP method token (GET, POST, PROPFIND, ...), upper-cased."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX["method"]:
        raise InvalidCall(f"{name} must be an HTTP method, got {short(value)}")
    method = value.upper()
    if not _METHOD_CHARS.issuperset(method):
        raise InvalidCall(f"{name} must be an HTTP method, got {short(value)}")
    return method


def choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidCall(f"{name} must be one of {', '.join(allowed)}, got {short(value)}")
    return value[:]


def opt_num(
    name: str, value: Any, lo: float | None = None, hi: float | None = None, required: bool = False
) -> float | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidCall(f"{name} must be a finite number, got {short(value)}")
    try:
        v = float(value)
    except OverflowError:
        raise InvalidCall(f"{name} must be a finite number, got {short(value)}") from None
    if not math.isfinite(v):
        raise InvalidCall(f"{name} must be a finite number, got {short(value)}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise InvalidCall(f"{name} must be between {lo} and {hi}, got {short(value)}")
    return v


def opt_int(
    name: str,
    value: Any,
    lo: int | None = None,
    hi: int | None = 2**31 - 1,
    required: bool = False,
) -> int | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidCall(f"{name} must be an integer, got {short(value)}")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise InvalidCall(f"{name} must be between {lo} and {hi}, got {short(value)}")
    return v


def opt_bool(name: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return None if value is None else bool(value)
    raise InvalidCall(f"{name} must be true or false, got {short(value)}")


def epoch_s(name: str, value: Any) -> float | None:
    """An optional UNIX time in seconds (not milliseconds), before 2100."""
    return opt_num(name, value, 0, LATEST_EPOCH_S)


def json_text(name: str, value: Any, max_chars: int = MAX["details"]) -> str | None:
    """`value` (a dict of plain values) as JSON text of at most `max_chars`: deeper levels,
    more items and longer strings are cut, other objects become their type name (their str()
    is never called), so any input costs little and serialises."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidCall(f"{name} must be a dict, got {short(value)}")
    for max_items, max_str, max_depth in ((64, 1024, 5), (16, 128, 3), (4, 32, 1)):
        text = json.dumps(_plain(value, max_items, max_str, max_depth), ensure_ascii=False)
        if len(text) <= max_chars:
            return text
    return '{"...": "too large"}'


def _plain(value: Any, max_items: int, max_str: int, depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        v = int(value)
        return v if -(2**63) <= v < 2**63 else "<big int>"
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else repr(float(value))
    if isinstance(value, str):
        return value[:max_str]
    if depth <= 0:
        return "..."
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= max_items:
                out["..."] = f"{len(value) - max_items} more"
                break
            key = k[:128] if isinstance(k, str) else f"<{type(k).__name__}>"
            out[key] = _plain(v, max_items, max_str, depth - 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = []
        for i, v in enumerate(value):
            if i >= max_items:
                items.append(f"{len(value) - max_items} more")
                break
            items.append(_plain(v, max_items, max_str, depth - 1))
        return items
    return f"<{type(value).__name__}>"


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
