"""Publishing: incremental, atomic, and readable as a snapshot."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from collectors.engine import run_source
from collectors.publish import publish, read_manifest, referenced_files
from collectors.snapshot import open_snapshot
from collectors.sources.base import Batch
from collectors.warehouse import open_warehouse

NOW = datetime.now(UTC).replace(microsecond=0)


class Rows:
    name = "rows"

    def __init__(self, rows):
        self.rows = rows

    def fetch(self, marks):
        yield Batch("requests", self.rows)


def req(i, minutes_ago, status=200):
    return {
        "request_id": f"r{i}",
        "started_at": (NOW - timedelta(minutes=minutes_ago)).isoformat(),
        "route": "/v1/agent/turn",
        "method": "POST",
        "status_code": status,
        "duration_ms": 100.0 + i,
    }


@pytest.fixture
def con(tmp_path):
    con = open_warehouse(tmp_path / "w.duckdb")
    yield con
    con.close()


def test_first_publish_writes_every_day_and_snapshot_reads_it(con, tmp_path):
    run_source(con, Rows([req(i, i * 60) for i in range(24 * 5)]))  # 5 days, hourly
    result = publish(con, tmp_path / "serving")
    snap = open_snapshot(tmp_path / "serving")
    assert result.version == 1 and result.days_written >= 5
    assert snap.con.execute("SELECT count(*) FROM requests").fetchone()[0] == 120
    assert snap.con.execute("SELECT sum(n) FROM requests_hourly").fetchone()[0] == 120
    assert snap.manifest["tables"]["requests"]["rows"] == 120


def test_a_new_minute_republishes_only_its_day(con, tmp_path):
    run_source(con, Rows([req(i, i * 60) for i in range(24 * 20)]))
    publish(con, tmp_path / "serving")
    run_source(con, Rows([req(10_000, 0, status=500)]))
    result = publish(con, tmp_path / "serving")
    assert result.days_written == 1
    snap = open_snapshot(tmp_path / "serving")
    assert snap.version == 2
    assert snap.con.execute("SELECT count(*) FROM requests").fetchone()[0] == 24 * 20 + 1
    assert snap.con.execute("SELECT sum(n_5xx) FROM requests_hourly").fetchone()[0] == 1


def test_the_manifest_names_each_tables_newest_row_time(con, tmp_path):
    # Several days staged at once (first publish), then one older day, then a newer row.
    run_source(con, Rows([req(i, 30 + i * 60) for i in range(24 * 5)]))
    publish(con, tmp_path / "serving")
    newest = (NOW - timedelta(minutes=30)).replace(tzinfo=None).isoformat()
    assert read_manifest(tmp_path / "serving")["tables"]["requests"]["latest"] == newest
    run_source(con, Rows([req(10_000, 3 * 24 * 60 + 7)]))  # an old day changes
    publish(con, tmp_path / "serving")
    assert read_manifest(tmp_path / "serving")["tables"]["requests"]["latest"] == newest
    run_source(con, Rows([req(10_001, 1)]))
    publish(con, tmp_path / "serving")
    newer = (NOW - timedelta(minutes=1)).replace(tzinfo=None).isoformat()
    assert read_manifest(tmp_path / "serving")["tables"]["requests"]["latest"] == newer


def test_nothing_changed_republishes_no_day(con, tmp_path):
    run_source(con, Rows([req(1, 5)]))
    publish(con, tmp_path / "serving")
    assert publish(con, tmp_path / "serving").days_written == 0


def test_a_corrupt_manifest_is_rebuilt_from_the_warehouse(con, tmp_path, caplog):
    run_source(con, Rows([req(i, i * 60) for i in range(48)]))
    publish(con, tmp_path / "serving")
    (tmp_path / "serving" / "manifest.json").write_text("{not json")
    result = publish(con, tmp_path / "serving")
    assert "unreadable" in caplog.text
    assert result.days_written >= 2
    assert (
        open_snapshot(tmp_path / "serving")
        .con.execute("SELECT count(*) FROM requests")
        .fetchone()[0]
        == 48
    )


def test_manifest_refers_only_to_files_that_exist(con, tmp_path):
    for k in range(3):
        run_source(con, Rows([req(100 * k + i, i * 30) for i in range(10)]))
        publish(con, tmp_path / "serving")
    manifest = read_manifest(tmp_path / "serving")
    for rel in referenced_files(manifest):
        assert (tmp_path / "serving" / rel).exists(), rel
    assert json.loads((tmp_path / "serving" / "manifest.json").read_text())["version"] == 3


def test_empty_snapshot_has_every_table_and_rollup(tmp_path):
    snap = open_snapshot(tmp_path / "nothing-here")
    assert snap.version == 0
    assert snap.con.execute("SELECT count(*) FROM calls").fetchone()[0] == 0
    assert snap.con.execute("SELECT count(*) FROM turn_latency_hist").fetchone()[0] == 0


def test_a_rollup_the_snapshot_never_had_is_built_for_every_published_day(con, tmp_path):
    # A snapshot published before a rollup existed: its manifest does not name it.
    run_source(con, Rows([req(i, i * 60) for i in range(24 * 4)]))
    publish(con, tmp_path / "serving")
    path = tmp_path / "serving" / "manifest.json"
    older = json.loads(path.read_text())
    del older["rollups"]["requests_latency_hist"]
    path.write_text(json.dumps(older))
    result = publish(con, tmp_path / "serving")
    assert result.days_written == 0  # the raw days are not rewritten
    assert result.files_written == len(older["tables"]["requests"]["days"]) + 4  # + bookkeeping
    newer = read_manifest(tmp_path / "serving")
    assert newer["tables"]["requests"] == older["tables"]["requests"]
    snap = open_snapshot(tmp_path / "serving")
    assert snap.con.execute("SELECT sum(n) FROM requests_latency_hist").fetchone()[0] == 96
    assert publish(con, tmp_path / "serving").files_written == 4  # once only


def test_a_new_rollup_and_a_new_row_on_the_same_day(con, tmp_path):
    run_source(con, Rows([req(i, i * 60) for i in range(48)]))
    publish(con, tmp_path / "serving")
    path = tmp_path / "serving" / "manifest.json"
    older = json.loads(path.read_text())
    del older["rollups"]["requests_latency_hist"]
    path.write_text(json.dumps(older))
    run_source(con, Rows([req(10_000, 0)]))
    publish(con, tmp_path / "serving")
    snap = open_snapshot(tmp_path / "serving")
    assert snap.con.execute("SELECT sum(n) FROM requests_latency_hist").fetchone()[0] == 49


def test_a_new_rollup_that_fails_part_way_is_built_whole_by_the_next_publish(
    con, tmp_path, monkeypatch
):
    import collectors.publish as publish_module

    run_source(con, Rows([req(i, i * 60) for i in range(24 * 4)]))
    publish(con, tmp_path / "serving")
    path = tmp_path / "serving" / "manifest.json"
    older = json.loads(path.read_text())
    del older["rollups"]["requests_latency_hist"]
    path.write_text(json.dumps(older))
    real, seen = publish_module._copy, []

    def copy(con, select, params, target):
        seen.append(target)
        if "requests_latency_hist" in str(target) and len(seen) == 2:
            raise OSError(28, "No space left on device")
        return real(con, select, params, target)

    monkeypatch.setattr(publish_module, "_copy", copy)
    with pytest.raises(OSError):
        publish(con, tmp_path / "serving")
    publish(con, tmp_path / "serving")
    snap = open_snapshot(tmp_path / "serving")
    assert snap.con.execute("SELECT sum(n) FROM requests_latency_hist").fetchone()[0] == 96


def test_a_snapshot_with_missing_files_is_rebuilt(con, tmp_path, caplog):
    run_source(con, Rows([req(i, i * 60) for i in range(48)]))
    publish(con, tmp_path / "serving")
    for path in (tmp_path / "serving" / "tables").rglob("*.parquet"):
        path.unlink()
    publish(con, tmp_path / "serving")
    assert "missing files" in caplog.text
    assert (
        open_snapshot(tmp_path / "serving")
        .con.execute("SELECT count(*) FROM requests")
        .fetchone()[0]
        == 48
    )


def test_a_replaced_file_outlives_its_manifest_by_the_grace_period(con, tmp_path, monkeypatch):
    import os
    import time

    import collectors.publish as publish_module

    serving = tmp_path / "serving"
    run_source(con, Rows([req(1, 60 * 24 * 2)]))  # a day two days ago
    publish(con, serving)
    old_file = (
        serving
        / read_manifest(serving)["tables"]["requests"]["days"][
            (NOW - timedelta(days=2)).date().isoformat()
        ]["file"]
    )
    os.utime(old_file, (time.time() - 86_400, time.time() - 86_400))  # written long ago
    run_source(con, Rows([req(1, 60 * 24 * 2, status=500)]))  # that day changes
    publish(con, serving)
    assert old_file.exists(), "a reader of the previous manifest may still read it"
    monkeypatch.setattr(publish_module, "GRACE_SECONDS", 0)
    time.sleep(0.01)
    publish(con, serving)
    assert not old_file.exists()
    retired = read_manifest(serving)["retired"]
    assert old_file.relative_to(serving).as_posix() not in retired
    assert all(name.startswith("bookkeeping/") for name in retired)  # last publish's own


def test_rollup_files_left_by_a_killed_publish_go_after_the_grace_period(con, tmp_path):
    import os
    import time

    from collectors.publish import STAGING

    serving = tmp_path / "serving"
    old, recent = serving / STAGING / "old", serving / STAGING / "recent"
    for folder in (old, recent):
        (folder / "requests_hourly" / "_day=2026-12-01").mkdir(parents=True)
        (folder / "requests_hourly" / "_day=2026-12-01" / "part0.parquet").write_bytes(b"x")
    os.utime(old, (time.time() - 86_400, time.time() - 86_400))
    run_source(con, Rows([req(i, i * 60) for i in range(48)]))
    publish(con, serving)
    assert not old.exists()
    assert recent.exists(), "it may belong to a publish still running"


def test_a_rebuilt_snapshot_continues_the_version_numbers(con, tmp_path):
    serving = tmp_path / "serving"
    run_source(con, Rows([req(1, 5)]))
    for _ in range(3):
        publish(con, serving)
    (serving / "manifest.json").unlink()
    assert publish(con, serving).version == 4


def _requests_file(serving, day_offset: int = 0):
    day = (NOW - timedelta(days=day_offset)).date().isoformat()
    return serving / read_manifest(serving)["tables"]["requests"]["days"][day]["file"]


def test_a_corrupt_file_in_the_snapshot_is_rewritten_by_the_next_publish(con, tmp_path, caplog):
    serving = tmp_path / "serving"
    run_source(con, Rows([req(i, i * 60) for i in range(48)]))
    publish(con, serving)
    damaged = _requests_file(serving, 1)
    damaged.write_bytes(b"PAR1" + b"\x00" * 100)  # e.g. a disk error, or a copy cut short
    result = publish(con, serving)  # nothing new was collected
    assert "unreadable" in caplog.text
    assert result.days_written == 1  # only the damaged day
    assert _requests_file(serving, 1) != damaged
    snap = open_snapshot(serving)
    assert snap.con.execute("SELECT count(*) FROM requests").fetchone()[0] == 48
    assert snap.con.execute("SELECT sum(n) FROM requests_hourly").fetchone()[0] == 48


def test_every_file_is_fsynced_before_the_manifest_names_it(con, tmp_path, monkeypatch):
    import os

    import collectors.publish as publish_module

    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(publish_module.os, "fsync", fsync)
    monkeypatch.setattr(publish_module.os, "replace", replace)
    run_source(con, Rows([req(i, i * 60) for i in range(48)]))
    publish(con, tmp_path / "serving")
    manifest_at = events.index(("replace", str(tmp_path / "serving" / "manifest.json")))
    synced = {path for kind, path in events[:manifest_at] if kind == "fsync"}
    for rel in referenced_files(read_manifest(tmp_path / "serving")):
        assert str(tmp_path / "serving" / rel) in synced, rel
    assert str(tmp_path / "serving" / "tables" / "requests") in synced  # and its directory


class FailOnce:
    """Wraps _publish_day: the partition `fail_at` fails on the first attempt only (a full
    disk, a permission problem), and every call is counted."""

    def __init__(self, real, fail_at: int):
        self.real, self.fail_at, self.calls, self.failed = real, fail_at, [], False

    def __call__(self, con, serving, manifest, table_name, day, version):
        self.calls.append((table_name, day))
        if len(self.calls) == self.fail_at and not self.failed:
            self.failed = True
            raise OSError(28, "No space left on device")
        return self.real(con, serving, manifest, table_name, day, version)


def test_a_failed_publish_resumes_without_rewriting_what_succeeded(con, tmp_path, monkeypatch):
    import collectors.publish as publish_module

    serving = tmp_path / "serving"
    run_source(con, Rows([req(i, i * 60) for i in range(24 * 10)]))  # 10 or 11 days
    wrapped = FailOnce(publish_module._publish_day, fail_at=6)
    monkeypatch.setattr(publish_module, "_publish_day", wrapped)
    with pytest.raises(OSError):
        publish(con, serving)
    assert read_manifest(serving) is None  # nothing half-published
    first_attempt = list(wrapped.calls)
    publish(con, serving)
    retried = wrapped.calls[len(first_attempt) :]
    assert not set(first_attempt[:5]) & set(retried)  # what succeeded is not rewritten
    assert first_attempt[5] in retried
    snap = open_snapshot(serving)
    assert snap.con.execute("SELECT count(*) FROM requests").fetchone()[0] == 240
    assert snap.con.execute("SELECT sum(n) FROM requests_hourly").fetchone()[0] == 240


def test_a_day_that_changes_between_a_failed_publish_and_its_retry_is_republished(
    con, tmp_path, monkeypatch
):
    import collectors.publish as publish_module

    serving = tmp_path / "serving"
    run_source(con, Rows([req(i, i * 60) for i in range(24 * 3)]))
    publish(con, serving)
    run_source(con, Rows([req(1000 + i, i * 60) for i in range(24 * 3)]))  # every day changes
    wrapped = FailOnce(publish_module._publish_day, fail_at=2)
    monkeypatch.setattr(publish_module, "_publish_day", wrapped)
    with pytest.raises(OSError):
        publish(con, serving)
    # The oldest day, written by the failed attempt, changes before the retry.
    run_source(con, Rows([req(5000, 71 * 60, status=500)]))
    publish(con, serving)
    snap = open_snapshot(serving)
    assert snap.con.execute("SELECT count(*) FROM requests").fetchone()[0] == 24 * 6 + 1
    assert snap.con.execute("SELECT sum(n_5xx) FROM requests_hourly").fetchone()[0] == 1


def test_days_published_together_equal_days_published_one_by_one(tmp_path, monkeypatch):
    # The demo's days are staged together (each rollup's days written in one COPY); with
    # MAX_STAGED_ROWS 0 every day is staged and copied on its own. File by file, the same rows.
    import pandas as pd

    from collectors import publish as publishing
    from collectors.schema import TABLES
    from tests.demo_data import build_demo_data

    root = build_demo_data(tmp_path / "demo", history_days=4)
    together = read_manifest(root / "serving")
    monkeypatch.setattr(publishing, "MAX_STAGED_ROWS", 0)
    con = open_warehouse(root / "warehouse.duckdb")
    try:
        publish(con, tmp_path / "one-by-one")
    finally:
        con.close()
    alone = read_manifest(tmp_path / "one-by-one")
    assert sorted(together["rollups"]) == sorted(alone["rollups"])
    reader = duckdb.connect()
    compared = 0
    for group in ("tables", "rollups"):
        for name, entry in together[group].items():
            days = {d: f["rows"] for d, f in entry["days"].items()}
            assert days == {d: f["rows"] for d, f in alone[group][name]["days"].items()}, name
            for day in days:
                a, b = (
                    reader.execute(f"FROM '{folder / m[group][name]['days'][day]['file']}'").df()
                    for folder, m in (
                        (root / "serving", together),
                        (tmp_path / "one-by-one", alone),
                    )
                )
                if group == "tables":  # sorted by time; rows of the same time in any order
                    t = TABLES[name].time_column
                    assert a[t].tolist() == b[t].tolist() == sorted(a[t]), (name, day)
                keys = [c for c in a.columns if a[c].dtype.kind != "f"]
                a, b = (x.sort_values(keys).reset_index(drop=True) for x in (a, b))
                # float sums may differ in the last bits (DuckDB adds in parallel, in any order)
                pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)
                compared += 1
    assert compared > 4 * len(together["rollups"])
    assert not any((root / "serving" / publishing.STAGING).iterdir())  # nothing left behind
