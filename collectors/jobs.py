"""Which sources the service runs, and their default schedules."""

from __future__ import annotations

from collectors.service import Job


def configured_jobs() -> dict[str, Job]:
    """The sources from the configuration; with none, the embedded demo every minute."""
    from collectors.sources.demo import DemoSource

    return {"demo": Job(DemoSource(), {"kind": "interval", "seconds": 60})}
