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
