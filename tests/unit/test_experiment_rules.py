"""Experiment rules, in one place for the page and the control store: start, pause, resume,
stop; stopped is final and a draft cannot be stopped."""

from __future__ import annotations

import pytest

from analysis.experiment_rules import STATUSES, Status, may_become, next_statuses
from collectors.control import ControlStore, ExperimentError, SavedExperiment

ALLOWED: dict[Status, set[Status]] = {
    "draft": {"running"},
    "running": {"paused", "stopped"},
    "paused": {"running", "stopped"},
    "stopped": set(),
}


@pytest.mark.parametrize("current", STATUSES)
def test_each_status_may_become_only_its_next_ones(current: Status) -> None:
    assert set(next_statuses(current)) == ALLOWED[current]
    for new in STATUSES:
        assert may_become(current, new) == (new == current or new in ALLOWED[current])


def test_the_store_refuses_to_stop_a_draft_and_it_can_still_start(tmp_path) -> None:
    store = ControlStore(tmp_path / "c.sqlite")
    store.save_experiment(
        SavedExperiment("prompt-v2", "Prompt", ("control", "short"), (1, 1), primary_metrics=("x",))
    )
    with pytest.raises(ExperimentError, match="is draft; it cannot become stopped"):
        store.set_experiment_status("prompt-v2", "stopped")
    assert store.set_experiment_status("prompt-v2", "running").status == "running"


def test_an_unknown_status_is_refused_with_a_sentence(tmp_path) -> None:
    store = ControlStore(tmp_path / "c.sqlite")
    store.save_experiment(
        SavedExperiment("prompt-v2", "Prompt", ("control", "short"), (1, 1), primary_metrics=("x",))
    )
    with pytest.raises(ExperimentError, match="cannot become finished"):
        store.set_experiment_status("prompt-v2", "finished")  # type: ignore[arg-type]
