"""Error fingerprints: how an error event is assigned to its group (light: no pandas, no scipy,
because the collectors' alert settings import it at start-up).

Grouping follows Sentry's documented order ("Issue Grouping", docs.sentry.io: the stack trace
first, then the exception, then the message) and its normalisation
(getsentry/sentry `src/sentry/grouping/parameterization.py`: an ordered regex list replacing
emails, URLs, IPs, UUIDs, hashes, dates, durations, hex and numbers by placeholders;
`strategies/newstyle.py`: only in-app frames, filename reduced to a lowercased basename, line
numbers ignored, recursion collapsed).

fingerprint = sha1(error_type + "\\n" + in-app frames) when the trace has frames, otherwise
sha1(error_type + "\\n" + normalised message); the first 16 hex digits are kept.
"""

from __future__ import annotations

import hashlib
import re

GROUPING_VERSION = "workbench-2025-01"
SEVERITY_RANK = {"debug": 0, "info": 1, "warning": 2, "error": 3, "critical": 4, "fatal": 4}

_MESSAGE_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.I), "<url>"),
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
        "<uuid>",
    ),
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"
        ),
        "<date>",
    ),
    (re.compile(r"\b\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\b"), "<time>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"(?<![\w:])(?:[0-9a-f]{1,4}:){2,7}[0-9a-f]{0,4}(?![\w:])", re.I), "<ip>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,128}\b", re.I), "<hex>"),
    (re.compile(r"\b\d+(?:\.\d+)?(?:ms|s|sec|m|min|h)\b", re.I), "<duration>"),
    # ids such as call_8f3a2b, user-0042, req:ab12 (a word, a separator, a token with a digit)
    (re.compile(r"\b[a-z]+[_:-](?=[a-z0-9]*\d)[a-z0-9]+\b", re.I), "<id>"),
    (re.compile(r"\+?\b\d[\d.,]*\b"), "<num>"),
    (re.compile(r"=\s*(?:'[^']*'|\"[^\"]*\")"), "=<str>"),
)


def normalise_message(message: str | None) -> str:
    """Replace variable tokens (ids, numbers, IPs, UUIDs, hex, dates...) by placeholders."""
    if not isinstance(message, str):
        return ""
    s = message.strip()
    for pattern, repl in _MESSAGE_RULES:
        s = pattern.sub(repl, s)
    return re.sub(r"\s+", " ", s)[:512]


_FRAME = re.compile(r'File "(?P<path>[^"]+)", line \d+, in (?P<func>\S+)')
_LIBRARY = re.compile(
    r"(site-packages|dist-packages|[\\/]lib[\\/]python\d|[\\/]lib64[\\/]|<frozen|^<|"
    r"[\\/]usr[\\/]lib[\\/]|[\\/]\.venv[\\/]|asyncio[\\/]|importlib[\\/])"
)


def normalise_frames(stack_trace: str | None) -> list[str]:
    """In-app frames as 'module:function', outermost first, without line numbers.

    Library frames (site-packages, the standard library, frozen modules) are dropped; when no
    frame is in-app, all frames are used (Sentry's system variant). Lambdas become <lambda> and
    consecutive repeats (recursion) collapse to one.
    """
    if not isinstance(stack_trace, str) or not stack_trace:
        return []
    frames = []
    for m in _FRAME.finditer(stack_trace):
        path = m.group("path").replace("\\", "/")
        module = path.rsplit("/", 1)[-1].lower()
        module = module[:-3] if module.endswith(".py") else module
        func = "<lambda>" if m.group("func").startswith("<lambda") else m.group("func")
        frames.append((bool(_LIBRARY.search(path)), f"{module}:{func}"))
    in_app = [f for lib, f in frames if not lib] or [f for _, f in frames]
    out: list[str] = []
    for f in in_app:
        if not out or out[-1] != f:
            out.append(f)
    return out


def fingerprint(error_type: str | None, message: str | None, stack_trace: str | None) -> str:
    """The group key: hash of the type and the in-app frames, or of the normalised message."""
    frames = normalise_frames(stack_trace)
    body = "\n".join(frames) if frames else normalise_message(message)
    raw = f"{GROUPING_VERSION}\n{error_type or ''}\n{body}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]
