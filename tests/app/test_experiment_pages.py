"""Experiments and Benchmarks pages on 15 days of demo data (the demo's A/B test runs for the
last 14 days and its bad release sits 9 days before the anchor)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from collectors.control import ControlStore
from tests.conftest import REPO
from tests.demo_data import demo_truth_of

EXPERIMENTS = REPO / "app" / "views" / "experiments.py"
BENCHMARKS = REPO / "app" / "views" / "benchmarks.py"


def run(path: Path) -> AppTest:
    at = AppTest.from_file(str(path), default_timeout=120)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    """What the user reads: Markdown backslash escapes (app.safe_text) removed."""
    parts = [m.value for m in (*at.info, *at.warning, *at.success, *at.error, *at.caption)]
    return re.sub(r"\\(.)", r"\1", "\n".join(str(p) for p in parts))


def test_demo_experiment_is_listed_with_its_real_result(with_demo15):
    at = run(EXPERIMENTS)
    assert at.selectbox(key="experiment_choice").value == "prompt-v2"
    verdict = texts(at)
    assert "Resolved rate: treatment improved it by +" in verdict
    assert "No guardrail got significantly worse" in verdict
    table = at.dataframe[0].value
    resolved = table[table["Metric"] == "Resolved rate"].iloc[0]
    span = resolved["Likely range of the change"]
    low, high = (float(x) for x in re.findall(r"[+-]?\d+(?:\.\d+)?", span))
    assert 0 < low < 3 < high and span.endswith(" points")
    latency = table[table["Metric"] == "p95 end-to-end turn latency"].iloc[0]
    assert latency["Reading"] == "No clear difference yet"
    assert len(at.get("plotly_chart")) >= 1


def test_define_an_experiment_and_see_its_verdict(with_demo15):
    at = run(EXPERIMENTS)
    at.selectbox(key="experiment_choice").select("+ New experiment").run()
    prefix = "def_new_"
    at.text_input(key=f"{prefix}key").input("prompt-v2")
    at.text_input(key=f"{prefix}name").input("Shorter prompt")
    at.text_area(key=f"{prefix}hypothesis").input("A shorter prompt resolves more calls.")
    at.multiselect(key=f"{prefix}guardrails").set_value(["p95_e2e_latency", "handle_time"])
    at.selectbox(key=f"{prefix}method").select("fixed")
    at.button[0].click().run()
    assert not at.exception, [e.message for e in at.exception]
    saved = ControlStore(with_demo15 / "control.sqlite").experiments()["prompt-v2"]
    assert saved.name == "Shorter prompt" and saved.method == "fixed"
    assert saved.guardrail_metrics == ("p95_e2e_latency", "handle_time")
    assert saved.status == "draft"
    assert at.selectbox(key="experiment_choice").value == "prompt-v2"
    verdict = texts(at)
    assert "Resolved rate: treatment improved it" in verdict
    assert "Fixed-horizon test" in verdict
    # start, pause, stop
    next(b for b in at.button if b.label == "Start").click().run()
    assert ControlStore(with_demo15 / "control.sqlite").experiments()["prompt-v2"].status == (
        "running"
    )
    next(b for b in at.button if b.label == "Pause").click().run()
    next(b for b in at.button if b.label == "Stop").click().run()
    assert not at.exception
    assert ControlStore(with_demo15 / "control.sqlite").experiments()["prompt-v2"].status == (
        "stopped"
    )


def test_new_experiment_without_exposures_says_so_and_plans(with_demo15):
    at = run(EXPERIMENTS)
    at.selectbox(key="experiment_choice").select("+ New experiment").run()
    at.text_input(key="def_new_key").input("greeting-v3")
    at.button[0].click().run()
    assert at.selectbox(key="experiment_choice").value == "greeting-v3"
    assert "No result yet for greeting-v3" in texts(at)
    values = {m.label: m.value for m in at.metric}
    assert int(values["Units per arm"].replace(",", "")) > 100
    assert 0 < int(values["Days at current traffic"].replace(",", "")) < 60


def test_bad_definition_is_one_sentence_not_a_traceback(with_demo15):
    at = run(EXPERIMENTS)
    at.selectbox(key="experiment_choice").select("+ New experiment").run()
    at.text_input(key="def_new_key").input("bad key with spaces")
    at.button[0].click().run()
    assert not at.exception
    assert any("experiment key must be" in e.value for e in at.error)


def test_benchmarks_page_flags_the_bad_release(with_demo15, demo15):
    bad = demo_truth_of(demo15).bad_release
    at = run(BENCHMARKS)
    at.selectbox(key="bench_baseline").select(bad.previous_release)
    at.selectbox(key="bench_candidate").select(bad.release).run()
    assert not at.exception, [e.message for e in at.exception]
    table = at.dataframe[0].value
    flagged = table[table["Flag"] == "Regression"]
    assert "LLM time to first token, 95th percentile" in set(flagged["Measure"])
    # a plain verdict, then the changes that matter in words and readable numbers
    shown = [e.value.replace("\\", "") for e in at.error]  # as written, not as escaped
    assert any(e.startswith(f"Worse: {bad.release} made") for e in shown)
    said = " ".join(m.value for m in at.markdown).replace("\\", "")
    assert "LLM time to first token, 95th percentile got slower" in said
    assert "Resolved rate fell" in said and "points" in said
    cells = " ".join(table[["Baseline", "Candidate", "Change", "p value"]].to_numpy().ravel())
    assert not re.search(r"\de[+-]\d", cells)  # no scientific notation
    assert "llm_ttft_ms" not in " ".join(table["Measure"])  # no internal names
    assert len(at.get("download_button")) == 2
    assert any("equal traffic load" in c.value for c in at.caption)


def test_benchmarks_can_compare_releases_as_they_ran(with_demo15, demo15):
    bad = demo_truth_of(demo15).bad_release
    at = run(BENCHMARKS)
    at.selectbox(key="bench_baseline").select(bad.previous_release)
    at.selectbox(key="bench_candidate").select(bad.release).run()
    adjusted = at.dataframe[0].value.set_index("Measure")["Relative change"]
    at.checkbox(key="bench_equal_load").uncheck().run()
    assert not at.exception, [e.message for e in at.exception]
    raw = at.dataframe[0].value.set_index("Measure")["Relative change"]
    assert not any("equal traffic load" in c.value for c in at.caption)
    # Same measures, different numbers: the raw comparison does not reweight by load.
    assert set(raw.index) == set(adjusted.index)
    assert (raw != adjusted[raw.index]).any()


def write_config(path: Path, metrics: list[dict[str, object]]) -> Path:
    """A workbench.toml with these [[metrics]] (strings and booleans only)."""
    lines = []
    for metric in metrics:
        lines.append("[[metrics]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in metric.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_metric_defined_in_the_config_can_be_chosen(with_demo15, monkeypatch):
    config = write_config(
        with_demo15 / "workbench.toml",
        [
            {
                "name": "long_calls",
                "label": "Calls over five minutes",
                "type": "proportion",
                "level": "call",
                "lower_is_better": True,
                "sql": "SELECT call_id, started_at AS ts, CASE WHEN duration_s > 300 "
                "THEN 1.0 ELSE 0.0 END AS value FROM calls",
            }
        ],
    )
    monkeypatch.setenv("WORKBENCH_CONFIG", str(config))
    at = run(EXPERIMENTS)
    options = {o for m in at.multiselect for o in m.options}
    assert "Calls over five minutes" in options


def test_a_configuration_problem_is_shown_in_its_own_words_and_the_page_works(
    with_demo15, monkeypatch
):
    from collectors.config import ConfigError, load_config

    bad = {"name": "Long Calls", "type": "proportion", "level": "call", "sql": "SELECT 1"}
    config = write_config(with_demo15 / "workbench.toml", [bad])
    monkeypatch.setenv("WORKBENCH_CONFIG", str(config))
    with pytest.raises(ConfigError) as problem:
        load_config()
    at = run(EXPERIMENTS)
    assert " ".join(problem.value.problems) in texts(at)
    assert "Resolved rate: treatment improved it by +" in texts(at)  # built-in metrics work
