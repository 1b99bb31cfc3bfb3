"""The spool: rotated JSON-lines files on local disk, one directory per warehouse table.

Layout: `<dir>/<table>/<stem>.part` while a writer appends to it, renamed to `<stem>.jsonl`
when sealed (rotated by size or age, or at shutdown). A stem is `<UTC time>-<pid>-<seq>`, so
stems sort in creation order. Each line is one row; a write is flushed and fsynced before the
writer reports success, so a line that ends in a newline is committed.

A reader's position is the watermark `<stem>:<byte offset>` of the last committed line it has
consumed. It reads files in stem order and never moves past a file that is still open (another
line may arrive), except a `.part` file nobody has touched for `stale_after_s` (its writer
died). Files younger than one second are left alone so a writer that stamped its name a moment
earlier than another can never be skipped.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any

c_make_encoder: Callable[..., Any] | None
try:
    from _json import make_encoder as c_make_encoder
except ImportError:  # pragma: no cover - not CPython
    c_make_encoder = None

log = logging.getLogger("collectors.instrumentation")

_STEM = re.compile(r"^(\d{8}T\d{12})-(\d+)-(\d+)$")
_GRACE_S = 1.0


@dataclass(frozen=True)
class SpoolFile:
    stem: str
    path: Path
    sealed: bool

    @property
    def created(self) -> float:
        m = _STEM.match(self.stem)
        if not m:
            return 0.0
        return datetime.strptime(m.group(1), "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC).timestamp()

    @property
    def pid(self) -> int:
        m = _STEM.match(self.stem)
        return int(m.group(2)) if m else 0


def spool_files(table_dir: Path) -> list[SpoolFile]:
    """The table directory's spool files in stem order."""
    out = []
    try:
        entries = list(os.scandir(table_dir))
    except FileNotFoundError:
        return []
    for e in entries:
        name = e.name
        if name.endswith(".jsonl"):
            out.append(SpoolFile(name[:-6], Path(e.path), True))
        elif name.endswith(".part"):
            out.append(SpoolFile(name[:-5], Path(e.path), False))
    return sorted((f for f in out if _STEM.match(f.stem)), key=lambda f: f.stem)


def parse_watermark(watermark: str | None) -> tuple[str, int]:
    if not watermark:
        return "", 0
    stem, _, offset = watermark.rpartition(":")
    try:
        return stem, int(offset)
    except ValueError:
        return "", 0


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs here (a spool file's writer, by its name)."""
    return pid == os.getpid() or _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Chunk:
    rows: list[dict[str, Any]]
    watermark: str  # position after the last line of this chunk
    bad_lines: int = 0
    bad: list[str] = field(default_factory=list)  # the unreadable lines (truncated), for rejects


def read_committed(
    table_dir: Path,
    watermark: str | None,
    *,
    max_bytes: int = 4 << 20,
    stale_after_s: float = 600.0,
    now: float | None = None,
) -> Iterator[Chunk]:
    """Committed rows after `watermark`, in chunks, each with the watermark that follows it."""
    wm_stem, wm_offset = parse_watermark(watermark)
    now = time.time() if now is None else now
    for f in spool_files(table_dir):
        if f.stem < wm_stem:
            continue
        if f.created > now - _GRACE_S:
            return  # a writer that stamped an earlier name may not have created its file yet
        offset = wm_offset if f.stem == wm_stem else 0
        try:
            size = f.path.stat().st_size
            mtime = f.path.stat().st_mtime
        except FileNotFoundError:
            return  # renamed (sealed) or deleted meanwhile: next run sees it
        # A live writer seals within its rotation interval, so a long-untouched .part is orphaned
        # (its writer may live in another container, so the pid cannot be checked here).
        closed = f.sealed or now - mtime > stale_after_s
        try:
            fh = open(f.path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return
        with fh:
            fh.seek(offset)
            while offset < size:
                data = fh.read(min(max_bytes, size - offset))
                if not data:
                    break
                end = data.rfind(b"\n")
                if end < 0:
                    if len(data) >= max_bytes:  # one line longer than a chunk: read it whole
                        data += fh.readline()
                        end = data.rfind(b"\n")
                    if end < 0:
                        break
                body = data[: end + 1]
                fh.seek(offset + len(body))
                offset += len(body)
                rows, bad = _parse_lines(body)
                yield Chunk(rows, f"{f.stem}:{offset}", len(bad), bad)
            if not closed:
                return  # the writer may still append to this file
            if offset < size:  # a torn last line of a dead or sealed file
                log.warning("spool: skipping %d torn bytes at the end of %s", size - offset, f.path)
                with open(f.path, "rb") as torn:
                    torn.seek(offset)
                    text = torn.read(_BAD_LINE_CHARS).decode("utf-8", "replace")
                yield Chunk([], f"{f.stem}:{size}", 1, [text])
            elif offset == 0 and f.stem != wm_stem:
                yield Chunk([], f"{f.stem}:0", 0)  # empty sealed file: move past it


def _pid_alive_local(f: SpoolFile) -> bool:
    return pid_alive(f.pid)


def file_chunks(
    path: Path, offset: int = 0, *, max_bytes: int = 4 << 20
) -> Iterator[tuple[list[dict[str, Any]], int]]:
    """The rows of one sealed spool file from `offset`, in chunks of whole lines, each with
    the offset after it. Lines that are not JSON objects (a torn tail) are skipped and logged."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        while True:
            data = fh.read(max_bytes)
            if not data:
                return
            end = data.rfind(b"\n")
            if end < 0:  # one line longer than a chunk, or a torn last line
                data += fh.readline()
                end = data.rfind(b"\n")
                if end < 0:
                    log.warning("spool: skipping %d torn bytes at the end of %s", len(data), path)
                    return
            body = data[: end + 1]
            offset += len(body)
            fh.seek(offset)
            rows, bad = _parse_lines(body)
            if bad:
                log.warning("spool: %d unreadable lines in %s were skipped", len(bad), path)
            yield rows, offset


_BAD_LINE_CHARS = 2000


def _parse_lines(body: bytes) -> tuple[list[dict[str, Any]], list[str]]:
    """The JSON objects in `body`, and the lines that are not (truncated, for rejects)."""
    rows: list[dict[str, Any]] = []
    bad: list[str] = []
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad.append(line[:_BAD_LINE_CHARS].decode("utf-8", "replace"))
    if bad:
        log.warning("spool: %d lines are not JSON objects; they go to rejects", len(bad))
    return rows, bad


def delete_consumed(table_dir: Path, watermark: str | None) -> int:
    """Delete sealed files wholly before the committed watermark; returns bytes freed."""
    wm_stem, _ = parse_watermark(watermark)
    freed = 0
    for f in spool_files(table_dir):
        if f.stem >= wm_stem:
            break
        if f.sealed or not _pid_alive_local(f):
            try:
                freed += f.path.stat().st_size
                f.path.unlink()
            except FileNotFoundError:
                pass
    return freed


def spool_bytes(directory: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def _row_encoder() -> Callable[[dict[str, Any]], str]:
    """One JSON line per row, compact and ASCII, with the encoder built once (json.dumps
    builds a new one per call, which costs as much as the encoding itself)."""
    if c_make_encoder is None:  # not CPython: the pure-Python encoder
        encoder = json.JSONEncoder(separators=(",", ":"), default=str)
        return encoder.encode
    # markers=None skips the cycle check: a cyclic row ends in RecursionError, caught per row
    fast = c_make_encoder(None, str, encode_basestring_ascii, None, ":", ",", False, False, True)

    def encode(row: dict[str, Any]) -> str:
        return "".join(fast(row, 0))

    return encode


encode_row = _row_encoder()


class SpoolWriter:
    """Appends rows to per-table spool files; thread-safe; bounded by `max_bytes` on disk.

    Never raises: a row that cannot be serialised is dropped alone (`unserialisable`), rows
    beyond the size limit are dropped (`dropped`) and a failing disk drops the batch
    (`disk_errors`, with `last_error`); all are counted."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int = 512 << 20,
        file_bytes: int = 8 << 20,
        rotate_seconds: float = 60.0,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.file_bytes = file_bytes
        self.rotate_seconds = rotate_seconds
        self.written = 0
        self.dropped = 0  # the size limit
        self.unserialisable = 0
        self.disk_errors = 0
        self.last_error: str | None = None
        self.failing_since: float | None = None
        self._lock = threading.Lock()
        self._open: dict[str, tuple[Any, Path, float]] = {}  # table -> (fh, path, opened_at)
        self._seq = 0
        self._last_log = -1e9
        self.directory.mkdir(parents=True, exist_ok=True)
        self._seal_orphans()
        self._bytes = spool_bytes(self.directory)
        self._bytes_checked = time.monotonic()

    def _seal_orphans(self) -> None:
        """Seal `.part` files left by processes that have exited."""
        for table_dir in self.directory.iterdir():
            if not table_dir.is_dir():
                continue
            for f in spool_files(table_dir):
                if not f.sealed and not _pid_alive_local(f):
                    self._seal_path(f.path)

    @staticmethod
    def _seal_path(path: Path) -> None:
        try:
            if path.stat().st_size == 0:
                path.unlink()
            else:
                os.replace(path, path.with_suffix(".jsonl"))
        except FileNotFoundError:
            pass

    def _new_file(self, table: str) -> tuple[Any, Path, float]:
        self._seq += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        table_dir = self.directory / table
        table_dir.mkdir(parents=True, exist_ok=True)
        path = table_dir / f"{stamp}-{os.getpid()}-{self._seq:06d}.part"
        fh = open(path, "ab")  # noqa: SIM115 - kept open until rotation
        entry = (fh, path, time.monotonic())
        self._open[table] = entry
        return entry

    def _seal(self, table: str) -> None:
        fh, path, _ = self._open.pop(table)
        try:
            fh.close()
        finally:
            self._seal_path(path)

    def _warn(self, message: str, *args: Any) -> None:
        """At most one line a minute: a full or failing disk must not flood the log."""
        now = time.monotonic()
        if now - self._last_log >= 60.0:
            self._last_log = now
            log.warning(message, *args)

    def write(self, table: str, rows: list[dict[str, Any]]) -> int:
        """Append rows (one JSON line each), fsync, and return how many were written."""
        if not rows:
            return 0
        lines = []
        for r in rows:
            try:
                lines.append(encode_row(r))
            except Exception:  # noqa: BLE001 - one row that will not serialise, not the batch
                lines.append("")
        bad = lines.count("")
        if bad:
            lines = [line for line in lines if line]
        data = ("\n".join(lines) + "\n").encode() if lines else b""
        with self._lock:
            if bad:
                self.unserialisable += bad
                self._warn("spool: dropped %d %s rows that cannot be serialised", bad, table)
            if not lines:
                return 0
            if self._bytes + len(data) > self.max_bytes:
                self._bytes = spool_bytes(self.directory)  # the reader may have freed space
                if self._bytes + len(data) > self.max_bytes:
                    self.dropped += len(lines)
                    self._warn(
                        "spool %s is full (%d bytes): dropped %d %s rows",
                        self.directory,
                        self.max_bytes,
                        len(lines),
                        table,
                    )
                    return 0
            try:
                fh, path, _ = self._open.get(table) or self._new_file(table)
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            except OSError as exc:
                self.disk_errors += len(lines)
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                if self.failing_since is None:
                    self.failing_since = time.time()
                self._warn(
                    "spool %s: dropped %d %s rows: %s", self.directory, len(lines), table, exc
                )
                if table in self._open:
                    try:
                        self._seal(table)  # start a fresh file: this one may end torn
                    except OSError:
                        pass
                return 0
            self.failing_since = None
            self._bytes += len(data)
            self.written += len(lines)
            if fh.tell() >= self.file_bytes:
                self._seal(table)
        return len(lines)

    def tick(self) -> None:
        """Seal files older than `rotate_seconds`, so readers can move past idle ones."""
        with self._lock:
            now = time.monotonic()
            for table, (_, _, opened) in list(self._open.items()):
                if now - opened >= self.rotate_seconds:
                    self._seal(table)
            if now - self._bytes_checked > 30:
                self._bytes = spool_bytes(self.directory)
                self._bytes_checked = now

    def open_paths(self) -> set[Path]:
        """The files this writer still appends to."""
        with self._lock:
            return {path for _, path, _ in self._open.values()}

    def close(self) -> None:
        with self._lock:
            for table in list(self._open):
                self._seal(table)
