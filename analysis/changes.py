"""What changed in a period, as one timeline a product owner reads: alerts that fired, anomaly
episodes, outages seen by the probes, releases with their benchmark verdict, experiments with
their decision, and security detections. Each change names the page that explains it and the
filters to open it with, so the Overview can link to the evidence.

Every part reads what its own page reads (analysis.uptime, analysis.anomalies,
analysis.benchmarks, analysis.experiments, analysis.security), so the timeline and the page it
links to agree. A part that cannot be computed is left out with its reason in `Timeline.notes`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import duckdb
import pandas as pd

from analysis import experiments as ex
from analysis import security
from analysis.anomalies import anomaly_view
from analysis.benchmarks import BenchmarkSettings, release_benchmarks, releases
from analysis.experiment_rules import Method
from analysis.metrics import Metric, builtin_metrics
from analysis.report import key_changes
from analysis.uptime import incidents

KINDS = ("incident", "anomaly", "outage", "release", "experiment", "security")
# The metrics whose anomaly episodes count as changes: errors and latency, what callers feel.
ANOMALY_METRICS = ("error_rate", "p95_e2e_latency")
SECURITY_TITLES = {
    "failed_logins": "Failed-login burst",
    "credential_stuffing": "Credential stuffing",
    "password_spraying": "Password spraying",
    "api_usage_spike": "API usage spike",
}


@dataclass(frozen=True)
class Change:
    at: datetime  # naive UTC
    kind: str  # one of KINDS
    title: str
    detail: str
    tone: str  # "bad" | "good" | "neutral"
    page: str  # the view file (app/views/<page>.py) that explains it
    params: tuple[tuple[str, str], ...] = ()  # that page's filters, for the link


@dataclass(frozen=True)
class Timeline:
    changes: tuple[Change, ...]
    notes: tuple[str, ...] = ()

    def frame(self) -> pd.DataFrame:
        columns = ["at", "kind", "title", "detail", "tone", "page"]
        return pd.DataFrame(
            [[getattr(c, k) for k in columns] for c in self.changes], columns=columns
        )


@dataclass(frozen=True)
class ExperimentPlan:
    """An experiment as the Experiments page reads it: definition, metrics and method."""

    definition: ex.ExperimentDefinition
    primary: tuple[Metric, ...]
    guardrails: tuple[Metric, ...] = ()
    method: Method = "sequential"


@dataclass(frozen=True)
class Decision:
    key: str
    decision: str  # "ship" | "stop" | "check assignment" | "keep running" | "no result"
    summary: str  # one line a product owner reads
    verdict: str  # analysis.experiments.verdict, in full
    units: int = 0
    effect: float | None = None  # the primary metric's absolute change (a share for proportions)
    metric_type: str = ""  # the primary metric's type ("proportion", "mean", ...)
    metric: str = ""
    arm: str = ""
    results: tuple[ex.MetricArmResult, ...] = field(default_factory=tuple, repr=False)


def _moment(value: object) -> datetime | None:
    """A timestamp from a store row (ISO text or datetime; missing is None or NaN) as naive
    UTC, the timeline's convention."""
    if not isinstance(value, str | datetime) or value == "":
        return None
    stamp = pd.Timestamp(value)
    if pd.isna(stamp):  # NaT
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()


def _within(t: datetime | None, start: datetime, end: datetime) -> bool:
    return t is not None and start <= t < end


# --------------------------------------------------------------------------- incidents


def alert_changes(episodes: pd.DataFrame, start: datetime, end: datetime) -> list[Change]:
    """Alerts that fired in [start, end), from the alert store's episodes (AlertStore.episodes:
    rule, labels, fired, ended, summary, evidence)."""
    if episodes is None or episodes.empty or "fired" not in episodes:
        return []
    out = []
    row: dict[Any, Any]  # pandas' records carry no field types
    for row in episodes.to_dict("records"):
        fired = _moment(row["fired"])
        if fired is None or not _within(fired, start, end):
            continue
        labels: Mapping[str, object] = row["labels"] if isinstance(row["labels"], Mapping) else {}
        severity = labels.get("severity", "")
        ended = _moment(row["ended"])
        lasted = (
            "still firing"
            if ended is None
            else f"resolved after {_duration((ended - fired).total_seconds())}"
        )
        shown = ", ".join(
            f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity")
        )
        title = f"Alert {row['rule']} fired" + (f" ({shown})" if shown else "")
        summary = row["summary"] if isinstance(row["summary"], str) else ""
        detail = " ".join(
            p for p in (f"{severity}," if severity else "", lasted + ".", summary) if p
        )
        out.append(Change(fired, "incident", title, detail, "bad", "alerts"))
    return out


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def outage_changes(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> list[Change]:
    """Outages of the probed dependencies (Uptime Kuma's semantics, analysis.uptime)."""
    report = incidents(con, start, end)
    out = []
    for i in report.incidents:
        lasted = "still down" if i.end is None else f"down for {_duration(i.duration_s)}"
        cause = f" Cause: {i.cause}." if i.cause else ""
        out.append(
            Change(
                i.start,
                "outage",
                f"Outage: {i.target}",
                f"{lasted}, {i.failed_checks} failed checks.{cause}",
                "bad",
                "health",
            )
        )
    return out


def anomaly_changes(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    metrics: Sequence[str] = ANOMALY_METRICS,
) -> list[Change]:
    """Episodes the online detector confirmed on the metrics callers feel (analysis.anomalies)."""
    catalogue = builtin_metrics()
    out = []
    for name in metrics:
        metric = catalogue[name]
        view = anomaly_view(con, metric, start, end)
        for e in view.episodes:
            at = pd.Timestamp(e.start).to_pydatetime()
            if not start <= at < end:
                continue
            worse = (e.direction == "up") == metric.lower_is_better
            after = f" after release {e.release}" if e.release else ""
            state = "ongoing" if e.end is None else ("recovered" if e.recovered else "new level")
            kind = e.kind.replace("_", " ")
            out.append(
                Change(
                    at,
                    "anomaly",
                    f"{metric.title}: {kind} {e.direction}{after}",
                    f"{state}; peak {e.peak:%d %b %H:%M} UTC.",
                    "bad" if worse else "good",
                    "anomalies",
                    (("metric", name),),
                )
            )
    return out


# --------------------------------------------------------------------------- releases


def release_changes(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    settings: BenchmarkSettings | None = None,
    verdicts: Callable[[list[str]], dict[str, tuple[str, str, str]]] | None = None,
) -> list[Change]:
    """Each release first seen in [start, end) with its benchmark verdict against the release
    before it (analysis.benchmarks, the Benchmarks page's defaults), and every failed deploy.
    `verdicts` may supply cached (title, detail, tone) per release."""
    ordered = releases(con)
    names = [r for r, _ in ordered]
    shown = [(r, t) for r, t in ordered if start <= t < end and names.index(r) > 0]
    found = (verdicts or (lambda rs: release_verdicts(con, rs, settings)))([r for r, _ in shown])
    out = []
    for release, first in shown:
        title, detail, tone = found.get(release, (f"Release {release}", "", "neutral"))
        before = names[names.index(release) - 1]
        out.append(
            Change(
                first,
                "release",
                title,
                detail,
                tone,
                "benchmarks",
                (("bench_baseline", before), ("bench_candidate", release)),
            )
        )
    failed = con.execute(
        "SELECT created_at, release, message FROM deployments WHERE created_at >= ? "
        "AND created_at < ? AND upper(coalesce(status, '')) IN ('FAILED', 'CRASHED')",
        [start, end],
    ).fetchall()
    for at, release, message in failed:
        out.append(
            Change(
                at,
                "release",
                f"Deploy of {release} failed",
                f"{message or ''} Never served traffic.".strip(),
                "neutral",
                "infrastructure",
            )
        )
    rollbacks = con.execute(
        "SELECT created_at, release FROM deployments WHERE created_at >= ? AND created_at < ? "
        "AND coalesce(is_rollback, false)",
        [start, end],
    ).fetchall()
    for at, release in rollbacks:
        out.append(Change(at, "release", f"Rolled back to {release}", "", "neutral", "benchmarks"))
    return out


def release_verdicts(
    con: duckdb.DuckDBPyConnection,
    names: Sequence[str],
    settings: BenchmarkSettings | None = None,
) -> dict[str, tuple[str, str, str]]:
    """(title, detail, tone) per release: its comparison with the release before it."""
    if not names:
        return {}
    report = release_benchmarks(con, settings or BenchmarkSettings(), only=list(names))
    out: dict[str, tuple[str, str, str]] = {}
    for c in report.comparisons:
        release = c.candidate.release or c.candidate.label
        # one per measure (its 95th percentile for its median and 99th), largest change first
        ranked = key_changes(c, limit=len(c.rows))
        worse = [r.title for r in ranked if r.regression]
        better = [r.title for r in ranked if r.improvement]
        if worse:
            title = f"Release {release}: {len(worse)} regression(s) against {c.baseline.label}"
            tone = "bad"
        elif better:
            title = f"Release {release}: better than {c.baseline.label}, no regression"
            tone = "good"
        else:
            title = f"Release {release}: no change detected against {c.baseline.label}"
            tone = "neutral"
        parts = []
        if worse:
            parts.append("Worse: " + "; ".join(worse[:4]) + (" …" if len(worse) > 4 else "") + ".")
        if better:
            parts.append(
                "Better: " + "; ".join(better[:4]) + (" …" if len(better) > 4 else "") + "."
            )
        out[release] = (title, " ".join(parts), tone)
    return out


# --------------------------------------------------------------------------- experiments


def decide(plan: ExperimentPlan) -> Callable[[ex.ExperimentResult], Decision]:
    """How a result reads as a decision for this plan."""

    def read(result: ex.ExperimentResult) -> Decision:
        key = plan.definition.key
        primary = [m.name for m in plan.primary]
        guards = [m.name for m in plan.guardrails]
        if not result.computable:
            return Decision(key, "no result", f"No result yet: {result.reason}.", "")
        text = ex.verdict(result, primary, guards)
        units = sum(result.units.values())
        if result.srm is not None and result.srm.flagged:
            return Decision(key, "check assignment", "Sample ratio mismatch: check the "
                            "assignment before reading the result.", text, units)  # fmt: skip
        main = [r for r in result.results if r.metric in primary]
        hurt = [r for r in result.results if r.metric in guards and r.direction == "worse"]
        better = [r for r in main if r.direction == "better"]
        worse = [r for r in main if r.direction == "worse"]
        leads = better or worse or main
        lead = leads[0] if leads else None
        effect = None if lead is None else lead.absolute.effect
        kind = "" if lead is None else lead.metric_type
        metric = "" if lead is None else lead.label
        arm = "" if lead is None else lead.arm
        harmed = ", ".join(dict.fromkeys(r.label for r in hurt))
        if worse:
            decision = "stop"
            summary = f"Don't ship: {arm} is worse on {metric}; stop it."
        elif hurt and result.method == "sequential":
            # A confidence sequence stays valid at every look, so a harmed guardrail can end
            # the experiment now instead of exposing more callers to the harm.
            decision = "stop"
            summary = (
                f"Stop early: {hurt[0].arm} is worse on the guardrail {harmed}"
                + (f", though better on {metric}" if better else "")
                + "; the sequential test allows stopping at any look."
            )
        elif better and not hurt:
            decision = "ship"
            summary = f"Ship: {arm} is better on {metric} and no guardrail is worse."
        elif hurt:
            decision = "keep running"
            summary = (
                f"{hurt[0].arm} is worse on the guardrail {harmed}"
                + (f" but better on {metric}: weigh the trade-off" if better else "")
                + f"; with the {result.method} test, decide at the planned size."
            )
        else:
            decision = "keep running"
            summary = "Keep running: no detectable difference on the primary metric yet."
        return Decision(
            key, decision, summary, text, units, effect, kind, metric, arm, result.results
        )

    return read


# What the Experiments page reads for an experiment found only in the exposures.
DEFAULT_PRIMARY = ("resolved_rate",)
DEFAULT_GUARDRAILS = ("p95_e2e_latency", "llm_ttft", "abandoned_rate")


class SavedPlan(ex.SavedDefinition, Protocol):
    """A saved experiment with what a plan needs (collectors.control.SavedExperiment)."""

    @property
    def status(self) -> str: ...
    @property
    def primary_metrics(self) -> tuple[str, ...]: ...
    @property
    def guardrail_metrics(self) -> tuple[str, ...]: ...
    @property
    def method(self) -> Method: ...


def saved_experiment_plans(
    saved: Sequence[SavedPlan],
    discovered: Sequence[Mapping[str, object]],
    registry: Mapping[str, Metric],
) -> list[ExperimentPlan]:
    """`experiment_plans` for experiments as the control store saves them."""
    return experiment_plans(
        saved,
        {e.key: e.status for e in saved},
        {e.key: e.primary_metrics for e in saved},
        {e.key: e.guardrail_metrics for e in saved},
        {e.key: e.method for e in saved},
        discovered,
        registry,
    )


def experiment_plans(
    saved: Sequence[ex.SavedDefinition],
    statuses: Mapping[str, str],
    primaries: Mapping[str, Sequence[str]],
    guardrails: Mapping[str, Sequence[str]],
    methods: Mapping[str, Method],
    discovered: Sequence[Mapping[str, object]],
    registry: Mapping[str, Metric],
) -> list[ExperimentPlan]:
    """Plans for the saved experiments that have started (not drafts) and for those seen only
    in the exposures (read with the Experiments page's defaults)."""
    plans = []
    for e in saved:
        if statuses.get(e.key) == "draft":
            continue
        plans.append(
            ExperimentPlan(
                ex.experiment_definition(e),
                tuple(registry[m] for m in primaries.get(e.key, ()) if m in registry),
                tuple(registry[m] for m in guardrails.get(e.key, ()) if m in registry),
                methods.get(e.key, "sequential"),
            )
        )
    known = {e.key for e in saved}
    for found in discovered:
        key = str(found["key"])
        variants = tuple(str(v) for v in found["variants"])  # type: ignore[attr-defined]
        if key in known or len(variants) < 2:
            continue
        first = found.get("first")
        start = (
            first.replace(hour=0, minute=0, second=0, microsecond=0)
            if isinstance(first, datetime)
            else None
        )
        plans.append(
            ExperimentPlan(
                ex.ExperimentDefinition(
                    key,
                    variants[0],
                    variants[1:],
                    {v: 1 / len(variants) for v in variants},
                    "call"
                    if found.get("unit_type") not in ("call", "caller")
                    else found["unit_type"],  # type: ignore[arg-type]
                    start,
                ),
                tuple(registry[m] for m in DEFAULT_PRIMARY if m in registry),
                tuple(registry[m] for m in DEFAULT_GUARDRAILS if m in registry),
            )
        )
    return plans


def experiment_decisions(
    con: duckdb.DuckDBPyConnection, plans: Sequence[ExperimentPlan]
) -> list[Decision]:
    """Each experiment's decision as its page would read it today."""
    out = []
    for plan in plans:
        metrics = [*plan.primary, *plan.guardrails]
        result = ex.evaluate_experiment(
            con, plan.definition, metrics, plan.method, include_daily=False
        )
        out.append(decide(plan)(result))
    return out


def experiment_changes(
    decisions: Sequence[Decision], starts: Mapping[str, datetime], end: datetime
) -> list[Change]:
    """One change per experiment, dated at its start (or the period's end when unknown)."""
    tones = {"ship": "good", "stop": "bad", "check assignment": "bad"}
    return [
        Change(
            starts.get(d.key) or end,
            "experiment",
            f"Experiment {d.key}: {d.decision}",
            d.summary,
            tones.get(d.decision, "neutral"),
            "experiments",
            (("experiment_choice", d.key),),
        )
        for d in decisions
    ]


# --------------------------------------------------------------------------- security


def security_changes(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime
) -> list[Change]:
    """Detections with the Security page's default thresholds."""
    found = [
        *security.failed_login_bursts(con, start, end, by="ip").items,
        *security.credential_stuffing(con, start, end).items,
        *security.password_spraying(con, start, end).items,
        *security.api_usage_anomalies(con, start, end).items,
    ]
    out = []
    for d in found:
        title = next(
            (t for k, t in SECURITY_TITLES.items() if d.kind.startswith(k)),
            d.kind.replace("_", " ").capitalize(),
        )
        out.append(
            Change(
                d.start,
                "security",
                f"{title} from {d.entity}",
                f"{d.count:,} events over {_duration((d.end - d.start).total_seconds())}. "
                f"{d.detail}".strip(),
                "bad",
                "security",
            )
        )
    return out


# --------------------------------------------------------------------------- together


def timeline(
    parts: Mapping[str, Callable[[], list[Change]]],
) -> Timeline:
    """The changes of every part, newest first; a part that fails is named in the notes."""
    changes: list[Change] = []
    notes = []
    for name, part in parts.items():
        try:
            changes.extend(part())
        except duckdb.Error as exc:
            notes.append(f"{name} could not be read: {exc}")
    changes.sort(key=lambda c: c.at, reverse=True)
    return Timeline(tuple(changes), tuple(notes))
