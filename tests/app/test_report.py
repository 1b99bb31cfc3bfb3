"""Benchmark reports: the demo's bad release is flagged in a self-contained, escaped HTML report
and a formula-safe CSV, from the page's functions and from `workbench report`; the demo's
planted A/B effect is recovered and latency shows none."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from analysis.benchmarks import BenchmarkSettings, Slice, compare_periods
from analysis.experiments import ExperimentDefinition, evaluate_experiment, verdict
from analysis.metrics import builtin_metrics
from analysis.report import CSV_COLUMNS, benchmark_csv, benchmark_html, neutralise_cell
from collectors.snapshot import open_snapshot
from tests.conftest import REPO
from tests.demo_data import demo_truth_of


@pytest.fixture(scope="module")
def demo(demo15):
    return demo15, open_snapshot(demo15 / "serving").con, demo_truth_of(demo15)


@pytest.fixture(scope="module")
def bad_vs_previous(demo):
    _, con, truth = demo
    bad = truth.bad_release
    settings = BenchmarkSettings(practical_threshold=0.05)
    result = compare_periods(
        con,
        Slice(bad.previous_release, release=bad.previous_release),
        Slice(bad.release, release=bad.release),
        settings,
    )
    return result, settings


def test_demo_bad_release_is_flagged_on_llm_latency(bad_vs_previous):
    result, _ = bad_vs_previous
    names = {r.name for r in result.regressions}
    assert "p95 stage llm_ttft_ms" in names
    row = next(r for r in result.rows if r.name == "p95 stage llm_ttft_ms")
    assert row.relative_change > 0.3  # the demo slows the LLM by 1.7x


def test_demo_experiment_effect_is_found_with_the_right_sign_and_covered(demo):
    _, con, truth = demo
    reg = builtin_metrics()
    names = ["resolved_rate", "p95_e2e_latency", "llm_ttft", "handle_time"]
    result = evaluate_experiment(
        con,
        ExperimentDefinition(truth.experiment.key, "control", ("treatment",)),
        [reg[n] for n in names],
        "sequential",
    )
    resolved = result.result("resolved_rate").absolute
    effect = truth.experiment.resolved_rate_effect
    assert resolved.effect > 0 and resolved.ci_low < effect < resolved.ci_high
    assert resolved.significant
    for latency in ("p95_e2e_latency", "llm_ttft"):
        r = result.result(latency)
        assert r.direction == "unclear", r.verdict
        assert r.absolute.ci_low < truth.experiment.latency_effect_ms < r.absolute.ci_high
    text = verdict(result, ["resolved_rate"], ["p95_e2e_latency", "llm_ttft"])
    assert "Resolved rate: treatment improved it" in text
    assert "No guardrail got significantly worse" in text


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_html_report_is_self_contained_and_names_the_regression(demo, bad_vs_previous):
    result, settings = bad_vs_previous
    _, _, truth = demo
    page = benchmark_html([result], settings, title="Benchmark")
    parsed = _Collector()
    parsed.feed(page)
    text = " ".join(parsed.text)
    assert truth.bad_release.release in text and truth.bad_release.previous_release in text
    assert f"Worse: {truth.bad_release.release} made" in text and "Regression" in text
    assert "Compared at equal traffic load" in text  # the reader learns how it was compared
    assert any(tag == "svg" for tag, _ in parsed.tags)  # the chart is inline
    # nothing is fetched from the network when the file is opened offline
    assert not [a for _, attrs in parsed.tags for k, a in attrs.items()
                if k in ("src", "href") and a and not a.startswith("#")]  # fmt: skip
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")


def test_untrusted_names_are_escaped_in_html_and_neutralised_in_csv(bad_vs_previous):
    result, settings = bad_vs_previous
    from dataclasses import replace

    evil = '<img src=x onerror=alert(1)>"=HYPERLINK("http://x")'
    hostile = replace(result, candidate=Slice(evil, release=evil), baseline=Slice("@SUM(A1)"))
    page = benchmark_html([hostile], settings)
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    rows = list(csv.DictReader(io.StringIO(benchmark_csv([hostile]))))
    assert rows[0]["candidate"] == evil  # starts with "<": left alone
    assert rows[0]["baseline"] == "'@SUM(A1)"
    for cell in ("=1+1", "+1", "-1+2", "@x", "\t=1"):
        assert neutralise_cell(cell) == "'" + cell
    # a carriage return would end the row in Streamlit's table CSV: it becomes a line feed, and
    # no line of a cell starts a formula
    assert neutralise_cell("\r=1+1") == "\n'=1+1" and neutralise_cell("a\n-b") == "a\n'-b"
    assert neutralise_cell(-1.5) == -1.5 and neutralise_cell("v1.2") == "v1.2"


def test_html_report_has_no_cell_a_spreadsheet_would_run(bad_vs_previous):
    """A spreadsheet opens an HTML report's tables and headings as cells."""
    from dataclasses import replace

    from tests.hostile_data import formula_cells_in_html

    result, settings = bad_vs_previous
    hostile = replace(result, candidate=Slice("=cmd|' /C calc'!A0", release="=cmd"))
    page = benchmark_html([hostile], settings, title="-1 release benchmark")
    assert formula_cells_in_html(page) == []
    assert "\u2212" in page  # the report's own negative numbers use a minus sign, not "-"


def test_csv_parses_with_the_expected_columns_and_numbers(bad_vs_previous):
    result, _ = bad_vs_previous
    rows = list(csv.DictReader(io.StringIO(benchmark_csv([result]))))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert len(rows) == len(result.rows)
    flagged = [r for r in rows if r["flag"] == "Regression"]
    assert any(r["metric"] == "stage" and r["group"] == "llm_ttft_ms" for r in flagged)
    row = next(r for r in flagged if r["group"] == "llm_ttft_ms" and r["statistic"] == "p95")
    assert row["measure"] == "LLM time to first token, 95th percentile" and row["unit"] == "ms"
    assert float(row["relative change (%)"]) > 30
    assert float(row["relative interval low (%)"]) < float(row["relative change (%)"])
    # Rates labelled % hold percentages, and their change is in percentage points.
    resolved = next(r for r in rows if r["metric"] == "resolved_rate")
    stat = next(r for r in result.rows if r.metric == "resolved_rate")
    assert resolved["unit"] == "%"
    assert float(resolved["baseline value (unit)"]) == pytest.approx(stat.baseline.mean * 100)
    assert float(resolved["candidate value (unit)"]) == pytest.approx(stat.candidate.mean * 100)
    assert float(resolved["change (unit; rates in percentage points)"]) == pytest.approx(
        (stat.candidate.mean - stat.baseline.mean) * 100, abs=1e-9
    )


def test_cli_report_defaults_and_explicit_releases(demo, tmp_path):
    root, _, truth = demo
    bad = truth.bad_release
    out, table = tmp_path / "r.html", tmp_path / "r.csv"
    cmd = [sys.executable, "-m", "collectors.cli", "--data-dir", str(root), "report"]
    done = subprocess.run(
        [*cmd, "--baseline", bad.previous_release, "--release", bad.release,
         "--out", str(out), "--csv", str(table)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert re.search(r"[1-9]\d* regression", done.stdout)
    assert bad.release in out.read_text() and "Regression" in out.read_text()
    assert next(csv.reader(io.StringIO(table.read_text())))[: len(CSV_COLUMNS)] == list(CSV_COLUMNS)
    default = subprocess.run(
        [*cmd, "--out", str(tmp_path / "d.html")], capture_output=True, text=True, cwd=REPO,
        timeout=300,
    )  # fmt: skip
    assert default.returncode == 0, default.stderr
    raw = subprocess.run(
        [*cmd, "--baseline", bad.previous_release, "--release", bad.release, "--raw",
         "--out", str(tmp_path / "raw.html")],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert raw.returncode == 0, raw.stderr
    assert "Compared at equal traffic load" not in (tmp_path / "raw.html").read_text()
    wrong = subprocess.run(
        [*cmd, "--release", "v0.0.0-nope", "--out", str(tmp_path / "x.html")],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert wrong.returncode == 2
    assert "not in the data" in wrong.stderr and "Traceback" not in wrong.stderr


def test_interval_label_states_level_correction_and_approximation():
    from analysis.benchmarks import BenchmarkSettings, Slice, compare_slices
    from analysis.report import interval_label
    from analysis.stats import Proportion

    base = {
        ("error_rate", "", "rate"): Proportion(10_000, 300),
        ("resolved_rate", "", "rate"): Proportion(5_000, 3_000),
    }
    cand = {
        ("error_rate", "", "rate"): Proportion(10_000, 420),
        ("resolved_rate", "", "rate"): Proportion(5_000, 2_950),
    }
    comp = compare_slices(base, cand, Slice("v1"), Slice("v2"), BenchmarkSettings(alpha=0.01))
    assert interval_label([comp]) == (
        "99 % interval, holm-adjusted; relative to the baseline value, taken as fixed"
    )


def test_the_report_opens_with_a_plain_verdict_and_the_changes_that_matter(demo, bad_vs_previous):
    """Before any detail: one sentence, then at most five changes in words, with readable
    numbers (no scientific notation), rates in points and no internal names."""
    result, settings = bad_vs_previous
    _, _, truth = demo
    page = benchmark_html([result], settings, title="Benchmark")
    parsed = _Collector()
    parsed.feed(page.split("<h3>How it was compared</h3>")[0])
    opening = " ".join(parsed.text)
    assert f"Worse: {truth.bad_release.release} made" in opening
    items = re.findall(r"<li>(.*?)</li>", page.split("<h3>How it was compared</h3>")[0])
    assert 3 <= len(items) <= 5
    assert any(i.startswith("LLM time to first token, 95th percentile got slower") for i in items)
    resolved = next(i for i in items if i.startswith("Resolved rate fell"))
    row = next(r for r in result.rows if r.metric == "resolved_rate")
    before, after = row.baseline.mean * 100, row.candidate.mean * 100
    assert f"{before:.1f} % → {after:.1f} %" in resolved
    assert f"{before - after:.1f} points" in resolved
    assert not re.search(r"\de[+-]\d", page)  # 1.35e+03 nowhere, values or p
    for internal in ("llm_ttft_ms", "rate csat", "p95 stage"):
        assert internal not in opening


def test_a_change_too_large_for_the_chart_is_drawn_at_its_edge_with_its_value(bad_vs_previous):
    from analysis.report import CHART_LIMIT, chart_points, forest_svg

    result, settings = bad_vs_previous
    points = chart_points(result.rows)
    assert all(abs(p["rel"]) <= CHART_LIMIT for p in points)
    huge = [r for r in result.rows if r.relative_change > CHART_LIMIT]
    assert huge, "the demo's bad release multiplies the 5xx error rate"
    svg = forest_svg(result.rows, settings.practical_threshold)
    assert svg.count('class="clipped"') == len(huge)
    for r in huge:
        assert f"off scale: +{r.relative_change * 100:,.0f} %" in svg


def test_failed_builds_are_not_releases_to_compare():
    """As the demo plants it (19 days back): a build that failed, then a retry that served."""
    import duckdb

    from analysis.benchmarks import releases

    con = duckdb.connect()
    con.execute("CREATE TABLE deployments (release TEXT, created_at TIMESTAMP, status TEXT)")
    con.execute("CREATE TABLE calls (release TEXT, started_at TIMESTAMP)")
    con.execute("CREATE TABLE requests (release TEXT, started_at TIMESTAMP)")
    con.execute(
        "INSERT INTO deployments VALUES ('v1.0.0', '2026-11-01 10:00', 'SUCCESS'), "
        "('v1.1.0', '2026-11-02 10:30', 'FAILED'), ('v1.1.1', '2026-11-02 11:15', 'SUCCESS'), "
        "('v1.2.0', '2026-11-03 09:00', 'CRASHED')"
    )
    con.execute(
        "INSERT INTO calls VALUES ('v1.0.0', '2026-11-01 12:00'), ('v1.1.1', '2026-11-02 12:00')"
    )
    assert [r for r, _ in releases(con)] == ["v1.0.0", "v1.1.1"]


def test_the_default_comparison_does_not_credit_a_release_with_an_outage_ending(demo):
    """The release that ran during the demo's outage has a higher 5xx rate because of it;
    compared with the release after it, the outage's hours are left out of both by default."""
    import pandas as pd

    from analysis.benchmarks import releases

    _, con, truth = demo
    start = truth.outage.start.replace(tzinfo=None)
    ordered = releases(con)
    during = [r for r, first in ordered if first <= start][-1]
    after = ordered[[r for r, _ in ordered].index(during) + 1][0]
    pair = (Slice(during, release=during), Slice(after, release=after))
    plain = BenchmarkSettings(adjust_for_load=False)
    fair = compare_periods(con, *pair, plain)
    naive = compare_periods(con, *pair, BenchmarkSettings(adjust_for_load=False,
                                                          exclude_outages=False))  # fmt: skip
    fair_row = next(r for r in fair.rows if r.metric == "error_rate")
    naive_row = next(r for r in naive.rows if r.metric == "error_rate")
    assert naive_row.improvement  # what the report used to say
    assert not fair_row.improvement
    assert "dependency outages" in fair.adjustment and f"{start:%d %b %H:%M}" in fair.adjustment
    # the baseline's rate is the raw requests' rate outside the outage's whole hours
    raw = con.execute(
        "SELECT started_at, status_code FROM requests WHERE release = ?", [during]
    ).df()
    hour = raw["started_at"].dt.floor("h")
    first = pd.Timestamp(start).floor("h")
    last = pd.Timestamp(truth.outage.end.replace(tzinfo=None)).ceil("h")
    kept = raw[(hour < first) | (hour >= last)]
    assert fair_row.baseline.mean == pytest.approx((kept["status_code"] >= 500).mean())
