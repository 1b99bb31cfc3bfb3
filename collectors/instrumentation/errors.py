"""Error tracking: sampling, ignored types, stable fingerprints and critical-error alerts.

The fingerprint groups errors the way Sentry's default grouping does: the exception type, the
message with variable parts (uuids, IPs, hex, numbers) replaced by placeholders, and the stack
reduced to the application's own frames (module and function, no line numbers), so a new
deploy that shifts lines, or a different user id in the message, still lands in the same group.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import sysconfig
import time
import traceback
from types import TracebackType
from typing import Any

from collectors.instrumentation.config import number, string_list, text
from collectors.instrumentation.live import live
from collectors.instrumentation.pipeline import new_id
from collectors.instrumentation.runtime import (
    MAX,
    InvalidCall,
    MonitorBase,
    choice,
    http_method,
    never_raises,
    opt_id,
    opt_str,
    req_str,
    state,
    tail_str,
)

SEVERITIES = ("debug", "info", "warning", "error", "critical")

_UUID = re.compile(
    r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
    r"[0-9a-fA-F]{12}\b"
)
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}(?![\w:])")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_NUMBER = re.compile(r"(?<![\w.-])[-+]?\d+(?:\.\d+)?(?![\w-])")
_TOKEN_WITH_DIGIT = re.compile(r"(?<![\w-])[\w-]*\d[\w-]*")  # ids, hex, versions: call_8f3a
_FRAME_LINE = re.compile(r'File "([^"]+)", line \d+, in (\S+)')

_LIBRARY_DIRS = tuple(
    {
        os.path.realpath(p) + os.sep
        for k in ("stdlib", "platstdlib", "purelib", "platlib")
        if (p := sysconfig.get_paths().get(k))
    }
)
_SDK_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def normalise_message(message: str) -> str:
    """The message with uuids, e-mails, IPs, numbers and any token holding a digit (ids,
    hex) replaced by placeholders."""
    m = _UUID.sub("<uuid>", message)
    m = _EMAIL.sub("<email>", m)
    m = _IPV4.sub("<ip>", m)
    m = _IPV6.sub("<ip>", m)
    m = _NUMBER.sub("<n>", m)
    m = _TOKEN_WITH_DIGIT.sub("<id>", m)
    return m[:1024]


def is_app_frame(filename: str) -> bool:
    if filename.startswith("<"):
        return False
    path = os.path.realpath(filename)
    if path.startswith(_SDK_DIR):
        return False
    if "site-packages" in path or "dist-packages" in path:
        return False
    return not path.startswith(_LIBRARY_DIRS)


def _module_of(filename: str) -> str:
    base = os.path.basename(filename)
    return base[:-3] if base.endswith(".py") else base


def frames_from_traceback(tb: TracebackType | None) -> list[tuple[str, str, bool]]:
    out = []
    for fs in traceback.extract_tb(tb):
        out.append((_module_of(fs.filename), fs.name, is_app_frame(fs.filename)))
    return out


def frames_from_text(stack_trace: str) -> list[tuple[str, str, bool]]:
    return [(_module_of(f), fn, is_app_frame(f)) for f, fn in _FRAME_LINE.findall(stack_trace)]


def fingerprint(error_type: str, message: str, frames: list[tuple[str, str, bool]]) -> str:
    """Stable group id: type + normalised message + the app's own frames (all if none)."""
    own = [f for f in frames if f[2]] or frames
    parts = [error_type, normalise_message(message or "")]
    parts += [f"{mod}.{fn}" for mod, fn, _ in own]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def exception_message(exc: BaseException) -> str:
    """str(exc) cut to the column's limit; a placeholder if str() raises."""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - an exception whose __str__ raises is still an error
        return f"<unprintable {type(exc).__name__}>"
    return message[: MAX["message"]] if isinstance(message, str) else ""


def _type_names(exc: BaseException) -> set[str]:
    names = set()
    for cls in type(exc).__mro__:
        names.add(cls.__name__)
        names.add(f"{cls.__module__}.{cls.__qualname__}")
    return names


class ErrorMonitor(MonitorBase):
    source = "errors"

    def __init__(self) -> None:
        self.error_sample_rate = 1.0
        self.ignored_errors: set[str] = set()
        self.critical_errors: set[str] = set()
        self.ignored_count = 0
        self.sampled_out = 0
        self.tracked = 0
        self._random = random.Random()

    def configure(self, cfg: dict[str, Any]) -> None:
        self.set_error_sample_rate(cfg["error_sample_rate"])
        self.ignored_errors = set(string_list("errors.ignored_errors", cfg["ignored_errors"]))
        self.critical_errors = set(string_list("errors.critical_errors", cfg["critical_errors"]))

    def reset(self) -> None:
        type(self).__init__(self)  # back to the state of a new monitor

    # -- settings (raise on bad values: they are configuration) ------------------------------
    def set_error_sample_rate(self, rate: float) -> None:
        self.error_sample_rate = number("errors.error_sample_rate", rate, 0, 1)

    def add_ignored_error(self, error_type: str) -> None:
        self.ignored_errors.add(text("errors.ignored_errors", error_type))

    def add_critical_error(self, error_type: str) -> None:
        self.critical_errors.add(text("errors.critical_errors", error_type))

    # -- recording -------------------------------------------------------------------------
    @never_raises
    def track_error(
        self,
        error_type: str,
        message: str,
        stack_trace: str | None = None,
        request_path: str | None = None,
        request_method: str | None = None,
        severity: str = "error",
        user_id: str | None = None,
        call_id: str | None = None,
        request_id: str | None = None,
    ) -> None:
        """Record an error event (dropped with a counted warning if the arguments are bad)."""
        error_type = req_str("error_type", error_type)
        state.pipeline.submit(
            (
                "error",
                error_type,
                {error_type},
                opt_str("message", message, MAX["message"]) or "",
                tail_str("stack_trace", stack_trace, MAX["stack_trace"]),
                None,
                opt_str("request_path", request_path),
                None if request_method is None else http_method("request_method", request_method),
                choice("severity", severity, SEVERITIES),
                opt_id("user_id", user_id),
                opt_id("call_id", call_id),
                opt_id("request_id", request_id),
                time.time(),
            )
        )

    @never_raises
    def capture_exception(
        self,
        exc: BaseException,
        *,
        route: str | None = None,
        method: str | None = None,
        severity: str = "error",
        user_id: str | None = None,
        call_id: str | None = None,
        request_id: str | None = None,
    ) -> None:
        """Record a caught exception with its traceback."""
        if not isinstance(exc, BaseException):
            raise InvalidCall(f"capture_exception needs an exception, got {type(exc).__name__}")
        self.queue_exception(
            exc,
            opt_str("route", route),
            None if method is None else http_method("method", method),
            choice("severity", severity, SEVERITIES),
            opt_id("user_id", user_id),
            opt_id("call_id", call_id),
            opt_id("request_id", request_id),
            time.time(),
        )

    def queue_exception(
        self,
        exc: BaseException,
        route: str | None,
        method: str | None,
        severity: str,
        user_id: str | None,
        call_id: str | None,
        request_id: str | None,
        at: float,
    ) -> None:
        state.pipeline.submit(
            (
                "error",
                type(exc).__name__,
                _type_names(exc),
                exception_message(exc),
                None,
                exc.__traceback__,
                route,
                method,
                severity,
                user_id,
                call_id,
                request_id,
                at,
            )
        )

    # -- worker side -----------------------------------------------------------------------
    def process(
        self,
        error_type: str,
        type_names: set[str],
        message: str,
        stack_trace: str | None,
        tb: TracebackType | None,
        route: str | None,
        method: str | None,
        severity: str,
        user_id: str | None,
        call_id: str | None,
        request_id: str | None,
        at: float,
    ) -> None:
        if type_names & self.ignored_errors:
            self.ignored_count += 1
            return
        critical = severity == "critical" or bool(type_names & self.critical_errors)
        if critical:
            severity = "critical"
        rate = 1.0 if critical else self.error_sample_rate
        if rate < 1.0 and self._random.random() >= rate:
            self.sampled_out += 1
            return
        if tb is not None:
            frames = frames_from_traceback(tb)
            stack_trace = "".join(traceback.format_tb(tb)) + f"{error_type}: {message}\n"
        else:
            frames = frames_from_text(stack_trace or "")
        fp = fingerprint(error_type, message, frames)
        self.tracked += 1
        live.error(fp, error_type, message, route, at)
        state.pipeline._process_row(
            "errors",
            {
                "error_id": new_id(),
                "occurred_at": at,
                "error_type": error_type[:512],
                "message": message[:4096],
                "stack_trace": (stack_trace or "")[-MAX["stack_trace"] :] or None,
                "fingerprint": fp,
                "severity": severity,
                "route": route,
                "method": method,
                "release": state.release,
                "request_id": request_id,
                "call_id": call_id,
                "user_id": user_id,
                "sample_rate": rate,
            },
        )
        if critical:
            self.alert(
                f"Critical error: {error_type}",
                message[:500] or error_type,
                "critical",
                key=f"errors:{fp}",
                details={"fingerprint": fp, "route": route, "method": method},
            )


error_monitor = ErrorMonitor()
state.pipeline.processors["error"] = error_monitor.process
