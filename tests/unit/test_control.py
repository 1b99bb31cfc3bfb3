"""The control store the app and the service share."""

import pytest

from collectors.control import ControlStore, ScheduleError


def test_schedules_round_trip_and_validate(tmp_path):
    store = ControlStore(tmp_path / "c.sqlite")
    store.set_schedule("demo", "interval", every_seconds=60)
    store.set_schedule("probes", "cron", cron="*/5 * * * *")
    got = store.schedules()
    assert got["demo"].describe() == "every 60 s"
    assert got["probes"].describe() == "cron */5 * * * *"
    with pytest.raises(ScheduleError, match="cron expression"):
        store.set_schedule("probes", "cron", cron="every tuesday")
    with pytest.raises(ScheduleError, match="at least 5"):
        store.set_schedule("demo", "interval", every_seconds=1)


def test_ensure_schedule_does_not_override_a_user_edit(tmp_path):
    store = ControlStore(tmp_path / "c.sqlite")
    store.set_schedule("demo", "interval", every_seconds=300)
    store.ensure_schedule("demo", "interval", 60, None)
    assert store.schedules()["demo"].every_seconds == 300


def test_run_requests_are_claimed_once(tmp_path):
    store = ControlStore(tmp_path / "c.sqlite")
    first = store.request_run("demo")
    assert store.claim_requests() == [(first, "demo")]
    assert store.claim_requests() == []
    store.finish_request(first, "ok", None, run_id=4)
    assert store.request(first)["status"] == "ok"


def test_a_corrupt_control_store_is_moved_aside_and_recreated(tmp_path, caplog):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    store = ControlStore(path)
    store.set_schedule("demo", "interval", every_seconds=60)
    assert "recreated" in caplog.text
    assert list(tmp_path.glob("c.sqlite.corrupt-*"))


def test_run_now_is_queued_at_most_once_per_source(tmp_path):
    store = ControlStore(tmp_path / "c.sqlite")
    first, already = store.queue_run("demo")
    assert not already
    assert store.queue_run("demo") == (first, True)  # the page says "already queued"
    assert store.queue_run("probes")[1] is False  # other sources queue their own
    store.claim_requests()
    second, already = store.queue_run("demo")  # the first one is running: one may wait
    assert second != first and not already


def test_requests_claimed_by_a_stopped_service_are_closed_with_a_reason(tmp_path):
    store = ControlStore(tmp_path / "c.sqlite")
    claimed = store.request_run("demo")
    store.claim_requests()
    waiting = store.request_run("demo")
    assert store.close_stale_requests() == 1
    assert store.request(claimed)["status"] == "failed"
    assert "stopped before" in store.request(claimed)["message"]
    assert store.request(waiting)["status"] == "pending"  # still asked for: runs at next start


def test_a_store_corrupted_after_it_was_opened_recovers_on_next_use(tmp_path, caplog):
    path = tmp_path / "c.sqlite"
    store = ControlStore(path)
    store.set_schedule("demo", "interval", every_seconds=60)
    path.write_bytes(b"overwritten by something else " * 200)
    assert store.schedules() == {}  # nothing was readable; no exception
    store.set_schedule("demo", "interval", every_seconds=60)
    assert store.schedules()["demo"].every_seconds == 60
    assert len([r for r in caplog.records if "recreated" in r.getMessage()]) == 1
    assert list(tmp_path.glob("c.sqlite.corrupt-*"))


def _damage_table(path, table: str) -> None:
    """Overwrite the first page of one table's b-tree, as a bad disk sector would."""
    import sqlite3

    con = sqlite3.connect(path)
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", [table]).fetchone()[0]
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xff" * page_size)


def test_recovery_keeps_what_it_can_read(tmp_path, caplog):
    from collectors.control import SavedExperiment

    path = tmp_path / "c.sqlite"
    store = ControlStore(path)
    store.set_schedule("demo", "interval", every_seconds=120)
    store.save_experiment(
        SavedExperiment("prompt-v2", "Prompt", ("control", "short"), (1, 1), primary_metrics=("x",))
    )
    for _ in range(3):
        store.request_run("demo")
        store.claim_requests()
    _damage_table(path, "run_requests")
    assert store.recent_requests() == []  # that table was lost...
    assert store.schedules()["demo"].every_seconds == 120  # ...the others were kept
    assert list(store.experiments()) == ["prompt-v2"]
    assert "recreated" in caplog.text


def _open_store(path: str, barrier) -> str:
    barrier.wait()
    try:
        ControlStore(path)
    except Exception as exc:  # reported to the parent, which names it
        return repr(exc)
    return ""


def test_processes_opening_a_new_store_together_all_succeed(tmp_path):
    # The service and the app start together on a fresh data folder: both find no tables and
    # would create them at once.
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for attempt in range(5):
        path = str(tmp_path / f"control-{attempt}.sqlite")
        with ctx.Manager() as manager:
            barrier = manager.Barrier(6)
            with ctx.Pool(6) as pool:
                problems = pool.starmap(_open_store, [(path, barrier)] * 6)
        assert problems == [""] * 6, problems
        assert ControlStore(path).schedules() == {}
