"""Security: auth attempts, API usage, rate limits, IP lists, brute force and scanning.

Detection runs on the worker thread from the request tuples the middleware queues. Only when
`security.enforce` is true does anything run in the request path: a blacklist lookup and a
sliding-window count for paths that have a rate limit, answering 403 or 429.
"""

from __future__ import annotations

import inspect
import ipaddress
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from collectors.instrumentation.config import MonitoringConfigError, integer, number, short, text
from collectors.instrumentation.pipeline import new_id
from collectors.instrumentation.runtime import (
    MAX,
    InvalidCall,
    MonitorBase,
    choice,
    json_text,
    never_raises,
    opt_id,
    opt_str,
    req_str,
    state,
)

SEVERITIES = ("info", "warning", "error", "critical")
SCAN_404_LIMIT = 30  # 404s from one IP within SCAN_WINDOW_S looks like path scanning
SCAN_WINDOW_S = 60.0


class SlidingWindow:
    """Event counts per key over the last `window` seconds (a timestamp log per key)."""

    def __init__(self) -> None:
        self.logs: dict[Any, deque[float]] = {}
        self._last_sweep = 0.0

    def add(self, key: Any, now: float, window: float) -> int:
        log = self.logs.get(key)
        if log is None:
            log = self.logs[key] = deque()
        log.append(now)
        cutoff = now - window
        while log and log[0] <= cutoff:
            log.popleft()
        if now - self._last_sweep > 60:  # forget idle keys so memory stays bounded
            self._last_sweep = now
            for k in [k for k, v in self.logs.items() if not v or v[-1] <= now - 3600]:
                del self.logs[k]
        return len(log)


class IPList:
    def __init__(self, entries: list[str] | None = None) -> None:
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self._cache: dict[str, bool] = {}
        for e in entries or []:
            self.add(e)

    def add(self, entry: str) -> None:
        self.networks.append(ipaddress.ip_network(entry, strict=False))
        self._cache.clear()

    def __contains__(self, ip: str | None) -> bool:
        if not ip or not self.networks:
            return False
        hit = self._cache.get(ip)
        if hit is None:
            try:
                addr = ipaddress.ip_address(ip)
                hit = any(addr in n for n in self.networks)
            except ValueError:
                hit = False
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[ip] = hit
        return hit

    def __bool__(self) -> bool:
        return bool(self.networks)


def client_ip(scope: Any, trust_forwarded_for: bool) -> str | None:
    """The caller's IP: the proxy-appended X-Forwarded-For entry if trusted, else the peer."""
    if trust_forwarded_for:
        for k, v in scope.get("headers") or ():
            if k == b"x-forwarded-for":
                return v.decode("latin-1").split(",")[-1].strip()[:64] or None
    client = scope.get("client")
    return client[0] if client else None


def user_agent(headers: Iterable[tuple[bytes, bytes]] | None) -> str | None:
    for k, v in headers or ():
        if k == b"user-agent":
            return v.decode("latin-1")[: MAX["user_agent"]]
    return None


class SecurityMonitor(MonitorBase):
    source = "security"

    def __init__(self) -> None:
        self._max_failed_logins = 5
        self._failed_login_window = 300.0
        self.rate_limits: dict[str, tuple[int, float]] = {}
        self.blacklist = IPList()
        self.whitelist = IPList()
        self.enforce = False
        self.trust_forwarded_for = False
        self.login_paths: set[str] = set()
        self.blocked = 0
        # worker-side detectors
        self._rate = SlidingWindow()
        self._failed = SlidingWindow()
        self._not_found = SlidingWindow()
        self._over: set[Any] = set()  # keys currently over their limit (report once per burst)
        # request-path limiter (event loop thread only)
        self._enforced_rate = SlidingWindow()

    def configure(self, cfg: dict[str, Any]) -> None:
        self.max_failed_logins = cfg["max_failed_logins"]
        self.failed_login_window = cfg["failed_login_window"]
        for path, rl in cfg["rate_limits"].items():
            self.set_rate_limit(path, rl["limit"], rl["window"])
        for ip in cfg["ip_blacklist"]:
            self.add_to_blacklist(ip)
        for ip in cfg["ip_whitelist"]:
            self.add_to_whitelist(ip)
        self.enforce = cfg["enforce"]
        self.trust_forwarded_for = cfg["trust_forwarded_for"]
        self.login_paths = set(cfg["login_paths"])

    def reset(self) -> None:
        type(self).__init__(self)  # back to the state of a new monitor

    # -- settings ---------------------------------------------------------------------------
    @property
    def max_failed_logins(self) -> int:
        return self._max_failed_logins

    @max_failed_logins.setter
    def max_failed_logins(self, value: int) -> None:
        self._max_failed_logins = integer("security.max_failed_logins", value, 1)

    @property
    def failed_login_window(self) -> float:
        return self._failed_login_window

    @failed_login_window.setter
    def failed_login_window(self, value: float) -> None:
        self._failed_login_window = number("security.failed_login_window", value, positive=True)

    def set_rate_limit(self, path: str, limit: int, window: float) -> None:
        """At most `limit` requests per client IP to `path` within `window` seconds."""
        text("security.rate_limits", path)
        if not path.startswith("/"):
            raise MonitoringConfigError(
                f"Monitoring config key 'security.rate_limits' needs paths starting with '/', "
                f"got {short(path)}."
            )
        self.rate_limits[path] = (
            integer(f"security.rate_limits.{path}.limit", limit, 1),
            number(f"security.rate_limits.{path}.window", window, positive=True),
        )

    def _ip(self, key: str, ip: str) -> str:
        try:
            if not isinstance(ip, str):
                raise TypeError
            ipaddress.ip_network(ip, strict=False)
        except (ValueError, TypeError):
            raise MonitoringConfigError(
                f"Monitoring config key 'security.{key}' needs IP addresses or CIDR networks, "
                f"got {short(ip)}."
            ) from None
        return ip[:]

    def add_to_blacklist(self, ip: str) -> None:
        self.blacklist.add(self._ip("ip_blacklist", ip))

    def add_to_whitelist(self, ip: str) -> None:
        self.whitelist.add(self._ip("ip_whitelist", ip))

    # -- recording -------------------------------------------------------------------------
    @never_raises
    def log_security_event(
        self,
        event_type: str,
        severity: str = "info",
        user_id: str | None = None,
        ip_address: str | None = None,
        path: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record a security event; warning and above also raise an alert."""
        self._event(
            req_str("event_type", event_type),
            choice("severity", severity, SEVERITIES),
            opt_id("user_id", user_id),
            opt_str("ip_address", ip_address, MAX["ip"]),
            opt_str("path", path),
            json_text("details", details),
            time.time(),
        )

    def _event(
        self,
        event_type: str,
        severity: str,
        user_id: str | None,
        ip: str | None,
        path: str | None,
        details: str | dict[str, Any] | None,
        at: float,
    ) -> None:
        """Record one security event; `details` is JSON text (or a dict of plain values)."""
        if isinstance(details, dict):
            details = json_text("details", details)
        self.emit(
            "security_events",
            {
                "event_id": new_id(),
                "occurred_at": at,
                "event_type": event_type,
                "severity": severity,
                "user_id": user_id,
                "ip": ip,
                "path": path,
                "details": details or None,
            },
        )
        if severity in ("warning", "error", "critical"):
            self.alert(
                f"Security: {event_type}",
                f"{event_type} from {ip or 'unknown IP'}"
                + (f" on {path}" if path else "")
                + (f" (user {user_id})" if user_id else ""),
                severity,
                key=f"security:{event_type}:{ip}:{path}",
                details={"ip": ip, "path": path, "user_id": user_id, "details": details},
            )

    @never_raises
    def log_auth_event(
        self,
        event_type: str,
        success: bool,
        user_id: str | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
        path: str | None = None,
    ) -> None:
        """Record an authentication attempt; repeated failures raise a brute-force event."""
        if not isinstance(success, bool):
            raise InvalidCall(f"success must be true or false, got {short(success)}")
        state.pipeline.submit(
            (
                "auth",
                req_str("event_type", event_type),
                bool(success),
                opt_id("user_id", user_id),
                opt_str("ip_address", ip_address, MAX["ip"]),
                opt_str("user_agent", user_agent, MAX["user_agent"]),
                opt_str("path", path),
                time.time(),
            )
        )

    @never_raises
    def track_api_usage(
        self,
        endpoint: str,
        method: str,
        status_code: int,
        response_time: float,
        user_id: str | None = None,
        ip_address: str | None = None,
    ) -> None:
        """Record one API call (a `requests` row) and feed the rate and scan detectors."""
        from collectors.instrumentation.performance import performance_monitor

        # The unguarded method: a failure is counted once, by this method's own guard.
        inspect.unwrap(type(performance_monitor).track_request)(
            performance_monitor,
            endpoint,
            method,
            response_time,
            status_code,
            user_id=user_id,
            ip_address=ip_address,
        )

    # -- worker side -----------------------------------------------------------------------
    def process_auth(
        self,
        event_type: str,
        success: bool,
        user_id: str | None,
        ip: str | None,
        user_agent: str | None,
        path: str | None,
        at: float,
    ) -> None:
        self.emit(
            "auth_events",
            {
                "event_id": new_id(),
                "occurred_at": at,
                "event_type": event_type,
                "success": success,
                "user_id": user_id,
                "ip": ip,
                "user_agent": user_agent,
                "path": path,
            },
        )
        if success or ip in self.whitelist:
            return
        for key in (("ip", ip), ("user", user_id)):
            if key[1] is None:
                continue
            n = self._failed.add(key, at, self.failed_login_window)
            if n >= self.max_failed_logins and ("login", key) not in self._over:
                self._over.add(("login", key))
                self._event(
                    "brute_force_suspected",
                    "critical",
                    user_id,
                    ip,
                    path,
                    {"failed_logins": n, "window_s": self.failed_login_window, "by": key[0]},
                    at,
                )
            elif n < self.max_failed_logins:
                self._over.discard(("login", key))

    def observe(
        self,
        route: str,
        raw_path: str,
        method: str,
        status: int,
        ip: str | None,
        headers: Iterable[tuple[bytes, bytes]] | None,
        at: float,
        blocked: bool,
    ) -> None:
        """Everything the worker learns from one request."""
        if blocked:
            kind = "blacklisted_ip_blocked" if status == 403 else "rate_limit_exceeded"
            self._event(
                kind,
                "warning",
                None,
                ip,
                raw_path[:512],
                {"enforced": True, "status_code": status},
                at,
            )
            return
        if method == "POST" and (route in self.login_paths or raw_path in self.login_paths):
            if 200 <= status < 400 or status in (401, 403):
                agent = user_agent(headers)
                self.process_auth("login", status < 400, None, ip, agent, route, at)
        if ip is None or (status != 404 and not self.rate_limits and not self.blacklist):
            return  # the common case: nothing more to look at
        if ip in self.whitelist:
            return
        if self.blacklist and ip in self.blacklist:
            self._event(
                "blacklisted_ip_access", "warning", None, ip, route, {"enforced": False}, at
            )
        limit = self.rate_limits.get(route) or self.rate_limits.get(raw_path)
        if limit is not None:
            key = ("rate", route, ip)
            n = self._rate.add(key, at, limit[1])
            if n > limit[0] and key not in self._over:
                self._over.add(key)
                self._event(
                    "rate_limit_exceeded",
                    "warning",
                    None,
                    ip,
                    route,
                    {"limit": limit[0], "window_s": limit[1], "count": n, "enforced": False},
                    at,
                )
            elif n <= limit[0]:
                self._over.discard(key)
        if status == 404:
            scan_key = ("scan", ip)
            n = self._not_found.add(scan_key, at, SCAN_WINDOW_S)
            if n >= SCAN_404_LIMIT and scan_key not in self._over:
                self._over.add(scan_key)
                self._event(
                    "scanning_suspected",
                    "warning",
                    None,
                    ip,
                    raw_path[:512],
                    {"not_found": n, "window_s": SCAN_WINDOW_S},
                    at,
                )
            elif n < SCAN_404_LIMIT:
                self._over.discard(scan_key)

    # -- request path (only with enforce: true) ---------------------------------------------
    def verdict(self, path: str, ip: str | None, now: float) -> int:
        """0 to let the request through, else the status to answer (403 or 429)."""
        if ip is None or ip in self.whitelist:
            return 0
        if ip in self.blacklist:
            self.blocked += 1
            return 403
        limit = self.rate_limits.get(path)
        if limit is not None and self._enforced_rate.add((path, ip), now, limit[1]) > limit[0]:
            self.blocked += 1
            return 429
        return 0


security_monitor = SecurityMonitor()
state.pipeline.processors["auth"] = security_monitor.process_auth
