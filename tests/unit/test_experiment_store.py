"""Experiments saved in the control store: validation, status changes, migration of an old
store."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from collectors.control import ControlStore, ExperimentError, SavedExperiment


def definition(**kw) -> SavedExperiment:
    values = dict(
        key="prompt-v2",
        name="Shorter prompt",
        variants=("control", "treatment"),
        weights=(50, 50),
        primary_metrics=("resolved_rate",),
        guardrail_metrics=("p95_e2e_latency",),
    )
    return SavedExperiment(**{**values, **kw})


def test_save_round_trips_and_normalises_weights(tmp_path):
    store = ControlStore(tmp_path / "c.sqlite")
    saved = store.save_experiment(definition(weights=(1, 3), hypothesis="fewer words"))
    assert saved.weights == (0.25, 0.75)
    assert saved.status == "draft" and saved.created_at
    got = store.experiments()["prompt-v2"]
    assert got == saved
    assert got.primary_metrics == ("resolved_rate",) and got.hypothesis == "fewer words"


def test_editing_keeps_the_status(tmp_path):
    store = ControlStore(tmp_path / "c.sqlite")
    store.save_experiment(definition())
    running = store.set_experiment_status("prompt-v2", "running")
    edited = store.save_experiment(replace(running, name="Renamed", status="draft"))
    assert edited.name == "Renamed" and edited.status == "running"


def test_a_stale_save_is_refused_and_the_newer_one_kept(tmp_path):
    store = ControlStore(tmp_path / "c.sqlite")
    opened = store.save_experiment(definition())  # two people open the same definition
    store.save_experiment(replace(opened, name="First save"))
    with pytest.raises(ExperimentError, match="changed since you opened it"):
        store.save_experiment(replace(opened, name="Second save"))
    assert store.experiments()["prompt-v2"].name == "First save"


def test_creating_an_experiment_whose_key_exists_is_refused(tmp_path):
    store = ControlStore(tmp_path / "c.sqlite")
    store.save_experiment(definition())
    store.set_experiment_status("prompt-v2", "running")
    with pytest.raises(ExperimentError, match="already exists"):
        store.save_experiment(definition(variants=("a", "b", "c"), weights=(1, 1, 1)))
    kept = store.experiments()["prompt-v2"]
    assert kept.variants == ("control", "treatment") and kept.status == "running"


def test_start_pause_resume_stop_and_stopped_is_final(tmp_path):
    store = ControlStore(tmp_path / "c.sqlite")
    store.save_experiment(definition())
    for status in ("running", "paused", "running", "stopped"):
        assert store.set_experiment_status("prompt-v2", status).status == status
    with pytest.raises(ExperimentError, match="is stopped; it cannot become running"):
        store.set_experiment_status("prompt-v2", "running")
    with pytest.raises(ExperimentError, match="No experiment"):
        store.set_experiment_status("nope", "running")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"key": "has spaces"}, "key must be"),
        ({"variants": ("control",), "weights": (1,)}, "at least two distinct"),
        ({"variants": ("a", "a")}, "at least two distinct"),
        ({"weights": (1,)}, "one non-negative weight per variant"),
        ({"weights": (-1, 2)}, "one non-negative weight per variant"),
        ({"unit_type": "session"}, "unit must be"),
        ({"method": "magic"}, "method must be"),
        ({"primary_metrics": ()}, "primary metric"),
        ({"start_at": "2026-02-01T00:00:00", "end_at": "2026-01-01T00:00:00"}, "end must be"),
    ],
)
def test_bad_definitions_are_refused_with_one_sentence(tmp_path, change, message):
    store = ControlStore(tmp_path / "c.sqlite")
    with pytest.raises(ExperimentError, match=message):
        store.save_experiment(definition(**change))
    assert store.experiments() == {}


def drop_alerting_tables(con):
    """A store older than version 5 has none of the alerting tables."""
    from collectors.control import TABLES

    for table in TABLES:
        if table.startswith("alert_"):
            con.execute(f"DROP TABLE {table}")


def test_a_version_1_store_is_migrated_keeping_its_schedules(tmp_path):
    path = tmp_path / "c.sqlite"
    store = ControlStore(path)
    store.set_schedule("demo", "interval", every_seconds=120)
    with sqlite3.connect(path) as con:  # simulate a store made before experiments existed
        con.execute("DROP TABLE experiments")
        drop_alerting_tables(con)
        con.execute("PRAGMA user_version = 1")
    again = ControlStore(path)
    assert again.schedules()["demo"].every_seconds == 120
    again.save_experiment(definition())
    assert list(again.experiments()) == ["prompt-v2"]


def test_a_saved_experiment_becomes_an_analysis_definition_with_an_inclusive_end_date():
    from datetime import datetime

    from analysis.experiments import experiment_definition
    from collectors.control import SavedExperiment

    saved = SavedExperiment(
        key="prompt-v3",
        name="Shorter prompt",
        variants=("control", "short", "shorter"),
        weights=(0.5, 0.25, 0.25),
        unit_type="caller",
        start_at="2026-05-01T00:00:00",
        end_at="2026-05-14T00:00:00",
    )
    d = experiment_definition(saved)
    assert (d.key, d.control, d.treatments) == ("prompt-v3", "control", ("short", "shorter"))
    assert d.weights == {"control": 0.5, "short": 0.25, "shorter": 0.25}
    assert d.unit_type == "caller"
    assert d.start == datetime(2026, 5, 1) and d.end == datetime(2026, 5, 15)


def test_a_version_3_store_loses_the_metrics_an_older_service_relayed(tmp_path):
    path = tmp_path / "c.sqlite"
    ControlStore(path).set_service_info(pid=42, custom_metrics=[{"name": "long_calls"}])
    with sqlite3.connect(path) as con:  # as an older service left it
        drop_alerting_tables(con)
        con.execute("PRAGMA user_version = 3")
    again = ControlStore(path)
    assert again.service_info() == {"pid": 42}
    again.save_experiment(definition())
    assert list(again.experiments()) == ["prompt-v2"]


def test_a_started_experiments_design_is_locked_and_a_change_becomes_a_new_version(tmp_path):
    store = ControlStore(tmp_path / "c.sqlite")
    store.save_experiment(definition(key="greeting"))
    running = store.set_experiment_status("greeting", "running")
    # what the analysis reads may change in place
    renamed = store.save_experiment(replace(running, name="Greeting", guardrail_metrics=()))
    assert renamed.key == "greeting" and renamed.guardrail_metrics == ()
    # the split may not: units already assigned would be reshuffled
    v2 = store.save_experiment(replace(renamed, weights=(0.8, 0.2)))
    assert (v2.key, v2.status, v2.weights) == ("greeting-v2", "draft", (0.8, 0.2))
    assert store.experiments()["greeting"].weights == (0.5, 0.5)
    store.set_experiment_status("greeting-v2", "running")
    v3 = store.save_experiment(replace(store.experiments()["greeting-v2"], unit_type="caller"))
    assert v3.key == "greeting-v3" and v3.name.endswith("(version 3)")
    # a draft is still being designed: edited in place
    edited = store.save_experiment(replace(v3, variants=("control", "a", "b"), weights=(1, 1, 1)))
    assert edited.key == "greeting-v3" and edited.variants == ("control", "a", "b")


def test_only_drafts_are_deleted_and_only_drafts_or_stopped_ones_archived(tmp_path):
    store = ControlStore(tmp_path / "c.sqlite")
    store.save_experiment(definition(key="idea"))
    store.save_experiment(definition(key="live"))
    store.set_experiment_status("live", "running")
    with pytest.raises(ExperimentError, match="Only a draft can be deleted; 'live' is running"):
        store.delete_experiment("live")
    with pytest.raises(ExperimentError, match="'live' is running: stop it before archiving"):
        store.archive_experiment("live")
    store.set_experiment_status("live", "stopped")
    assert store.archive_experiment("live").archived
    assert store.archive_experiment("idea").archived
    assert not store.archive_experiment("idea", False).archived
    store.delete_experiment("idea")
    assert list(store.experiments()) == ["live"]
