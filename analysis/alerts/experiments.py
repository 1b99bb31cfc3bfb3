"""Experiment rules: a running experiment with a sample-ratio mismatch, or a guardrail metric
made significantly worse by a treatment arm (analysis.experiments, the Experiments page's own
evaluation). Alerts look at results again and again, so they use the sequential method, whose
intervals stay valid however often they are read.

Watched: the experiments saved as running (the control store), and those found only in the
exposures that exposed units within `active_within` (with the default guardrails).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from analysis.alerts.model import (
    Context,
    Evidence,
    Param,
    Reading,
    Rule,
    RuleKind,
    Timeline,
    WatchedExperiment,
    labels_of,
    steps,
)

CHECKS = ("guardrails", "srm")
# The Experiments page's default guardrails (app/views/experiments.py).
DEFAULT_GUARDRAILS = ("p95_e2e_latency", "llm_ttft", "abandoned_rate")
# A replay evaluates experiments once a day: each evaluation reads the whole experiment.
REPLAY_STEP = timedelta(days=1)

PARAMS = (
    Param("checks", "texts", "guardrails, srm or both.", list(CHECKS), choices=CHECKS),
    Param(
        "guardrails",
        "texts",
        "Guardrails of experiments found only in the exposures (saved ones use their own).",
        list(DEFAULT_GUARDRAILS),
    ),
    Param(
        "active_within",
        "duration",
        "An experiment found in the exposures is watched while it exposed units this recently.",
        "1d",
        low=60,
    ),
)

_ACTIVE_SQL = """
SELECT experiment_key, coalesce(any_value(unit_type), 'call') AS unit_type,
       list(DISTINCT variant ORDER BY variant) AS variants, min(exposed_at) AS first
FROM experiment_exposures
WHERE exposed_at >= ? AND exposed_at < ?
GROUP BY experiment_key ORDER BY experiment_key
"""


def _watched(ctx: Context, rule: Rule) -> list[WatchedExperiment]:
    # imported here: the service's settings load this module at start-up, and the experiment
    # engine brings scipy (about 1 s) that only evaluation needs
    from analysis import experiments as ex

    saved = list(ctx.experiments)
    known = {w.definition.key for w in saved}
    active = timedelta(seconds=float(rule.param("active_within", 86400)))
    guardrails = tuple(rule.param("guardrails", DEFAULT_GUARDRAILS))
    try:
        rows = ctx.con.execute(_ACTIVE_SQL, [ctx.now - active, ctx.now]).fetchall()
    except Exception:  # noqa: BLE001 - a snapshot without exposures yet
        rows = []
    for key, unit_type, variants, _first in rows:
        if key in known or len(variants) < 2:
            continue
        names = sorted(variants, key=lambda v: (v != "control", v))
        definition = ex.ExperimentDefinition(
            key,
            names[0],
            tuple(names[1:]),
            unit_type=unit_type if unit_type in ("call", "caller") else "call",
        )
        saved.append(WatchedExperiment(definition, key, guardrails))
    return saved


def check(ctx: Context, rule: Rule) -> list[Reading]:
    from analysis import experiments as ex

    checks = set(rule.param("checks", CHECKS))
    out = []
    for watched in _watched(ctx, rule):
        definition = watched.definition
        end = min(definition.end or ctx.now, ctx.now)  # a replay sees only what was there
        definition = dataclasses.replace(definition, end=end)
        metrics = [ctx.metrics[m] for m in watched.guardrails if m in ctx.metrics]
        result = ex.evaluate_experiment(
            ctx.con, definition, metrics if "guardrails" in checks else [], "sequential", False
        )
        if not result.computable:
            continue
        evidence = Evidence(
            "experiments",
            f"The result of experiment {watched.name}.",
            definition.start,
            end,
            labels_of({"experiment_choice": definition.key}),
        )
        if "srm" in checks and result.srm is not None and result.srm.flagged:
            out.append(
                Reading(
                    labels_of({"experiment": definition.key, "problem": "srm"}),
                    "breach",
                    result.srm.p_value,
                    f"Experiment {watched.name}: {result.srm.message}",
                    evidence,
                )
            )
        for r in result.results:
            if "guardrails" in checks and r.direction == "worse":
                out.append(
                    Reading(
                        labels_of(
                            {
                                "experiment": definition.key,
                                "problem": "guardrail",
                                "metric": r.metric,
                            }
                        ),
                        "breach",
                        r.relative.effect if math.isfinite(r.relative.effect) else None,
                        f"Experiment {watched.name}, guardrail {r.label}: {r.verdict}",
                        evidence,
                    )
                )
    return out


def history(ctx: Context, rule: Rule, start: datetime, end: datetime) -> Timeline:
    out: dict[datetime, list[Reading]] = {}
    for at in steps(start, end, REPLAY_STEP):
        found = check(ctx.at(at), rule)
        if found:
            out[at] = found
    return Timeline(REPLAY_STEP, out)


def problems(params: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[str]:
    unknown = [m for m in params.get("guardrails") or () if m not in metrics]
    if unknown:
        return [f"guardrails names metrics the catalogue does not have: {', '.join(unknown)}"]
    return []


EXPERIMENT = RuleKind(
    "experiment",
    "Experiment guardrail or SRM",
    "A running experiment with a sample-ratio mismatch or a guardrail made worse.",
    PARAMS,
    check,
    history,
    problems,
    every_s=3600.0,
)
