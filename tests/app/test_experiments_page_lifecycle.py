"""The Experiments page on the 15-day demo: which experiment it opens on, drafts archived and
deleted, a started experiment's design locked (a change becomes a new version), keys that
cannot overwrite one another, and a results table that reads plainly."""

from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

from collectors.control import ControlStore, SavedExperiment
from tests.app.test_experiment_pages import EXPERIMENTS, run, texts


def store(root) -> ControlStore:
    return ControlStore(root / "control.sqlite")


def draft(key: str, **fields: object) -> SavedExperiment:
    base = dict(
        key=key,
        name=key.title(),
        variants=("control", "treatment"),
        weights=(0.5, 0.5),
        primary_metrics=("resolved_rate",),
    )
    return SavedExperiment(**{**base, **fields})  # type: ignore[arg-type]


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_opens_on_the_running_experiment_with_the_most_data_not_the_newest_draft(with_demo15):
    s = store(with_demo15)
    s.save_experiment(draft("idea-draft"))  # listed first, no data
    s.save_experiment(draft("quiet-test", status="running"))  # running, but no exposures
    at = run(EXPERIMENTS)
    assert at.selectbox(key="experiment_choice").value == "prompt-v2"
    assert "Resolved rate: treatment improved it" in texts(at)
    # the decision first, in one sentence
    assert at.success[0].value.replace("\\", "") == (
        "Ship: treatment is better on Resolved rate and no guardrail is worse."
    )


def test_a_draft_can_be_archived_restored_and_deleted(with_demo15):
    store(with_demo15).save_experiment(draft("idea-draft"))
    at = run(EXPERIMENTS)
    at.selectbox(key="experiment_choice").select("idea-draft").run()
    button(at, "Archive").click().run()
    assert not at.exception
    assert store(with_demo15).experiments()["idea-draft"].archived
    assert "idea-draft" not in at.selectbox(key="experiment_choice").options
    at.toggle(key="experiments_archived").set_value(True).run()
    assert "Idea-Draft (draft, archived)" in at.selectbox(key="experiment_choice").options
    at.selectbox(key="experiment_choice").set_value("idea-draft").run()
    button(at, "Restore from archive").click().run()
    assert not store(with_demo15).experiments()["idea-draft"].archived
    button(at, "Delete draft").click().run()
    assert not at.exception
    assert "idea-draft" not in store(with_demo15).experiments()


def test_a_running_experiment_cannot_be_deleted_or_archived(with_demo15):
    store(with_demo15).save_experiment(draft("prompt-v2", status="running"))
    at = run(EXPERIMENTS)
    labels = {b.label for b in at.button}
    assert not {"Archive", "Delete draft"} & labels
    assert {"Pause", "Stop"} <= labels


def test_changing_a_running_experiments_split_saves_a_new_version(with_demo15):
    store(with_demo15).save_experiment(draft("prompt-v2", status="running"))
    at = run(EXPERIMENTS)
    assert at.selectbox(key="experiment_choice").value == "prompt-v2"
    assert any("variants, split and unit are locked" in c.value for c in at.caption)
    at.text_input(key="def_prompt-v2_weights").input("80, 20")
    button(at, "Save experiment").click().run()
    assert not at.exception
    saved = store(with_demo15).experiments()
    assert saved["prompt-v2"].weights == (0.5, 0.5) and saved["prompt-v2"].status == "running"
    version = saved["prompt-v2-v2"]
    assert version.weights == (0.8, 0.2) and version.status == "draft"
    assert at.selectbox(key="experiment_choice").value == "prompt-v2-v2"
    assert "saved as a new version, prompt-v2-v2 (draft)" in texts(at)


def test_a_new_experiment_cannot_take_an_existing_key(with_demo15):
    store(with_demo15).save_experiment(draft("prompt-v2", name="The real one", status="running"))
    at = run(EXPERIMENTS)
    at.selectbox(key="experiment_choice").select("+ New experiment").run()
    at.text_input(key="def_new_key").input("prompt-v2")
    at.text_input(key="def_new_name").input("An impostor")
    at.text_input(key="def_new_variants").input("control, other")
    button(at, "Save experiment").click().run()
    assert not at.exception
    assert any("already exists" in e.value for e in at.error)
    kept = store(with_demo15).experiments()["prompt-v2"]
    assert kept.name == "The real one" and kept.variants == ("control", "treatment")


def test_every_number_in_the_results_table_has_its_unit_and_p_values_read_plainly(with_demo15):
    at = run(EXPERIMENTS)
    table = at.dataframe[0].value
    assert list(table.columns) == [
        "Metric", "Role", "Variant", "Control value", "Variant value", "Change",
        "Relative change", "Likely range of the change", "p-value", "Reading",
    ]  # fmt: skip
    units = {
        "Resolved rate": (" %", " points"),
        "Abandoned rate": (" %", " points"),
        "p95 end-to-end turn latency": (" ms", " ms"),
    }
    for _, row in table.iterrows():
        level, change = units.get(row["Metric"], (" ms", " ms"))
        assert row["Control value"].endswith(level) and row["Variant value"].endswith(level)
        assert row["Change"].endswith(change)
        assert row["Likely range of the change"].endswith(change)
        assert row["Relative change"].endswith(" %")
        assert re.fullmatch(r"< 0\.001|[01]\.\d{3}", row["p-value"]), row["p-value"]
    resolved = table[table["Metric"] == "Resolved rate"].iloc[0]
    assert resolved["p-value"] == "< 0.001"
    assert not any("e-" in str(v) for v in table.to_numpy().ravel())
    # the level and the correction are said once, beside the table, not per row
    statements = [c.value for c in at.caption if "Intervals are" in c.value]
    assert len(statements) == 1 and "95" in statements[0] and "Holm" in statements[0]
    assert not any("95" in column for column in table.columns)


def test_a_link_naming_an_experiment_opens_it(with_demo15):
    # the Overview's timeline links here with ?experiment_choice=<key>
    store(with_demo15).save_experiment(draft("idea-draft"))
    at = AppTest.from_file(str(EXPERIMENTS), default_timeout=120)
    at.query_params["experiment_choice"] = "idea-draft"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.selectbox(key="experiment_choice").value == "idea-draft"
    # and the person can still choose another one afterwards
    at.selectbox(key="experiment_choice").set_value("prompt-v2").run()
    assert at.selectbox(key="experiment_choice").value == "prompt-v2"


def test_the_plan_corrects_for_every_comparison_and_a_running_test_shows_its_power(with_demo15):
    at = run(EXPERIMENTS)  # the demo's experiment, running: 1 primary + 3 guardrails
    said = texts(at) + " ".join(m.value.replace("\\", "") for m in at.markdown)
    assert "the result corrects for 4 comparison(s) (4 metric(s) × 1 variant(s)" in said
    assert "Planned at a 1.25 % significance level per comparison" in said
    assert re.search(r"Power so far to detect a 5 % change: \d+ %", said)


def test_a_bayesian_reading_shows_the_chance_to_beat_control_instead_of_p_values(with_demo15):
    at = run(EXPERIMENTS)
    at.selectbox(key="method_prompt-v2").select("bayesian").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert "p-value" not in table.columns
    chances = table["Chance to beat control"]
    assert all(re.fullmatch(r"\d{1,3} %", c) for c in chances)
    statements = [c.value for c in at.caption if "Intervals are" in c.value]
    assert len(statements) == 1 and "credible" in statements[0]
