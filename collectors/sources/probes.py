"""Live probes: each run checks its targets once and yields `probe_results` rows.

The state machine is Uptime Kuma's (server/model/monitor.js): a failed check is `pending`
while the consecutive failures are within `retries`, then `down`; a success is `up` and clears
the count; inside a maintenance window the state is `maintenance` and failures are not counted.
The failure count lives in the watermark, so pending-before-down holds across scheduled runs
and restarts. A probe never raises for a failed target: the failure is the data.

Check kinds here: HTTP endpoints and custom Python callables. Supabase and LiveKit checks are in
probe_services.py, the host sampler in probe_host.py, Railway in railway.py.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx

from collectors.config_secrets import Secrets
from collectors.config_validator import Validator
from collectors.schedules import SCHEDULE_KEYS, Schedule
from collectors.sources.base import Batch, SourceConfigError
from collectors.sources.registry import Built, SourceKind

log = logging.getLogger(__name__)

State = Literal["up", "pending", "down", "maintenance"]
STATES: tuple[State, ...] = ("up", "pending", "down", "maintenance")
MAX_ERROR = 2000
DEFAULT_MAX_REDIRECTS = 10  # Uptime Kuma's default


@dataclass
class CheckResult:
    ok: bool
    latency_ms: float | None = None
    status_code: int | None = None
    error: str | None = None
    state: State | None = None  # force a state (e.g. "pending" for a deploy in progress)


@dataclass
class Check:
    """One target: a name, a kind, and a callable returning a CheckResult.

    `retries` and `maintenance` override the source's when several probes share one source.
    """

    target: str
    kind: str
    run: Callable[[], CheckResult]
    retries: int | None = None
    maintenance: Sequence[Window] = ()


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def __contains__(self, when: datetime) -> bool:
        return self.start <= when < self.end


def next_state(
    previous: Mapping[str, Any] | None, result: CheckResult, retries: int, maintenance: bool
) -> tuple[State, dict[str, Any]]:
    """(state to record, state to keep) for one check, per Uptime Kuma's retry rule."""
    failures = int((previous or {}).get("failures", 0))
    if maintenance:
        return "maintenance", {"failures": 0, "state": "maintenance"}
    if result.state is not None:
        return result.state, {
            "failures": 0 if result.state == "up" else failures,
            "state": result.state,
        }
    if result.ok:
        return "up", {"failures": 0, "state": "up"}
    failures += 1
    state: State = "pending" if failures <= retries else "down"
    return state, {"failures": failures, "state": state}


class ProbeSource:
    """A set of checks run together on one schedule; rows go to probe_results."""

    def __init__(
        self,
        name: str,
        checks: Sequence[Check],
        *,
        retries: int = 0,
        maintenance: Sequence[Window] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.name = name
        self.checks = list(checks)
        self.retries = retries
        self.maintenance = list(maintenance)
        self.clock = clock

    def __repr__(self) -> str:
        return f"ProbeSource(name={self.name!r}, targets={[c.target for c in self.checks]!r})"

    def fetch(self, watermarks: Mapping[str, str]) -> Iterator[Batch]:
        kept = _load_state(watermarks.get("state"))

        def checked(check: Check) -> tuple[Check, datetime, CheckResult]:
            checked_at = self.clock()
            return check, checked_at, run_check(check)

        if len(self.checks) == 1:
            results = [checked(self.checks[0])]
        else:  # many targets on one schedule: check them concurrently, one run for all
            with ThreadPoolExecutor(max_workers=min(16, len(self.checks))) as pool:
                results = list(pool.map(checked, self.checks))
        rows = []
        for check, checked_at, result in results:
            windows = [*self.maintenance, *check.maintenance]
            in_maintenance = any(checked_at in w for w in windows)
            retries = self.retries if check.retries is None else check.retries
            state, kept[check.target] = next_state(
                kept.get(check.target), result, retries, in_maintenance
            )
            rows.append(
                {
                    "target": check.target,
                    "checked_at": checked_at,
                    "kind": check.kind,
                    "status": state,
                    "latency_ms": result.latency_ms,
                    "status_code": result.status_code,
                    "error": _short(result.error),
                }
            )
        up = sum(r["status"] == "up" for r in rows)
        yield Batch(
            table="probe_results",
            rows=rows,
            stream="state",
            watermark=json.dumps(kept, sort_keys=True),
            progress={"done": len(rows), "total": len(rows), "up": up},
        )


def run_check(check: Check) -> CheckResult:
    """Run a check; an exception is a failed check with its message, never a crash."""
    started = time.perf_counter()
    try:
        return check.run()
    except Exception as exc:  # noqa: BLE001 - any failure of the target is a result
        return CheckResult(
            ok=False,
            latency_ms=(time.perf_counter() - started) * 1000,
            error=f"{type(exc).__name__}: {exc}",
        )


def _short(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= MAX_ERROR else text[:MAX_ERROR] + "…"


def _load_state(value: str | None) -> dict[str, Any]:
    if not value:
        return {}
    try:
        data = json.loads(value)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# ---- HTTP --------------------------------------------------------------------------------------

_CLIENTS: dict[tuple[bool, int], httpx.Client] = {}
_CLIENTS_LOCK = threading.Lock()


def shared_client(verify: bool = True, max_redirects: int = DEFAULT_MAX_REDIRECTS) -> httpx.Client:
    """One pooled client per TLS/redirect setting: hundreds of probes reuse connections."""
    key = (verify, max_redirects)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = httpx.Client(
                verify=verify,
                max_redirects=max_redirects,
                limits=httpx.Limits(max_connections=512, max_keepalive_connections=512),
                headers={"User-Agent": "voice-workbench-probe/0.1"},
            )
            _CLIENTS[key] = client
        return client


def parse_expected(value: Any) -> Callable[[int], bool]:
    """Expected status: 200, [200, 204], "2xx" or "200-299" (the default is any 2xx)."""
    if value is None:
        return lambda s: 200 <= s < 300
    if isinstance(value, int):
        return lambda s: s == value
    if isinstance(value, str):
        text = value.strip().lower()
        if len(text) == 3 and text.endswith("xx") and text[0].isdigit():
            base = int(text[0]) * 100
            return lambda s: base <= s < base + 100
        if "-" in text:
            lo, _, hi = text.partition("-")
            return lambda s: int(lo) <= s <= int(hi)
        return lambda s: s == int(text)
    codes = {int(v) for v in value}
    return lambda s: s in codes


def describe_http_error(exc: httpx.HTTPError, timeout_s: float, max_redirects: int) -> str:
    """One sentence a person can act on for the usual ways an HTTP check fails."""
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {timeout_s:g} s ({type(exc).__name__})"
    if isinstance(exc, httpx.TooManyRedirects):
        return f"more than {max_redirects} redirects (a redirect loop?)"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server closed the connection without a valid response ({exc})"
    cause = exc.__cause__ or exc.__context__
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return f"TLS certificate not trusted: {getattr(cause, 'verify_message', None) or exc}"
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed: {exc}"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class HttpCheck:
    url: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    expected_status: Any = None
    timeout_s: float = 5.0
    body: str | None = None
    keyword: str | None = None  # the body must contain it (Uptime Kuma's keyword monitor)
    verify: bool = True
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    client: httpx.Client | None = None

    def __post_init__(self) -> None:
        self._expected = parse_expected(self.expected_status)

    def __call__(self) -> CheckResult:
        client = self.client or shared_client(self.verify, self.max_redirects)
        started = time.perf_counter()
        try:
            r = client.request(
                self.method,
                self.url,
                headers=dict(self.headers),
                content=self.body,
                timeout=self.timeout_s,
                follow_redirects=True,
            )
        except httpx.HTTPError as exc:
            return CheckResult(
                ok=False,
                latency_ms=(time.perf_counter() - started) * 1000,
                error=describe_http_error(exc, self.timeout_s, self.max_redirects),
            )
        latency = (time.perf_counter() - started) * 1000
        if not self._expected(r.status_code):
            snippet = r.text[:200].strip()
            return CheckResult(
                False, latency, r.status_code, f"HTTP {r.status_code} (expected "
                f"{self.expected_status or '2xx'}){': ' + snippet if snippet else ''}"
            )  # fmt: skip
        if self.keyword is not None and self.keyword not in r.text:
            return CheckResult(False, latency, r.status_code, f"keyword {self.keyword!r} not found")
        return CheckResult(True, latency, r.status_code)


def http_probe(
    name: str,
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    expected_status: Any = None,
    timeout_s: float = 5.0,
    retries: int = 0,
    keyword: str | None = None,
    verify: bool = True,
    maintenance: Sequence[Window] = (),
) -> ProbeSource:
    check = http_check(
        name,
        url,
        method=method,
        headers=headers,
        expected_status=expected_status,
        timeout_s=timeout_s,
        keyword=keyword,
        verify=verify,
    )
    return ProbeSource(f"probe:{name}", [check], retries=retries, maintenance=maintenance)


def http_check(
    name: str,
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    expected_status: Any = None,
    timeout_s: float = 5.0,
    retries: int | None = None,
    keyword: str | None = None,
    verify: bool = True,
    maintenance: Sequence[Window] = (),
) -> Check:
    """One HTTP target, to run alone (http_probe) or with others on the same schedule."""
    run = HttpCheck(
        url,
        method.upper(),
        headers or {},
        expected_status,
        timeout_s,
        keyword=keyword,
        verify=verify,
    )
    return Check(name, "http", run, retries=retries, maintenance=list(maintenance))


def schedule_label(schedule: Mapping[str, Any]) -> str:
    """A stable, readable name part for a schedule: '10s' or 'cron-*_5-*-*-*-*'."""
    if schedule.get("kind") == "cron":
        return "cron-" + str(schedule["expr"]).replace(" ", "-").replace("/", "_")
    return f"{schedule['seconds']:g}s"


# ---- custom callables ----------------------------------------------------------------------

UP_WORDS = {"up", "ok", "healthy", "pass", "passing", "green"}


def load_callable(path: str) -> Callable[[], Any]:
    """'package.module:function' or 'package.module.function' -> the callable."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise SourceConfigError(f"custom check {path!r} is not a dotted path like 'pkg.mod:func'.")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise SourceConfigError(f"custom check {path!r} cannot be imported ({exc}).") from None
    if not callable(obj):
        raise SourceConfigError(f"custom check {path!r} is not callable.")
    fn: Callable[[], Any] = obj
    return fn


def custom_result(value: Any, latency_ms: float) -> CheckResult:
    """Accept a bool, a CheckResult, or the spec's {"status": "healthy", "details": {...}}."""
    if isinstance(value, CheckResult):
        if value.latency_ms is None:
            value.latency_ms = latency_ms
        return value
    if isinstance(value, bool):
        return CheckResult(value, latency_ms, error=None if value else "check returned False")
    if isinstance(value, Mapping):
        status = str(value.get("status", "")).lower()
        if status in UP_WORDS:
            return CheckResult(True, latency_ms)
        if status == "maintenance":
            return CheckResult(True, latency_ms, state="maintenance")
        detail = value.get("error") or value.get("details")
        text = f"status {status or 'missing'}"
        if detail:
            text += f": {json.dumps(detail, default=str)[:500]}"
        return CheckResult(False, latency_ms, error=text)
    return CheckResult(False, latency_ms, error=f"check returned {type(value).__name__}")


def custom_probe(
    name: str,
    check: str | Callable[[], Any],
    *,
    retries: int = 0,
    maintenance: Sequence[Window] = (),
) -> ProbeSource:
    fn = load_callable(check) if isinstance(check, str) else check

    def run() -> CheckResult:
        started = time.perf_counter()
        value = fn()
        return custom_result(value, (time.perf_counter() - started) * 1000)

    checks = [Check(name, "custom", run)]
    return ProbeSource(f"probe:{name}", checks, retries=retries, maintenance=maintenance)


# ---- configuration: [[probes.http]] and [[probes.custom]] ------------------------------------

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "OPTIONS")
HTTP_KEYS = {
    "name",
    "url",
    "endpoint",
    "method",
    "headers",
    "expected_status",
    "timeout",
    "retries",
    "keyword",
    "verify_tls",
    "maintenance",
    *SCHEDULE_KEYS,
}
CALLABLE_PATH = r"^[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?$"


@dataclass(frozen=True)
class HttpProbeSettings:
    name: str
    url: str
    schedule: Schedule
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    expected_status: Any = None
    timeout_s: float = 5.0
    retries: int = 0
    keyword: str | None = None
    verify: bool = True
    maintenance: tuple[Window, ...] = ()


def http_probe_settings(
    data: Mapping[str, Any], v: Validator, secrets: Secrets
) -> list[HttpProbeSettings] | None:
    out: list[HttpProbeSettings] = []
    names: set[str] = set()
    for i, (prefix, p) in enumerate(v.tables(data, "probes.http")):
        v.known(p, prefix, HTTP_KEYS)
        url = v.url(p, prefix, "url" if "url" in p else "endpoint")
        name = v.string(p, prefix, "name") or (url or f"http-{i}")
        if not url:
            if "url" not in p and "endpoint" not in p:
                v.fail(f"{prefix}.url", "is required")
            continue
        if name in names:
            v.fail(f"{prefix}.name", f"repeats the probe name {name!r}")
        names.add(name)
        expected = p.get("expected_status")
        if expected is not None and not isinstance(expected, int | str | list):
            v.fail(f"{prefix}.expected_status", "must be a status, a list of statuses or '2xx'")
        schedule = v.schedule(p, prefix, 60)
        # Uptime Kuma's default: 80 % of the interval, at most 48 s.
        default_timeout = min(48.0, (schedule.seconds or 60) * 0.8)
        headers = p.get("headers", {}) or {}
        if not isinstance(headers, dict):
            v.fail(f"{prefix}.headers", "must be a table of header = value")
            headers = {}
        out.append(
            HttpProbeSettings(
                name=name,
                url=url,
                schedule=schedule,
                method=v.string(p, prefix, "method", "GET", choices=HTTP_METHODS) or "GET",
                headers={str(k): str(x) for k, x in headers.items()},
                expected_status=expected,
                timeout_s=v.number(p, prefix, "timeout", default_timeout, low=0.1),
                retries=v.integer(p, prefix, "retries", 0, low=0),
                keyword=p.get("keyword"),
                verify=v.boolean(p, prefix, "verify_tls", True),
                maintenance=tuple(Window(a, b) for a, b in v.windows(p, prefix)),
            )
        )
    return out or None


def http_probe_sources(probes: list[HttpProbeSettings], secrets: Secrets, data_dir: Path) -> Built:
    """HTTP probes that share a schedule run as one source: one run (and one warehouse
    transaction) per interval for all of them instead of one per probe."""
    groups: dict[str, tuple[ProbeSource, dict[str, Any]]] = {}
    for p in probes:
        schedule = p.schedule.as_dict()
        check = http_check(
            p.name,
            p.url,
            method=p.method,
            headers=p.headers,
            expected_status=p.expected_status,
            timeout_s=p.timeout_s,
            retries=p.retries,
            keyword=p.keyword,
            verify=p.verify,
            maintenance=p.maintenance,
        )
        name = f"probes:http@{schedule_label(schedule)}"
        if name not in groups:
            groups[name] = (ProbeSource(name, [check]), schedule)
            continue
        source, shared = groups[name]
        source.checks.append(check)
        # One run checks them all: it may take as long as the most patient of them allows.
        if "timeout_s" in schedule:
            shared["timeout_s"] = max(schedule["timeout_s"], shared.get("timeout_s", 0))
    return dict(groups)


@dataclass(frozen=True)
class CustomProbeSettings:
    name: str
    check: str  # 'package.module:function'
    schedule: Schedule
    retries: int = 0
    maintenance: tuple[Window, ...] = ()


def custom_probe_settings(
    data: Mapping[str, Any], v: Validator, secrets: Secrets
) -> list[CustomProbeSettings] | None:
    out: list[CustomProbeSettings] = []
    allowed = {"name", "check", "check_func", "retries", "maintenance", *SCHEDULE_KEYS}
    for i, (prefix, c) in enumerate(v.tables(data, "probes.custom")):
        v.known(c, prefix, allowed)
        check = v.string(c, prefix, "check" if "check" in c else "check_func")
        name = v.string(c, prefix, "name") or f"custom-{i}"
        if not check or not re.match(CALLABLE_PATH, check):
            v.fail(
                f"{prefix}.check",
                "must be a dotted path to a callable, like 'mypkg.checks:db_pool'",
            )
            continue
        out.append(
            CustomProbeSettings(
                name=name,
                check=check,
                schedule=v.schedule(c, prefix, 60),
                retries=v.integer(c, prefix, "retries", 0, low=0),
                maintenance=tuple(Window(a, b) for a, b in v.windows(c, prefix)),
            )
        )
    return out or None


def custom_probe_sources(
    probes: list[CustomProbeSettings], secrets: Secrets, data_dir: Path
) -> Built:
    out: Built = {}
    for p in probes:
        source = custom_probe(p.name, p.check, retries=p.retries, maintenance=p.maintenance)
        out[source.name] = (source, p.schedule.as_dict())
    return out


HTTP_PROBES = SourceKind(
    name="probes.http",
    sections=("probes.http",),
    parse=http_probe_settings,
    build=http_probe_sources,
)
CUSTOM_PROBES = SourceKind(
    name="probes.custom",
    sections=("probes.custom",),
    parse=custom_probe_settings,
    build=custom_probe_sources,
)
