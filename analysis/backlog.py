"""The improvement backlog: the biggest problems in a period, computed from the data and ranked
by estimated impact, each with the evidence page that explains it and its trend.

    impact = affected calls x severity

`affected calls` is an estimate of the calls the problem touched in the period, and `severity`
(0 to 1) how much it spoils such a call. Both are stated per kind in `FORMULAS`, which the page
shows as help text; the weights are the workbench's own judgement, not a standard, and are
chosen so that a lost call (1.0) outweighs an annoyed one.

Kinds: top error groups, slowest pipeline stages, worst voice-quality segments, features with
poor ratings, regressions of the last release, repeat callers, and experiments ready to decide.
Everything but repeat callers and feature ratings is read from the hourly rollups; those two
join raw calls, feedback and feature uses within the window only.

Trend: the same measure over the previous period of equal length, only when that period holds
calls in most of its hours (analysis.overview.COVERED); otherwise the trend says it has no data.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
from scipy.stats import binomtest

from analysis.benchmarks import BenchmarkComparison
from analysis.changes import Decision
from analysis.overview import COVERED, coverage
from analysis.sketch import bucket_value
from analysis.untrusted import neutralise_cell

KIND_TITLES = {
    "error": "Error group",
    "stage": "Slow pipeline stage",
    "quality": "Poor voice quality",
    "feature": "Poorly rated feature",
    "regression": "Last release regression",
    "repeat": "Repeat caller",
    "experiment": "Experiment ready to decide",
}
FORMULAS = {
    "error": "affected = the group's events in the period, corrected for sampling (one call "
    "each); severity = 1.0 critical/fatal, 0.5 error, 0.1 warning",
    "stage": "affected = turns where the stage took longer than its budget, divided by the "
    "mean turns per call; severity = 0.25 (a slow answer annoys, rarely loses the call)",
    "quality": "affected = calls measured in the segment; severity = (4.0 - mean MOS) / 3, "
    "for segments below MOS 3.6 (under 'fair', ITU-T G.107 Annex B)",
    "feature": "affected = calls that used the feature x the share of its rated calls rated "
    "1-2, for features rated 1-2 more often than all calls (binomial test, p < 0.01); "
    "severity = 0.5",
    "regression": "affected = calls on the release in the period; severity = 0.5 x the "
    "relative change, at most 1",
    "repeat": "affected = calls from the caller within 24 h of their previous call; severity "
    "= 0.5 (each repeat is a call the first one should have settled)",
    "experiment": "affected = calls in the period x the primary metric's absolute change (a "
    "share); severity = 1.0 (each is a call whose outcome the decision changes); for a metric "
    "that is not a share, affected = the experiment's units and severity = 0.25",
}
ERROR_SEVERITY = {"critical": 1.0, "fatal": 1.0, "error": 0.5, "warning": 0.1}
# Stage budgets (ms) for a turn of about 1.5 s end to end; transcription overlaps the wait for
# the end of the utterance, so the budgets do not add up to the end-to-end one.
STAGE_BUDGET_MS = {
    "eou_delay_ms": 600.0,
    "stt_ms": 500.0,
    "llm_ttft_ms": 800.0,
    "tts_ttfb_ms": 300.0,
}
STAGE_TITLES = {
    "eou_delay_ms": "end-of-utterance wait",
    "stt_ms": "transcription",
    "llm_ttft_ms": "LLM time to first token",
    "tts_ttfb_ms": "TTS time to first byte",
}
POOR_MOS = 3.6
REPEAT_WITHIN = timedelta(hours=24)
TOP = 5  # items per kind, at most (error groups: ERROR_TOP)
ERROR_TOP = 8


@dataclass(frozen=True)
class BacklogItem:
    kind: str  # a key of KIND_TITLES
    title: str
    affected_calls: float
    severity: float
    evidence: str  # the numbers behind it, in a sentence
    page: str  # the view file (app/views/<page>.py) that explains it
    params: tuple[tuple[str, str], ...] = ()  # that page's filters, for the link
    now: float | None = None  # the item's measure this period (higher is worse)
    before: float | None = None  # the same over the previous period, when it has data
    trend: str = ""

    @property
    def impact(self) -> float:
        return self.affected_calls * self.severity


@dataclass(frozen=True)
class Backlog:
    items: tuple[BacklogItem, ...]
    compared: bool  # whether trends compare with the previous period
    notes: tuple[str, ...] = ()

    def frame(self) -> pd.DataFrame:
        """One row per item, highest impact first (what the page shows and the CSV holds)."""
        columns = [
            "rank",
            "kind",
            "problem",
            "impact",
            "affected_calls",
            "severity",
            "trend",
            "evidence",
            "page",
        ]
        rows = [
            [
                i + 1,
                KIND_TITLES[it.kind],
                it.title,
                round(it.impact, 1),
                round(it.affected_calls),
                round(it.severity, 2),
                it.trend,
                it.evidence,
                it.page,
            ]
            for i, it in enumerate(self.items)
        ]
        return pd.DataFrame(rows, columns=columns)


def trend_text(now: float | None, before: float | None, compared: bool) -> str:
    """'worse (+35 %)', 'better (-20 %)', 'steady', 'new' or why there is no trend."""
    if not compared:
        return "n/a: the previous period has no data"
    if now is None or before is None:
        return "n/a"
    if before == 0:
        return "new" if now > 0 else "steady"
    change = (now - before) / abs(before)
    if abs(change) < 0.1:
        return "steady"
    return f"{'worse' if change > 0 else 'better'} ({change:+.0%})"


def _item(kind: str, title: str, affected: float, severity: float, evidence: str, page: str,
          params: tuple[tuple[str, str], ...], now: float | None, before: float | None,
          compared: bool) -> BacklogItem:  # fmt: skip
    return BacklogItem(
        kind, title, float(affected), float(severity), evidence, page, params, now, before,
        trend_text(now, before, compared),
    )  # fmt: skip


# --------------------------------------------------------------------------- error groups


def _error_counts(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pd.DataFrame:
    return con.execute(
        "SELECT fingerprint, any_value(error_type) AS error_type, max(severity) AS severity, "
        "sum(n_estimated) AS events, count(DISTINCT release) AS releases, "
        "string_agg(DISTINCT release, ', ' ORDER BY release) AS in_releases "
        "FROM errors_hourly WHERE hour >= ? AND hour < ? GROUP BY fingerprint",
        [start, end],
    ).df()


def error_items(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, compared: bool
) -> list[BacklogItem]:
    """The error groups with the largest impact (errors_hourly)."""
    now = _error_counts(con, start, end)
    if now.empty:
        return []
    before = _error_counts(con, start - (end - start), start) if compared else now.iloc[:0]
    earlier = dict(zip(before["fingerprint"], before["events"], strict=True))
    now["severity_w"] = now["severity"].map(lambda s: ERROR_SEVERITY.get(str(s).lower(), 0.1))
    now["impact"] = now["events"] * now["severity_w"]
    out = []
    r: dict[Any, Any]  # pandas' records carry no field types
    for r in now.sort_values("impact", ascending=False).head(ERROR_TOP).to_dict("records"):
        releases = int(r["releases"])
        where = f"only in {r['in_releases']}" if releases == 1 else f"in {releases} releases"
        events = float(r["events"])
        out.append(
            _item(
                "error",
                f"{r['error_type']} ({r['severity']})",
                events,
                float(r["severity_w"]),
                f"{events:,.0f} events {where}; group {r['fingerprint']}.",
                "errors",
                (),
                events,
                float(earlier.get(r["fingerprint"], 0.0)) if compared else None,
                compared,
            )
        )
    return out


# --------------------------------------------------------------------------- slow stages


def _stage_shares(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime
) -> tuple[dict[str, tuple[float, float]], float]:
    """Per stage (turns over budget, turns), and mean turns per call."""
    hist = con.execute(
        "SELECT stage, bucket, sum(n) AS n FROM turn_latency_hist "
        "WHERE hour >= ? AND hour < ? AND list_contains(?, stage) GROUP BY stage, bucket",
        [start, end, list(STAGE_BUDGET_MS)],
    ).df()
    out = {}
    for stage, part in hist.groupby("stage"):
        values = bucket_value(part["bucket"].to_numpy())
        over = float(part["n"].to_numpy()[values > STAGE_BUDGET_MS[str(stage)]].sum())
        out[str(stage)] = (over, float(part["n"].sum()))
    row = con.execute(
        "SELECT (SELECT sum(n) FROM turns_hourly WHERE hour >= ? AND hour < ?), "
        "(SELECT sum(n) FROM calls_hourly WHERE hour >= ? AND hour < ?)",
        [start, end, start, end],
    ).fetchone()
    turns, calls = row or (None, None)
    per_call = float(turns) / float(calls) if turns and calls else math.nan
    return out, per_call


def stage_items(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, compared: bool
) -> list[BacklogItem]:
    """Pipeline stages by the turns they made slower than their budget (turn_latency_hist)."""
    now, per_call = _stage_shares(con, start, end)
    if not now or not math.isfinite(per_call) or per_call <= 0:
        return []
    before = _stage_shares(con, start - (end - start), start)[0] if compared else {}
    out = []
    for stage, (over, turns) in now.items():
        if over <= 0 or turns <= 0:
            continue
        share = over / turns
        previous = before.get(stage)
        was = previous[0] / previous[1] if previous and previous[1] else None
        out.append(
            _item(
                "stage",
                f"{STAGE_TITLES[stage][0].upper()}{STAGE_TITLES[stage][1:]} over {STAGE_BUDGET_MS[stage]:,.0f} ms",
                over / per_call,
                0.25,
                f"{share:.1%} of {turns:,.0f} turns took longer than "
                f"{STAGE_BUDGET_MS[stage]:,.0f} ms ({per_call:.1f} turns per call).",
                "performance",
                (),
                share,
                was,
                compared,
            )
        )
    return sorted(out, key=lambda i: i.impact, reverse=True)


# --------------------------------------------------------------------------- voice quality


def _segments(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pd.DataFrame:
    return con.execute(
        "SELECT network, region, codec, sum(n) AS calls, sum(sum_mos) / sum(n_mos) AS mos "
        "FROM quality_hourly WHERE hour >= ? AND hour < ? GROUP BY ALL HAVING sum(n_mos) > 0",
        [start, end],
    ).df()


def quality_items(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, compared: bool
) -> list[BacklogItem]:
    """Network x region x codec segments whose mean MOS is below 'fair' (quality_hourly)."""
    now = _segments(con, start, end)
    poor = now[now["mos"] < POOR_MOS]
    if poor.empty:
        return []
    keys = ["network", "region", "codec"]
    before = _segments(con, start - (end - start), start) if compared else now.iloc[:0]
    earlier = {tuple(r[k] for k in keys): r["mos"] for _, r in before.iterrows()}
    out = []
    for _, r in poor.iterrows():
        name = f"{r['network']} / {r['region']} / {r['codec']}"
        was = earlier.get(tuple(r[k] for k in keys))
        # The measure for the trend is the MOS shortfall, so that higher is worse throughout.
        out.append(
            _item(
                "quality",
                f"Voice quality on {name}",
                r["calls"],
                min(1.0, max(0.0, (4.0 - r["mos"]) / 3.0)),
                f"mean MOS {r['mos']:.2f} over {r['calls']:,.0f} calls (below {POOR_MOS}, 'fair').",
                "voice_quality",
                (),
                4.0 - float(r["mos"]),
                None if was is None else 4.0 - float(was),
                compared,
            )
        )
    return sorted(out, key=lambda i: i.impact, reverse=True)[:TOP]


# --------------------------------------------------------------------------- feature ratings


def _feature_ratings(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime
) -> pd.DataFrame:
    return con.execute(
        """
        WITH used AS (
          SELECT DISTINCT feature_name, call_id FROM feature_usage
          WHERE used_at >= ? AND used_at < ? AND call_id IS NOT NULL
        ), rated AS (
          SELECT call_id, min(rating) AS rating FROM feedback
          WHERE submitted_at >= ? AND submitted_at < ? + INTERVAL 1 HOUR
            AND call_id IS NOT NULL AND rating IS NOT NULL
          GROUP BY call_id
        )
        SELECT u.feature_name AS feature, count(*) AS calls, count(r.rating) AS rated,
               count(*) FILTER (WHERE r.rating <= 2) AS negative
        FROM used u LEFT JOIN rated r USING (call_id) GROUP BY u.feature_name
        """,
        [start, end, start, end],
    ).df()


def feature_items(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, compared: bool
) -> list[BacklogItem]:
    """Features whose calls are rated 1-2 more often than calls overall."""
    now = _feature_ratings(con, start, end)
    now = now[now["rated"] > 0]
    if now.empty:
        return []
    overall = con.execute(
        "SELECT count(*) FILTER (WHERE rating <= 2), count(rating) FROM feedback "
        "WHERE submitted_at >= ? AND submitted_at < ?",
        [start, end],
    ).fetchone()
    base = float(overall[0]) / float(overall[1]) if overall and overall[1] else 0.0
    before = _feature_ratings(con, start - (end - start), start) if compared else now.iloc[:0]
    r: dict[Any, Any]  # pandas' records carry no field types
    earlier = {
        str(r["feature"]): int(r["negative"]) / int(r["rated"])
        for r in before.to_dict("records")
        if r["rated"] > 0
    }
    out = []
    for r in now.to_dict("records"):
        feature, calls = str(r["feature"]), int(r["calls"])
        negative, rated = int(r["negative"]), int(r["rated"])
        share = negative / rated
        # Only a share of poor ratings that chance does not explain: exact one-sided binomial
        # test against the share over all rated calls (scipy.stats.binomtest).
        if share <= base or binomtest(negative, rated, base, "greater").pvalue > 0.01:
            continue
        out.append(
            _item(
                "feature",
                f"Ratings of {feature}",
                calls * share,
                0.5,
                f"{share:.0%} of its {rated:,} rated calls were rated 1-2 (all calls: "
                f"{base:.0%}); used in {calls:,} calls.",
                "feature_usage",
                (),
                share,
                earlier.get(feature),
                compared,
            )
        )
    return sorted(out, key=lambda i: i.impact, reverse=True)[:TOP]


# --------------------------------------------------------------------------- last release


def regression_items(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    comparison: BenchmarkComparison | None,
) -> list[BacklogItem]:
    """The regressions of the last release against the one before (analysis.benchmarks)."""
    if comparison is None:
        return []
    release = comparison.candidate.release or comparison.candidate.label
    row = con.execute(
        "SELECT sum(n) FROM calls_hourly WHERE release = ? AND hour >= ? AND hour < ?",
        [release, start, end],
    ).fetchone()
    calls = float(row[0]) if row and row[0] else 0.0
    params = (
        ("bench_baseline", comparison.baseline.label),
        ("bench_candidate", comparison.candidate.label),
    )
    out = []
    for r in comparison.regressions:
        change = r.relative_change
        severity = min(1.0, 0.5 * abs(change)) if math.isfinite(change) else 0.5
        out.append(
            _item(
                "regression",
                f"{release}: {r.title} worse",
                calls,
                severity,
                f"{r.title} {change:+.0%} against {comparison.baseline.label} "
                f"({r.verdict}).".replace("..", "."),
                "benchmarks",
                params,
                None,
                None,
                False,
            )
        )
    return [BacklogItem(**{**i.__dict__, "trend": "new in this release"}) for i in out]


# --------------------------------------------------------------------------- repeat callers


def repeat_callers(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    within: timedelta = REPEAT_WITHIN,
) -> pd.DataFrame:
    """Per caller: calls in [start, end), how many came within `within` of their previous call
    (repeats), and the outcomes of the calls that were followed by a repeat."""
    return con.execute(
        """
        WITH c AS (
          SELECT caller_id, started_at, outcome,
                 lag(started_at) OVER (PARTITION BY caller_id ORDER BY started_at) AS previous
          FROM calls WHERE started_at >= ? - ? AND started_at < ? AND caller_id IS NOT NULL
        )
        SELECT caller_id, count(*) AS calls,
               count(*) FILTER (WHERE started_at - previous <= ?) AS repeats,
               count(*) FILTER (WHERE outcome = 'resolved') AS resolved
        FROM c WHERE started_at >= ? GROUP BY caller_id
        ORDER BY repeats DESC, caller_id
        """,
        [start, within, end, within, start],
    ).df()


def repeat_items(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, compared: bool
) -> list[BacklogItem]:
    """The callers who call back within 24 h most often."""
    now = repeat_callers(con, start, end)
    now = now[now["repeats"] > 0]
    if now.empty:
        return []
    total = float(now["repeats"].sum())
    before = repeat_callers(con, start - (end - start), start) if compared else now.iloc[:0]
    earlier = dict(zip(before["caller_id"], before["repeats"], strict=True))
    out = []
    r: dict[Any, Any]  # pandas' records carry no field types
    for r in now.head(TOP).to_dict("records"):
        caller, repeats = str(r["caller_id"]), int(r["repeats"])
        calls, resolved = int(r["calls"]), int(r["resolved"])
        out.append(
            _item(
                "repeat",
                f"Caller {caller} calls back within 24 h",
                repeats,
                0.5,
                f"{repeats:,} of their {calls:,} calls came within 24 h of the previous one "
                f"({resolved / calls:.0%} resolved); {repeats / total:.1%} of all "
                "repeat calls.",
                "conversations",
                (),
                float(repeats),
                float(earlier.get(caller, 0)) if compared else None,
                compared,
            )
        )
    return out


# --------------------------------------------------------------------------- experiments


def experiment_items(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, decisions: Sequence[Decision]
) -> list[BacklogItem]:
    """Experiments whose result is ready to act on (ship or stop)."""
    ready = [d for d in decisions if d.decision in ("ship", "stop")]
    if not ready:
        return []
    row = con.execute(
        "SELECT sum(n) FROM calls_hourly WHERE hour >= ? AND hour < ?", [start, end]
    ).fetchone()
    calls = float(row[0]) if row and row[0] else 0.0
    out = []
    for d in ready:
        if d.metric_type == "proportion" and d.effect is not None:
            # calls whose outcome the decision changes: the change in the share, on every call
            affected, severity = calls * abs(d.effect), 1.0
            change = f"{d.effect * 100:+.1f} points"
        else:
            affected, severity = float(d.units), 0.25
            change = "" if d.effect is None else f"{d.effect:+.3g}"
        out.append(
            BacklogItem(
                "experiment",
                f"Decide experiment {d.key}: {d.decision} {d.arm}",
                affected,
                severity,
                f"{d.summary} {d.metric} {change} over {d.units:,} units.",
                "experiments",
                (("experiment_choice", d.key),),
                None,
                None,
                "ready now",
            )
        )
    return out


# --------------------------------------------------------------------------- the backlog


def backlog(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    last_release: BenchmarkComparison | None = None,
    decisions: Sequence[Decision] = (),
) -> Backlog:
    """Every kind's items over [start, end), highest impact first. `last_release` is the last
    release's comparison with the one before (analysis.benchmarks), `decisions` the
    experiments' (analysis.changes.experiment_decisions): both are computed by the caller,
    which may have them cached."""
    compared = coverage(con, start - (end - start), start) >= COVERED
    items: list[BacklogItem] = []
    notes = []
    parts: dict[str, Callable[[], list[BacklogItem]]] = {
        "error groups": lambda: error_items(con, start, end, compared),
        "pipeline stages": lambda: stage_items(con, start, end, compared),
        "voice quality": lambda: quality_items(con, start, end, compared),
        "feature ratings": lambda: feature_items(con, start, end, compared),
        "last release": lambda: regression_items(con, start, end, last_release),
        "repeat callers": lambda: repeat_items(con, start, end, compared),
        "experiments": lambda: experiment_items(con, start, end, decisions),
    }
    for name, part in parts.items():
        try:
            items.extend(part())
        except duckdb.Error as exc:
            notes.append(f"{name} could not be read: {exc}")
    items.sort(key=lambda i: (-i.impact, i.kind, i.title))
    return Backlog(tuple(items), compared, tuple(notes))


CSV_COLUMNS = (
    "rank",
    "kind",
    "problem",
    "impact (affected calls x severity)",
    "affected calls",
    "severity (0-1)",
    "trend",
    "evidence",
    "evidence link",
    "how impact is estimated",
)


def backlog_csv(items: Sequence[BacklogItem], links: Sequence[str]) -> str:
    """The backlog as CSV with its formula per row; text neutralised for spreadsheets."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for rank, (item, link) in enumerate(zip(items, links, strict=True), start=1):
        row = [
            rank,
            KIND_TITLES[item.kind],
            item.title,
            round(item.impact, 1),
            round(item.affected_calls),
            round(item.severity, 2),
            item.trend,
            item.evidence,
            link,
            FORMULAS[item.kind],
        ]
        writer.writerow([neutralise_cell(v) if isinstance(v, str) else v for v in row])
    return buffer.getvalue()
