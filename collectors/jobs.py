"""Which sources the service runs, and their default schedules, from the configuration."""

from __future__ import annotations

from collectors.config import load_config
from collectors.service import Job


def configured_jobs(config_file: str | None = None) -> dict[str, Job]:
    """The configured sources; with no configuration, the embedded demo every minute.

    Raises collectors.config.ConfigError listing every problem, one sentence each.
    """
    from collectors.config import build_sources

    config = load_config(config_file)
    return {
        name: Job(source, schedule) for name, (source, schedule) in build_sources(config).items()
    }
