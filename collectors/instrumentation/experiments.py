"""Experiment assignment: deterministic, stable across processes, one exposure per unit.

Hashing follows GrowthBook's SDK (hash version 2): n = fnv1a32(str(fnv1a32(seed + unit))) %
10000 / 10000, and the unit gets the variant whose bucket range [start, start + coverage *
weight) holds n (GrowthBook `getBucketRanges` / `chooseVariation`). Identical inputs give the
identical variant in every process, language and restart.

Definitions come from the local config (`experiments.definitions`) and, when Supabase is
configured, from its `experiments` table, refreshed on a background thread; when Supabase is
unreachable the last good copy stays in use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from collectors.instrumentation.config import MonitoringConfigError
from collectors.instrumentation.runtime import never_raises, state

log = logging.getLogger("collectors.instrumentation")

RUNNING = "running"
STATUSES = ("draft", "running", "paused", "stopped")
MAX_REMEMBERED_EXPOSURES = 1_000_000


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a over the string's characters (as GrowthBook's SDKs do)."""
    h = 0x811C9DC5
    for ch in text:
        h ^= ord(ch)
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def hash_unit(seed: str, unit_id: str, version: int = 2) -> float:
    """GrowthBook's hash: a number in [0, 1) for (seed, unit)."""
    if version == 1:
        return (fnv1a32(unit_id + seed) % 1000) / 1000
    return (fnv1a32(str(fnv1a32(seed + unit_id))) % 10000) / 10000


def bucket_ranges(weights: list[float], coverage: float) -> list[tuple[float, float]]:
    ranges = []
    start = 0.0
    for w in weights:
        ranges.append((start, start + coverage * w))
        start += w
    return ranges


def choose_variation(n: float, ranges: list[tuple[float, float]]) -> int:
    for i, (lo, hi) in enumerate(ranges):
        if lo <= n < hi:
            return i
    return -1


@dataclass(frozen=True)
class Experiment:
    key: str
    variants: tuple[str, ...] = ("control", "treatment")
    weights: tuple[float, ...] = (0.5, 0.5)
    status: str = RUNNING
    coverage: float = 1.0
    seed: str = ""
    hash_version: int = 2
    unit_type: str = "call"

    @classmethod
    def from_mapping(cls, key: str, d: Mapping[str, Any]) -> Experiment:
        where = f"experiments.definitions.{key}"
        variants = tuple(d.get("variants") or ("control", "treatment"))
        if len(variants) < 2 or not all(isinstance(v, str) and v for v in variants):
            raise MonitoringConfigError(
                f"Monitoring config key '{where}.variants' must list at least two variant "
                f"names, got {d.get('variants')!r}."
            )
        weights = d.get("weights")
        if weights is None:
            weights = [1 / len(variants)] * len(variants)
        if (
            len(weights) != len(variants)
            or not all(
                isinstance(w, int | float) and not isinstance(w, bool) and w >= 0 for w in weights
            )
            or abs(sum(weights) - 1) > 1e-6
        ):
            raise MonitoringConfigError(
                f"Monitoring config key '{where}.weights' must be one non-negative weight per "
                f"variant summing to 1, got {weights!r}."
            )
        status = d.get("status", RUNNING)
        if status not in STATUSES:
            raise MonitoringConfigError(
                f"Monitoring config key '{where}.status' must be one of {', '.join(STATUSES)}, "
                f"got {status!r}."
            )
        coverage = d.get("coverage", 1.0)
        if not isinstance(coverage, int | float) or not 0 <= coverage <= 1:
            raise MonitoringConfigError(
                f"Monitoring config key '{where}.coverage' must be between 0 and 1, "
                f"got {coverage!r}."
            )
        hv = d.get("hash_version", 2)
        if hv not in (1, 2):
            raise MonitoringConfigError(
                f"Monitoring config key '{where}.hash_version' must be 1 or 2, got {hv!r}."
            )
        return cls(
            key,
            variants,
            tuple(float(w) for w in weights),
            status,
            float(coverage),
            str(d.get("seed") or key),
            hv,
            str(d.get("unit_type") or "call"),
        )

    def variant_for(self, unit_id: str) -> tuple[str, bool]:
        """(variant, in_experiment). Not running or outside coverage: control, no exposure."""
        if self.status != RUNNING:
            return self.variants[0], False
        i = choose_variation(
            hash_unit(self.seed, unit_id, self.hash_version),
            bucket_ranges(list(self.weights), self.coverage),
        )
        if i < 0:
            return self.variants[0], False
        return self.variants[i], True


class Experiments:
    def __init__(self) -> None:
        self.local: dict[str, Experiment] = {}
        self.remote: dict[str, Experiment] = {}
        self.remote_loaded_at: float | None = None
        self.refresh_interval = 60.0
        self.refresh_failures = 0
        self._supabase: dict[str, Any] = {}
        self._use_remote = False
        self._exposed: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Any = None

    def configure(self, cfg: dict[str, Any], supabase: dict[str, Any]) -> None:
        self.local = {k: Experiment.from_mapping(k, v) for k, v in cfg["definitions"].items()}
        self.refresh_interval = cfg["refresh_interval"]
        self._supabase = supabase
        configured = bool(supabase.get("url") and supabase.get("api_key"))
        self._use_remote = cfg["source"] == "supabase" or (cfg["source"] == "auto" and configured)

    def reset(self) -> None:
        self.stop()
        self.__init__()

    def definitions(self) -> dict[str, Experiment]:
        return {**self.local, **self.remote}

    def set_definition(self, key: str, **definition: Any) -> Experiment:
        """Add or replace a local definition (validated)."""
        exp = Experiment.from_mapping(key, definition)
        self.local[key] = exp
        return exp

    @never_raises
    def assign(self, experiment_key: str, unit_id: str, unit_type: str | None = None) -> str:
        """The unit's variant; records its first exposure. Unknown experiment: 'control'."""
        if not isinstance(experiment_key, str) or not experiment_key:
            raise ValueError(f"experiment_key must be a non-empty string, got {experiment_key!r}")
        if not isinstance(unit_id, str) or not unit_id:
            raise ValueError(f"unit_id must be a non-empty string, got {unit_id!r}")
        exp = self.remote.get(experiment_key) or self.local.get(experiment_key)
        if exp is None:
            raise KeyError(f"unknown experiment {experiment_key!r}; everyone gets 'control'")
        variant, exposed = exp.variant_for(unit_id)
        if exposed:
            key = (experiment_key, unit_id)
            if key not in self._exposed:
                with self._lock:
                    if len(self._exposed) >= MAX_REMEMBERED_EXPOSURES:
                        self._exposed.clear()  # the warehouse's key still keeps one per unit
                    self._exposed.add(key)
                state.pipeline.emit(
                    "experiment_exposures",
                    {
                        "experiment_key": experiment_key,
                        "unit_id": unit_id[:512],
                        "unit_type": unit_type or exp.unit_type,
                        "variant": variant,
                        "exposed_at": time.time(),
                    },
                )
        return variant

    # -- Supabase definitions ----------------------------------------------------------------
    def refresh(self) -> bool:
        """Reload definitions from Supabase; on failure keep the last good copy."""
        try:
            if self._client is None:
                from supabase.lib.client_options import SyncClientOptions

                from supabase import create_client

                # no client-side retries: the next refresh is the retry
                options = SyncClientOptions(
                    postgrest_client_retry=False,
                    postgrest_client_timeout=10,
                    auto_refresh_token=False,
                    persist_session=False,
                )
                self._client = create_client(
                    self._supabase["url"], self._supabase["api_key"], options=options
                )
            rows = self._client.table("experiments").select("*").execute().data
            loaded = {}
            for row in rows:
                key = row.get("key") or row.get("experiment_key")
                try:
                    loaded[key] = Experiment.from_mapping(key, row)
                except MonitoringConfigError as exc:
                    log.warning("monitoring: ignoring experiment %r from Supabase: %s", key, exc)
            self.remote = loaded
            self.remote_loaded_at = time.time()
            return True
        except Exception as exc:  # noqa: BLE001 - Supabase down: keep the last good copy
            self.refresh_failures += 1
            log.warning(
                "monitoring: could not refresh experiments from Supabase (%s); "
                "keeping %d known definitions",
                exc,
                len(self.remote),
            )
            return False

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.refresh_interval)

    def start(self) -> None:
        if not self._use_remote or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name="monitoring-experiments", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None


experiments = Experiments()


def assign(experiment_key: str, unit_id: str, unit_type: str | None = None) -> str:
    """The variant of `unit_id` in `experiment_key` ('control' when unknown or not running)."""
    return experiments.assign(experiment_key, unit_id, unit_type) or "control"
