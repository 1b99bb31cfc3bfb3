"""Sync experiments from the control store to Supabase's `experiments` table, which the agent's
SDK (collectors/instrumentation/experiments.py) refreshes in the background: starting, pausing
or stopping an experiment on the Experiments page changes what callers get.

Columns written are those of supabase/migrations/20260101000000_monitoring_sdk.sql
`public.experiments`: key (unique), variants (jsonb list, control first), weights (jsonb list
summing to 1), status (draft|running|paused|stopped), unit_type, description, updated_at.
`seed`, `coverage` and `hash_version` are left to their table defaults (or a value someone set
in Supabase), so a sync never reshuffles who gets which variant.

The upsert goes through supabase-py (PostgREST `POST /rest/v1/experiments?on_conflict=key`
with `Prefer: resolution=merge-duplicates`). A failed sync is retried on the next run; nothing
is lost because the control store stays the source of truth. Runs only send when something
changed since the last successful sync.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from collectors.control import ControlStore, SavedExperiment, now_iso

log = logging.getLogger(__name__)

TABLE = "experiments"


def exact_weights(weights: Iterable[float]) -> list[float]:
    """Weights that sum to exactly 1 in floating point (the SDK checks |Σw − 1| ≤ 1e-6)."""
    w = [max(float(x), 0.0) for x in weights]
    total = sum(w) or 1.0
    w = [x / total for x in w]
    if w:
        w[-1] = max(0.0, 1.0 - sum(w[:-1]))
    return w


def experiment_rows(experiments: Iterable[SavedExperiment]) -> list[dict[str, Any]]:
    """One Supabase row per saved experiment."""
    return [
        {
            "key": e.key,
            "variants": list(e.variants),
            "weights": exact_weights(e.weights),
            "status": e.status,
            "unit_type": e.unit_type,
            "description": e.hypothesis or e.name,
            "updated_at": e.updated_at or now_iso(),
        }
        for e in experiments
    ]


@dataclass(frozen=True)
class SyncResult:
    ok: bool
    synced: int
    message: str


def supabase_client(url: str, api_key: str) -> Any:
    """A supabase-py client without client-side retries (the next run is the retry)."""
    from supabase.lib.client_options import SyncClientOptions

    from supabase import create_client

    options = SyncClientOptions(
        postgrest_client_retry=False,
        postgrest_client_timeout=10,
        auto_refresh_token=False,
        persist_session=False,
    )
    return create_client(url, api_key, options=options)


class ExperimentSync:
    """The small job the collectors service runs on each poll of the control store."""

    def __init__(self, control: ControlStore, client_factory: Callable[[], Any]):
        self.control = control
        self.client_factory = client_factory
        self._client: Any = None
        self._last_synced: str | None = None  # fingerprint of the rows last accepted

    def run_once(self, force: bool = False) -> SyncResult:
        rows = experiment_rows(self.control.experiments().values())
        fingerprint = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
        if not rows:
            return SyncResult(True, 0, "no experiments to sync")
        if fingerprint == self._last_synced and not force:
            return SyncResult(True, 0, "experiments unchanged since the last sync")
        try:
            if self._client is None:
                self._client = self.client_factory()
            self._client.table(TABLE).upsert(rows, on_conflict="key").execute()
        except Exception as exc:  # noqa: BLE001 - any failure: report, retry next run
            self._client = None
            message = f"could not sync experiments to Supabase ({_first_line(exc)}); retrying"
            log.warning(message)
            self.control.set_service_info(
                experiment_sync=f"failed at {now_iso()}: {_first_line(exc)}"
            )
            return SyncResult(False, 0, message)
        self._last_synced = fingerprint
        self.control.set_service_info(
            experiment_sync=f"{len(rows)} experiment(s) synced at {now_iso()}"
        )
        return SyncResult(True, len(rows), f"synced {len(rows)} experiment(s)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def sync_from_config(
    control: ControlStore, url: str | None, api_key: str | None
) -> ExperimentSync | None:
    """The sync job when Supabase is configured (url and service-role key), else None."""
    if not (url and api_key):
        return None
    return ExperimentSync(control, lambda: supabase_client(url, api_key))
