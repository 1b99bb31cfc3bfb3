"""What a source is: something that fetches batches of plain records from a watermark.

A source never writes to the warehouse. It reads its last committed watermarks, yields
`Batch`es, and the run engine validates, upserts and advances the watermark of each batch in
one transaction. A new source is one small file that implements `fetch`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

import pyarrow as pa


class TransientSourceError(RuntimeError):
    """A fault worth retrying with backoff (timeout, 5xx, connection reset, 429)."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SourceConfigError(ValueError):
    """A fault the user must fix (bad key, bad URL, missing setting): one clear sentence."""


Records: TypeAlias = Sequence[Mapping[str, Any]] | pa.Table


@dataclass
class Batch:
    """Rows for one warehouse table, and the watermark to commit with them.

    `rows` is a list of dicts (timestamps as aware datetimes or ISO 8601 strings with an
    offset) or a pyarrow Table whose timestamp columns are time zone-aware.
    `watermark` is the stream's new value once these rows are committed; None keeps it.
    """

    table: str
    rows: Records
    stream: str | None = None  # defaults to the table name
    watermark: str | None = None
    progress: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"done": 1000, "total": 5000}
    # Records the source could not even read as rows (e.g. a line that is not JSON), with the
    # reason: the engine files them in `rejects` with the batch, so nothing is dropped silently.
    unreadable: Sequence[tuple[Mapping[str, Any], str]] = ()

    @property
    def stream_name(self) -> str:
        return self.stream or self.table


class Source(Protocol):
    name: str

    def fetch(self, watermarks: Mapping[str, str]) -> Iterator[Batch]:
        """Yield batches newer than `watermarks` (stream -> last committed value)."""
        ...
