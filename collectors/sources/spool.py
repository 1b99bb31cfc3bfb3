"""The spool source: rows the monitoring SDK wrote to local JSON-lines files.

One stream per warehouse table (`<dir>/<table>/*.jsonl`). The watermark is `<file stem>:<byte
offset>` just after the last committed line, so each batch is committed together with the
exact position that follows it: a crash between batches re-reads nothing already committed and
skips nothing. Files wholly before a committed watermark are deleted on the next run, which is
what keeps the SDK's spool under its size limit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.config_secrets import Secrets
from collectors.config_validator import Validator
from collectors.instrumentation.spool import delete_consumed, read_committed
from collectors.schedules import SCHEDULE_KEYS, Schedule
from collectors.schema import TABLES
from collectors.sources.base import Batch, SourceConfigError
from collectors.sources.registry import Built, SourceKind

DEFAULT_INTERVAL_S = 10


class SpoolSource:
    name = "spool"

    def __init__(
        self,
        directory: str | Path,
        *,
        batch_bytes: int = 4 << 20,
        stale_after_s: float = 600.0,
        delete_consumed_files: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.batch_bytes = batch_bytes
        self.stale_after_s = stale_after_s
        self.delete_consumed_files = delete_consumed_files
        self.bad_lines = 0

    def fetch(self, watermarks: Mapping[str, str]) -> Iterator[Batch]:
        if self.directory.exists() and not self.directory.is_dir():
            raise SourceConfigError(f"The spool path {self.directory} is a file, not a folder.")
        for table in TABLES:
            table_dir = self.directory / table
            if not table_dir.is_dir():
                continue
            position = watermarks.get(table)
            if self.delete_consumed_files:
                delete_consumed(table_dir, position)
            for chunk in read_committed(
                table_dir, position, max_bytes=self.batch_bytes, stale_after_s=self.stale_after_s
            ):
                self.bad_lines += chunk.bad_lines
                file, _, offset = chunk.watermark.rpartition(":")
                yield Batch(
                    table,
                    chunk.rows,
                    stream=table,
                    watermark=chunk.watermark,
                    progress={"file": file, "offset": int(offset), "bad_lines": chunk.bad_lines},
                    unreadable=[
                        ({"spool_file": file, "line": line}, "spool line is not a JSON object")
                        for line in chunk.bad
                    ],
                )


# ---- configuration: [spool] ------------------------------------------------------------------


@dataclass(frozen=True)
class SpoolSettings:
    directory: Path
    schedule: Schedule


def spool_settings(data: Mapping[str, Any], v: Validator, secrets: Secrets) -> SpoolSettings | None:
    spool = v.table(data, "spool")
    if not spool:
        return None
    v.known(spool, "spool", {"directory", *SCHEDULE_KEYS})
    directory = v.string(spool, "spool", "directory")
    if not directory:
        v.fail("spool.directory", "must name the folder the SDK's spool sink writes to")
        return None
    return SpoolSettings(
        Path(directory).expanduser(), v.schedule(spool, "spool", DEFAULT_INTERVAL_S)
    )


def spool_sources(settings: SpoolSettings, secrets: Secrets, data_dir: Path) -> Built:
    source = SpoolSource(settings.directory)
    return {source.name: (source, settings.schedule.as_dict())}


SPOOL = SourceKind(
    name="spool",
    sections=("spool",),
    parse=spool_settings,
    build=spool_sources,
    env={"WORKBENCH_SPOOL_DIR": "spool.directory"},
)
