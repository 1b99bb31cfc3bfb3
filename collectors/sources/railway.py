"""Railway deployments over the public GraphQL API (reference/voice_observability.md section 3).

Each run asks for the latest deployments of a project (optionally one service and environment)
and upserts them into `deployments` by id, so a deployment's status moves BUILDING -> DEPLOYING
-> SUCCESS across runs. Statuses are stored as Railway reports them, including ones this code
has never heard of. A probe_results row gives the service's health from its latest deployment.
Railway limits requests per hour (100 on the free plan): poll every few minutes; a 429 is
retried after its Retry-After.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx

from collectors.config_secrets import Secrets
from collectors.config_validator import Validator
from collectors.schedules import SCHEDULE_KEYS, Schedule
from collectors.sources.base import Batch, SourceConfigError, TransientSourceError
from collectors.sources.probes import CheckResult, next_state
from collectors.sources.registry import Built, SourceKind
from collectors.sources.supabase_rest import raise_for_source

ENDPOINT = "https://backboard.railway.com/graphql/v2"
QUERY = """
query Deployments($input: DeploymentListInput!, $first: Int) {
  deployments(input: $input, first: $first) {
    edges { node { id createdAt updatedAt statusUpdatedAt status meta serviceId environmentId } }
  }
}
"""
UP = {"SUCCESS", "SLEEPING"}
DOWN = {"FAILED", "CRASHED"}
IN_PROGRESS = {"BUILDING", "DEPLOYING", "INITIALIZING", "QUEUED", "WAITING", "NEEDS_APPROVAL"}
HISTORICAL = {"REMOVED", "REMOVING", "SKIPPED"}
FINISHED = UP | DOWN | HISTORICAL


def health(status: str) -> CheckResult:
    """A deployment status as a probe result (unknown statuses are 'pending', never 'up')."""
    if status in UP:
        return CheckResult(True)
    if status in DOWN:
        return CheckResult(False, error=f"latest deployment {status}")
    if status in IN_PROGRESS:
        return CheckResult(True, state="pending", error=f"deployment {status}")
    return CheckResult(True, state="pending", error=f"unknown Railway status {status}")


def deployment_row(node: Mapping[str, Any]) -> dict[str, Any]:
    meta = node.get("meta") or {}
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            meta = {}
    status = str(node.get("status") or "UNKNOWN")
    sha = meta.get("commitHash")
    return {
        "deployment_id": node["id"],
        "created_at": node["createdAt"],
        "finished_at": (node.get("statusUpdatedAt") or node.get("updatedAt"))
        if status in FINISHED
        else None,
        "service": meta.get("serviceName") or node.get("serviceId"),
        "environment": meta.get("environmentName") or node.get("environmentId"),
        "release": sha[:7] if isinstance(sha, str) else meta.get("imageTag"),
        "status": status,
        "is_rollback": meta.get("reason") == "rollback" or bool(meta.get("rollback")),
        "commit_sha": sha,
        "message": meta.get("commitMessage"),
    }


class RailwaySource:
    def __init__(
        self,
        project_id: str,
        token: str,
        *,
        service_id: str | None = None,
        environment_id: str | None = None,
        token_kind: str = "account",  # account|workspace -> Bearer; project -> Project-Access-Token
        endpoint: str = ENDPOINT,
        first: int = 20,
        retries: int = 0,
        timeout_s: float = 15.0,
        name: str = "railway",
        verify: bool = True,
    ):
        if not project_id:
            raise SourceConfigError("RAILWAY_PROJECT_ID is not set: give the project's id.")
        if not token:
            raise SourceConfigError("RAILWAY_API_KEY is not set: give an account or project token.")
        self.name = name
        self.project_id, self.service_id, self.environment_id = (
            project_id,
            service_id,
            environment_id,
        )
        self._token, self.token_kind = token, token_kind
        self.endpoint, self.first, self.retries = endpoint, first, retries
        self.timeout_s, self.verify = timeout_s, verify

    def __repr__(self) -> str:
        return f"RailwaySource(name={self.name!r}, project_id={self.project_id!r}, token='***')"

    def headers(self) -> dict[str, str]:
        if self.token_kind == "project":
            return {"Project-Access-Token": self._token}
        return {"Authorization": f"Bearer {self._token}"}

    def query(self) -> list[dict[str, Any]]:
        variables = {
            "input": {
                k: v
                for k, v in {
                    "projectId": self.project_id,
                    "serviceId": self.service_id,
                    "environmentId": self.environment_id,
                }.items()
                if v
            },
            "first": self.first,
        }
        try:
            with httpx.Client(timeout=self.timeout_s, verify=self.verify) as client:
                r = client.post(
                    self.endpoint,
                    json={"query": QUERY, "variables": variables},
                    headers=self.headers(),
                )
        except httpx.TimeoutException as exc:
            raise TransientSourceError("Railway did not answer in time") from exc
        except httpx.TransportError as exc:
            raise TransientSourceError(f"cannot reach Railway: {exc}") from exc
        raise_for_source(r, service="Railway", key_setting="RAILWAY_API_KEY")
        try:
            body = r.json()
        except ValueError:
            raise TransientSourceError(
                f"Railway answered HTTP {r.status_code} without JSON"
            ) from None
        errors = body.get("errors") or []
        if errors:
            text = "; ".join(str(e.get("message", e)) for e in errors)
            if any(w in text.lower() for w in ("not authorized", "unauthorized", "forbidden")):
                raise SourceConfigError(
                    f"Railway refused the token ({text}): check RAILWAY_API_KEY and that it can "
                    "read this project."
                )
            if "not found" in text.lower():
                raise SourceConfigError(
                    f"Railway could not find it ({text}): check RAILWAY_PROJECT_ID, "
                    "RAILWAY_SERVICE_ID and RAILWAY_ENVIRONMENT_ID."
                )
            raise TransientSourceError(f"Railway GraphQL error: {text}")
        if r.status_code >= 400:
            raise SourceConfigError(f"Railway answered HTTP {r.status_code}: check the settings.")
        edges = (((body.get("data") or {}).get("deployments")) or {}).get("edges") or []
        return [e["node"] for e in edges if isinstance(e, dict) and e.get("node")]

    def fetch(self, watermarks: Mapping[str, str]) -> Iterator[Batch]:
        nodes = self.query()
        rows = [deployment_row(n) for n in nodes]
        yield Batch("deployments", rows, stream="deployments",
                    progress={"done": len(rows), "total": len(rows)})  # fmt: skip
        live = [r for r in rows if r["status"] not in HISTORICAL]
        target = f"railway:{self.service_id or self.project_id}"
        if not live:
            result = CheckResult(True, state="pending", error="no live deployment")
        else:
            result = health(max(live, key=lambda r: r["created_at"])["status"])
        kept = _load(watermarks.get("state"))
        state, kept = next_state(kept, result, self.retries, False)
        yield Batch(
            "probe_results",
            [{"target": target, "checked_at": datetime.now(UTC), "kind": "railway",
              "status": state, "error": result.error}],
            stream="state",
            watermark=json.dumps(kept),
        )  # fmt: skip


def _load(value: str | None) -> dict[str, Any]:
    try:
        data = json.loads(value) if value else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# ---- configuration: [railway] ----------------------------------------------------------------

TokenKind = Literal["account", "workspace", "project"]
TOKEN_KINDS: tuple[TokenKind, ...] = ("account", "workspace", "project")
TOKENS = ("RAILWAY_API_KEY", "RAILWAY_PROJECT_TOKEN")


@dataclass(frozen=True)
class RailwaySettings:
    project_id: str
    schedule: Schedule
    service_id: str | None = None
    environment_id: str | None = None
    token_kind: TokenKind = "account"
    endpoint: str = ENDPOINT
    retries: int = 0


def railway_settings(
    data: Mapping[str, Any], v: Validator, secrets: Secrets
) -> RailwaySettings | None:
    rw = v.table(data, "railway")
    if not rw:
        return None
    allowed = {"project_id", "service_id", "environment_id", "token_kind", "endpoint", "retries"}
    v.known(rw, "railway", {*allowed, "name", *SCHEDULE_KEYS})
    project = v.string(rw, "railway", "project_id")
    if not project:
        v.problem(
            "railway.project_id is not set: set RAILWAY_PROJECT_ID or [railway] project_id "
            f"in {v.where}."
        )
    if not secrets.value(*TOKENS):
        v.problem(
            "RAILWAY_API_KEY is not set: put a Railway account or project token in the "
            "environment or .streamlit/secrets.toml."
        )
    token_kind = v.string(rw, "railway", "token_kind", "account", choices=TOKEN_KINDS)
    if secrets.get("RAILWAY_PROJECT_TOKEN") and not secrets.get("RAILWAY_API_KEY"):
        token_kind = "project"  # the only token there is
    return RailwaySettings(
        project_id=project or "",
        schedule=v.schedule(rw, "railway", 300),
        service_id=v.string(rw, "railway", "service_id"),
        environment_id=v.string(rw, "railway", "environment_id"),
        token_kind=next((k for k in TOKEN_KINDS if k == token_kind), "account"),
        endpoint=v.url(rw, "railway", "endpoint") or ENDPOINT,
        retries=v.integer(rw, "railway", "retries", 0, low=0),
    )


def railway_sources(settings: RailwaySettings, secrets: Secrets, data_dir: Path) -> Built:
    source = RailwaySource(
        settings.project_id,
        secrets.value(*TOKENS) or "",
        service_id=settings.service_id,
        environment_id=settings.environment_id,
        token_kind=settings.token_kind,
        endpoint=settings.endpoint,
        retries=settings.retries,
    )
    return {source.name: (source, settings.schedule.as_dict())}


RAILWAY = SourceKind(
    name="railway",
    sections=("railway",),
    parse=railway_settings,
    build=railway_sources,
    env={
        "RAILWAY_PROJECT_ID": "railway.project_id",
        "RAILWAY_SERVICE_ID": "railway.service_id",
        "RAILWAY_ENVIRONMENT_ID": "railway.environment_id",
    },
    secrets=TOKENS,
)
