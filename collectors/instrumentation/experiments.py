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
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from collectors.instrumentation.config import MonitoringConfigError, short
from collectors.instrumentation.runtime import never_raises, opt_str, req_id, state

log = logging.getLogger("collectors.instrumentation")

RUNNING = "running"
STATUSES = ("draft", "running", "paused", "stopped")
MAX_REMEMBERED_EXPOSURES = 1_000_000
DEFINITION_KEYS = (
    "variants",
    "weights",
    "status",
    "coverage",
    "seed",
    "hash_version",
    "unit_type",
    "name",
    "description",
)


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
    def from_mapping(cls, key: str, d: Mapping[str, Any], strict: bool = True) -> Experiment:
        """A validated definition. `strict` (the config) refuses unknown keys; a row of
        Supabase's `experiments` table may carry more columns."""
        where = f"experiments.definitions.{key[:100]}"

        def fail(field: str, expected: str, value: Any) -> MonitoringConfigError:
            return MonitoringConfigError(
                f"Monitoring config key '{where}.{field}' must be {expected}, got {short(value)}."
            )

        if not isinstance(d, Mapping):
            raise MonitoringConfigError(
                f"Monitoring config key '{where}' must be a dictionary, got {short(d)}."
            )
        if strict:
            for k in d:
                if k not in DEFINITION_KEYS:
                    raise MonitoringConfigError(
                        f"Unknown monitoring config key '{where}.{str(k)[:100]}'; use "
                        f"{', '.join(DEFINITION_KEYS)}."
                    )
        raw_variants = d.get("variants")
        if raw_variants is None:
            raw_variants = ["control", "treatment"]
        if (
            not isinstance(raw_variants, list | tuple)
            or not 2 <= len(raw_variants) <= 100
            or not all(isinstance(v, str) and 0 < len(v) <= 512 for v in raw_variants)
        ):
            raise fail("variants", "a list of at least two variant names", raw_variants)
        variants = tuple(v[:] for v in raw_variants)
        weights = d.get("weights")
        if weights is None:
            weights = [1 / len(variants)] * len(variants)
        if (
            not isinstance(weights, list | tuple)
            or len(weights) != len(variants)
            or not all(
                isinstance(w, int | float)
                and not isinstance(w, bool)
                and math.isfinite(w)
                and w >= 0
                for w in weights
            )
            or abs(sum(weights) - 1) > 1e-6
        ):
            raise fail("weights", "one non-negative weight per variant summing to 1", weights)
        status = d.get("status", RUNNING)
        if status not in STATUSES:
            raise fail("status", f"one of {', '.join(STATUSES)}", status)
        coverage = d.get("coverage", 1.0)
        if (
            isinstance(coverage, bool)
            or not isinstance(coverage, int | float)
            or not (0 <= coverage <= 1)
        ):
            raise fail("coverage", "a number from 0 to 1", coverage)
        hv = d.get("hash_version", 2)
        if isinstance(hv, bool) or hv not in (1, 2):
            raise fail("hash_version", "1 or 2", hv)
        seed = d.get("seed")
        if seed is not None and (not isinstance(seed, str) or len(seed) > 512):
            raise fail("seed", "a string", seed)
        unit_type = d.get("unit_type")
        if unit_type is not None and (not isinstance(unit_type, str) or len(unit_type) > 64):
            raise fail("unit_type", "a string", unit_type)
        return cls(
            key,
            variants,
            tuple(float(w) for w in weights),
            str(status),
            float(coverage),
            seed or key,
            int(hv),
            unit_type or "call",
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
        type(self).__init__(self)  # back to the state of a new monitor

    def definitions(self) -> dict[str, Experiment]:
        return {**self.local, **self.remote}

    def set_definition(self, key: str, **definition: Any) -> Experiment:
        """Add or replace a local definition (validated)."""
        if not isinstance(key, str) or not 0 < len(key) <= 512:
            raise MonitoringConfigError(
                f"Monitoring config key 'experiments.definitions' needs experiment keys of 1 "
                f"to 512 characters, got {short(key)}."
            )
        exp = Experiment.from_mapping(key, definition)
        self.local[key] = exp
        return exp

    @never_raises
    def assign(self, experiment_key: str, unit_id: str, unit_type: str | None = None) -> str:
        """The unit's variant; records its first exposure. Unknown experiment: 'control'."""
        experiment_key = req_id("experiment_key", experiment_key)
        unit_id = req_id("unit_id", unit_id)  # bounded: hashing a huge id would stall
        unit_type = opt_str("unit_type", unit_type, 64)
        exp = self.remote.get(experiment_key) or self.local.get(experiment_key)
        if exp is None:
            raise KeyError(f"unknown experiment {experiment_key[:80]!r}; everyone gets 'control'")
        variant, exposed = exp.variant_for(unit_id)
        if exposed:
            key = (experiment_key, unit_id)
            with self._lock:
                first = key not in self._exposed
                if first:
                    if len(self._exposed) >= MAX_REMEMBERED_EXPOSURES:
                        self._exposed.clear()  # the warehouse's key still keeps one per unit
                    self._exposed.add(key)
            if first:
                state.pipeline.emit(
                    "experiment_exposures",
                    {
                        "experiment_key": experiment_key,
                        "unit_id": unit_id,
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
                    if not isinstance(key, str) or not 0 < len(key) <= 512:
                        raise MonitoringConfigError(f"its key is {short(key)}.")
                    loaded[key] = Experiment.from_mapping(key, row, strict=False)
                except MonitoringConfigError as exc:
                    log.warning(
                        "monitoring: ignoring experiment %s from Supabase: %s", short(key), exc
                    )
            self.remote = loaded
            self.remote_loaded_at = time.time()
            return True
        except Exception as exc:  # noqa: BLE001 - Supabase down: keep the last good copy
            self.refresh_failures += 1
            log.warning(
                "monitoring: could not refresh experiments from Supabase (%s: %s); "
                "keeping %d known definitions",
                type(exc).__name__,
                str(exc)[:200],
                len(self.remote),
            )
            return False

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.refresh()
            stop.wait(self.refresh_interval)

    def start(self) -> None:
        if not self._use_remote or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop = threading.Event()  # a thread left running by stop() keeps its own
        self._thread = threading.Thread(
            target=self._loop, args=(self._stop,), name="monitoring-experiments", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(0.0, timeout))
        self._thread = None


experiments = Experiments()


def assign(experiment_key: str, unit_id: str, unit_type: str | None = None) -> str:
    """The variant of `unit_id` in `experiment_key` ('control' when unknown or not running)."""
    return experiments.assign(experiment_key, unit_id, unit_type) or "control"
