"""Supabase and LiveKit probes (reference/voice_observability.md sections 2 and 4).

Supabase: GoTrue's `GET /auth/v1/health` (with the apikey header the gateway expects) and a timed
cheap REST read, `GET /rest/v1/<table>?select=id&limit=1`, because hosted Supabase does not
expose PostgREST's own /live and /ready.

LiveKit: the server's unauthenticated `GET /` (200 "OK" when its stats are fresh, 406 "Not
Ready" otherwise), and, when an API key and secret are set, the authenticated Twirp call
`POST /twirp/livekit.RoomService/ListRooms` with a JWT carrying the roomList grant, signed by
livekit-api. That second check exercises auth and the API, so it is the one to alert on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from collectors.config_secrets import Secrets
from collectors.config_validator import Validator, lookup
from collectors.schedules import SCHEDULE_KEYS, Schedule
from collectors.sources.probes import (
    Check,
    CheckResult,
    HttpCheck,
    ProbeSource,
    Window,
    describe_http_error,
    shared_client,
)
from collectors.sources.registry import Built, SourceKind

LIST_ROOMS = "/twirp/livekit.RoomService/ListRooms"


def supabase_probe(
    url: str,
    key: str | None,
    *,
    name: str = "supabase",
    table: str = "requests",
    timeout_s: float = 5.0,
    retries: int = 0,
    maintenance: Sequence[Window] = (),
    verify: bool = True,
) -> ProbeSource:
    base = url.rstrip("/")
    headers = {"apikey": key} if key else {}
    rest_headers = dict(headers)
    if key and key.count(".") == 2:  # legacy JWT keys also go in Authorization
        rest_headers["Authorization"] = f"Bearer {key}"
    checks = [
        Check(
            f"{name}:auth",
            "supabase",
            HttpCheck(
                f"{base}/auth/v1/health",
                headers=headers,
                expected_status=200,
                timeout_s=timeout_s,
                verify=verify,
            ),
        ),
        Check(
            f"{name}:rest",
            "supabase",
            _explained(
                HttpCheck(
                    f"{base}/rest/v1/{table}?select=id&limit=1",
                    headers=rest_headers,
                    expected_status=200,
                    timeout_s=timeout_s,
                    verify=verify,
                ),
                {
                    401: "check SUPABASE_API_KEY",
                    403: "check SUPABASE_API_KEY",
                    404: f"no table {table}: set probes.supabase.table",
                },
            ),
        ),
    ]
    return ProbeSource(f"probe:{name}", checks, retries=retries, maintenance=maintenance)


def livekit_http_url(url: str) -> str:
    """wss://host -> https://host (the same server answers HTTP on its signalling port)."""
    parts = urlsplit(url)
    scheme = {"wss": "https", "ws": "http"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def livekit_token(api_key: str, api_secret: str, ttl_s: int = 300) -> str:
    """A short-lived JWT with the roomList grant, signed by livekit-api."""
    from datetime import timedelta

    from livekit import api

    return (
        api.AccessToken(api_key, api_secret)
        .with_grants(api.VideoGrants(room_list=True))
        .with_ttl(timedelta(seconds=ttl_s))
        .to_jwt()
    )


class ListRoomsCheck:
    def __init__(self, base: str, api_key: str, api_secret: str, timeout_s: float, verify: bool):
        self.url = base + LIST_ROOMS
        self._key, self._secret = api_key, api_secret
        self.timeout_s, self.verify = timeout_s, verify

    def __repr__(self) -> str:
        return f"ListRoomsCheck(url={self.url!r}, key='***')"

    def __call__(self) -> CheckResult:
        token = livekit_token(self._key, self._secret)
        started = time.perf_counter()
        try:
            r = shared_client(self.verify).post(
                self.url,
                json={},
                headers={"Authorization": f"Bearer {token}"},
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as exc:
            return CheckResult(False, (time.perf_counter() - started) * 1000,
                               error=describe_http_error(exc, self.timeout_s, 0))  # fmt: skip
        latency = (time.perf_counter() - started) * 1000
        if r.status_code == 200:
            try:
                rooms = r.json().get("rooms", [])
            except ValueError:
                return CheckResult(False, latency, 200, "ListRooms answered with non-JSON")
            return CheckResult(True, latency, 200, None if isinstance(rooms, list) else "bad body")
        if r.status_code in (401, 403):
            return CheckResult(False, latency, r.status_code,
                               f"LiveKit refused the token (HTTP {r.status_code}): check "
                               "LIVEKIT_API_KEY and LIVEKIT_API_SECRET")  # fmt: skip
        try:
            msg = r.json().get("msg", "")
        except ValueError:
            msg = r.text[:200]
        return CheckResult(False, latency, r.status_code, f"ListRooms HTTP {r.status_code}: {msg}")


def livekit_probe(
    url: str,
    *,
    api_key: str | None = None,
    api_secret: str | None = None,
    name: str = "livekit",
    timeout_s: float = 10.0,
    retries: int = 0,
    maintenance: Sequence[Window] = (),
    verify: bool = True,
) -> ProbeSource:
    base = livekit_http_url(url)
    checks = [
        Check(
            f"{name}:http",
            "livekit",
            HttpCheck(base + "/", expected_status=200, timeout_s=timeout_s, verify=verify),
        )
    ]
    if api_key and api_secret:
        checks.append(
            Check(
                f"{name}:api",
                "livekit",
                ListRoomsCheck(base, api_key, api_secret, timeout_s, verify),
            )
        )
    return ProbeSource(f"probe:{name}", checks, retries=retries, maintenance=maintenance)


def _explained(check: HttpCheck, hints: dict[int, str]) -> Callable[[], CheckResult]:
    """Append a hint naming the setting to fix to the error of known status codes."""

    def run() -> CheckResult:
        result = check()
        if not result.ok and result.status_code in hints:
            result.error = f"HTTP {result.status_code}: {hints[result.status_code]}"
        return result

    return run


# ---- configuration: [probes.supabase], [livekit] and [probes.livekit] ------------------------

SUPABASE_KEYS = ("SUPABASE_API_KEY", "SUPABASE_SERVICE_ROLE_KEY")


@dataclass(frozen=True)
class SupabaseProbeSettings:
    url: str  # the project's, from [supabase] url or SUPABASE_URL
    name: str
    schedule: Schedule
    retries: int = 0
    table: str = "requests"
    timeout_s: float = 5.0


def supabase_probe_settings(
    data: Mapping[str, Any], v: Validator, secrets: Secrets
) -> SupabaseProbeSettings | None:
    """On whenever the Supabase project's URL is set, unless enabled = false. The URL itself is
    checked with the [supabase] section, not again here."""
    url = lookup(data, "supabase.url")
    probe = lookup(data, "probes.supabase")
    if not url or not v.boolean(probe or {}, "probes.supabase", "enabled", True):
        return None
    probe = probe if isinstance(probe, dict) else {}
    prefix = "probes.supabase"
    v.known(probe, prefix, {"enabled", "table", "retries", "timeout", "name", *SCHEDULE_KEYS})
    return SupabaseProbeSettings(
        url=str(url).strip().rstrip("/"),
        name=probe.get("name", "supabase"),
        schedule=v.schedule(probe, prefix, 60),
        retries=v.integer(probe, prefix, "retries", 0, low=0),
        table=v.string(probe, prefix, "table", "requests") or "requests",
        timeout_s=v.number(probe, prefix, "timeout", 5.0, low=0.1),
    )


def supabase_probe_sources(
    settings: SupabaseProbeSettings, secrets: Secrets, data_dir: Path
) -> Built:
    source = supabase_probe(
        settings.url,
        secrets.value(*SUPABASE_KEYS),
        name=settings.name,
        table=settings.table,
        timeout_s=settings.timeout_s,
        retries=settings.retries,
    )
    return {source.name: (source, settings.schedule.as_dict())}


SUPABASE_PROBE = SourceKind(
    name="probes.supabase",
    sections=("probes.supabase",),
    parse=supabase_probe_settings,
    build=supabase_probe_sources,
    secrets=SUPABASE_KEYS,
)


@dataclass(frozen=True)
class LivekitProbeSettings:
    url: str
    name: str
    schedule: Schedule
    retries: int = 0
    timeout_s: float = 10.0


def livekit_probe_settings(
    data: Mapping[str, Any], v: Validator, secrets: Secrets
) -> LivekitProbeSettings | None:
    probe = lookup(data, "probes.livekit")
    probe = dict(probe) if isinstance(probe, dict) else {}
    url = lookup(data, "livekit.url") or probe.get("url")
    if not url and not probe:
        return None
    prefix = "probes.livekit"
    v.known(probe, prefix, {"url", "retries", "timeout", "name", *SCHEDULE_KEYS})
    checked = v.url({"url": url}, "livekit", "url", ("http", "https", "ws", "wss"))
    if not checked:
        if url is None:
            v.problem(f"livekit.url is not set: set LIVEKIT_URL or [livekit] url in {v.where}.")
        return None
    return LivekitProbeSettings(
        url=checked,
        name=probe.get("name", "livekit"),
        schedule=v.schedule(probe, prefix, 60),
        retries=v.integer(probe, prefix, "retries", 0, low=0),
        timeout_s=v.number(probe, prefix, "timeout", 10.0, low=0.1),
    )


def livekit_probe_sources(
    settings: LivekitProbeSettings, secrets: Secrets, data_dir: Path
) -> Built:
    source = livekit_probe(
        settings.url,
        api_key=secrets.value("LIVEKIT_API_KEY"),
        api_secret=secrets.value("LIVEKIT_API_SECRET"),
        name=settings.name,
        timeout_s=settings.timeout_s,
        retries=settings.retries,
    )
    return {source.name: (source, settings.schedule.as_dict())}


LIVEKIT_PROBE = SourceKind(
    name="probes.livekit",
    sections=("livekit", "probes.livekit"),
    parse=livekit_probe_settings,
    build=livekit_probe_sources,
    env={"LIVEKIT_URL": "livekit.url"},
    secrets=("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"),
)
