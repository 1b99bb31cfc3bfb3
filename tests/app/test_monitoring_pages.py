"""The monitoring pages on a 4-day demo snapshot: what a user comes to each page for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from app.safe_text import quote_block
from tests.conftest import REPO

VIEWS = REPO / "app" / "views"
MONITORING = [
    "health",
    "performance",
    "errors",
    "infrastructure",
    "voice_quality",
    "conversations",
    "feedback",
    "feature_usage",
    "security",
    "anomalies",
]
# pages whose content is all time-independent tables
WITHOUT_TIME_CHARTS: set[str] = set()


def run_page(name: str) -> AppTest:
    at = AppTest.from_file(str(VIEWS / f"{name}.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def columns_of(at: AppTest) -> list[list[str]]:
    return [list(d.value.columns) for d in at.dataframe]


def has_table_with(at: AppTest, *columns: str) -> bool:
    return any(set(columns) <= set(cols) for cols in columns_of(at))


def deploy_marked_charts(at: AppTest) -> int:
    """Plotly charts carrying at least one dashed vertical deploy line."""
    count = 0
    for chart in at.get("plotly_chart"):
        shapes = json.loads(chart.proto.spec)["layout"].get("shapes", [])
        if any(s.get("type") == "line" and s["line"].get("dash") == "dash" for s in shapes):
            count += 1
    return count


@pytest.mark.parametrize("name", MONITORING)
def test_page_renders_with_title_and_deploy_markers_on_time_charts(with_demo, name):
    at = run_page(name)
    assert at.title and not at.title[0].value.startswith("Placeholder")
    assert not any("Placeholder" in i.value for i in at.info)
    if name not in WITHOUT_TIME_CHARTS:
        assert deploy_marked_charts(at) >= 1, "the demo has deploys in the window"


def test_health_shows_uptime_per_target_slo_and_startups(with_demo):
    at = run_page("health")
    metrics = {m.label for m in at.metric}
    assert {"agent", "supabase", "livekit", "railway"} <= metrics
    assert any(label.startswith("SLI over") for label in metrics)
    assert "Error budget remaining" in metrics
    assert has_table_with(at, "target", "uptime_pct", "down")
    assert has_table_with(at, "long burn rate", "short burn rate", "firing")
    assert has_table_with(at, "release", "startup_p50_ms")


def test_performance_shows_route_and_stage_percentiles_and_slow_requests(with_demo):
    at = run_page("performance")
    assert has_table_with(at, "route", "method", "p50_ms", "p95_ms", "p99_ms")
    stages = next(d.value for d in at.dataframe if "label" in d.value.columns)
    assert list(stages["stage"]) == [
        "eou_delay_ms",
        "stt_ms",
        "llm_ttft_ms",
        "tts_ttfb_ms",
        "e2e_ms",
    ]
    assert has_table_with(at, "statement", "calls", "share_of_time")
    assert has_table_with(at, "host", "metric", "threshold", "share_over")
    assert has_table_with(at, "stage", "share_over_own_p90", "share_dominant")
    slow = next(d.value for d in at.dataframe if "request_id" in d.value.columns)
    assert (slow["duration_ms"] > 2000).all()
    at.number_input(key="slow_ms").set_value(100_000).run()
    assert not at.exception
    assert not any("request_id" in cols for cols in columns_of(at))
    assert any("no request slower than 100000 ms" in c.value for c in at.caption)


def test_errors_lists_groups_and_opens_one_with_its_stack_trace(with_demo):
    at = run_page("errors")
    groups = next(d.value for d in at.dataframe if "fingerprint" in d.value.columns)
    for column in ("first_seen", "last_seen", "is_new", "is_regressed", "is_critical"):
        assert column in groups.columns
    assert has_table_with(at, "release", "http_5xx_rate", "errors_per_request")
    traced = groups[groups["frames"] != ""].iloc[0]
    at.selectbox(key="error_group").select(traced["fingerprint"]).run()
    assert not at.exception
    assert at.code and "Traceback" in at.code[0].value
    occurrences = next(d.value for d in at.dataframe if "occurred_at" in d.value.columns)
    assert len(occurrences) > 0 and (occurrences["severity"].notna()).all()
    at.checkbox(key="only_critical").check().run()
    assert not at.exception


def test_infrastructure_shows_deploys_probes_and_collector_freshness(with_demo):
    at = run_page("infrastructure")
    assert has_table_with(at, "created_at", "release", "status", "is_rollback")
    probes = next(d.value for d in at.dataframe if "last_status" in d.value.columns)
    assert set(probes["target"]) == {"agent", "supabase", "livekit", "railway"}
    sources = next(d.value for d in at.dataframe if "lag_minutes" in d.value.columns)
    assert list(sources["source"]) == ["demo"]


def test_voice_quality_shows_emodel_beside_reported_mos_and_worst_segments(with_demo):
    at = run_page("voice_quality")
    labels = [m.label for m in at.metric]
    assert any("Estimated MOS" in x for x in labels) and any("Reported MOS" in x for x in labels)
    segments = next(d.value for d in at.dataframe if "dimension" in d.value.columns)
    assert set(segments["dimension"]) <= {"release", "network", "region"}
    assert segments["mos_estimated"].is_monotonic_increasing  # worst first


def test_conversations_drill_into_one_call_shows_its_turns(with_demo):
    at = run_page("conversations")
    assert {"Calls", "Resolved"} <= {m.label for m in at.metric}
    calls = next(d.value for d in at.dataframe if "call_id" in d.value.columns)
    chosen = calls["call_id"].iloc[3]
    at.selectbox(key="call_id").select(chosen).run()
    assert not at.exception
    turns = next(d.value for d in at.dataframe if "turn_index" in d.value.columns)
    assert len(turns) == calls.set_index("call_id").loc[chosen, "turns"]
    at.selectbox(key="outcome").select("failed").run()
    assert not at.exception


def test_feedback_shows_csat_distribution_and_drivers(with_demo):
    at = run_page("feedback")
    assert {"CSAT", "Ratings", "Mean rating"} <= {m.label for m in at.metric}
    assert has_table_with(at, "category", "r1", "r5", "csat_ci_low")
    drivers = next(d.value for d in at.dataframe if "odds_ratio" in d.value.columns)
    assert {"e2e_s", "interruptions"} <= set(drivers["term"])


def test_feature_usage_lists_features(with_demo):
    at = run_page("feature_usage")
    usage = at.dataframe[0].value
    assert {"feature_name", "uses", "users", "share_of_uses"} <= set(usage.columns)
    assert len(usage) >= 3


def test_security_finds_the_planted_api_spike_as_rate_limit_violations(with_demo):
    # The 4-day demo holds the API spike (3 days before its anchor) but not the brute force,
    # stuffing or outage episodes, and too little history for the per-user spike detector.
    at = run_page("security")
    counts = {m.label: m.value for m in at.metric}
    assert int(counts["Rate-limit violation"]) >= 1
    detections = at.dataframe[0].value
    assert "Rate-limit violation" in set(detections["detection"])
    assert any("/v1/transcripts/{call_id}" in d for d in detections["detail"])
    evidence = at.dataframe[1].value
    assert len(evidence) >= 1
    assert has_table_with(at, "event_type", "severity", "events")


def test_anomalies_scans_every_metric(with_demo):
    at = run_page("anomalies")
    from analysis.metrics import metrics_on

    for key in metrics_on("anomalies"):
        at.selectbox(key="metric").select(key).run()
        assert not at.exception, key
        assert at.get("plotly_chart")
        assert at.caption  # what was found, or why the series was not scanned


def test_a_metric_added_to_the_catalogue_is_offered_and_scanned(with_demo, monkeypatch):
    from analysis.metrics import BUILTIN, Facts, builtin
    from analysis.metrics.definition import from_facts

    short = from_facts(
        "short_call_rate",
        Facts("calls", "started_at", "CASE WHEN duration_s < 60 THEN 1.0 ELSE 0.0 END"),
        "proportion",
        "call",
        lower_is_better=True,
        unit="%",
        label="Short calls",
        description="Share of calls shorter than a minute",
    )
    monkeypatch.setattr(builtin, "BUILTIN", (*BUILTIN, short))
    at = run_page("anomalies")
    picker = at.selectbox(key="metric")
    assert "Short calls" in picker.options
    picker.select("short_call_rate").run()
    assert not at.exception and at.get("plotly_chart")


@pytest.fixture
def with_hostile_feedback(demo_dir, tmp_path, monkeypatch):
    """A copy of the demo snapshot whose newest feedback comment is markdown and HTML."""
    copy = tmp_path / "demo"
    shutil.copytree(demo_dir / "serving", copy / "serving")
    manifest = json.loads((copy / "serving" / "manifest.json").read_text())
    days = manifest["tables"]["feedback"]["days"]
    last = copy / "serving" / days[max(days)]["file"]
    con = duckdb.connect()
    con.execute(
        f"""
        COPY (
          SELECT * FROM read_parquet('{last}')
          UNION ALL BY NAME
          SELECT 'hostile-1' AS feedback_id,
                 (SELECT max(submitted_at) FROM read_parquet('{last}')) AS submitted_at,
                 1 AS rating, '<b>latency</b>' AS category,
                 ? AS comment, 'call_hostile' AS call_id
        ) TO '{last}.new' (FORMAT parquet)
        """,
        [HOSTILE],
    )
    con.close()
    Path(f"{last}.new").replace(last)
    days[max(days)]["rows"] = days[max(days)].get("rows", 0) + 1  # the file's new row count
    (copy / "serving" / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(copy))
    return copy


HOSTILE = "<script>alert(1)</script> **bold** [x](javascript:alert(1))"


def test_feedback_comment_with_html_and_markdown_is_shown_escaped(with_hostile_feedback):
    at = run_page("feedback")
    sources = [m.value for m in at.markdown]
    assert quote_block(HOSTILE) in sources
    assert not any("<script>" in s or "**bold**" in s or "<b>" in s for s in sources)


def test_security_lists_every_planted_attack_over_two_weeks(with_demo15):
    from datetime import UTC, datetime

    from collectors.demo_truth import demo_truth

    truth = demo_truth(7, datetime(2025, 1, 1, tzinfo=UTC))  # IPs and users do not move
    at = run_page("security")
    at.selectbox(key="period").select("Last 14 days").run()
    assert not at.exception
    found = {
        (k, e) for k, e in at.dataframe[0].value[["detection", "entity"]].itertuples(index=False)
    }
    assert ("Brute force (per IP)", truth.brute_force.ip) in found
    assert ("Brute force (per account)", truth.brute_force.user_id) in found
    assert ("Credential stuffing", truth.credential_stuffing.ip) in found
    assert ("API usage spike", truth.api_spike.user_id) in found


def test_health_lists_the_planted_supabase_outage(with_demo15):
    at = run_page("health")
    at.selectbox(key="period").select("Last 14 days").run()
    incidents = next(d.value for d in at.dataframe if "duration_min" in d.value.columns)
    supabase = incidents[incidents["target"] == "supabase"]
    assert len(supabase) == 1  # 2 pending checks, then down: one incident with 2 retries
    assert supabase["duration_min"].iloc[0] == pytest.approx(25, abs=1)
