"""Which sources the service runs, and their default schedules, from the configuration."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from collectors.config import WorkbenchConfig
from collectors.control import ControlStore
from collectors.service import Job


def jobs_from(config: WorkbenchConfig, data_dir: Path | None = None) -> dict[str, Job]:
    from collectors.config import build_sources

    sources = build_sources(config, data_dir)
    return {name: Job(source, schedule) for name, (source, schedule) in sources.items()}


def poll_tasks(config: WorkbenchConfig, control: ControlStore) -> list[Callable[[], Any]]:
    """Work the service does on every poll of the control store, beside scheduled runs:
    syncing experiments to the table the agent's SDK reads, when Supabase is configured."""
    from collectors.experiment_sync import sync_from_config

    url = config.supabase.url if config.supabase else None
    sync = sync_from_config(
        control, url, config.secret("SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_API_KEY")
    )
    return [sync.run_once] if sync else []
