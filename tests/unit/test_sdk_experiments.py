"""Experiment assignment: GrowthBook's published hash values, determinism across processes,
split and coverage, stopped experiments, one exposure per unit, and an SRM check at 100k."""

from __future__ import annotations

import subprocess
import sys

import pytest
from scipy import stats

from collectors.instrumentation import (
    assign,
    configure_monitoring,
    experiments,
    flush_monitoring,
    monitoring_stats,
    reset_monitoring,
)
from collectors.instrumentation.experiments import hash_unit
from collectors.instrumentation.sinks import MemorySink


@pytest.fixture(autouse=True)
def fresh_sdk(monkeypatch):
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    reset_monitoring()
    yield
    reset_monitoring()


@pytest.mark.parametrize("seed, unit, version, expected", [
    # growthbook/growthbook packages/sdk-js/test/cases.json (specVersion 0.5.4): bucket values
    ("feature", "123", 2, 0.5231),  # "creates experiments properly" (hashVersion 2)
    ("feature", "123", 1, 0.863),   # "empty experiment rule - c"
    ("feature", "456", 1, 0.178),   # "empty experiment rule - a"
    ("feature", "fds", 1, 0.514),   # "empty experiment rule - b"
])  # fmt: skip
def test_hash_matches_growthbooks_published_cases(seed, unit, version, expected):
    assert hash_unit(seed, unit, version) == expected


def configure(definitions):
    sink = MemorySink()
    configure_monitoring(None, {"experiments": {"definitions": definitions}}, sink=sink)
    return sink


def test_assignment_is_deterministic_across_processes():
    configure({"greeting": {"variants": ["control", "short"], "weights": [0.5, 0.5]}})
    units = [f"caller-{i}" for i in range(200)]
    here = [assign("greeting", u) for u in units]
    code = (
        "from collectors.instrumentation import configure_monitoring, assign\n"
        "configure_monitoring(None, {'sink': {'type': 'none'}, 'experiments': {'definitions': "
        "{'greeting': {'variants': ['control', 'short'], 'weights': [0.5, 0.5]}}}})\n"
        f"print(','.join(assign('greeting', f'caller-{{i}}') for i in range({len(units)})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
        cwd=".",
    )
    assert out.stdout.strip().split(",") == here
    assert set(here) == {"control", "short"}


def test_split_over_100k_units_passes_an_srm_chi_square_check():
    configure({"pricing": {"variants": ["control", "a", "b"], "weights": [0.5, 0.3, 0.2]}})
    counts = {"control": 0, "a": 0, "b": 0}
    n = 100_000
    for i in range(n):
        counts[assign("pricing", f"call-{i}")] += 1
    observed = [counts["control"], counts["a"], counts["b"]]
    # Sample-ratio-mismatch test: Pearson chi-square against the configured split
    # (Fabijan et al. 2019, "Diagnosing Sample Ratio Mismatch"); flag when p < 0.001.
    result = stats.chisquare(observed, [n * 0.5, n * 0.3, n * 0.2])
    assert result.pvalue > 0.001, observed


def test_one_exposure_per_unit_and_experiment():
    sink = configure({"greeting": {}, "voice": {"variants": ["control", "warm"]}})
    for _ in range(3):
        assign("greeting", "u1")
        assign("greeting", "u2")
        assign("voice", "u1")
    flush_monitoring()
    exposures = sink.table("experiment_exposures")
    assert sorted((e["experiment_key"], e["unit_id"]) for e in exposures) == [
        ("greeting", "u1"),
        ("greeting", "u2"),
        ("voice", "u1"),
    ]
    assert all(e["exposed_at"].endswith("+00:00") for e in exposures)


@pytest.mark.parametrize("status", ["stopped", "paused", "draft"])
def test_a_stopped_or_paused_experiment_gives_everyone_control_without_exposure(status):
    sink = configure(
        {"greeting": {"variants": ["control", "short"], "weights": [0.0, 1.0], "status": status}}
    )
    assert {assign("greeting", f"u{i}") for i in range(100)} == {"control"}
    flush_monitoring()
    assert sink.table("experiment_exposures") == []


def test_coverage_leaves_units_outside_in_control_and_unexposed():
    sink = configure({"greeting": {"variants": ["control", "short"], "coverage": 0.2}})
    variants = [assign("greeting", f"u{i}") for i in range(5000)]
    flush_monitoring()
    exposed = len(sink.table("experiment_exposures"))
    assert 800 < exposed < 1200  # about 20 % are in the experiment
    assert variants.count("short") < exposed


def test_unknown_experiment_or_bad_unit_gives_control_and_a_counted_warning():
    configure({})
    assert assign("nope", "u1") == "control"
    assert assign("nope", None) == "control"
    assert monitoring_stats()["invalid_calls"] == 2


def test_local_definitions_can_be_added_and_are_validated():
    configure({})
    experiments.set_definition("tts", variants=["control", "fast"], weights=[0.9, 0.1])
    assert assign("tts", "u1") in ("control", "fast")
    from collectors.instrumentation import MonitoringConfigError

    with pytest.raises(MonitoringConfigError, match="experiments.definitions.bad.status"):
        experiments.set_definition("bad", status="live")
