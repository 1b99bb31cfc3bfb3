"""Masking secrets before text leaves the process (health reports, probe rows, alerts, logs).

`redact_url` keeps a URL's scheme, host, port and path and masks its user name, password and
every query value. `scrub` masks what looks like a secret in free text (an exception's
message, a check's error): URL credentials and query values, `password=...`-style pairs and
bearer tokens. `scrub` is a heuristic, so reports show only an exception's type and use
`scrub` where the text itself is useful (probe rows, alerts).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_PAIR = re.compile(
    r"(?i)\b((?:[\w-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|"
    r"credentials?|auth|signature|sig))\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&'\"]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


def redact_url(url: str) -> str:
    """`url` without credentials, query values or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    if not parts.scheme or not host:
        return _URL.sub(lambda m: redact_url(m.group(0)), url) if "://" in url else url
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    if parts.username is not None or parts.password is not None:
        netloc = f"{MASK}@{netloc}"
    query = "&".join(
        f"{pair.split('=', 1)[0]}={MASK}" if "=" in pair else pair
        for pair in parts.query.split("&")
        if pair
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def scrub(text: str, limit: int = 2048) -> str:
    """`text` with URL credentials and query values, secret-looking pairs and bearer
    tokens masked, cut to `limit` characters."""
    text = text[: limit * 2]
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    text = _PAIR.sub(lambda m: m.group(1) + MASK, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return text[:limit]


def scrub_value(value: Any, depth: int = 3) -> Any:
    """A copy of a check's details with every string scrubbed (other values as they are)."""
    if isinstance(value, str):
        return scrub(value, 512)
    if depth <= 0:
        return None
    if isinstance(value, dict):
        return {str(k)[:128]: scrub_value(v, depth - 1) for k, v in list(value.items())[:64]}
    if isinstance(value, list | tuple):
        return [scrub_value(v, depth - 1) for v in list(value)[:64]]
    if value is None or isinstance(value, bool | int | float):
        return value
    return f"<{type(value).__name__}>"


def exception_text(exc: BaseException) -> str:
    """`Type: message` with secrets scrubbed (for rows and alerts, never the report)."""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - an exception whose __str__ raises
        message = "<unprintable>"
    return scrub(f"{type(exc).__name__}: {message}")
