"""Infrastructure dependencies: HTTP services, Supabase, LiveKit, Railway and custom checks.

Probes follow reference/voice_observability.md: Supabase `GET /auth/v1/health` with the
`apikey` header; LiveKit `GET https://<host>/` answering 200 `OK` (406 when the node is not
ready); Railway's GraphQL `deployments` query, mapping the latest deployment's status.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from collectors.instrumentation.checks import (
    Check,
    CheckResult,
    check_runner,
    custom_check,
    failed,
    http_check,
)
from collectors.instrumentation.config import (
    MonitoringConfigError,
    flag,
    integer,
    number,
    short,
    text,
    url,
)
from collectors.instrumentation.config import headers as valid_headers
from collectors.instrumentation.config import method as valid_method
from collectors.instrumentation.runtime import MonitorBase

RAILWAY_API = "https://backboard.railway.com/graphql/v2"
_RAILWAY_QUERY = (
    "query Deployments($input: DeploymentListInput!, $first: Int) {"
    " deployments(input: $input, first: $first) { edges { node { id createdAt status } } } }"
)
_RAILWAY_STATUS = {
    "SUCCESS": "up",
    "SLEEPING": "up",
    "FAILED": "down",
    "CRASHED": "down",
    "BUILDING": "degraded",
    "DEPLOYING": "degraded",
    "INITIALIZING": "degraded",
    "QUEUED": "degraded",
    "WAITING": "degraded",
    "NEEDS_APPROVAL": "degraded",
}


def _https(endpoint: str) -> str:
    """LiveKit URLs are often given as wss://; the health route is on the same host."""
    if endpoint.startswith("wss://"):
        return "https://" + endpoint[6:]
    if endpoint.startswith("ws://"):
        return "http://" + endpoint[5:]
    return endpoint


class InfrastructureMonitor(MonitorBase):
    source = "infrastructure"

    def configure(self, cfg: dict[str, Any]) -> None:
        for dep in cfg["dependencies"]:
            kind = dep["type"]
            common = {"name": dep["name"], "check_interval": dep["check_interval"]}
            if "critical" in dep:
                common["critical"] = dep["critical"]
            if "timeout" in dep:
                common["timeout"] = dep["timeout"]
            if kind == "http":
                self.add_http_dependency(
                    endpoint=dep["endpoint"],
                    method=dep.get("method", "GET"),
                    expected_status=dep["expected_status"],
                    headers=dep.get("headers"),
                    **common,
                )
            elif kind == "supabase":
                self.add_supabase_dependency(
                    endpoint=dep["endpoint"], api_key=dep.get("api_key"), **common
                )
            elif kind == "livekit":
                self.add_livekit_dependency(endpoint=dep["endpoint"], **common)
            elif kind == "railway":
                self.add_railway_dependency(
                    project_id=dep["project_id"],
                    api_key=dep["api_key"],
                    endpoint=dep.get("endpoint", RAILWAY_API),
                    token_type=dep.get("token_type", "account"),
                    **common,
                )
            elif kind == "custom":
                self.add_custom_dependency(check_func=dep["check_func"], **common)

    def reset(self) -> None:
        pass

    @staticmethod
    def _key(name: str) -> str:
        """The config key naming dependency `name` in messages (the name checked first)."""
        return f"infrastructure.dependencies[{text('infrastructure.dependencies.name', name)}]"

    @staticmethod
    def _add(
        name: str,
        kind: str,
        run: Callable[[], CheckResult],
        check_interval: float,
        critical: bool,
        **describe: Any,
    ) -> None:
        key = InfrastructureMonitor._key(name)
        check_runner.add(
            Check(
                text(f"{key}.name", name),
                kind,
                run,
                number(f"{key}.check_interval", check_interval, positive=True),
                flag(f"{key}.critical", critical),
                "infrastructure",
                describe=describe,
            )
        )

    def add_http_dependency(
        self,
        name: str,
        endpoint: str,
        method: str = "GET",
        expected_status: int = 200,
        timeout: float = 5.0,
        check_interval: float = 60,
        headers: dict[str, str] | None = None,
        critical: bool = False,
    ) -> None:
        key = self._key(name)
        url(f"{key}.endpoint", endpoint)
        self._add(
            name,
            "http",
            http_check(
                endpoint,
                valid_method(f"{key}.method", method),
                valid_headers(f"{key}.headers", headers),
                integer(f"{key}.expected_status", expected_status, 100, 599),
                number(f"{key}.timeout", timeout, positive=True),
            ),
            check_interval,
            critical,
            endpoint=endpoint,
        )

    def add_supabase_dependency(
        self,
        name: str,
        endpoint: str,
        api_key: str | None = None,
        check_interval: float = 60,
        timeout: float = 5.0,
        critical: bool = False,
    ) -> None:
        key = self._key(name)
        base = url(f"{key}.endpoint", endpoint).rstrip("/")
        headers = {}
        if api_key is not None:
            headers = {
                "apikey": text(f"{key}.api_key", api_key, max_len=4096),
                "Authorization": f"Bearer {api_key}",
            }
        self._add(
            name,
            "supabase",
            http_check(
                f"{base}/auth/v1/health",
                "GET",
                headers,
                200,
                number(f"{key}.timeout", timeout, positive=True),
            ),
            check_interval,
            critical,
            endpoint=base,
        )

    def add_livekit_dependency(
        self,
        name: str,
        endpoint: str,
        check_interval: float = 60,
        timeout: float = 5.0,
        critical: bool = False,
    ) -> None:
        key = self._key(name)
        url(f"{key}.endpoint", endpoint, schemes=("http", "https", "ws", "wss"))
        base = _https(endpoint).rstrip("/")
        self._add(
            name,
            "livekit",
            http_check(
                base + "/", "GET", {}, 200, number(f"{key}.timeout", timeout, positive=True)
            ),
            check_interval,
            critical,
            endpoint=base,
        )

    def add_railway_dependency(
        self,
        name: str,
        project_id: str,
        api_key: str,
        check_interval: float = 300,
        timeout: float = 10.0,
        endpoint: str = RAILWAY_API,
        token_type: str = "account",
        critical: bool = False,
    ) -> None:
        """Latest deployment status of a Railway project (poll every few minutes: the API is
        rate limited per hour)."""
        key = self._key(name)
        text(f"{key}.project_id", project_id)
        text(f"{key}.api_key", api_key, max_len=4096)
        url(f"{key}.endpoint", endpoint)
        if token_type not in ("account", "project"):
            raise MonitoringConfigError(
                f"Monitoring config key '{key}.token_type' must be 'account' or 'project', "
                f"got {short(token_type)}."
            )
        headers = (
            {"Project-Access-Token": api_key}
            if token_type == "project"
            else {"Authorization": f"Bearer {api_key}"}
        )
        timeout = number(f"{key}.timeout", timeout, positive=True)

        def run() -> CheckResult:
            import httpx

            t0 = time.perf_counter()
            try:
                r = httpx.post(
                    endpoint,
                    headers=headers,
                    timeout=timeout,
                    json={
                        "query": _RAILWAY_QUERY,
                        "variables": {"input": {"projectId": project_id}, "first": 1},
                    },
                )
                ms = (time.perf_counter() - t0) * 1000
                if r.status_code != 200:
                    return CheckResult(
                        "down", ms, r.status_code, f"Railway API answered HTTP {r.status_code}"
                    )
                body = r.json()
                if body.get("errors"):
                    message = str(body["errors"][0].get("message"))[:500]
                    return CheckResult("down", ms, 200, message, reason="Railway API error")
                edges = body["data"]["deployments"]["edges"]
            except Exception as exc:  # noqa: BLE001
                return failed(exc, t0)
            if not edges:
                return CheckResult("pending", ms, 200, "no deployments")
            node = edges[0]["node"]
            status = _RAILWAY_STATUS.get(str(node.get("status")), "degraded")
            return CheckResult(
                status,
                ms,
                200,
                None if status == "up" else f"latest deployment is {node.get('status')}",
                {
                    "deployment_id": node.get("id"),
                    "deployment_status": node.get("status"),
                    "created_at": node.get("createdAt"),
                },
            )

        self._add(name, "railway", run, check_interval, critical, project_id=project_id)

    def add_custom_dependency(
        self,
        name: str,
        check_func: Callable[[], Any],
        check_interval: float = 60,
        critical: bool = False,
    ) -> None:
        """`check_func()` returns {"status": "healthy"|"degraded"|"unhealthy", "details": {}}."""
        key = self._key(name)
        if not callable(check_func):
            raise MonitoringConfigError(
                f"Monitoring config key '{key}.check_func' must be a callable, "
                f"got {short(check_func)}."
            )
        self._add(name, "custom", custom_check(check_func), check_interval, critical)


infrastructure_monitor = InfrastructureMonitor()
