"""The spool format: committed lines only, exact watermarks, rotation, torn writes, orphaned
files, the size limit, and the pipeline's bounded queue."""

from __future__ import annotations

import json
import os
import time

from collectors.instrumentation.pipeline import Pipeline
from collectors.instrumentation.sinks import MemorySink
from collectors.instrumentation.spool import SpoolWriter, read_committed, spool_files
from collectors.sources.spool import SpoolSource


def later() -> float:
    """Read as if the files were older than the one-second grace. (Computed per call: a
    module-level constant goes stale when the suite runs for minutes before this file.)"""
    return time.time() + 10


def rows(n, start=0):
    return [{"request_id": f"r{i}", "route": "/x"} for i in range(start, n)]


def read_all(table_dir, watermark=None):
    got, wm = [], watermark
    for chunk in read_committed(table_dir, watermark, now=later()):
        got += chunk.rows
        wm = chunk.watermark
    return got, wm


def test_reader_resumes_exactly_after_its_watermark(tmp_path):
    w = SpoolWriter(tmp_path, file_bytes=10_000_000)
    w.write("requests", rows(5))
    first, wm = read_all(tmp_path / "requests")
    assert [r["request_id"] for r in first] == ["r0", "r1", "r2", "r3", "r4"]
    w.write("requests", rows(8, 5))
    second, wm2 = read_all(tmp_path / "requests", wm)
    assert [r["request_id"] for r in second] == ["r5", "r6", "r7"]
    assert read_all(tmp_path / "requests", wm2)[0] == []


def test_a_partial_line_is_not_read_until_it_is_complete(tmp_path):
    w = SpoolWriter(tmp_path)
    w.write("requests", rows(2))
    fh = w._open["requests"][0]
    fh.write(b'{"request_id": "r2", "ro')  # a write in progress
    fh.flush()
    got, wm = read_all(tmp_path / "requests")
    assert len(got) == 2
    fh.write(b'ute": "/x"}\n')
    fh.flush()
    assert read_all(tmp_path / "requests", wm)[0] == [{"request_id": "r2", "route": "/x"}]


def test_rotation_seals_files_and_the_reader_moves_across_them(tmp_path):
    w = SpoolWriter(tmp_path, file_bytes=200)
    for i in range(0, 40, 4):
        w.write("errors", rows(i + 4, i))
    w.close()
    files = spool_files(tmp_path / "errors")
    assert len(files) > 3 and all(f.sealed for f in files)
    got, _ = read_all(tmp_path / "errors")
    assert [r["request_id"] for r in got] == [f"r{i}" for i in range(40)]


def test_a_torn_last_line_of_a_dead_writer_is_skipped(tmp_path):
    table = tmp_path / "errors"
    table.mkdir()
    orphan = table / "20250101T000000000000-999999-000001.part"  # pid 999999: not running
    orphan.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": ')
    SpoolWriter(tmp_path)  # a new writer seals orphans it finds
    got, wm = read_all(table)
    assert got == [{"a": 1}, {"a": 2}]
    assert wm.endswith(f":{orphan.with_suffix('.jsonl').stat().st_size}")


def test_an_open_file_of_a_live_writer_blocks_later_files(tmp_path):
    a = SpoolWriter(tmp_path / "s")
    a.write("requests", rows(1))
    b_dir = tmp_path / "s" / "requests"
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() + 2))
    later = b_dir / f"{stamp}000000-1-000001.jsonl"  # another writer, a moment later
    later.write_text(json.dumps({"request_id": "late"}) + "\n")
    got, wm = read_all(b_dir)
    assert [r["request_id"] for r in got] == ["r0"]  # not past a.part while it may grow
    a.close()
    got, _ = read_all(b_dir, wm)
    assert [r["request_id"] for r in got] == ["late"]


def test_the_size_limit_drops_and_counts_instead_of_filling_the_disk(tmp_path):
    w = SpoolWriter(tmp_path, max_bytes=2_000)
    written = sum(w.write("requests", rows(i + 10, i)) for i in range(0, 500, 10))
    assert written < 500 and w.dropped == 500 - written
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(tmp_path) for f in fs)
    assert size <= 2_000


def test_spool_source_yields_one_stream_per_table_with_file_offsets(tmp_path):
    for table, lines in (
        ("requests", ['{"request_id": "r0"}', '{"request_id": "r1"}']),
        ("feedback", ['{"feedback_id": "f1", "rating": 5}']),
    ):
        (tmp_path / table).mkdir()
        (tmp_path / table / "20250101T000000000000-7-000001.jsonl").write_text(
            "\n".join(lines) + "\n"
        )
    (tmp_path / "not_a_table").mkdir()
    batches = list(SpoolSource(tmp_path).fetch({}))
    assert [(b.table, b.stream, len(b.rows)) for b in batches] == [
        ("requests", "requests", 2),
        ("feedback", "feedback", 1),
    ]
    size = (tmp_path / "requests" / "20250101T000000000000-7-000001.jsonl").stat().st_size
    assert batches[0].watermark == f"20250101T000000000000-7-000001:{size}"
    assert list(SpoolSource(tmp_path).fetch({b.stream: b.watermark for b in batches})) == []


def test_the_pipeline_queue_is_bounded_and_counts_drops():
    p = Pipeline(MemorySink(), max_queue=100)
    for i in range(250):
        p.emit("requests", {"request_id": str(i)})
    assert len(p.queue) == 100 and p.dropped_queue == 150
