"""Readable pages (issue 14 item 5): Infrastructure shows no stale error on a probe that is up
and no arrow for a latency level; Health explains the error budget beside the burn-rate alert;
Feature usage marks its partial first and last days."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from streamlit.testing.v1 import AppTest

from analysis.overview import partial_days
from tests.conftest import REPO


def run_page(name: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "app" / "views" / f"{name}.py"), default_timeout=120).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_infrastructure_probes_show_no_stale_error_and_no_latency_arrows(with_demo):
    at = run_page("infrastructure")
    probes = next(d.value for d in at.dataframe if "last_status" in d.value.columns)
    up = probes[probes["last_status"] == "up"]
    assert len(up) and up["last_error"].isna().all()
    probe_tiles = [m for m in at.metric if "(" in m.label]
    assert probe_tiles and all(not m.delta for m in probe_tiles)
    assert any("p95 latency" in c.value and "ms" in c.value for c in at.caption)


def test_health_explains_the_error_budget_beside_the_burn_rate_alert(with_demo):
    at = run_page("health")
    state = next(m.value for m in at.metric if m.label == "Burn-rate alert")
    said = " ".join(i.value for i in at.info).replace("\\", "")
    assert "bad events of" in said and "objective allows" in said
    assert ("alert is firing" in said) == (state == "firing")


def test_feature_usage_marks_its_partial_days(with_demo):
    at = run_page("feature_usage")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    labels = [a.get("text", "") for a in spec["layout"].get("annotations", [])]
    assert any(t.startswith("partial day") for t in labels)
    assert any("Shaded days are partial" in c.value for c in at.caption)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (datetime(2026, 11, 3, 7), datetime(2026, 12, 3, 7),
         [(datetime(2026, 11, 3), 17 / 24), (datetime(2026, 12, 3), 7 / 24)]),
        (datetime(2026, 11, 3), datetime(2026, 12, 3), []),
        (datetime(2026, 12, 2, 6), datetime(2026, 12, 2, 18), [(datetime(2026, 12, 2), 0.5)]),
    ],
)  # fmt: skip
def test_partial_days(start, end, expected):
    found = partial_days(start, end)
    assert [d for d, _ in found] == [d for d, _ in expected]
    assert [s for _, s in found] == pytest.approx([s for _, s in expected])


def test_conversations_shows_the_repeat_callers_the_demo_plants(with_demo):
    at = run_page("conversations")
    table = next(d for d in at.dataframe if "repeats" in d.value.columns)
    repeats = table.value["repeats"]
    assert len(repeats) > 0 and (repeats > 0).all() and repeats.is_monotonic_decreasing
    assert json.loads(table.proto.columns)["repeats"]["label"] == "Called back within 24 h"
    assert any("calls came within 24 hours" in c.value for c in at.caption)


def test_release_markers_stay_legible_at_a_long_range():
    from datetime import timedelta

    import pandas as pd

    from app.charts import MAX_LABELS, time_chart

    deploys = pd.DataFrame(
        {
            "created_at": [datetime(2026, 11, 1) + timedelta(days=2 * i) for i in range(14)],
            "release": [f"v1.{i}.0" for i in range(14)],
            "is_rollback": [i == 5 for i in range(14)],
            "status": ["FAILED" if i == 3 else "SUCCESS" for i in range(14)],
        }
    )
    hours = pd.date_range("2026-11-01", periods=700, freq="h")
    frame = pd.DataFrame({"hour": hours, "p95": range(700), "rate": range(700)})
    fig = time_chart(frame, "hour", {"p95": "p95 latency (ms)"}, deploys,
                     secondary={"rate": "5xx error rate (%)"})  # fmt: skip
    marks = fig.layout.annotations
    labels = [a.text for a in marks if a.text != "▾"]
    assert len(labels) <= MAX_LABELS and "v1.5.0" in labels  # the rollback is always named
    assert len(marks) == 13 and "deploy v1.3.0" not in {a.hovertext for a in marks}  # failed
    assert {a.hovertext for a in marks} >= {"deploy v1.0.0", "deploy v1.5.0 (rollback)"}
    assert fig.layout.yaxis.title.text == "p95 latency (ms)"
    assert fig.layout.yaxis2.title.text == "5xx error rate (%)"


def test_table_headers_are_words_with_units():
    from app.widgets import column_label

    assert column_label("latency_p95_ms") == "latency p95 (ms)"
    assert column_label("error_rate_pct") == "error rate (%)"
    assert column_label("mean_duration_s") == "mean duration (s)"
    assert column_label("share_over_own_p90") == "share over own p90"


def test_performance_tables_show_headers_in_words(with_demo):
    at = run_page("performance")
    for table in at.dataframe:
        labels = json.loads(table.proto.columns or "{}")
        for column in table.value.columns:
            label = labels.get(str(column), {}).get("label", str(column))
            assert "_" not in label, (column, label)
    # counts with thousands separators: the route table's request counts
    routes = next(t for t in at.dataframe if "requests" in t.value.columns)
    config = json.loads(routes.proto.columns)["requests"]
    assert config.get("type_config", {}).get("format") == "localized", config


def test_benchmarks_say_how_outages_are_left_out_and_can_keep_them(with_demo15):
    at = run_page("benchmarks")
    said = " ".join(c.value for c in at.caption).replace("\\", "")
    assert "The hours of dependency outages (" in said and "left out of both" in said
    at.checkbox(key="bench_without_outages").uncheck().run()
    assert not at.exception
    said = " ".join(c.value for c in at.caption).replace("\\", "")
    assert "dependency outages" not in said


def test_numeric_arrays_reach_the_browser_whole():
    """Plotly sends numbers as base64 typed arrays ('bdata'); the text escaping shown charts go
    through cut them at 200 characters, and the chart drew nothing (the Benchmarks chart)."""
    import numpy as np
    import plotly.graph_objects as go

    from app.charts import _escaped

    values = np.linspace(-1.0, 1.0, 500)
    spec = go.Figure(go.Scatter(x=values, y=[f"row {i}" for i in range(500)])).to_plotly_json()
    sent = _escaped(spec)["data"][0]["x"]
    assert isinstance(sent, dict) and len(sent["bdata"]) > 200
    assert sent == spec["data"][0]["x"]
